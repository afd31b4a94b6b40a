"""The legs of a move between two buckets, carried out by the buckets' own actors.

Each bucket's balance has one writer, its own actor, so moving money from one bucket to another
is a saga of single-writer steps, each one atomic commit (`supervisor/atomic.py`):

1. **debit** (source's actor, `DebitLeg`): `source` → `<dest>:in_transit`;
2. **credit** (destination's actor, `CreditLeg`): `<dest>:in_transit` → `dest` (a `hold` part
   stays in transit until its silo shows the physical deposit: **land**, `LandTransit`);
3. or, when the credit failed, **compensate** (source's actor, `CompensateLeg`):
   `<dest>:in_transit` → `source`.

In-transit money is still the treasury's (`actors/ledger.py` `HELD_KINDS`), so the ledger total is
the same before, between and after the steps. Every step journals an event with the move's reason
and sends the same event to the coordinator (the "rebalancer" role) as its answer, and pokes
RiskGuard (`BalancesChanged`) when a balance changed.

**Authority comes from the saga hash, not from the message.** The coordinator records each leg
(`leg:<i>` = source|dest|amount|hold) and a one-shot debit token in the saga's Redis hash in the
same commit that sends the `DebitLeg`. A leg command that does not match its record is refused;
the debit consumes the token (so a leg is debited at most once, however often it is sent) and
sets a settle token that the credit and the compensation each consume (so exactly one of them
ever happens). The legs write only their own fields of that hash (`token`, `settle`, `settled`,
`transit`, `credited`, `returned`, `landable`, `refused`); the coordinator reads them to decide,
and never trusts an answer's text. Each of these guards is a minimum checked inside the commit
script, so no race between two deliveries can get past it.

**Which moves the risk state allows.** A move *into the reserve* makes the treasury safer: it is
allowed in every known risk state (ACTIVE, PAUSED, HALTED), from any bucket, even a halted one,
and does not go through the fence. Every other move puts money where it can be spent, so its
debit goes through the fence (`steps.reserve`): refused once PAUSED or HALTED is committed, or
when the source bucket is halted. A credit into a halted bucket (`halt:<dest>`) is refused and
compensated. An agent without a risk state gets no move at all (fail closed).

Any bucket actor takes part by calling `handle_transfer(self, delivery)` first in its `handle`.
"""

from __future__ import annotations

from dataclasses import dataclass

from actors.commits import Committer
from actors.ledger import read_risk
from messages.catalogue import role_of
from messages.envelope import Envelope, IdFactory
from messages.money import MAX_MICROS, format_usd
from messages.schema import BalancesChanged
from messages.treasury_msgs import (
    CompensateLeg,
    CreditLeg,
    DebitLeg,
    FundsDebited,
    FundsMoved,
    FundsReturned,
    LandTransit,
    LegFailed,
    TransitLanded,
)
from runtime.atomic import AtomicSteps, Commit, FenceStatus, Reservation
from runtime.bus import Delivery, HandlerRejected
from runtime.clock import Clock
from runtime.keys import Keys

COORDINATOR = role_of(FundsMoved)
"""The role that receives every leg's answer."""

SAFE_DEST = "reserve"
"""Moves into this bucket are allowed in every risk state and skip the fence."""

LEG_TYPES = (DebitLeg, CreditLeg, CompensateLeg, LandTransit)

NO_RISK_STATE = "no risk state for this agent: no move (fail closed)"


# ---------------------------------------------------------------- the saga hash


def record_net_transfer(commit: Commit, flows_key: str, source: str, dest: str, amount: int) -> None:
    """A bucket's value changes when money leaves it or enters its in-transit; count that as a
    transfer (in `keys.flows(agent)`: money moved in, less money moved out, per bucket), so
    RiskGuard does not mistake a rebalance out of trading for a trading loss."""
    commit.incr(flows_key, source, -amount, minimum=-MAX_MICROS)
    commit.incr(flows_key, dest, amount, minimum=-MAX_MICROS)


def saga_key(keys: Keys, agent: str, saga: str) -> str:
    """`<prefix>:{S}:saga:<agent>:<saga>`: one hash per saga, in the agent's shard."""
    return keys.saga(agent, saga)


