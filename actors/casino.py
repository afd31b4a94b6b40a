"""CasinoBucket: the only writer of an agent's casino bucket; sizes, fences, places and settles bets.

One actor serves every agent of the shards its worker leases (state lives in Redis, not in the
actor). A bet goes: size with Kelly → reserve through the fence (refused once PAUSED/HALTED is
committed) → place at the venue with the message id as client seed and idempotency key → settle
(reserved stake out, gross payout in, journal, RiskGuard notified, stream entry acked) in one
atomic step. If the worker dies after placing, the redelivered command finds its reservation,
looks the bet up at the venue by client seed, and settles it once.
"""

from __future__ import annotations

import collections
import logging
import time
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from fractions import Fraction
from typing import Any, Callable, Sequence

import pykka
import redis

from actors.base import TreasuryActor, unknown_agent
from actors.casino_odds import game_id, true_odds, venue_params
from actors.commits import CommitRefused
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
from messages.silo_msgs import SiloTick
from runtime.atomic import AtomicSteps, Commit, FenceStatus
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
    checks_agent_itself = frozenset({PlaceBet})  # in `_read_bets`, the bet's one read

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

    def handle_wave(self, deliveries: Sequence[Delivery]) -> list[Exception | None]:
        """The wave's bets together (`place_bets`: shared round trips), anything else one by one, in
        order. Only a bet whose agent has nothing else in the wave joins the shared bets (the bus
        never hands over two entries of one agent together; were it to, they would run in order)."""
        per_agent = collections.Counter(d.envelope.agent for d in deliveries)
        bets = [i for i, d in enumerate(deliveries)
                if type(d.envelope.body) is PlaceBet and per_agent[d.envelope.agent] == 1]
        if len(bets) < 2:
            return super().handle_wave(deliveries)
        outcomes: list[Exception | None] = [None] * len(deliveries)
        for i, error in zip(bets, self.place_bets([deliveries[i] for i in bets]), strict=True):
            outcomes[i] = error
        shared = set(bets)
        for i, delivery in enumerate(deliveries):
            if i not in shared:
                outcomes[i] = self._outcome(delivery)
        return outcomes

    def place_bet(self, delivery: Delivery, bet: PlaceBet) -> None:
        """One bet: `place_bets` of it alone, raising what it ended with."""
        error = self.place_bets([delivery])[0]
        if error is not None:
            raise error

    def place_bets(self, deliveries: Sequence[Delivery]) -> list[Exception | None]:
        """Bets of different agents (`PlaceBet` deliveries, one per agent at most), each decided,
        fenced, placed and settled as `place_bet` would, with their Redis round trips shared: one
        pipelined read of every bet's state, one of every fence call (reserve.lua, each atomic on
        its own agent's keys), the venue called per bet, then one of every commit (commit.lua,
        each its own atomic step acknowledging its own entry). Gives each bet's outcome in order:
        None (its entry acknowledged by its commit) or the exception it ended with (its entry left
        pending: nothing committed for it). A Redis error on a shared round trip ends every bet
        still open with it; whatever one of them had reserved stays reserved, and its redelivery
        finds the reservation and looks the bet up at the venue before any placing."""
        bets = [_Bet(d, self.clock.now_ms()) for d in deliveries]
        for phase in (self._read_bets, self._fence_bets, self._place_at_venue, self._commit_bets):
            open_bets = [b for b in bets if b.error is None and not b.done]
            if not open_bets:
                break
            try:
                phase(open_bets)
            except Exception as exc:  # noqa: BLE001 - a shared round trip failed: each open bet ends with it
                for b in open_bets:
                    if b.error is None and not b.done:
                        b.error = exc
        return [b.error for b in bets]

    def _read_bets(self, bets: list[_Bet]) -> None:
        """One round trip: each agent's existence (risk hash), ledger, session and policy; then each
        bet is sized and either refused (its commit built) or left with a stake to reserve."""
        k = self.keys
        pipe = self.client.pipeline(transaction=False)
        for b in bets:
            agent = b.agent
            pipe.execute_command("EXISTS", k.risk(agent))
            pipe.execute_command("HGETALL", k.ledger(agent))
            pipe.execute_command("HGETALL", self.session_key(agent))
            pipe.execute_command("HGETALL", k.policy(agent))
        replies = pipe.execute(raise_on_error=False)  # a connection error still raises: every bet ends with it
        for i, b in enumerate(bets):
            known, ledger_raw, session_raw, policy_raw = mine = replies[4 * i:4 * i + 4]
            try:
                for reply in mine:
                    if isinstance(reply, Exception):
                        raise reply  # an error reply on this agent's keys: this bet's outcome alone
                if not known:
                    raise unknown_agent(b.agent)  # nothing written under an unknown name
                b.ledger = ledger_from(_pairs(ledger_raw))
                b.session = {key.decode(): value.decode() for key, value in _pairs(session_raw).items()}
                b.policy = policy_from(_pairs(policy_raw))
                self._size(b)
            except Exception as exc:  # noqa: BLE001 - this bet's own outcome
                b.error = exc

    def _size(self, b: _Bet) -> None:
        """Decide one bet from its state read: refused (`b.commit`), or `b.stake` and `b.cap` to reserve."""
        bet, agent = b.bet, b.agent
        ledger, session, policy = b.ledger, b.session, b.policy
        blocked = self.spend_blocked(agent)
        if blocked is not None and not self.client.hexists(self.keys.reservations(agent), b.env.id):
            # the broadcast landed: refused at once, no fence, no venue (a bet reserved before a
            # crash is not refused here: it may be placed already, and is looked up below)
            return self._refuse(b, blocked.state.lower(), f"treasury is {blocked.state}: {blocked.reason}", None)
        bucket_available = ledger.available.get("casino", 0)
        if session.get("state") == "stopped":
            return self._refuse(b, "session_stopped", f"the casino session is stopped: {session['reason']}", None)
        # In a session, Kelly sizes on the session's balance; the bet cap is always on the bucket.
        bankroll = (min(int(session["budget"]) + int(session["pnl"]), bucket_available) if session
                    else bucket_available)
        p_true, payout = true_odds(bet.game)
        win_prob = bet.win_prob if bet.win_prob is not None else p_true
        own_cap = floor_to_cent(bucket_available * policy.max_bet_bp // 10_000)
        b.casino = casino = self.casino_for(agent)
        # The venue refuses stakes above its own Kelly limit (GET /kelly/limits): size under both.
        venue_cap = casino.max_stake(game_id(bet.game), venue_params(bet.game))
        cap = own_cap if venue_cap is None else min(own_cap, venue_cap)
        bankroll = max(bankroll, 0)
        # The cap (max_bet_bp) is a share of the casino bucket, whatever bankroll (session) Kelly sizes on.
        cap_share = Fraction(cap, bankroll) if bankroll > cap else Fraction(1)
        try:
            b.sizing = sizing = kelly_stake(win_prob, payout - 1, bankroll, bet.kelly, cap=cap_share)
        except KellyInputError as exc:  # a command that can never be sized: refused with its reason, not retried
            return self._refuse(b, "bad_input", str(exc), None)
        if bet.fixed_stake is not None:
            stake, reason_if_zero = bet.fixed_stake, "fixed stake of 0"
        else:
            stake, reason_if_zero = sizing.stake, sizing.reason
        if stake == 0:
            return self._refuse(b, "no_edge" if sizing.full_fraction <= 0 else "too_small", reason_if_zero, sizing)
        b.stake, b.cap, b.own_cap = stake, cap, own_cap
        return None

    def _fence_bets(self, bets: list[_Bet]) -> None:
        """One round trip: every sized bet's fence call (each atomic on its own agent's keys)."""
        to_fence = [b for b in bets if b.commit is None]
        if not to_fence:
            return
        answers = self.steps.reserve_many([(b.agent, b.env.id, "casino", b.stake, b.cap, b.now) for b in to_fence])
        for b, reservation in zip(to_fence, answers, strict=True):
            if isinstance(reservation, Exception):
                b.error = reservation
                continue
            if reservation.status is FenceStatus.DUPLICATE:
                b.commit = self.steps.new_commit(b.agent).ack(b.delivery.stream, b.delivery.group,
                                                               b.delivery.entry_id)
                continue
            if not reservation.granted:
                cap_name = ("venue's Kelly limit (GET /kelly/limits)" if b.cap < b.own_cap
                            else f"{bp_text(b.policy.max_bet_bp)} bet cap")
                reason = reservation.denial("casino", b.stake, what="the stake", cap_name=cap_name)
                self._refuse(b, reservation.status, reason, b.sizing, reservation.seq or None)
                continue
            b.reserved_before = reservation.record is not None
            b.fresh = reservation.status == "ok"
            b.seq = reservation.seq
            if reservation.record is not None:  # reserved by an earlier delivery: that stake stands
                b.stake = reservation.record.amount
            else:  # what the fence just did to the ledger read above (only this actor writes the casino bucket)
                b.ledger = b.ledger.moved("casino", -b.stake, "reserved", b.stake)

    def _place_at_venue(self, bets: list[_Bet]) -> None:
        """Each reserved bet at the venue, one call each (looked up first where it must be); a
        venue refusal releases the stake, a result is settled; an error ends that bet alone."""
        for b in bets:
            if b.commit is not None:
                continue
            try:
                self._place_one(b)
            except Exception as exc:  # noqa: BLE001 - this bet's own outcome; its reservation stays
                b.error = exc

    def _place_one(self, b: _Bet) -> None:
        delivery, bet, agent, env, stake = b.delivery, b.bet, b.agent, b.env, b.stake
        casino = b.casino
        look_up = self.must_look_up(delivery, b.reserved_before)
        blocked = self.spend_blocked(agent) if b.fresh else None
        if blocked is not None and not look_up:  # it landed while this bet was being reserved: nothing placed yet
            return self._release(b, blocked.state.lower(), f"treasury is {blocked.state}: {blocked.reason}")
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
                if result is None and (b.reserved_before or blocked is not None):
                    stopped = self._stopped_since_reserved(agent)
                    if stopped is not None:  # provably not placed, and spending has stopped since
                        return self._release(b, *stopped)
            if result is None:
                started = time.perf_counter()
                try:
                    result = casino.place_bet_once(game, stake, venue_params(bet.game), client_seed=env.id,
                                                   idempotency_key=env.id, since_ms=since_ms)
                finally:  # a call that failed or timed out counts too: that venue is slow
                    self.venue_pace.observe(time.perf_counter() - started)
        except VenueRejected as exc:
            return self._release(b, exc.code, str(exc))
        # VenueUnavailable propagates: the bus retries later; the reservation stays until settled.
        return self._settle(b, result)

    def _commit_bets(self, bets: list[_Bet]) -> None:
        """One round trip: every bet's commit, each its own atomic step acknowledging its own entry."""
        answers = self.steps.commit_many([(b.commit, b.env.id, b.commit_ms) for b in bets if b.commit is not None])
        for b, answer in zip([b for b in bets if b.commit is not None], answers, strict=True):
            if isinstance(answer, Exception):
                b.error = answer
            elif answer.status == "refused":
                b.error = CommitRefused(f"commit of {b.env.id} refused: {answer.reason}")
            else:
                b.done = True

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

    def _settle(self, b: _Bet, result) -> None:
        """The settle commit of `b` (`b.commit`); its ledger, session and policy are the state the
        bet was placed on (read once per bet: only this actor writes the casino bucket and the session)."""
        delivery, stake, sizing, before, session, policy = b.delivery, b.stake, b.sizing, b.ledger, b.session, b.policy
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
        if b.seq and b.seq % SCAN_EVERY_RESERVATIONS == 0:
            # the casino ledger answers its newest 50 rows only, and a bet writes up to two: a busy
            # agent's credits from outside are looked for before they leave that window, not only
            # on the schedule: escrow payouts by this role, payments from other agents and
            # unexplained deposits by the silo role's watch
            for poke in (ScanIncoming(), SiloTick()):
                commit.emit(k.agent_commands(agent, role_of(type(poke))),
                            wrap(poke, agent=agent, now_ms=now, new_id=self.new_id, cause=env))
        commit.ack(delivery.stream, delivery.group, delivery.entry_id)
        b.commit, b.commit_ms = commit, now

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

    def _release(self, b: _Bet, code: str, reason: str) -> None:
        """`b.commit`: the reservation released, `BetRejected` journalled, the entry acknowledged."""
        agent, k = b.agent, self.keys
        commit = self.steps.new_commit(agent)
        commit.incr(k.ledger(agent), "casino:reserved", -b.stake).incr(k.ledger(agent), "casino", b.stake)
        commit.hdel(k.reservations(agent), b.env.id)
        self._deny_into(b, BetRejected(code=code, reason=reason, stake=b.stake), commit)

    def _refuse(self, b: _Bet, code: str, reason: str, sizing: KellyResult | None, seq: int | None = None) -> None:
        """`b.commit`: `BetRefused` journalled, the entry acknowledged."""
        refused = BetRefused(code=code, reason=reason, sizing=sizing_event(sizing) if sizing else None, fence_seq=seq)
        self._deny_into(b, refused)

    def _deny_into(self, b: _Bet, event: BetRefused | BetRejected, commit: Commit | None = None) -> None:
        commit = commit if commit is not None else self.steps.new_commit(b.agent)
        self._emit(commit, b.env, event)
        commit.ack(b.delivery.stream, b.delivery.group, b.delivery.entry_id)
        b.commit, b.commit_ms = commit, self.clock.now_ms()


SCAN_EVERY_RESERVATIONS = 20
"""A bet whose fence sequence number is a multiple of this asks for a `ScanIncoming` (escrow
payouts, this role) and a `SiloTick` (payments from other agents, unexplained deposits: the silo
role's income watch) in its settle commit: at most 20 reservations (40 casino ledger rows)
between two scans, inside the 50 rows `GET /auth/ledger` answers."""


class _Bet:
    """One bet of `CasinoBucket.place_bets` as it goes through the phases: its state read, its
    sizing and stake, and in the end the commit that answers it (`commit`) or the exception it
    ended with (`error`)."""

    __slots__ = ("delivery", "env", "bet", "agent", "now", "ledger", "session", "policy", "sizing", "stake", "cap",
                 "own_cap", "casino", "reserved_before", "fresh", "commit", "commit_ms", "error", "done", "seq")

    def __init__(self, delivery: Delivery, now: int):
        self.delivery = delivery
        self.env = delivery.envelope
        self.bet: PlaceBet = delivery.envelope.body  # type: ignore[assignment]
        self.agent = delivery.envelope.agent
        self.now = now
        self.ledger: LedgerView = None  # type: ignore[assignment]
        self.session: dict[str, str] = {}
        self.policy: Policy = None  # type: ignore[assignment]
        self.sizing: KellyResult = None  # type: ignore[assignment]
        self.stake = 0
        self.cap = 0
        self.own_cap = 0
        self.casino: Any = None
        self.reserved_before = False
        self.fresh = False
        self.seq = 0
        self.commit: Commit | None = None
        self.commit_ms = now
        self.error: Exception | None = None
        self.done = False


def _pairs(raw: Any) -> dict[Any, Any]:
    """An HGETALL reply as a dict (RESP2 gives a flat list through `execute_command` in a pipeline)."""
    if isinstance(raw, dict):
        return raw
    return {raw[i]: raw[i + 1] for i in range(0, len(raw), 2)}


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
