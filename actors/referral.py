"""ReferralBucket: brings referral commissions into the treasury, each exactly once, and reinvests them.

Where the money is (see `actors/policy/referral.py`): casino commissions are credited straight to
the casino balance (ledger reason `referral_commission_l<n>:<bet>`); wallet and trading
commissions wait at those services until withdrawn — the whole available amount, at least $1 —
and the payout then stays `pending` until someone pays it by hand.

So the weekly sweep:

- reads the casino ledger for commission credits newer than the last one counted, and credits
  them to the referral bucket at once (the money is already in a treasury balance);
- reads wallet and trading `/referral/stats`, asks for a payout of whatever is withdrawable, and
  credits what was earned since the last count to `referral:in_transit`: the treasury's money,
  not yet in hand. It becomes available when the payout lands (the wallet reports paid payouts;
  trading does not, so `ReferralPayoutLanded` confirms those).

Exactly once: for each source the state hash keeps a watermark of the venue's own cumulative
figure already counted (total earned; for the casino, the newest ledger entry seen). A sweep
credits only what lies beyond it, and moves it in the same atomic commit as the credit, so a
re-run finds nothing new and a redelivery after a crash finds the watermark where it was. The
watermark moves by compare-and-set (two bounded increments, see `_advance`), so even two sweeps
racing from different processes cannot both count the same commission.

Reinvestment (quarterly, or once the income is above $100) sends the income 70 % to the reserve
and 30 % to trading, split exactly by the policy, as a `MoveReferralIncome` command to the
rebalancer, which coordinates every move between buckets; the actor then takes part in that
move like any bucket actor, carrying out the legs addressed to the referral bucket
(`actors/transfers.py`). Only income is reinvested: the bucket's allocated capital stays, and what
the rebalancer moves out of it on its own is not counted twice (`income` is capped by what is
available).

`referral:in_transit` is shared with the transfer saga: both mean money on its way into the
referral bucket, and each removes only what it put there (the sweep by its per-source counters).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import pykka
import redis

from actors.base import TreasuryActor
from actors.chain_view import read_addresses
from actors.flows import flow_effects
from actors.ledger import RiskView, read_ledger, read_risk
from actors.policy.buckets import DEFAULT_POLICY, Policy
from actors.policy.effective import effective_policy
from actors.policy.referral import SWEEP_SOURCES, WITHDRAW_MIN, plan_reinvest, reinvest_due, sweep_due, sweepable
from actors.venues import TIMEOUT_S, AgentClients
from messages.catalogue import role_of
from messages.envelope import IdFactory, wrap
from messages.referral_msgs import (
    MoveReferralIncome,
    ReferralPayoutConfirmed,
    ReferralPayoutLanded,
    ReferralReinvested,
    ReferralReinvestSkipped,
    ReferralSweepSkipped,
    ReferralSwept,
    ReinvestReferrals,
    SweepReferrals,
)
from messages.schema import BalancesChanged
from runtime.atomic import AtomicSteps, Commit
from runtime.bus import Delivery, HandlerRejected
from runtime.clock import Clock
from runtime.keys import Keys
from venue.client.casino import CasinoClient
from venue.client.trading import TradingClient
from venue.client.wallet import WalletClient
from venue.errors import VenueRejected

log = logging.getLogger(__name__)

COMMISSION_PREFIX = "referral_commission_"
"""Reason of a casino ledger credit that is a referral commission."""

LEDGER_PAGE = 50
"""The casino ledger endpoint shows this many newest entries."""

HELD_AT = ("casino", "chain")
"""Where referral income sits once in hand: the casino balance, or the treasury's own address."""

MOVER_ROLE = role_of(MoveReferralIncome)

UNBOUNDED = 10**18
"""A bound no watermark reaches (the money limit is 10^15 micro-USD)."""


def state_key(keys: Keys, agent: str) -> str:
    """The referral bucket's own bookkeeping: watermarks, money in transit by source, income."""
    return keys.referral(agent)


# ---------------------------------------------------------------- state