def leg_field(leg: int, name: str | None = None) -> str:
    return f"leg:{leg}" if name is None else f"leg:{leg}:{name}"


def is_safe_move(source: str, dest: str) -> bool:
    """A move into the reserve: allowed whatever the risk state (see the module docstring)."""
    return dest == SAFE_DEST and source != dest


def open_leg(commit: Commit, keys: Keys, agent: str, saga: str, leg: int, source: str, dest: str, amount: int,
             hold: int = 0) -> Commit:
    """Record a leg and its one-shot debit token; the coordinator adds this to the commit that
    sends the `DebitLeg`, so the leg exists exactly when its command does."""
    if source == dest or amount <= 0 or not 0 <= hold <= amount:
        raise ValueError(f"not a valid leg: {source} -> {dest}, amount {amount}, hold {hold}")
    key = saga_key(keys, agent, saga)
    commit.hset(key, leg_field(leg), f"{source}|{dest}|{amount}|{hold}")
    commit.hset(key, leg_field(leg, "token"), 1)
    return commit


@dataclass(frozen=True)
class LegFacts:
    """What Redis says about one leg (the coordinator decides from this, never from an answer)."""

    source: str
    dest: str
    amount: int
    hold: int
    token: int
    """1 until the leg is debited (or the coordinator cancels the debit), then 0."""
    transit: int
    credited: int
    returned: int
    landable: int
    """Of the held part, what may still land (a `LandTransit` takes it down)."""
    settled: str
    """'' while the money is in transit or not yet debited; 'credit' or 'return' once settled."""
    refused: str
    """`<stage>|<code>|<reason>` of the last refusal, or ''."""

    @property
    def debited(self) -> bool:
        return bool(self.settled) or self.transit > 0

    @property
    def cancelled(self) -> bool:
        """The token is gone and nothing moved: the debit will never happen."""
        return self.token == 0 and not self.debited

    @property
    def refused_stage(self) -> str:
        return self.refused.partition("|")[0]


_NUMBERS = ("token", "transit", "credited", "returned", "landable")


def read_leg(client, keys: Keys, agent: str, saga: str, leg: int) -> LegFacts | None:
    key = saga_key(keys, agent, saga)
    names = [
        leg_field(leg),
        *(leg_field(leg, n) for n in _NUMBERS),
        leg_field(leg, "settled"),
        leg_field(leg, "refused"),
    ]
    raw = client.hmget(key, names)
    if raw[0] is None:
        return None
    source, dest, amount, hold = _text(raw[0]).split("|")
    numbers = [int(v) if v is not None else 0 for v in raw[1:6]]
    return LegFacts(source, dest, int(amount), int(hold), *numbers,
                    settled=_text(raw[6]) if raw[6] else "", refused=_text(raw[7]) if raw[7] else "")


# ---------------------------------------------------------------- the legs


