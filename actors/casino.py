"""CasinoBucket: the only writer of an agent's casino bucket; sizes, fences, places and settles bets.

One actor serves every agent of the shards its worker leases (state lives in Redis, not in the
actor). A bet goes: size with Kelly → reserve through the fence (refused once PAUSED/HALTED is
committed) → place at the venue with the message id as client seed and idempotency key → settle
(reserved stake out, gross payout in, journal, RiskGuard notified, stream entry acked) in one
atomic step. If the worker dies after placing, the redelivered command finds its reservation,
looks the bet up at the venue by client seed, and settles it once.
"""

from __future__ import annotations

import logging
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from fractions import Fraction
from typing import Callable

import pykka
import redis

from actors.base import TreasuryActor, unknown_agent
from actors.casino_odds import game_id, true_odds, venue_params
from actors.flows import already_booked, book_flow
from actors.incoming import incoming_payments
from actors.kelly import KellyInputError, KellyResult, kelly_stake
from actors.ledger import LedgerView, ledger_from, read_ledger, read_risk
from actors.policy.breakers import casino_session
from actors.policy.buckets import Policy, bp_text
from actors.policy.drift import big_win
from actors.policy.effective import policy_from
from actors.venues import TIMEOUT_S, AgentClients
from messages.catalogue import role_of
from messages.envelope import IdFactory, wrap
from messages.flow_msgs import ScanIncoming
from messages.money import CENT, MAX_MICROS, floor_to_cent, format_usd
from messages.schema import (
    BalancesChanged,
    BetRefused,
    BetRejected,
    BetSettled,
    CommandRefused,
    KellySizing,
    PlaceBet,
    SessionStarted,
    SessionStopped,
    StartSession,
)
from runtime.atomic import AtomicSteps, FenceStatus
from runtime.bus import Delivery
from runtime.clock import Clock
from runtime.keys import Keys
from venue.client.casino import CasinoClient
from venue.errors import VenueRejected, VenueUnavailable

log = logging.getLogger(__name__)

def sizing_event(k: KellyResult) -> KellySizing:
    return KellySizing(win_prob=str(k.win_prob), net_odds=str(k.net_odds), full_fraction=str(k.full_fraction),
                       applied_fraction=str(k.applied_fraction), bankroll=k.bankroll, cap=k.cap, stake=k.stake,
                       capped=k.capped, reason=k.reason)