@dataclass(frozen=True)
class ReferralState:
    last_sweep_ms: int | None = None
    last_reinvest_ms: int | None = None
    earned: dict[str, int] = field(default_factory=dict)
    """Per source, the venue's cumulative commission figure already counted."""
    casino_entry: int = 0
    """The newest casino ledger second (Unix seconds) whose commission credits are all counted."""
    in_transit: dict[str, int] = field(default_factory=dict)
    landed: dict[str, int] = field(default_factory=dict)
    """Per payout source, the cumulative amount counted as landed."""
    income: int = 0
    """Referral income in hand (available in the referral bucket) and not yet reinvested."""
    held_at: dict[str, int] = field(default_factory=dict)
    paid_ids: frozenset[str] = frozenset()


def read_state(client: redis.Redis, keys: Keys, agent: str) -> ReferralState:
    raw = {_text(k): _text(v) for k, v in client.hgetall(state_key(keys, agent)).items()}

    def num(name: str) -> int:
        return int(raw.get(name) or 0)

    def opt(name: str) -> int | None:
        return int(raw[name]) if raw.get(name) else None

    sources = ("casino", *SWEEP_SOURCES)
    return ReferralState(
        last_sweep_ms=opt("last_sweep_ms"),
        last_reinvest_ms=opt("last_reinvest_ms"),
        earned={s: num(f"{s}:earned") for s in sources},
        casino_entry=num("casino:entry"),
        in_transit={s: num(f"{s}:in_transit") for s in SWEEP_SOURCES},
        landed={s: num(f"{s}:landed") for s in SWEEP_SOURCES},
        income=num("income"),
        held_at={h: num(f"at:{h}") for h in HELD_AT},
        paid_ids=frozenset(k.removeprefix("paid:") for k in raw if k.startswith("paid:")),
    )


def _advance(commit: Commit, key: str, fld: str, old: int, new: int) -> None:
    """Move a watermark from `old` to `new`, refusing the whole commit unless it still reads `old`.

    The commit script offers bounded increments only, so equality is two bounds: `fld + Δ ≥ new`
    holds iff `fld ≥ old`, and on the mirror `fld:neg − Δ ≥ −new` holds iff `fld ≤ old`.
    """
    if new == old:
        return
    delta = new - old
    commit.incr(key, fld, delta, minimum=new)
    commit.incr(key, f"{fld}:neg", -delta, minimum=-new)


def _bump(commit: Commit, key: str, fld: str, delta: int) -> None:
    """Add to a watermark that `_advance` also guards, keeping its mirror in step."""
    commit.incr(key, fld, delta)
    commit.incr(key, f"{fld}:neg", -delta, minimum=-UNBOUNDED)


# ---------------------------------------------------------------- venue readings


@dataclass(frozen=True)
class ReferralVenues:
    """The clients of one agent's accounts (None where it has none) and where payouts go."""

    casino: object | None = None
    wallet: object | None = None
    trading: object | None = None
    payout_address: str | None = None

    def payout_client(self, source: str) -> object | None:
        return {"wallet": self.wallet, "trading": self.trading}[source]


@dataclass(frozen=True)
class PayoutReading:
    """A wallet or trading referral account: cumulative earned, withdrawable now (only if the venue
    told it, else None), paid out (if told)."""

    earned: int
    available: int | None
    paid: int | None = None


@dataclass(frozen=True)
class CasinoReading:
    """Commission credits past the watermark: itemised from the ledger page, plus `beyond_page`
    (from the cumulative referral stats) when the page cannot reach back to the watermark."""

    credits: tuple[tuple[int, int], ...]
    newest_entry: int
    beyond_page: int = 0

    @property
    def total(self) -> int:
        return sum(amount for _, amount in self.credits) + self.beyond_page


LEGACY_WATERMARK = 10**9
"""A `casino:entry` below this is an entry number from before watermarks were Unix seconds."""


def _commission(entry) -> bool:
    return entry.type == "credit" and entry.reason.startswith(COMMISSION_PREFIX)


