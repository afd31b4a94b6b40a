"""EscrowManager (role "escrow"): locks reserve money in escrows at the venue, and follows them.

One actor serves every agent of its worker's shards; everything it knows lives in Redis (the
ledger, the `escrows` hash that stands in for the list the venue does not have, the intents of
creations in flight), so a restarted actor knows every open escrow.

- CreateEscrow: refuse what the policy forbids (over 72 h, under $0.10); reserve amount + fee
  through the fence with breaker 7 as the cap; check the reserve's money is at the casino; write
  the intent; create at the venue (tagged with the message id); one commit locks the amount,
  stores the escrow, journals, tells RiskGuard and acks. A redelivered command whose intent
  exists looks the escrow up before ever creating a second one (`actors.escrow.recovery`).
- ReleaseEscrow / DisputeEscrow: call the venue, then commit; after a lost answer the venue's
  409 and a GET show what happened, and that is what is committed.
- SyncEscrows: GET every open escrow and commit what changed at the venue (released elsewhere,
  refunded by timeout, disputed by the counterparty), all in one commit.

How each step moves the money is in `actors.escrow.money`.
"""

from __future__ import annotations

import logging

import msgspec
import pykka

from actors.base import TreasuryActor
from actors.escrow.money import (
    CASINO_HOMED,
    LedgerMove,
    lock_cap,
    on_created,
    on_failed,
    on_refunded,
    on_released,
    to_reserve,
)
from actors.escrow.recovery import CreationUnresolved, find_or_prove_absent, ledger_head
from actors.escrow.store import (
    RELEASABLE,
    CreatingIntent,
    EscrowRecord,
    closed_key,
    creating_key,
    encode,
    escrows_key,
    load_escrow,
    load_intent,
    load_intents,
    open_escrows,
)
from actors.escrow.venue import EscrowVenue, VenueFor, escrow_venue_factory
from actors.flows import flow_effects
from actors.ledger import read_ledger, read_risk
from actors.policy.breakers import escrow_lock
from actors.policy.buckets import DEFAULT_POLICY, Policy, usd
from actors.policy.drift import before_escrow
from actors.policy.effective import effective_policy
from actors.policy.escrow_rules import check_escrow, escrow_fee
from messages.base import Message
from messages.catalogue import role_of
from messages.envelope import IdFactory, wrap
from messages.escrow_msgs import (
    CreateEscrow,
    DisputeEscrow,
    EscrowCreated,
    EscrowDisputed,
    EscrowRefunded,
    EscrowRefused,
    EscrowRejected,
    EscrowReleased,
    EscrowSynced,
    ReleaseEscrow,
    SyncEscrows,
)
from messages.schema import BalancesChanged
from runtime.atomic import AtomicSteps, Commit, FenceStatus, Reservation
from runtime.bus import Delivery, OutcomeUnknown
from runtime.clock import Clock
from venue.client.escrow import tag_description
from venue.client.types import Escrow as VenueEscrowView
from venue.client.types import EscrowCreated as VenueEscrow
from venue.errors import VenueRateLimited, VenueRejected, VenueUnavailable

log = logging.getLogger(__name__)

OVERCOMMIT = "escrow_overcommit"
"""The refusal code of breaker 7 (escrow would lock more than 30 % of the reserve)."""