class CasinoBucket(TreasuryActor):
    """The casino role: the only writer of each agent's casino bucket (ledger field `casino`, micro-USD).

    Handles `PlaceBet` (size with Kelly from the casino bucket, cap the stake at the bet cap in
    basis points of that bucket, reserve it through the fence, place it at the venue once, settle)
    and `StartSession` (a session budget in micro-USD, taken from the casino bucket), plus the
    transfer legs of rebalancing moves into or out of the bucket. Answers in the agent's journal:
    `BetSettled` (stake and gross payout in micro-USD), `BetRefused` (code, reason, the Kelly
    sizing), `BetRejected` (the venue refused; the reservation is released), `SessionStarted`,
    `SessionStopped`. A settled bet also pokes RiskGuard (`BalancesChanged`) in the same commit.

    `casino_for(agent)` gives the agent's `CasinoClient` (`casino_client_factory`, from the
    `casino_key` in its credentials hash); a missing key raises `HandlerRejected` (dead-lettered).
    """

    role = "casino"
    handlers = {PlaceBet: "place_bet", StartSession: "start_session", ScanIncoming: "scan_incoming"}
    transfer_legs = True
    checks_agent_itself = frozenset({PlaceBet})  # in `read_state`, the bet's one read

    def __init__(self, steps: AtomicSteps, clock: Clock, new_id: IdFactory, casino_for: Callable[[str], object]):
        super().__init__(steps, clock, new_id)
        self.casino_for = casino_for

    # ------------------------------------------------------------------ money paid to the agent

    def scan_incoming(self, delivery: Delivery, scan: ScanIncoming) -> None:
        """Book every escrow payout found in the casino ledger that is not booked yet (`actors/incoming.py`).

        Each payment is its own commit, guarded by its ref, so it lands once however often the
        scan runs or is redelivered; the tick is acknowledged last."""
        env = delivery.envelope
        agent, now = env.agent, self.clock.now_ms()
        for payment in incoming_payments(self.casino_for(agent).ledger()):
            commit = self.steps.new_commit(agent)
            book_flow(commit, self.keys, agent, bucket="casino", amount_micros=payment.amount_micros,
                      source=payment.source, detail=payment.detail, ref=payment.ref, now_ms=now,
                      new_id=self.new_id, cause=env)
            result = self.steps.commit(commit, f"{payment.ref}"[:80], now)
            if not result.applied and not already_booked(result) and result.status != "duplicate":
                log.warning("casino %s: payment %s not booked: %s", agent, payment.ref, result.reason)
        commit = self.steps.new_commit(agent)
        commit.ack(delivery.stream, delivery.group, delivery.entry_id)
        self._commit(commit, env.id, now)

    # ------------------------------------------------------------------ sessions

    def session_key(self, agent: str) -> str:
        return self.keys.session(agent)

    def read_session(self, agent: str) -> dict[str, str]:
        raw = self.client.hgetall(self.session_key(agent))
        return {k.decode(): v.decode() for k, v in raw.items()}

    def read_state(self, agent: str) -> tuple[LedgerView, dict[str, str], Policy]:
        """The agent's ledger, casino session and effective policy, in one round trip; raises
        `UnknownAgent` (nothing read is used, nothing written) when the agent has no risk state."""
        k = self.keys
        pipe = self.client.pipeline(transaction=False)
        pipe.exists(k.risk(agent)).hgetall(k.ledger(agent)).hgetall(self.session_key(agent)).hgetall(k.policy(agent))
        known, ledger_raw, session_raw, policy_raw = pipe.execute()
        if not known:
            raise unknown_agent(agent)
        session = {key.decode(): value.decode() for key, value in session_raw.items()}
        return ledger_from(ledger_raw), session, policy_from(policy_raw)

    def start_session(self, delivery: Delivery, cmd: StartSession) -> None:
        """A new session replaces a stopped one; its budget must be in the casino bucket."""
        env = delivery.envelope
        agent, now = env.agent, self.clock.now_ms()
        available = read_ledger(self.client, self.keys, agent).available.get("casino", 0)
        commit = self.steps.new_commit(agent)
        if cmd.budget == 0 or cmd.budget > available:
            commit.emit(self.keys.events(agent), wrap(
                CommandRefused(command="StartSession",
                                reason=f"budget {format_usd(cmd.budget)} must be above 0 and within the casino "
                                       f"bucket's available {format_usd(available)}"),
                agent=agent, now_ms=now, new_id=self.new_id, cause=env))
        else:
            key = self.session_key(agent)
            for name, value in (("id", env.id), ("budget", cmd.budget), ("pnl", 0), ("state", "open"), ("reason", "")):
                commit.hset(key, name, value)
            commit.emit(self.keys.events(agent), wrap(SessionStarted(session=env.id, budget=cmd.budget), agent=agent,
                                                      now_ms=now, new_id=self.new_id, cause=env))
        commit.ack(delivery.stream, delivery.group, delivery.entry_id)
        self._commit(commit, env.id, now)

    # ------------------------------------------------------------------ one bet

    def place_bet(self, delivery: Delivery, bet: PlaceBet) -> None:
        env = delivery.envelope
        agent, now = env.agent, self.clock.now_ms()
        ledger, session, policy = self.read_state(agent)  # first: an unknown agent raises here
        blocked = self.spend_blocked(agent)
        if blocked is not None and not self.client.hexists(self.keys.reservations(agent), env.id):
            # the broadcast landed: refused at once, no fence, no venue (a bet reserved before a
            # crash is not refused here: it may be placed already, and is looked up below)
            return self._refuse(delivery, blocked.state.lower(), f"treasury is {blocked.state}: {blocked.reason}",
                                None)
        bucket_available = ledger.available.get("casino", 0)
        if session.get("state") == "stopped":
            return self._refuse(delivery, "session_stopped", f"the casino session is stopped: {session['reason']}",
                                None)
        # In a session, Kelly sizes on the session's balance; the bet cap is always on the bucket.
        bankroll = (min(int(session["budget"]) + int(session["pnl"]), bucket_available) if session
                    else bucket_available)
        p_true, payout = true_odds(bet.game)
        win_prob = bet.win_prob if bet.win_prob is not None else p_true
        own_cap = floor_to_cent(bucket_available * policy.max_bet_bp // 10_000)
        casino = self.casino_for(agent)
        # The venue refuses stakes above its own Kelly limit (GET /kelly/limits): size under both.
        venue_cap = casino.max_stake(game_id(bet.game), venue_params(bet.game))
        cap = own_cap if venue_cap is None else min(own_cap, venue_cap)
        bankroll = max(bankroll, 0)
        # The cap (max_bet_bp) is a share of the casino bucket, whatever bankroll (session) Kelly sizes on.
        cap_share = Fraction(cap, bankroll) if bankroll > cap else Fraction(1)
        try:
            sizing = kelly_stake(win_prob, payout - 1, bankroll, bet.kelly, cap=cap_share)
        except KellyInputError as exc:  # a command that can never be sized: refused with its reason, not retried
            return self._refuse(delivery, "bad_input", str(exc), None)
        if bet.fixed_stake is not None:
            stake, reason_if_zero = bet.fixed_stake, "fixed stake of 0"
        else:
            stake, reason_if_zero = sizing.stake, sizing.reason
        if stake == 0:
            return self._refuse(
                delivery, "no_edge" if sizing.full_fraction <= 0 else "too_small", reason_if_zero, sizing
            )

        reservation = self.steps.reserve(agent, env.id, "casino", stake, cap, now)
        if reservation.status is FenceStatus.DUPLICATE:
            return self._ack_only(delivery)
        if not reservation.granted:
            cap_name = ("venue's Kelly limit (GET /kelly/limits)" if cap < own_cap
                        else f"{bp_text(policy.max_bet_bp)} bet cap")
            reason = reservation.denial("casino", stake, what="the stake", cap_name=cap_name)
            return self._refuse(delivery, reservation.status, reason, sizing, reservation.seq or None)
        reserved_before = reservation.record is not None
        if reservation.record is not None:  # reserved by an earlier delivery: that stake stands
            stake = reservation.record.amount
        else:  # what the fence just did to the ledger read above (only this actor writes the casino bucket)
            ledger = ledger.moved("casino", -stake, "reserved", stake)

        look_up = self.must_look_up(delivery, reserved_before)
        blocked = self.spend_blocked(agent) if reservation.status == "ok" else None
        if blocked is not None and not look_up:  # it landed while this bet was being reserved: nothing placed yet
            return self._release(delivery, stake, blocked.state.lower(),
                                 f"treasury is {blocked.state}: {blocked.reason}")
        game = game_id(bet.game)
        # No bet of this message can predate the message: the look-ups read back to its creation.
        since_ms = env.created_ms
        try:
            result = None
            if look_up:
                # Never spend on "unknown": a look-up the venue cannot answer (or whose window no
                # longer reaches back to the message) raises, the bus tries again later (parking
                # the bet if it keeps failing), and the funds stay reserved.
                found = casino.lookup_bet(env.id, since_ms=since_ms)
                if found.unknown:
                    raise VenueUnavailable("casino", f"bet {env.id}: outcome unknown ({found.reason})",
                                           code="outcome_unknown")
                result = found.value
                if result is None and (reserved_before or blocked is not None):
                    stopped = self._stopped_since_reserved(agent)
                    if stopped is not None:  # provably not placed, and spending has stopped since
                        return self._release(delivery, stake, *stopped)
            if result is None:
                result = casino.place_bet_once(game, stake, venue_params(bet.game), client_seed=env.id,
                                               idempotency_key=env.id, since_ms=since_ms)
        except VenueRejected as exc:
            return self._release(delivery, stake, exc.code, str(exc))
        # VenueUnavailable propagates: the bus retries later; the reservation stays until settled.
        self._settle(delivery, stake, result, sizing, ledger, session, policy)

    def _stopped_since_reserved(self, agent: str) -> tuple[str, str] | None:
        """A late attempt (the bet was reserved long ago, never placed) places nothing once the
        treasury has been paused or halted since: (code, reason) to release it with, or None."""
        risk = read_risk(self.client, self.keys, agent)
        if risk.state == "HALTED" or (risk.state == "PAUSED" and (not risk.until_ms or
                                                                  self.clock.now_ms() < risk.until_ms)):
            return risk.state.lower(), f"not placed: treasury is {risk.state} since it was reserved ({risk.reason})"
        if "casino" in risk.halted_buckets:
            return "bucket_halted", f"not placed: casino spending halted since it was reserved " \
                                    f"({risk.halted_buckets['casino']})"
        return None

    # ------------------------------------------------------------------ commits

    def _settle(self, delivery: Delivery, stake: int, result, sizing: KellyResult, before: LedgerView,
                session: dict[str, str], policy: Policy) -> None:
        """Settle in one commit; `before`, `session` and `policy` are the state this bet was placed
        on (read once per bet: only this actor writes the casino bucket and the session)."""
        env = delivery.envelope
        agent, now, k = env.agent, self.clock.now_ms(), self.keys
        ledger = k.ledger(agent)
        payout = gross_payout(stake, result.amount_won, result.payout_multiplier)
        after = before.available.get("casino", 0) + payout
        settled = BetSettled(bet_id=result.bet_id, game=result.game, stake=stake, payout=payout,
                             pnl=payout - stake, won=bool(result.won), roll=str(result.roll),
                             bucket_after=after, sizing=sizing_event(sizing) if sizing.stake else None)
        commit = self.steps.new_commit(agent)
        commit.incr(ledger, "casino:reserved", -stake).incr(ledger, "casino", payout)
        commit.hdel(k.reservations(agent), env.id)
        commit.emit(k.events(agent), wrap(settled, agent=agent, now_ms=now, new_id=self.new_id, cause=env))
        commit.emit(
            k.agent_commands(agent, role_of(BalancesChanged)),
            wrap(BalancesChanged(cause=f"bet {result.bet_id}"), agent=agent, now_ms=now, new_id=self.new_id, cause=env),
        )
        self._session_after_bet(commit, env, payout - stake, now, session, policy)
        if big_win(payout - stake, before.bucket("casino"), policy):
            from messages.treasury_msgs import Rebalance  # a win > 20 % of the bucket: rebalance it away

            commit.emit(k.agent_commands(agent, role_of(Rebalance)), wrap(
                Rebalance(trigger="big_win", reason=f"bet {result.bet_id} won {format_usd(payout - stake)}",
                          bucket="casino", amount=payout - stake, bucket_before=before.bucket("casino")),
                agent=agent, now_ms=now, new_id=self.new_id, cause=env))
        commit.ack(delivery.stream, delivery.group, delivery.entry_id)
        self._commit(commit, env.id, now)

    def _session_after_bet(self, commit, env, pnl: int, now: int, session: dict[str, str], policy: Policy) -> None:
        """Count the bet in the open session; at −50 % stop it and send the rest to the reserve."""
        agent = env.agent
        if session.get("state") != "open":
            return
        key = self.session_key(agent)
        budget = int(session["budget"])
        balance = budget + int(session["pnl"]) + pnl
        commit.incr(key, "pnl", pnl, minimum=-MAX_MICROS)
        stop = casino_session(budget, balance, stop_bp=policy.casino_session_stop_bp)
        if stop is None:
            return
        remaining = max(balance, 0)
        commit.hset(key, "state", "stopped").hset(key, "reason", stop.reason)
        commit.emit(self.keys.events(agent), wrap(
            SessionStopped(session=session["id"], breaker=stop.breaker, reason=stop.reason, budget=budget,
                           remaining=remaining), agent=agent, now_ms=now, new_id=self.new_id, cause=env))
        if remaining:
            from messages.treasury_msgs import Rebalance

            commit.emit(self.keys.agent_commands(agent, role_of(Rebalance)), wrap(
                Rebalance(trigger="casino_session", reason=stop.reason, bucket="casino", amount=remaining),
                agent=agent, now_ms=now, new_id=self.new_id, cause=env))

    def _release(self, delivery: Delivery, stake: int, code: str, reason: str) -> None:
        env = delivery.envelope
        agent, k = env.agent, self.keys
        commit = self.steps.new_commit(agent)
        commit.incr(k.ledger(agent), "casino:reserved", -stake).incr(k.ledger(agent), "casino", stake)
        commit.hdel(k.reservations(agent), env.id)
        self._deny(delivery, BetRejected(code=code, reason=reason, stake=stake), commit)

    def _refuse(
        self, delivery: Delivery, code: str, reason: str, sizing: KellyResult | None, seq: int | None = None
    ) -> None:
        refused = BetRefused(code=code, reason=reason, sizing=sizing_event(sizing) if sizing else None, fence_seq=seq)
        self._deny(delivery, refused)


def gross_payout(stake: int, amount_won: int, multiplier: str) -> int:
    """What the venue credited: stake × payout multiplier, to the micro.

    The casino keeps balances at full precision but reports `amount_won` rounded to the cent, so
    a ledger that booked the reported figure would drift from the venue by fractions of a cent
    per bet. The multiplier it reports gives the exact credit; the reported amount stays the
    authority when the two disagree by more than its rounding.
    """
    if amount_won <= 0:
        return 0
    try:
        exact = int((Decimal(stake) * Decimal(multiplier)).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
    except (InvalidOperation, ValueError):
        return amount_won
    return exact if abs(exact - amount_won) <= CENT // 2 else amount_won


def casino_client_factory(client: redis.Redis, keys: Keys, base_url: str) -> AgentClients[CasinoClient]:
    """Per-agent casino clients, built from `casino_key` in the agent's credentials hash."""
    return AgentClients(client, keys, "casino", lambda key: CasinoClient(base_url, key, timeout_s=TIMEOUT_S))


def build(steps: AtomicSteps, clock: Clock, new_id: IdFactory, venues: dict[str, str]) -> pykka.ActorRef:
    return CasinoBucket.start(steps, clock, new_id, casino_client_factory(steps.client, steps.keys, venues["casino"]))