def read_casino(casino, state: ReferralState) -> CasinoReading:
    """Commission credits the casino ledger shows past the watermark, itemised by TIME.

    The real ledger's ids are UUID strings and rows of one second come oldest first, so neither
    ids nor order say what is new. Its `createdAt` is whole Unix seconds from one clock, so every
    second older than the newest one listed is closed: the watermark (`casino:entry`) is the
    newest second fully counted, and credits of the newest (still open) second wait for the next
    sweep, unless the venue's own clock (the `Date` of its answer) has already left it. When the
    50-row page does not reach back to the watermark (or the watermark predates
    this scheme), what lies beyond it comes from the cumulative referral stats instead."""
    entries = casino.ledger()
    last = state.casino_entry
    if not entries:
        return CasinoReading((), last)
    seconds = [int(e.created_at) for e in entries]
    newest_closed = max(seconds) - 1
    venue_now = casino.venue_now_ms() if hasattr(casino, "venue_now_ms") else None
    if venue_now is not None and venue_now // 1000 > max(seconds):
        newest_closed = max(seconds)  # the venue's clock (its Date header) has left that second
    legacy = last < LEGACY_WATERMARK
    credits = () if legacy else tuple(sorted(
        (int(e.created_at), int(e.amount)) for e in entries if _commission(e) and last < e.created_at <= newest_closed
    ))
    newest = max(last, newest_closed)
    beyond = 0
    if legacy or (len(entries) >= LEDGER_PAGE and min(seconds) > last):
        # Rows beyond the page (or uncounted under an old watermark): the cumulative figure, less
        # what is itemised now and what the open second holds (itemised by the next sweep).
        open_second = sum(int(e.amount) for e in entries if _commission(e) and e.created_at > newest_closed)
        stats = casino.referral_stats()
        beyond = max(0, int(stats.total_earned) - state.earned["casino"] - sum(a for _, a in credits) - open_second)
    return CasinoReading(credits, newest, beyond)


def read_payout(client) -> PayoutReading:
    """Cumulative earnings and what the venue paid out. `available` is only what the venue TOLD
    (None otherwise): trading's stats send no `available_usd`, and the wallet's still includes
    queued payouts, so neither sizes a sweep (see `ReferralBucket._withdraw`)."""
    stats = client.referral_stats()
    pending = getattr(stats, "pending_usd", None)
    reported = getattr(stats, "available_usd", None)
    available = None if reported is None or pending is None else max(0, int(reported) - int(pending))
    paid = getattr(stats, "total_withdrawn_usd", None)
    return PayoutReading(earned=int(stats.total_earned_usd), available=available,
                         paid=None if paid is None else int(paid))


# ---------------------------------------------------------------- the actor