class EscrowManager(TreasuryActor):
    """Broadcasts need no action here: escrow runs no loops. New escrows are stopped by the fence,
    releases by the risk state read at the time (see `release`)."""

    role = "escrow"
    handlers = {CreateEscrow: "create", ReleaseEscrow: "release", DisputeEscrow: "dispute", SyncEscrows: "sync"}

    def __init__(self, steps: AtomicSteps, clock: Clock, new_id: IdFactory, venue_for: VenueFor,
                 policy: Policy = DEFAULT_POLICY):
        super().__init__(steps, clock, new_id)
        self.venue_for = venue_for
        self.policy = policy

    # ------------------------------------------------------------------ create

    def policy_for(self, agent: str) -> Policy:
        """The agent's effective policy (`actors.policy.effective`): this actor's base with the overrides."""
        return effective_policy(self.client, self.keys, agent, self.policy)

    def create(self, delivery: Delivery, cmd: CreateEscrow) -> None:
        env = delivery.envelope
        agent, now = env.agent, self.clock.now_ms()
        description = cmd.description.strip()
        blocked = self.spend_blocked(agent)
        if blocked is not None and not self.client.hexists(self.keys.reservations(agent), env.id):
            # the broadcast landed: refused at once (one reserved before a crash is resolved below)
            return self._refuse(delivery, blocked.state.lower(), f"treasury is {blocked.state}: {blocked.reason}",
                                amount=cmd.amount)
        ledger = read_ledger(self.client, self.keys, agent)
        # Creations in flight (or left unresolved after a crash) may already be escrows at the
        # venue: breaker 7 counts them as locked.
        in_flight = sum(i.amount for m, i in load_intents(self.client, self.keys, agent).items() if m != env.id)
        locked = ledger.held_by("reserve", "locked") + in_flight
        reserve_total = ledger.bucket("reserve")
        policy = self.policy_for(agent)
        check = check_escrow(cmd.amount, cmd.timeout_hours, locked, reserve_total, policy)
        problems = [(c, r) for c, r in zip(check.codes, check.reasons, strict=True) if c != "escrow_lock"]
        if len(description) < 3:
            problems.append(("invalid_description", "the description needs at least 3 visible characters"))
        if problems:
            return self._refuse(delivery, problems[0][0], "; ".join(r for _, r in problems), amount=cmd.amount)

        venue = self.venue_for(agent)  # no credentials: rejected before anything is reserved
        reserved = to_reserve(cmd.amount, policy)
        cap = lock_cap(reserve_total, locked, policy)
        reservation = self.steps.reserve(agent, env.id, "reserve", reserved, cap, now)
        if reservation.status is FenceStatus.DUPLICATE:
            return self._ack_only(delivery)
        if not reservation.granted:
            code, reason = self._fence_refusal(reservation, cmd.amount, reserved, locked, reserve_total, policy)
            return self._refuse(delivery, code, reason, amount=cmd.amount, seq=reservation.seq or None)
        seq = reservation.seq or None
        reserved_before = reservation.record is not None
        if reservation.record is not None:  # reserved by an earlier delivery: that amount stands
            reserved = reservation.record.amount
        if self.must_look_up(delivery, reserved_before):
            intent = load_intent(self.client, self.keys, agent, env.id)
            # The intent is written before the venue call: without one, only a Redis that may have
            # lost it (with a suffix of its writes) leaves the question open. Then look for the
            # escrow by its reference tag, with no ledger head to prove absence beyond the window.
            if intent is not None or self.redis_may_lose_writes():
                intent = intent or CreatingIntent(amount=cmd.amount, counterparty=cmd.counterparty,
                                                  description=tag_description(description, env.id),
                                                  timeout_hours=cmd.timeout_hours, ledger_head="",
                                                  started_ms=now)
                try:
                    found = find_or_prove_absent(venue.escrow, venue.casino, intent)
                except CreationUnresolved as exc:
                    # never create on "unknown": the bus parks it (funds reserved), retries, alerts
                    raise OutcomeUnknown(f"{exc}; the reservation of {reserved} micro-USD stays held") from None
                if found is not None:
                    return self._settle_created(delivery, cmd, found, reserved, seq, recovered=True)
        return self._create_at_venue(delivery, cmd, description, venue, reserved, seq)

    def _create_at_venue(self, delivery: Delivery, cmd: CreateEscrow, description: str, venue: EscrowVenue,
                         reserved: int, seq: int | None) -> None:
        env = delivery.envelope
        agent = env.agent
        # The casino balance is shared with the buckets whose home it is (casino, and referral:
        # its commissions land there): only what is beyond their claims may the escrow take.
        balance = venue.casino.balance().balance
        ledger = read_ledger(self.client, self.keys, agent)
        casino_claim = sum(ledger.bucket(b) for b in CASINO_HOMED)
        spare = balance - casino_claim
        if spare < cmd.amount:
            reason = (f"escrow {usd(cmd.amount)} needs reserve money at the casino: the casino balance "
                      f"{usd(balance)} holds {usd(max(spare, 0))} beyond what the casino bucket and the referral "
                      f"bucket own there ({usd(casino_claim)}); park reserve money at the casino first "
                      f"(treasury cmd --operator park AGENT --silo casino)")
            return self._fail(delivery, cmd, reserved, "insufficient_balance", reason, seq)

        tagged = tag_description(description, env.id)
        intent = CreatingIntent(amount=cmd.amount, counterparty=cmd.counterparty, description=tagged,
                                timeout_hours=cmd.timeout_hours, ledger_head=ledger_head(venue.casino),
                                started_ms=self.clock.now_ms())
        self._write_intent(agent, env.id, intent)
        try:
            created = venue.escrow.create(cmd.counterparty, cmd.amount, tagged, timeout_hours=cmd.timeout_hours,
                                          idempotency_key=env.id)
        except VenueRejected as exc:
            return self._fail(delivery, cmd, reserved, exc.code or "rejected", str(exc), seq, by_venue=True)
        # VenueUnavailable (outcome unknown) and VenueRateLimited propagate: the bus redelivers,
        # and the intent makes the next attempt look the escrow up first.
        self._settle_created(delivery, cmd, created, reserved, seq, recovered=False)

    def _write_intent(self, agent: str, msg_id: str, intent: CreatingIntent) -> None:
        """The write-ahead note, committed before the venue call under its own id (`<msg>:intent`),
        so it is written once even if this step is repeated; the first one, whose ledger head is
        the oldest, is the one kept."""
        commit = self.steps.new_commit(agent).hset(creating_key(self.keys, agent), msg_id, encode(intent))
        self._commit(commit, f"{msg_id}:intent", self.clock.now_ms())

    # ------------------------------------------------------------------ release, dispute

    def release(self, delivery: Delivery, cmd: ReleaseEscrow) -> None:
        env = delivery.envelope
        agent = env.agent
        record = self._open_record(delivery, cmd.escrow_id)
        if record is None:
            return None
        risk = read_risk(self.client, self.keys, agent)
        if risk.state == "HALTED":
            return self._refuse(delivery, "halted", f"treasury is HALTED ({risk.reason}): no escrow is released "
                                f"until an operator resumes", escrow_id=record.escrow_id, amount=record.amount)
        venue = self.venue_for(agent)
        try:
            venue.escrow.release(record.escrow_id)
            status = "released"
        except VenueRejected as exc:
            if exc.status != 409:
                return self._refuse(delivery, exc.code or "rejected", str(exc), escrow_id=record.escrow_id,
                                    by_venue=True)
            status = venue.escrow.get_escrow(record.escrow_id).status  # released by an earlier attempt?
        refusal = None if status == "released" else (
            "invalid_status", f"escrow {record.escrow_id} is {status} at the venue: it cannot be released")
        self._apply(delivery, record, status, proof=cmd.proof, refusal=refusal)

    def dispute(self, delivery: Delivery, cmd: DisputeEscrow) -> None:
        env = delivery.envelope
        record = self._open_record(delivery, cmd.escrow_id)
        if record is None:
            return None
        venue = self.venue_for(env.agent)
        try:
            venue.escrow.dispute(record.escrow_id, cmd.reason)
            status = "disputed"
        except VenueRejected as exc:
            if exc.status != 409:
                return self._refuse(delivery, exc.code or "rejected", str(exc), escrow_id=record.escrow_id,
                                    by_venue=True)
            status = venue.escrow.get_escrow(record.escrow_id).status  # disputed by an earlier attempt?
        refusal = None if status == "disputed" else (
            "invalid_status", f"escrow {record.escrow_id} is {status} at the venue: it cannot be disputed")
        self._apply(delivery, record, status, reason=cmd.reason, refusal=refusal)

    def _open_record(self, delivery: Delivery, escrow_id: str) -> EscrowRecord | None:
        """The escrow if the treasury tracks it and the venue could still release or dispute it;
        otherwise the command is refused (journaled) and None is returned."""
        record = load_escrow(self.client, self.keys, delivery.envelope.agent, escrow_id)
        if record is None:
            self._refuse(delivery, "unknown_escrow", f"the treasury has no escrow {escrow_id}", escrow_id=escrow_id)
            return None
        if record.status not in RELEASABLE:
            self._refuse(delivery, "invalid_status", f"escrow {escrow_id} is {record.status}", escrow_id=escrow_id,
                         amount=record.amount)
            return None
        return record

    def _apply(self, delivery: Delivery, record: EscrowRecord, status: str, *, proof: str | None = None,
               reason: str | None = None, refusal: tuple[str, str] | None = None) -> None:
        """Commit the venue's `status` for one escrow after a command; when it is not what the
        command asked for (the venue got there first), that is journaled as the venue's doing,
        with the command's refusal."""
        env = delivery.envelope
        agent = env.agent
        commit = self.steps.new_commit(agent)
        events: list[Message] = []
        source = "venue" if refusal else "command"
        _, moved = self._transition(commit, agent, record, status, events, proof=proof if not refusal else None,
                                    reason=reason if not refusal else None, source=source)
        if refusal is not None:
            events.append(EscrowRefused(code=refusal[0], reason=refusal[1], escrow_id=record.escrow_id,
                                        amount=record.amount))
        self._finish(delivery, commit, events, balances_changed=moved, cause=f"escrow {record.escrow_id} {status}")

    # ------------------------------------------------------------------ sync

    def sync(self, delivery: Delivery, cmd: SyncEscrows) -> None:
        env = delivery.envelope
        agent = env.agent
        records = open_escrows(self.client, self.keys, agent)
        counts = {"released": 0, "refunded": 0, "disputed": 0, "completed": 0, "unchanged": 0, "missing": 0,
                  "unreachable": 0}
        commit = self.steps.new_commit(agent)
        events: list[Message] = []
        moved = False
        venue = self.venue_for(agent) if records else None
        for record in records:
            try:
                view = venue.escrow.get_escrow(record.escrow_id)
            except VenueRejected as exc:
                # a 404 is never expected for an id the venue gave out: left for a person to look at
                counts["missing" if exc.status == 404 else "unreachable"] += 1
                log.warning("escrow %s of %s: lookup refused: %s", record.escrow_id, agent, exc)
                continue
            except (VenueUnavailable, VenueRateLimited):
                counts["unreachable"] += 1  # looked up again at the next tick
                continue
            applied, money = self._transition(commit, agent, record, view.status, events,
                                              reason=_dispute_note(view), source="venue")
            moved |= money
            counts[view.status if applied else "unchanged"] += 1
        # A sync that found every escrow as it was writes nothing (it runs every 5 minutes);
        # one that changed something, or could not look, says so.
        if moved or any(counts[k] for k in counts if k != "unchanged"):
            events.append(EscrowSynced(checked=len(records), **counts))
        self._finish(delivery, commit, events, balances_changed=moved, cause="escrow sync")

    # ------------------------------------------------------------------ transitions (shared)

    def _transition(self, commit: Commit, agent: str, record: EscrowRecord, status: str, events: list[Message], *,
                    proof: str | None = None, reason: str | None = None, source: str) -> tuple[bool, bool]:
        """Add to `commit` what moving `record` to the venue's `status` means.

        Returns (applied, money moved). Only open escrows change; a status the treasury does not
        expect (e.g. back to funded) is left alone and logged.
        """
        if status == record.status or not record.open:
            return False, False
        now = self.clock.now_ms()
        ledger = self.keys.ledger(agent)
        if status == "released":
            self._move(commit, ledger, on_released(record.amount))
            # a deliberate payment, not a loss: the breakers see it as an outflow (the fee with it)
            events.append(flow_effects(commit, self.keys, agent, bucket="reserve", amount_micros=-record.amount,
                                       source="escrow_payment", detail=f"escrow {record.escrow_id} released",
                                       ref=f"escrow-paid:{record.escrow_id}", apply_to=None))
            updated = _replace(record, status="released", proof=proof, closed_ms=now)
            events.append(EscrowReleased(escrow_id=record.escrow_id, amount=record.amount,
                                         paid=record.amount - record.fee, fee=record.fee, proof=proof,
                                         source=source))
            money = True
        elif status == "refunded":
            move = on_refunded(record.amount, self.policy_for(agent))
            self._move(commit, ledger, move)
            updated = _replace(record, status="refunded", closed_ms=now)
            events.append(EscrowRefunded(escrow_id=record.escrow_id, amount=record.amount,
                                         returned=record.amount - move.left, fee=move.left))
            money = True
        elif status == "disputed":
            note = reason or "disputed at the venue"
            updated = _replace(record, status="disputed", dispute_reason=note)
            events.append(EscrowDisputed(escrow_id=record.escrow_id, amount=record.amount, reason=note,
                                         source=source))
            money = False
        elif status == "completed" and record.status == "funded":
            updated, money = _replace(record, status="completed"), False  # the counterparty says it delivered
        else:
            log.warning("escrow %s: venue status %r after %r left as it is", record.escrow_id, status, record.status)
            return False, False
        if updated.open:
            commit.hset(escrows_key(self.keys, agent), record.escrow_id, encode(updated))
        else:
            commit.hdel(escrows_key(self.keys, agent), record.escrow_id)
            commit.hset(closed_key(self.keys, agent), record.escrow_id, encode(updated))
        return True, money

    @staticmethod
    def _move(commit: Commit, ledger: str, move: LedgerMove) -> None:
        for fld, delta in move.deltas:
            commit.incr(ledger, fld, delta)

    # ------------------------------------------------------------------ commits

    def _settle_created(self, delivery: Delivery, cmd: CreateEscrow, created: VenueEscrow, reserved: int,
                        seq: int | None, *, recovered: bool) -> None:
        env = delivery.envelope
        agent, now, k = env.agent, self.clock.now_ms(), self.keys
        amount = int(created.amount)
        if amount != cmd.amount:
            log.warning("escrow %s: venue locked %d micro-USD, %d asked", created.escrow_id, amount, cmd.amount)
        policy = self.policy_for(agent)
        fee = escrow_fee(amount, policy.escrow_fee_bp)
        record = EscrowRecord(escrow_id=created.escrow_id, counterparty=created.counterparty_id or cmd.counterparty,
                              amount=amount, fee=fee, venue_fee=int(created.commission), status="funded",
                              timeout_hours=created.timeout_hours, auto_release_at=created.auto_release_at or "",
                              created_ms=now, created_by=env.id, description=cmd.description.strip())
        locked_after = read_ledger(self.client, k, agent).held_by("reserve", "locked") + amount
        commit = self.steps.new_commit(agent)
        self._move(commit, k.ledger(agent), on_created(amount, reserved))
        commit.hdel(k.reservations(agent), env.id)
        commit.hdel(creating_key(k, agent), env.id)
        commit.hset(escrows_key(k, agent), record.escrow_id, encode(record))
        events: list[Message] = [EscrowCreated(
            escrow_id=record.escrow_id, counterparty=record.counterparty, amount=amount, fee=fee,
            net_to_counterparty=amount - fee, timeout_hours=record.timeout_hours,
            auto_release_at=record.auto_release_at, locked_after=locked_after, recovered=recovered, fence_seq=seq)]
        if recovered and created.status != "funded":  # found after a crash, and it has moved on since
            self._transition(commit, agent, record, created.status, events, source="venue")
        reserve_before = read_ledger(self.client, k, agent).bucket("reserve")
        if before_escrow(amount, reserve_before, policy):
            # A large escrow: ask the Rebalancer to top the reserve up (it re-checks the trigger).
            from messages.treasury_msgs import Rebalance

            commit.emit(k.agent_commands(agent, role_of(Rebalance)), wrap(
                Rebalance(trigger="before_escrow", reason=f"escrow {record.escrow_id} locks {amount} micro-USD",
                          amount=amount), agent=agent, now_ms=now, new_id=self.new_id, cause=env))
        self._finish(delivery, commit, events, balances_changed=True, cause=f"escrow {record.escrow_id} created")

    def _fail(self, delivery: Delivery, cmd: CreateEscrow, reserved: int, code: str, reason: str,
              seq: int | None, *, by_venue: bool = False) -> None:
        """The escrow was not created: the reservation goes back whole, and nothing else changes."""
        env = delivery.envelope
        agent, k = env.agent, self.keys
        commit = self.steps.new_commit(agent)
        self._move(commit, k.ledger(agent), on_failed(reserved))
        commit.hdel(k.reservations(agent), env.id)
        commit.hdel(creating_key(k, agent), env.id)
        kind = EscrowRejected if by_venue else EscrowRefused
        refused = kind(code=code, reason=reason, amount=cmd.amount, fence_seq=seq)
        self._finish(delivery, commit, [refused], balances_changed=False, cause="")

    def _refuse(self, delivery: Delivery, code: str, reason: str, *, escrow_id: str | None = None,
                amount: int | None = None, seq: int | None = None, by_venue: bool = False) -> None:
        """Journal the command's refusal: `EscrowRejected` when the venue refused it, else `EscrowRefused`."""
        kind = EscrowRejected if by_venue else EscrowRefused
        self._deny(delivery, kind(code=code, reason=reason, escrow_id=escrow_id, amount=amount, fence_seq=seq))

    def _finish(self, delivery: Delivery, commit: Commit, events: list[Message], *, balances_changed: bool,
                cause: str) -> None:
        """Journal `events`, notify RiskGuard if money moved, ack: all in `commit`, applied once."""
        env = delivery.envelope
        for event in events:
            self._emit(commit, env, event)
        if balances_changed:
            poke = BalancesChanged(cause=cause)
            self._emit(commit, env, poke, self.keys.agent_commands(env.agent, role_of(poke)))
        commit.ack(delivery.stream, delivery.group, delivery.entry_id)
        self._commit(commit, env.id)

    def _fence_refusal(self, reservation: Reservation, amount: int, reserved: int, locked: int,
                       reserve_total: int, policy: Policy) -> tuple[str, str]:
        """The refusal code and reason: over the cap is breaker 7 (escrow overcommit) with its own
        reason; anything else is the fence's denial, for `reserved` (the escrow and its fee)."""
        denial = reservation.denial("reserve", reserved, what=f"the escrow of {usd(amount)} with its fee",
                                    cap_name="escrow cap")
        if reservation.status == FenceStatus.OVER_CAP:
            fee = escrow_fee(amount, policy.escrow_fee_bp)
            breaker = escrow_lock(locked, amount, fee, reserve_total, limit_bp=policy.escrow_reserve_bp)
            return OVERCOMMIT, breaker.reason if breaker else denial
        return reservation.status, denial


def _replace(record: EscrowRecord, **changes) -> EscrowRecord:
    return msgspec.structs.replace(record, **changes)


def _dispute_note(view: VenueEscrowView) -> str | None:
    """The reason given with the latest dispute, when the venue shows events (participants see them)."""
    notes = [e.note for e in view.events if e.event == "disputed" and e.note]
    return notes[-1] if notes else None


def build(steps: AtomicSteps, clock: Clock, new_id: IdFactory, venues: dict[str, str]) -> pykka.ActorRef:
    """The escrow role's actor; it needs both the escrow and the casino base URLs."""
    missing = [name for name in ("escrow", "casino") if not venues.get(name)]
    if missing:
        raise ValueError(f"the escrow role needs the {' and '.join(missing)} URL (worker --venue escrow=<url>)")
    venue_for = escrow_venue_factory(steps.client, steps.keys, venues["escrow"], venues["casino"])
    return EscrowManager.start(steps, clock, new_id, venue_for)