class TransferLegs(Committer):
    """Carries out the legs addressed to the bucket actor that owns it (one per actor)."""

    handlers = {DebitLeg: "debit", CreditLeg: "credit", CompensateLeg: "compensate", LandTransit: "land"}

    def __init__(self, steps: AtomicSteps, clock: Clock, new_id: IdFactory):
        self.steps = steps
        self.keys: Keys = steps.keys
        self.client = steps.client
        self.clock = clock
        self.new_id = new_id

    def handle(self, delivery: Delivery) -> bool:
        """Apply `delivery` if it is a transfer leg (True); False, touching nothing, if it is not."""
        name = self.handlers.get(type(delivery.envelope.body))
        if name is None:
            return False
        getattr(self, name)(delivery, delivery.envelope.body)
        return True

    # ------------------------------------------------------------------ debit

    def debit(self, delivery: Delivery, leg: DebitLeg) -> None:
        env = delivery.envelope
        facts = self._checked(delivery, leg, leg.source, leg.source, leg.dest, leg.amount)
        if facts.token <= 0:
            return self._ack_only(delivery)  # debited (or cancelled) already: a resent leg
        risk = read_risk(self.client, self.keys, env.agent)
        if not risk.known:
            return self._refuse(delivery, leg, "debit", "unknown_agent", NO_RISK_STATE)
        if is_safe_move(leg.source, leg.dest):
            self._debit_safe(delivery, leg)
        else:
            self._debit_fenced(delivery, leg)

    def _debit_safe(self, delivery: Delivery, leg: DebitLeg) -> None:
        """Into the reserve: no fence, allowed in every risk state; refused only if not funded."""
        env, k = delivery.envelope, self.keys
        commit = self._debit_commit(delivery, leg)
        commit.incr(k.ledger(env.agent), leg.source, -leg.amount)
        if self._try_commit(commit, env.id).applied:
            return
        facts = read_leg(self.client, k, env.agent, leg.saga, leg.leg)
        if facts is None or facts.token <= 0:
            return self._ack_only(delivery)
        available = int(self.client.hget(k.ledger(env.agent), leg.source) or 0)
        self._refuse(delivery, leg, "debit", "insufficient",
                     f"{leg.source} has {format_usd(available)} available, the move needs {format_usd(leg.amount)}")

    def _debit_fenced(self, delivery: Delivery, leg: DebitLeg) -> None:
        """Out of the reserve or between spending buckets: through the fence, like any spend."""
        env, k = delivery.envelope, self.keys
        now = self.clock.now_ms()
        reservation = self.steps.reserve(env.agent, env.id, leg.source, leg.amount, leg.amount, now)
        if reservation.status is FenceStatus.DUPLICATE:
            return self._ack_only(delivery)
        if not reservation.granted:
            return self._refuse(delivery, leg, "debit", reservation.status, _fence_reason(reservation, leg))
        commit = self._debit_commit(delivery, leg)
        commit.incr(k.ledger(env.agent), f"{leg.source}:reserved", -leg.amount)
        commit.hdel(k.reservations(env.agent), env.id)
        if self._try_commit(commit, env.id).applied:
            return
        # the token went to a twin of this command (a resend): give the reservation back, silently
        release = self.steps.new_commit(env.agent)
        release.incr(k.ledger(env.agent), f"{leg.source}:reserved", -leg.amount)
        release.incr(k.ledger(env.agent), leg.source, leg.amount)
        release.hdel(k.reservations(env.agent), env.id)
        release.ack(delivery.stream, delivery.group, delivery.entry_id)
        self._commit(release, env.id)

    def _debit_commit(self, delivery: Delivery, leg: DebitLeg) -> Commit:
        env, k = delivery.envelope, self.keys
        skey = saga_key(k, env.agent, leg.saga)
        commit = self.steps.new_commit(env.agent)
        commit.incr(skey, leg_field(leg.leg, "token"), -1)          # at most one debit per leg
        commit.incr(skey, leg_field(leg.leg, "settle"), 1)          # exactly one credit or return
        commit.incr(skey, leg_field(leg.leg, "transit"), leg.amount)
        commit.incr(k.ledger(env.agent), f"{leg.dest}:in_transit", leg.amount)
        record_net_transfer(commit, k.flows(env.agent), leg.source, leg.dest, leg.amount)
        event = FundsDebited(saga=leg.saga, leg=leg.leg, source=leg.source, dest=leg.dest, amount=leg.amount,
                             reason=leg.reason)
        self._announce(commit, env, event, f"debit of {leg.source} for saga {leg.saga}")
        return commit.ack(delivery.stream, delivery.group, delivery.entry_id)

    # ------------------------------------------------------------------ credit

    def credit(self, delivery: Delivery, leg: CreditLeg) -> None:
        env, k = delivery.envelope, self.keys
        facts = self._checked(delivery, leg, leg.dest, leg.source, leg.dest, leg.amount)
        if leg.hold != facts.hold:
            raise HandlerRejected(
                f"credit of saga {leg.saga} leg {leg.leg} holds {leg.hold}, the leg records {facts.hold}"
            )
        if facts.settled or not facts.debited:
            return self._ack_only(delivery)  # credited or returned already, or not debited (cancelled)
        risk = read_risk(self.client, k, env.agent)
        if not risk.known:
            return self._refuse(delivery, leg, "credit", "unknown_agent", NO_RISK_STATE)
        if leg.dest in risk.halted_buckets:
            return self._refuse(delivery, leg, "credit", "bucket_halted",
                                f"{leg.dest} is halted ({risk.halted_buckets[leg.dest]}): it takes no money")
        free = leg.amount - leg.hold
        skey = saga_key(k, env.agent, leg.saga)
        commit = self.steps.new_commit(env.agent)
        commit.incr(skey, leg_field(leg.leg, "settle"), -1).hset(skey, leg_field(leg.leg, "settled"), "credit")
        commit.incr(skey, leg_field(leg.leg, "transit"), -free).incr(skey, leg_field(leg.leg, "credited"), free)
        commit.incr(skey, leg_field(leg.leg, "landable"), leg.hold)
        commit.incr(k.ledger(env.agent), f"{leg.dest}:in_transit", -free).incr(k.ledger(env.agent), leg.dest, free)
        event = FundsMoved(saga=leg.saga, leg=leg.leg, source=leg.source, dest=leg.dest, amount=leg.amount,
                           reason=leg.reason, held=leg.hold)
        self._announce(commit, env, event, f"credit of {leg.dest} for saga {leg.saga}")
        commit.ack(delivery.stream, delivery.group, delivery.entry_id)
        if not self._try_commit(commit, env.id).applied:
            self._ack_only(delivery)  # a compensation won the race: nothing to credit

    # ------------------------------------------------------------------ compensate

    def compensate(self, delivery: Delivery, leg: CompensateLeg) -> None:
        env, k = delivery.envelope, self.keys
        facts = self._checked(delivery, leg, leg.source, leg.source, leg.dest, leg.amount)
        if facts.settled == "credit":
            return self._refuse(delivery, leg, "compensate", "already_credited",
                                f"the credit of {leg.dest} went through: nothing to return", record=False)
        if facts.settled or not facts.debited:
            return self._ack_only(delivery)  # returned already, or never debited
        skey = saga_key(k, env.agent, leg.saga)
        commit = self.steps.new_commit(env.agent)
        commit.incr(skey, leg_field(leg.leg, "settle"), -1).hset(skey, leg_field(leg.leg, "settled"), "return")
        commit.incr(skey, leg_field(leg.leg, "transit"), -leg.amount).incr(
            skey, leg_field(leg.leg, "returned"), leg.amount
        )
        commit.incr(k.ledger(env.agent), f"{leg.dest}:in_transit", -leg.amount)
        commit.incr(k.ledger(env.agent), leg.source, leg.amount)
        record_net_transfer(commit, k.flows(env.agent), leg.dest, leg.source, leg.amount)
        event = FundsReturned(saga=leg.saga, leg=leg.leg, source=leg.source, dest=leg.dest, amount=leg.amount,
                              reason=leg.reason)
        self._announce(commit, env, event, f"compensation of saga {leg.saga}")
        commit.ack(delivery.stream, delivery.group, delivery.entry_id)
        if not self._try_commit(commit, env.id).applied:
            self._ack_only(delivery)  # the credit won the race; the coordinator sees it in the hash

    # ------------------------------------------------------------------ land

    def land(self, delivery: Delivery, leg: LandTransit) -> None:
        env, k = delivery.envelope, self.keys
        facts = read_leg(self.client, k, env.agent, leg.saga, leg.leg)
        if facts is None:
            raise HandlerRejected(f"no leg {leg.leg} in saga {leg.saga}")
        self._route(delivery, facts.dest)
        if leg.bucket != facts.dest:
            raise HandlerRejected(f"saga {leg.saga} leg {leg.leg} credits {facts.dest}, not {leg.bucket}")
        skey = saga_key(k, env.agent, leg.saga)
        commit = self.steps.new_commit(env.agent)
        commit.incr(skey, leg_field(leg.leg, "landable"), -leg.amount)
        commit.incr(skey, leg_field(leg.leg, "transit"), -leg.amount).incr(
            skey, leg_field(leg.leg, "credited"), leg.amount
        )
        commit.incr(k.ledger(env.agent), f"{leg.bucket}:in_transit", -leg.amount)
        commit.incr(k.ledger(env.agent), leg.bucket, leg.amount)
        commit.emit(k.events(env.agent), self._wrap(TransitLanded(saga=leg.saga, leg=leg.leg, bucket=leg.bucket,
                                                                 amount=leg.amount, reason=leg.reason), env))
        commit.emit(k.agent_commands(env.agent, role_of(BalancesChanged)),
                    self._wrap(BalancesChanged(cause=f"deposit landed for saga {leg.saga}"), env))
        commit.ack(delivery.stream, delivery.group, delivery.entry_id)
        if self._try_commit(commit, env.id).applied:
            return
        refused = LegFailed(saga=leg.saga, leg=leg.leg, stage="land", source=facts.source, dest=facts.dest,
                            amount=leg.amount, code="not_held",
                            reason=f"only {format_usd(facts.landable)} of this leg waits for a deposit")
        commit = self.steps.new_commit(env.agent)
        commit.emit(k.events(env.agent), self._wrap(refused, env))
        commit.ack(delivery.stream, delivery.group, delivery.entry_id)
        self._commit(commit, env.id)

    # ------------------------------------------------------------------ shared

    def _checked(self, delivery: Delivery, leg, role: str, source: str, dest: str, amount: int) -> LegFacts:
        """The leg as recorded, after checking this command matches it and came to the right role."""
        self._route(delivery, role)
        facts = read_leg(self.client, self.keys, delivery.envelope.agent, leg.saga, leg.leg)
        if facts is None:
            raise HandlerRejected(f"no leg {leg.leg} in saga {leg.saga}: not a planned move")
        if (facts.source, facts.dest, facts.amount) != (source, dest, amount):
            raise HandlerRejected(f"{type(leg).__name__} {source} -> {dest} {amount} does not match saga {leg.saga} "
                                  f"leg {leg.leg} ({facts.source} -> {facts.dest} {facts.amount})")
        return facts

    def _route(self, delivery: Delivery, role: str) -> None:
        """Single writer: a leg is applied only by the actor of the bucket it writes."""
        expected = self.keys.agent_commands(delivery.envelope.agent, role)
        if delivery.stream != expected:
            raise HandlerRejected(f"{delivery.envelope.type} for the {role} bucket arrived on {delivery.stream}")

    def _refuse(self, delivery: Delivery, leg, stage: str, code: str, reason: str, record: bool = True) -> None:
        env, k = delivery.envelope, self.keys
        failed = LegFailed(saga=leg.saga, leg=leg.leg, stage=stage, source=leg.source, dest=leg.dest,
                           amount=leg.amount, code=code, reason=reason)
        commit = self.steps.new_commit(env.agent)
        if record:
            commit.hset(saga_key(k, env.agent, leg.saga), leg_field(leg.leg, "refused"), f"{stage}|{code}|{reason}")
        commit.emit(k.events(env.agent), self._wrap(failed, env))
        commit.emit(k.agent_commands(env.agent, COORDINATOR), self._wrap(failed, env))
        commit.ack(delivery.stream, delivery.group, delivery.entry_id)
        self._commit(commit, env.id)

    def _announce(self, commit: Commit, env: Envelope, event, cause: str) -> None:
        k = self.keys
        commit.emit(k.events(env.agent), self._wrap(event, env))
        commit.emit(k.agent_commands(env.agent, COORDINATOR), self._wrap(event, env))
        poke = BalancesChanged(cause=cause)
        commit.emit(k.agent_commands(env.agent, role_of(poke)), self._wrap(poke, env))



def handle_transfer(owner, delivery: Delivery) -> bool:
    """Apply `delivery` if it is a transfer leg; return False (touching nothing) if it is not.

    `owner` is the bucket actor (anything with `steps`, `clock` and `new_id`, as every bucket
    actor has) or a `TransferLegs`. On True the leg was committed and its stream entry acked (or
    it was a duplicate and only acked). Raises `HandlerRejected` for a leg that came to the wrong
    role or does not match its saga's record; anything else that raises is retried by the bus.
    """
    if not isinstance(delivery.envelope.body, LEG_TYPES):
        return False
    legs = owner if isinstance(owner, TransferLegs) else TransferLegs(owner.steps, owner.clock, owner.new_id)
    return legs.handle(delivery)


def _fence_reason(reservation: Reservation, leg: DebitLeg) -> str:
    """The fence's denial of a debit leg; a risk state adds that moves into the reserve still run."""
    reason = reservation.denial(leg.source, leg.amount, what="the move", fail_closed="no move (fail closed)")
    if reservation.status in (FenceStatus.PAUSED, FenceStatus.HALTED, FenceStatus.BUCKET_HALTED):
        reason += "; only moves into the reserve are allowed"
    return reason


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