class ReferralBucket(TreasuryActor):
    """The referral role: the only writer of each agent's referral bucket (`referral`,
    `referral:in_transit`, micro-USD) and of its per-source watermarks.

    Handles `SweepReferrals` (count commissions beyond each source's watermark, ask the wallet and
    trading services for payouts), `ReinvestReferrals` (income 70 % to the reserve, 30 % to trading,
    in basis points of the policy, as a `MoveReferralIncome` to the rebalancer) and
    `ReferralPayoutLanded` (a trading payout arrived), plus the transfer legs of moves. Journal:
    `ReferralSwept`, `ReferralSweepSkipped`, `ReferralReinvested`, `ReferralReinvestSkipped`.

    `venues_for(agent)` gives the agent's casino, wallet and trading clients and payout address
    (`referral_venue_factory`); an agent with no credentials at all raises `HandlerRejected`.
    """

    role = "referral"
    handlers = {SweepReferrals: "sweep", ReinvestReferrals: "reinvest", ReferralPayoutLanded: "payout_landed"}
    transfer_legs = True  # legs of moves into or out of the referral bucket (the rebalancer's saga)

    def __init__(self, steps: AtomicSteps, clock: Clock, new_id: IdFactory,
                 venues_for: Callable[[str], ReferralVenues], policy: Policy = DEFAULT_POLICY):
        super().__init__(steps, clock, new_id)
        self.venues_for = venues_for
        self.policy = policy

    # ------------------------------------------------------------------ sweep

    def sweep(self, delivery: Delivery, cmd: SweepReferrals) -> None:
        env = delivery.envelope
        agent, now = env.agent, self.clock.now_ms()
        if self._applied(agent, env.id):
            return self._ack_only(delivery)
        if not read_ledger(self.client, self.keys, agent).known():
            raise HandlerRejected(f"agent {agent} has no treasury: onboard it first")
        state = read_state(self.client, self.keys, agent)
        policy = effective_policy(self.client, self.keys, agent, self.policy)
        if not sweep_due(state.last_sweep_ms, now, policy):
            next_due = state.last_sweep_ms + policy.referral_sweep_interval_ms
            return self._sweep_skipped(delivery, state, "not_due", next_due, {}, record=False)

        venues = self.venues_for(agent)
        casino = read_casino(venues.casino, state) if venues.casino is not None else None
        payouts = {src: read_payout(venues.payout_client(src)) for src in SWEEP_SOURCES
                   if venues.payout_client(src) is not None}

        withdrawals, withdrawal_ids = self._withdraw(env.id, agent, venues, payouts, state)
        credited: dict[str, int] = {}
        below: dict[str, int] = {}
        for src, reading in payouts.items():
            new = reading.earned - state.earned[src]
            if new <= 0:
                continue
            if new >= WITHDRAW_MIN or withdrawals.get(src, 0) > 0:
                credited[src] = new
            else:
                below[src] = new
        landed = self._landed(state, payouts, credited)
        casino_credit = casino.total if casino is not None else 0

        if not (credited or landed or withdrawals or casino_credit):
            available = {src: _withdrawable(r, state, src) for src, r in payouts.items()}
            return self._sweep_skipped(delivery, state, "below_minimum",
                                       now + policy.referral_sweep_interval_ms, available, record=True,
                                       casino=casino)
        self._commit_sweep(delivery, state, casino, payouts, credited, landed, withdrawals, withdrawal_ids, below)

    def _withdraw(self, msg_id: str, agent: str, venues: ReferralVenues, payouts: dict[str, PayoutReading],
                  state: ReferralState) -> tuple[dict[str, int], dict[str, str]]:
        """Ask every source holding $1 or more to pay out. What a source holds is the venue's own
        figure when it tells one; a source that does not (trading; the wallet, whose figure still
        includes queued payouts) is asked once it has earned $1 in all. The amount booked is the
        one the withdrawal answers (`amount_usd`, always sent), never an estimate. A refusal for
        lack of balance means nothing was withdrawable, or an earlier attempt of this sweep
        already asked (the venue keeps no idempotency key)."""
        amounts: dict[str, int] = {}
        ids: dict[str, str] = {}
        told = sweepable({src: r.available for src, r in payouts.items() if r.available is not None})
        # A source that does not tell what is withdrawable is asked whenever it has earned $1 or
        # more: the venue pays out the whole withdrawable amount or refuses (400), nothing else.
        asked = {src: r.earned for src, r in payouts.items() if r.available is None and r.earned >= WITHDRAW_MIN}
        due = {**asked, **told}
        if due and not venues.payout_address:
            log.warning("agent %s: no payout address; referral income left at %s", agent, ", ".join(due))
            return amounts, ids
        for src in due:
            client = venues.payout_client(src)
            try:
                result = client.referral_withdraw(venues.payout_address, idempotency_key=f"{msg_id}-{src}")
            except VenueRejected as exc:
                if exc.code != "insufficient_balance":
                    log.warning("agent %s: %s referral withdrawal refused (%s)", agent, src, exc.code)
                continue
            if result.amount_usd > 0:
                amounts[src] = int(result.amount_usd)
                ids[src] = result.withdrawal_id
        return amounts, ids

    @staticmethod
    def _landed(state: ReferralState, payouts: dict[str, PayoutReading], credited: dict[str, int]) -> dict[str, int]:
        """Payouts the venue reports paid since the last count, never more than is in transit."""
        landed: dict[str, int] = {}
        for src, reading in payouts.items():
            if reading.paid is None:
                continue
            in_transit = state.in_transit[src] + credited.get(src, 0)
            amount = min(reading.paid - state.landed[src], in_transit)
            if amount > 0:
                landed[src] = amount
        return landed

    def _commit_sweep(self, delivery: Delivery, state: ReferralState, casino: CasinoReading | None,
                      payouts: dict[str, PayoutReading], credited: dict[str, int], landed: dict[str, int],
                      withdrawals: dict[str, int], withdrawal_ids: dict[str, str], below: dict[str, int]) -> None:
        env = delivery.envelope
        agent, now, k = env.agent, self.clock.now_ms(), self.keys
        ledger, st = k.ledger(agent), state_key(k, agent)
        commit = self.steps.new_commit(agent)
        casino_credit = casino.total if casino is not None else 0
        income = state.income + casino_credit + sum(landed.values())
        in_transit = sum(state.in_transit.values()) + sum(credited.values()) - sum(landed.values())

        # commission is an external inflow (docs/policy.md, Flows): booked as a flow in this same
        # step, so the breakers never read it as a win; landing it later only moves it within the bucket
        flows = []
        if casino is not None:
            if casino_credit:
                flows.append(flow_effects(commit, k, agent, bucket="referral", amount_micros=casino_credit,
                                          source="referral_commission", detail="casino commission"))
                commit.incr(st, "income", casino_credit).incr(st, "at:casino", casino_credit)
            _advance(commit, st, "casino:earned", state.earned["casino"], state.earned["casino"] + casino_credit)
            _advance(commit, st, "casino:entry", state.casino_entry, casino.newest_entry)
        for src, amount in credited.items():
            flows.append(flow_effects(commit, k, agent, bucket="referral", amount_micros=amount,
                                      source="referral_commission", detail=f"{src} commission, paid out to the wallet",
                                      apply_to="in_transit"))
            commit.incr(st, f"{src}:in_transit", amount)
            _advance(commit, st, f"{src}:earned", state.earned[src], payouts[src].earned)
        for src, amount in landed.items():
            commit.incr(ledger, "referral:in_transit", -amount).incr(ledger, "referral", amount)
            commit.incr(st, f"{src}:in_transit", -amount).incr(st, "income", amount).incr(st, "at:chain", amount)
            _advance(commit, st, f"{src}:landed", state.landed[src], state.landed[src] + amount)
        commit.hset(st, "last_sweep_ms", now)

        credits = {**({"casino": casino_credit} if casino_credit else {}), **credited}
        swept = ReferralSwept(credited=credits, withdrawals=withdrawals, withdrawal_ids=withdrawal_ids, landed=landed,
                              below_minimum=below, in_transit=in_transit, income=income)
        for flow in flows:
            commit.emit(k.events(agent), wrap(flow, agent=agent, now_ms=now, new_id=self.new_id, cause=env))
        commit.emit(k.events(agent), wrap(swept, agent=agent, now_ms=now, new_id=self.new_id, cause=env))
        if credits or landed:
            cause = f"referral sweep: credited {credits}, landed {landed}"
            commit.emit(k.agent_commands(agent, role_of(BalancesChanged)),
                        wrap(BalancesChanged(cause=cause), agent=agent, now_ms=now, new_id=self.new_id, cause=env))
        commit.ack(delivery.stream, delivery.group, delivery.entry_id)
        self._commit(commit, env.id, now)
        log.info("agent %s referral sweep: credited %s, withdrawals %s, landed %s", agent, credits, withdrawals, landed)

    def _sweep_skipped(self, delivery: Delivery, state: ReferralState, reason: str, next_due: int | None,
                       available: dict[str, int], *, record: bool, casino: CasinoReading | None = None) -> None:
        """Journal a sweep that moved nothing. A sweep that ran (`record`) still counts as the
        week's sweep, and the casino watermark follows the ledger past non-commission entries."""
        env = delivery.envelope
        agent, now, k = env.agent, self.clock.now_ms(), self.keys
        commit = self.steps.new_commit(agent)
        if record:
            st = state_key(k, agent)
            commit.hset(st, "last_sweep_ms", now)
            if casino is not None:
                _advance(commit, st, "casino:entry", state.casino_entry, casino.newest_entry)
        skipped = ReferralSweepSkipped(reason=reason, next_due_ms=next_due, available=available)
        commit.emit(k.events(agent), wrap(skipped, agent=agent, now_ms=now, new_id=self.new_id, cause=env))
        commit.ack(delivery.stream, delivery.group, delivery.entry_id)
        self._commit(commit, env.id, now)

    # ------------------------------------------------------------------ payouts landing

    def payout_landed(self, delivery: Delivery, body: ReferralPayoutLanded) -> None:
        env = delivery.envelope
        agent, now, k = env.agent, self.clock.now_ms(), self.keys
        if self._applied(agent, env.id):
            return self._ack_only(delivery)
        state = read_state(self.client, k, agent)
        if body.withdrawal_id and body.withdrawal_id in state.paid_ids:
            return self._ack_only(delivery, env.id)
        if body.amount <= 0 or body.amount > state.in_transit[body.source]:
            raise HandlerRejected(f"{body.amount} micro-USD landed from {body.source}, but "
                                  f"{state.in_transit[body.source]} is in transit from there")
        ledger, st = k.ledger(agent), state_key(k, agent)
        commit = self.steps.new_commit(agent)
        commit.incr(ledger, "referral:in_transit", -body.amount).incr(ledger, "referral", body.amount)
        commit.incr(st, f"{body.source}:in_transit", -body.amount)
        _bump(commit, st, f"{body.source}:landed", body.amount)
        commit.incr(st, "income", body.amount).incr(st, "at:chain", body.amount)
        if body.withdrawal_id:
            commit.hset(st, f"paid:{body.withdrawal_id}", body.amount)
        confirmed = ReferralPayoutConfirmed(source=body.source, amount=body.amount, withdrawal_id=body.withdrawal_id)
        commit.emit(k.events(agent), wrap(confirmed, agent=agent, now_ms=now, new_id=self.new_id, cause=env))
        poke = BalancesChanged(cause=f"referral payout landed from {body.source}")
        commit.emit(k.agent_commands(agent, role_of(poke)), wrap(poke, agent=agent, now_ms=now, new_id=self.new_id,
                                                                 cause=env))
        commit.ack(delivery.stream, delivery.group, delivery.entry_id)
        self._commit(commit, env.id, now)

    # ------------------------------------------------------------------ reinvest

    def reinvest(self, delivery: Delivery, cmd: ReinvestReferrals) -> None:
        env = delivery.envelope
        agent, now, k = env.agent, self.clock.now_ms(), self.keys
        if self._applied(agent, env.id):
            return self._ack_only(delivery)
        state = read_state(self.client, k, agent)
        available = read_ledger(self.client, k, agent).available.get("referral", 0)
        income = min(state.income, available)
        blocked = _blocked(read_risk(self.client, k, agent), now)
        if blocked:
            return self._reinvest_skipped(delivery, "risk_state", income, blocked)
        policy = effective_policy(self.client, k, agent, self.policy)
        if not reinvest_due(state.last_reinvest_ms, now, income, policy):
            reason = "below_minimum" if income == 0 else "not_due"
            return self._reinvest_skipped(delivery, reason, income, "no income in hand" if income == 0 else
                                          f"next quarter or above {policy.referral_reinvest_threshold}")
        moves = plan_reinvest(income, policy)
        if not moves:
            return self._reinvest_skipped(delivery, "below_minimum", income,
                                          f"under the minimum move of {policy.min_move}")
        parts = {"reserve": 0, "trading": 0}
        for move in moves:
            parts[move.dest] += move.amount
        held = _draw(state.held_at, income)

        st = state_key(k, agent)
        commit = self.steps.new_commit(agent)
        commit.incr(st, "income", -income)
        for place in HELD_AT:
            if held.get(place):
                commit.incr(st, f"at:{place}", -held[place])
        commit.hset(st, "last_reinvest_ms", now)
        done = ReferralReinvested(amount=income, to_reserve=parts["reserve"], to_trading=parts["trading"],
                                  held_at=held, via=MOVER_ROLE)
        move = MoveReferralIncome(to_reserve=parts["reserve"], to_trading=parts["trading"], held_at=held,
                                  reason="referral reinvest")
        commit.emit(k.events(agent), wrap(done, agent=agent, now_ms=now, new_id=self.new_id, cause=env))
        commit.emit(k.agent_commands(agent, MOVER_ROLE),
                    wrap(move, agent=agent, now_ms=now, new_id=self.new_id, cause=env))
        commit.ack(delivery.stream, delivery.group, delivery.entry_id)
        self._commit(commit, env.id, now)
        log.info("agent %s reinvests referral income %s: reserve %s, trading %s", agent, income, parts["reserve"],
                 parts["trading"])

    def _reinvest_skipped(self, delivery: Delivery, reason: str, income: int, detail: str) -> None:
        env = delivery.envelope
        agent, now = env.agent, self.clock.now_ms()
        commit = self.steps.new_commit(agent)
        skipped = ReferralReinvestSkipped(reason=reason, income=income, detail=detail)
        commit.emit(self.keys.events(agent), wrap(skipped, agent=agent, now_ms=now, new_id=self.new_id, cause=env))
        commit.ack(delivery.stream, delivery.group, delivery.entry_id)
        self._commit(commit, env.id, now)

    # ------------------------------------------------------------------ commits

    def _applied(self, agent: str, msg_id: str) -> bool:
        """Already committed (a redelivery after the commit): do not touch the venues again."""
        return self.client.zscore(self.keys.applied(agent), msg_id) is not None


def _blocked(risk: RiskView, now: int) -> str:
    """Why money must not move now ('' when it may): not ACTIVE, or the referral bucket halted."""
    if not risk.known:
        return "no risk state for this agent"
    if risk.state == "HALTED" or (risk.state == "PAUSED" and (risk.until_ms == 0 or now < risk.until_ms)):
        return f"treasury is {risk.state}: {risk.reason}"
    if "referral" in risk.halted_buckets:
        return f"referral bucket halted: {risk.halted_buckets['referral']}"
    return ""


def _draw(held_at: dict[str, int], amount: int) -> dict[str, int]:
    """Which places `amount` of income is taken from: the casino balance first (the least safe
    home for reserve money), then the treasury's address; what no counter covers is `unknown`."""
    drawn: dict[str, int] = {}
    left = amount
    for place in HELD_AT:
        take = min(left, max(0, held_at.get(place, 0)))
        if take:
            drawn[place] = take
            left -= take
    if left:
        drawn["unknown"] = left
    return drawn


def _withdrawable(reading: PayoutReading, state: ReferralState, source: str) -> int:
    """For reports only: the venue's withdrawable figure if it told one, else earnings beyond what
    the treasury already counted (never the wallet's `available_usd`, which still includes queued
    payouts). No money is moved on this estimate."""
    if reading.available is not None:
        return reading.available
    return max(0, reading.earned - state.earned.get(source, 0))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# ---------------------------------------------------------------- wiring


def referral_venue_factory(client: redis.Redis, keys: Keys, venues: dict[str, str]) -> Callable[[str], ReferralVenues]:
    """Per-agent clients built from the keys in the credentials hash; payouts go to the agent's
    own EVM address (base), the chain both wallet and trading pay referral withdrawals on."""
    makers = {"casino": CasinoClient, "wallet": WalletClient, "trading": TradingClient}
    clients = {service: AgentClients(client, keys, service,
                                     lambda key, url=venues[service], make=make: make(url, key, timeout_s=TIMEOUT_S))
               for service, make in makers.items() if service in venues}

    def venues_for(agent: str) -> ReferralVenues:
        if not client.exists(keys.credentials(agent)):
            raise HandlerRejected(f"no venue credentials for agent {agent}")
        built = {service: clients[service].get(agent) if service in clients else None for service in makers}
        return ReferralVenues(casino=built["casino"], wallet=built["wallet"], trading=built["trading"],
                              payout_address=read_addresses(client, keys, agent).get("base"))

    return venues_for


def build(steps: AtomicSteps, clock: Clock, new_id: IdFactory, venues: dict[str, str]) -> pykka.ActorRef:
    return ReferralBucket.start(steps, clock, new_id, referral_venue_factory(steps.client, steps.keys, venues))
