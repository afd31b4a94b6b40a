"""Rebalancer: decides when the buckets are rebalanced and coordinates each rebalance as a saga.

It writes no balance. It plans with the pure policy (`actors/policy/drift.py`: drift beyond 5 %,
$10 minimum move, reserve topped up first) and runs the plan one move at a time through the
legs the bucket actors carry out (`actors/transfers.py`): a `DebitLeg` to the source's role,
then a `CreditLeg` to the destination's role, or a `CompensateLeg` back to the source when the
credit fails. If money must leave the trading bucket while positions are open, it first asks the
trading role to `CloseAllPositions` and moves nothing until the positions are closed.

The saga lives in Redis (a hash per saga, the agent's active saga in the Rebalancer's own hash),
and every decision is taken from what that hash and the ledger say, never from an answer's text
or the actor's memory. So a Rebalancer that crashed mid-saga simply carries on: the answers left
in its stream are delivered again, and a `RebalanceTick` finds a saga that has not moved for
`stall_ms` and resends its pending leg (legs are idempotent) or, after `max_resends`, cancels a
debit that never happened or compensates a credit that never came.

Triggers (pure predicates from the policy, wired here): the schedule and drift on every
`RebalanceTick`; `Rebalance` requests for a breaker (RiskGuard sends `reserve_floor`), a big win,
a large escrow about to be locked, or an operator. The referral actor's `MoveReferralIncome` runs
the same saga with the moves it decided. Every move and every outcome is a journal event with its
reason. An operator's `SetPolicy` overrides the agent's policy here (validated whole, journaled).

What this version does not do physically is in `docs/rebalancing.md` ("Physical silos").
"""

from __future__ import annotations

import logging
from typing import Any

import pykka

from actors.base import TreasuryActor
from actors.ledger import LedgerView, RiskView, read_ledger, read_risk
from actors.policy.breakers import BreakerResult
from actors.policy.buckets import DEFAULT_POLICY, Policy, PolicyError, bp_text, percent, usd
from actors.policy.drift import (
    Move,
    after_breaker,
    apply_moves,
    before_escrow,
    big_win,
    drifted,
    drifts_bp,
    plan_rebalance,
    schedule_due,
)
from actors.policy.effective import effective_policy, merge_policy, read_overrides
from actors.policy.operator_moves import move_problem
from actors.silo.planning import assign_legs, cover_transfers, impossible_transfer, weigh_moves
from actors.silo.records import HeldLeg, encode_legs, intents_key, silo_state_key, xfer_key
from actors.transfers import LegFacts, open_leg, read_leg, saga_key
from messages.catalogue import role_of
from messages.envelope import Envelope, IdFactory, wrap
from messages.schema import BUCKETS, CommandRefused
from messages.silo_msgs import ExecuteSiloTransfers, MoveFunds
from messages.treasury_msgs import (
    CompensateLeg,
    CreditLeg,
    DebitLeg,
    FundsDebited,
    FundsMoved,
    FundsReturned,
    LegFailed,
    PhysicalTransferIntended,
    PlannedMove,
    PolicyChanged,
    PolicyRefused,
    Rebalance,
    RebalanceCompensated,
    RebalanceCompleted,
    RebalanceFailed,
    RebalancePlanned,
    RebalanceSkipped,
    RebalanceTick,
    SetPolicy,
)
from runtime.atomic import AtomicSteps, Commit
from runtime.bus import Delivery, HandlerRejected
from runtime.clock import Clock

try:  # the trading bucket's messages (another concern's module)
    from messages.trading_msgs import CloseAllPositions, PositionsClosedAll
except ModuleNotFoundError as exc:  # pragma: no cover - only while that module is absent
    if exc.name != "messages.trading_msgs":
        raise
    CloseAllPositions = PositionsClosedAll = None

try:  # the referral bucket's messages (another concern's module)
    from messages.referral_msgs import MoveReferralIncome
except ModuleNotFoundError as exc:  # pragma: no cover - only while that module is absent
    if exc.name != "messages.referral_msgs":
        raise
    MoveReferralIncome = None

log = logging.getLogger(__name__)

STALL_MS = 5 * 60_000
"""A saga step with no progress for this long is resent (or, after `MAX_RESENDS`, given up)."""

MAX_RESENDS = 2

SURPLUS_FRESH_MS = 3_600_000
"""A silo's surplus stands in for a transfer only if a reconciliation measured it this recently."""

SURPLUS_MIN = 10_000
"""Surpluses within the venues' cent rounding are not used."""

LEG_ANSWERS = (FundsDebited, FundsMoved, FundsReturned, LegFailed)

# ---------------------------------------------------------------- physical silos

HOME_SILO: dict[str, str] = {"reserve": "wallet", "trading": "trading", "casino": "casino", "referral": "casino"}
"""Where each bucket's money physically sits (referral commissions land in the casino balance)."""

ROUTES: dict[tuple[str, str], str] = {
    ("wallet", "casino"): "wallet send of USDC on Base to the agent's casino deposit address "
    "(POST /auth/deposit-address); lands when the casino's deposit poll credits it",
    ("casino", "wallet"): "casino withdrawal to the treasury wallet (POST /auth/withdraw, $0.50 fee, "
    "over $1,000 waits for review)",
    ("wallet", "trading"): "wallet send of USDC to the trading account's deposit address (Hyperliquid collateral)",
    ("trading", "wallet"): "withdrawal of Hyperliquid collateral to the treasury wallet",
    ("casino", "trading"): "casino withdrawal to the treasury wallet, then a send to the trading deposit address",
    (
        "trading",
        "casino",
    ): "withdrawal of Hyperliquid collateral to the wallet, then a send to the casino deposit address",
}


def silo_plan(moves: list[Move] | tuple[Move, ...], sources: list[str] | None = None
              ) -> tuple[list[int], list[tuple[str, str, int]]]:
    """Per move, how much of its credit must wait for a physical deposit; and the netted transfers.

    `sources` names the silo each move's money physically leaves from, when that is not the
    source bucket's home silo (referral income already paid out to the wallet, say). Moves within
    one silo need nothing physical. Across silos only the net flow moves: a silo that receives
    more than it sends waits for the difference, which is held on the first moves into it, in
    plan order. The transfers pair the silos that give with those that receive, largest first.
    """
    origin = sources or [HOME_SILO[m.source] for m in moves]
    net = {silo: 0 for silo in ("wallet", "trading", "casino")}
    for m, src in zip(moves, origin, strict=True):
        dst = HOME_SILO[m.dest]
        if src != dst:
            net[src] -= m.amount
            net[dst] += m.amount
    need = {silo: max(0, n) for silo, n in net.items()}
    holds = []
    for m, src in zip(moves, origin, strict=True):
        dst = HOME_SILO[m.dest]
        hold = min(need[dst], m.amount) if src != dst else 0
        need[dst] -= hold
        holds.append(hold)
    givers = sorted(([s, -n] for s, n in net.items() if n < 0), key=lambda x: -x[1])
    takers = sorted(([s, n] for s, n in net.items() if n > 0), key=lambda x: -x[1])
    transfers = []
    for taker in takers:
        for giver in givers:
            amount = min(taker[1], giver[1])
            if amount > 0:
                transfers.append((giver[0], taker[0], amount))
                taker[1] -= amount
                giver[1] -= amount
    return holds, transfers


# ---------------------------------------------------------------- triggers

BREAKER_ACTIONS = {"reserve_floor": "emergency_rebalance", "casino_session": "stop_session",
                   "trading_drawdown": "halt_trading"}
"""Breakers after which a `Rebalance` request runs (`drift.after_breaker` decides from the action)."""


def balances_of(ledger: LedgerView) -> dict[str, int]:
    """Every bucket's whole value (available + held): what the targets are shares of."""
    return {name: ledger.bucket(name) for name in BUCKETS}


def drift_reason(balances: dict[str, int], policy: Policy = DEFAULT_POLICY) -> str:
    """Every bucket off its target, largest drift first: 'casino is 20.00 % (target 15.00 %), …'."""
    total = sum(balances.values())
    drifts = drifts_bp(balances, policy)
    off = sorted((b for b in BUCKETS if drifts[b]), key=lambda b: -drifts[b])
    shares = ", ".join(f"{b} is {percent(balances[b], total)} (target {bp_text(policy.targets_bp[b])})" for b in off)
    return f"{shares or 'every bucket is on target'} of the {usd(total)} total; drift limit {bp_text(policy.drift_bp)}"


def request_holds(req: Rebalance, balances: dict[str, int], last_run_ms: int | None, now_ms: int,
                  policy: Policy = DEFAULT_POLICY) -> tuple[bool, str]:
    """Whether a `Rebalance` request's trigger holds, with the reason for the journal."""
    trigger = req.trigger
    if trigger in ("manual", "operator"):
        return True, f"requested: {req.reason}"
    if trigger == "schedule":
        due = schedule_due(last_run_ms, now_ms, policy)
        return due, "scheduled rebalance" if due else "the scheduled rebalance is not due yet"
    if trigger == "drift":
        hit = drifted(balances, policy)
        return hit, ("drift: " if hit else "no drift beyond the limit: ") + drift_reason(balances, policy)
    if trigger in BREAKER_ACTIONS:
        fired = BreakerResult(trigger, BREAKER_ACTIONS[trigger], req.reason, None, "treasury")
        return after_breaker(fired), f"after the {trigger} breaker: {req.reason}"
    if trigger == "big_win":
        if req.amount is None or req.bucket_before is None or req.bucket is None:
            raise HandlerRejected("a big_win rebalance needs bucket, amount (the win) and bucket_before")
        hit = big_win(req.amount, req.bucket_before, policy)
        share = percent(req.amount, req.bucket_before)
        return hit, (f"a win of {usd(req.amount)} is {share} of the {req.bucket} bucket's {usd(req.bucket_before)}, "
                     f"{'beyond' if hit else 'within'} {bp_text(policy.big_win_bp)}")
    if trigger == "before_escrow":
        if req.amount is None:
            raise HandlerRejected("a before_escrow rebalance needs amount (the escrow)")
        reserve = balances["reserve"]
        hit = before_escrow(req.amount, reserve, policy)
        return hit, (
            f"an escrow of {usd(req.amount)} is {percent(req.amount, reserve) if reserve else 'all'} "
            f"of the {usd(reserve)} reserve, {'beyond' if hit else 'within'} {bp_text(policy.large_escrow_bp)}"
        )
    raise HandlerRejected(f"unknown rebalance trigger {trigger!r}")


def tick_trigger(balances: dict[str, int], last_run_ms: int | None, now_ms: int,
                 policy: Policy = DEFAULT_POLICY) -> tuple[str, str] | None:
    """On a tick: (`drift`, reason) if a bucket drifted beyond the limit, else (`schedule`, reason)
    if the scheduled run is due, else None."""
    if sum(balances.values()) > 0 and drifted(balances, policy):
        return "drift", "drift: " + drift_reason(balances, policy)
    if schedule_due(last_run_ms, now_ms, policy):
        return "schedule", "scheduled rebalance"
    return None


def effective_state(risk: RiskView, now_ms: int) -> str:
    """The state the fence applies: an expired pause counts as ACTIVE."""
    if risk.state == "PAUSED" and 0 < risk.until_ms <= now_ms:
        return "ACTIVE"
    return risk.state


def allowed_moves(moves: tuple[Move, ...] | list[Move], state: str, halted: dict[str, str], available: dict[str, int],
                  policy: Policy = DEFAULT_POLICY, min_move: int | None = None
                  ) -> tuple[list[Move], list[str], list[int]]:
    """The planned moves the risk state allows and the available balances can fund, in order;
    why each other one was dropped or trimmed; and the plan positions of the kept moves.

    PAUSED or HALTED: only moves into the reserve (they make the treasury safer; the others would
    put money where it can be spent, and their debit would be refused by the fence anyway). No
    move into a halted bucket. A move its source cannot fund from its available balance at that
    point (money reserved by bets, locked in escrow, or in margin) is trimmed, or dropped under
    the minimum move.
    """
    kept, dropped, positions = [], [], []
    running = dict(available)
    for i, m in enumerate(moves):
        if state != "ACTIVE" and m.dest != "reserve":
            dropped.append(f"{m.source} -> {m.dest} {usd(m.amount)}: treasury is {state}, only moves into the reserve")
            continue
        if m.dest in halted:
            dropped.append(f"{m.source} -> {m.dest} {usd(m.amount)}: {m.dest} is halted ({halted[m.dest]})")
            continue
        amount = min(m.amount, running.get(m.source, 0))
        if amount < max(policy.min_move if min_move is None else min_move, 1):
            have = usd(running.get(m.source, 0))
            dropped.append(f"{m.source} -> {m.dest} {usd(m.amount)}: {m.source} has only {have} available")
            continue
        if amount < m.amount:
            dropped.append(f"{m.source} -> {m.dest} trimmed from {usd(m.amount)} to {usd(amount)}: available balance")
        running[m.source] = running.get(m.source, 0) - amount
        running[m.dest] = running.get(m.dest, 0) + amount
        kept.append(Move(m.source, m.dest, amount, m.reason))
        positions.append(i)
    return kept, dropped, positions


def physically_possible(moves: tuple[Move, ...] | list[Move]) -> tuple[list[Move], list[str]]:
    """The planned moves whose money can physically reach the destination's silo, and why each
    other one was dropped: money out of trading cannot leave Hyperliquid (no collateral withdrawal
    API), so such a move would only be returned after the fact, and closing the open positions
    for it would realize their losses and fees for nothing."""
    kept, dropped = [], []
    for m in moves:
        why = impossible_transfer(HOME_SILO[m.source], HOME_SILO[m.dest])
        if why is None:
            kept.append(m)
        else:
            dropped.append(f"{m.source} -> {m.dest} {usd(m.amount)}: {why}")
    return kept, dropped


# ---------------------------------------------------------------- the actor


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _encode_moves(moves: list[Move], holds: list[int], origins: list[str]) -> str:
    return ";".join(f"{m.source}|{m.dest}|{m.amount}|{h}|{o}" for m, h, o in zip(moves, holds, origins, strict=True))


def _decode_moves(text: str) -> list[tuple[str, str, int, int, str]]:
    """(source, dest, amount, hold, silo the money physically leaves from) per planned move."""
    out = []
    for part in filter(None, text.split(";")):
        source, dest, amount, hold, origin = part.split("|")
        out.append((source, dest, int(amount), int(hold), origin))
    return out


class Rebalancer(TreasuryActor):
    """Broadcasts need no action: the risk state is read from Redis at each decision."""

    role = "rebalancer"
    handlers = {Rebalance: "_on_request", SetPolicy: "_on_set_policy", RebalanceTick: "_on_tick",
                MoveFunds: "_on_move_funds",
                **dict.fromkeys(LEG_ANSWERS, "_on_leg_answer"),
                **({MoveReferralIncome: "_on_move_income"} if MoveReferralIncome is not None else {}),
                **({PositionsClosedAll: "_on_positions_closed"} if PositionsClosedAll is not None else {})}

    def __init__(self, steps: AtomicSteps, clock: Clock, new_id: IdFactory, *, policy: Policy = DEFAULT_POLICY,
                 stall_ms: int = STALL_MS, max_resends: int = MAX_RESENDS, hold_physical: bool = True,
                 execute_silos: bool = True):
        super().__init__(steps, clock, new_id)
        self.policy = policy
        self.stall_ms = stall_ms
        self.max_resends = max_resends
        self.hold_physical = hold_physical
        self.execute_silos = execute_silos
        """Poke the `silo` role when a saga leaves physical transfers (it makes them)."""

    # Each handler decides inside `_run`: decide from Redis, commit with the ack, decide again if raced.

    def _on_request(self, delivery: Delivery, body: Rebalance) -> None:
        self._run(delivery, lambda c, now: self.request(c, delivery.envelope, body, now))

    def _on_set_policy(self, delivery: Delivery, body: SetPolicy) -> None:
        self._run(delivery, lambda c, now: self.set_policy(c, delivery.envelope, body))

    def _on_tick(self, delivery: Delivery, body: RebalanceTick) -> None:
        self._run(delivery, lambda c, now: self.tick(c, delivery.envelope, now))

    def _on_leg_answer(self, delivery: Delivery, body: Any) -> None:
        self._run(delivery, lambda c, now: self.answer(c, delivery.envelope, body.saga, now))

    def _on_move_funds(self, delivery: Delivery, body: MoveFunds) -> None:
        self._run(delivery, lambda c, now: self.operator_move(c, delivery.envelope, body, now))

    def _on_move_income(self, delivery: Delivery, body: Any) -> None:
        self._run(delivery, lambda c, now: self.move_income(c, delivery.envelope, body, now))

    def _on_positions_closed(self, delivery: Delivery, body: Any) -> None:
        self._run(delivery, lambda c, now: self.answer(c, delivery.envelope, None, now))

    # ------------------------------------------------------------------ keys

    def state_key(self, agent: str) -> str:
        """`<prefix>:{S}:rebal:<agent>`: the active saga and the last run (written only here)."""
        return self.keys.rebalance(agent)

    def policy_for(self, agent: str) -> Policy:
        """The agent's effective policy (`actors.policy.effective`): this actor's base with the overrides."""
        return effective_policy(self.client, self.keys, agent, self.policy)

    def _saga(self, agent: str, saga: str) -> dict[str, str]:
        raw = self.client.hgetall(saga_key(self.keys, agent, saga))
        return {_text(k): _text(v) for k, v in raw.items()}

    def _active(self, agent: str) -> str | None:
        value = self.client.hget(self.state_key(agent), "active")
        return _text(value) if value else None

    def _last_run(self, agent: str) -> int | None:
        value = self.client.hget(self.state_key(agent), "last_run_ms")
        return int(value) if value is not None else None

    # ------------------------------------------------------------------ one message, one commit

    def _run(self, delivery: Delivery, decide) -> None:
        """Decide from Redis, then commit the decision with the ack. A refused commit means a leg
        raced the decision (a token the decision relied on moved): decide again from the new state."""
        env = delivery.envelope
        for _ in range(5):
            now = self.clock.now_ms()
            commit = self.steps.new_commit(env.agent)
            decide(commit, now)
            commit.ack(delivery.stream, delivery.group, delivery.entry_id)
            result = self.steps.commit(commit, env.id, now)
            if result.status != "refused":
                return
            log.info("rebalancer %s: %s raced a leg (%s); deciding again", env.agent, env.id, result.reason)
        raise RuntimeError(f"rebalancer could not commit {env.id}: the saga kept changing")

    # ------------------------------------------------------------------ requests

    def request(self, commit: Commit, env: Envelope, req: Rebalance, now: int) -> None:
        agent = env.agent
        ledger = read_ledger(self.client, self.keys, agent)
        if not ledger.known():
            raise HandlerRejected(f"agent {agent} has no ledger")
        active = self._active(agent)
        if active:
            return self._skip(commit, env, req.trigger, f"saga {active} is still running; it aims at the same targets")
        holds, why = request_holds(req, balances_of(ledger), self._last_run(agent), now, self.policy_for(agent))
        if not holds:
            return self._skip(commit, env, req.trigger, why)
        if req.trigger in BREAKER_ACTIONS and req.bucket not in (None, "reserve") and req.amount:
            # the breaker named what it freed (a stopped casino session's remainder): to the reserve
            move = Move(req.bucket, "reserve", req.amount, why)
            return self.explicit(commit, env, req.trigger, why, [move], None, ledger, now)
        self.begin(commit, env, req.trigger, why, ledger, now)

    def explicit(self, commit: Commit, env: Envelope, trigger: str, reason: str, moves: list[Move],
                 origins: list[str] | None, ledger: LedgerView, now: int) -> None:
        """Run moves decided elsewhere (by a breaker, by the referral policy): no drift plan and no
        $10 minimum; the risk state and the available balances still decide what is allowed."""
        risk = read_risk(self.client, self.keys, env.agent)
        state = effective_state(risk, now)
        if state not in ("ACTIVE", "PAUSED", "HALTED"):
            return self._skip(commit, env, trigger, "no readable risk state for this agent: no move (fail closed)")
        self._begin_moves(commit, env, self.new_id(), trigger, reason, moves, ledger, risk, state, first=True,
                          min_move=1, origins=origins, weigh_fees=False)

    def operator_move(self, commit: Commit, env: Envelope, cmd: MoveFunds, now: int) -> None:
        """An operator's `MoveFunds`: the same saga as a rebalance move (fence, legs, and the
        physical transfer when the buckets live in different silos). Answered in the journal by
        `RebalancePlanned` then its outcome, or `RebalanceSkipped` with why; or refused whole by
        `CommandRefused` with the reason (`actors.policy.operator_moves.move_problem`: more than
        the source has available, or the reserve taken under its floor), nothing moved: an
        operator's move is never trimmed."""
        if cmd.source == cmd.dest:
            raise HandlerRejected(f"a move from {cmd.source} to itself moves nothing")
        ledger = read_ledger(self.client, self.keys, env.agent)
        if not ledger.known():
            raise HandlerRejected(f"agent {env.agent} has no ledger")
        active = self._active(env.agent)
        if active:
            return self._skip(commit, env, "operator_move", f"saga {active} is still running: move again once it ends")
        problem = move_problem(cmd.source, cmd.dest, cmd.amount, ledger.available, balances_of(ledger),
                               self.policy_for(env.agent))
        if problem is not None:
            refused = CommandRefused(command="MoveFunds", reason=f"move {cmd.source} -> {cmd.dest} {usd(cmd.amount)}: "
                                                                 f"{problem}")
            commit.emit(self.keys.events(env.agent), self._wrap(refused, env))
            return None
        reason = f"operator move: {cmd.reason}"
        self.explicit(commit, env, "operator_move", reason, [Move(cmd.source, cmd.dest, cmd.amount, reason)], None,
                      ledger, now)

    def set_policy(self, commit: Commit, env: Envelope, cmd: SetPolicy) -> None:
        """Validate the whole resulting policy, then store the changed settings; or refuse, with why
        (an unknown name, a wrong type or a value out of range changes nothing)."""
        merged = {**read_overrides(self.client, self.keys, env.agent), **cmd.settings}
        try:
            merge_policy(merged, self.policy)
        except PolicyError as exc:
            refused = PolicyRefused(settings=dict(cmd.settings), reason=str(exc))
            commit.emit(self.keys.events(env.agent), self._wrap(refused, env))
            return None
        for name, value in cmd.settings.items():
            commit.hset(self.keys.policy(env.agent), name, value)
        changed = PolicyChanged(settings=dict(cmd.settings), policy=merged)
        commit.emit(self.keys.events(env.agent), self._wrap(changed, env))

    def move_income(self, commit: Commit, env: Envelope, req, now: int) -> None:
        """The referral actor reinvests income: referral -> reserve first, then -> trading.

        The split was decided by the referral policy (which applies the minimum). Income already
        paid out on-chain sits in the wallet: it is drawn first, for the reserve, so it needs no
        physical transfer; the rest leaves the casino balance.
        """
        agent = env.agent
        ledger = read_ledger(self.client, self.keys, agent)
        if not ledger.known():
            raise HandlerRejected(f"agent {agent} has no ledger")
        trigger = "referral_income"
        active = self._active(agent)
        if active:
            return self._skip(commit, env, trigger, f"saga {active} is still running; the income stays in the "
                                                    "referral bucket for the next rebalance")
        reason = f"referral income reinvested: {req.reason}"
        wallet = req.held_at.get("chain", 0)
        moves, origins = [], []
        for dest, amount in (("reserve", req.to_reserve), ("trading", req.to_trading)):
            from_wallet = min(wallet, amount)
            wallet -= from_wallet
            for origin, part in (("wallet", from_wallet), (HOME_SILO["referral"], amount - from_wallet)):
                if part > 0:
                    moves.append(Move("referral", dest, part, reason))
                    origins.append(origin)
        self.explicit(commit, env, trigger, reason, moves, origins, ledger, now)

    def tick(self, commit: Commit, env: Envelope, now: int) -> None:
        agent = env.agent
        active = self._active(agent)
        if active:
            return self.drive(commit, env, active, now, tick=True)
        ledger = read_ledger(self.client, self.keys, agent)
        if not ledger.known():
            raise HandlerRejected(f"agent {agent} has no ledger")
        fired = tick_trigger(balances_of(ledger), self._last_run(agent), now, self.policy_for(agent))
        if fired is None:
            return None
        self._skipped = None
        self.begin(commit, env, fired[0], fired[1], ledger, now)
        if self._skipped is None:
            return None
        # A tick that comes to the same skip as the last tick wrote changes nothing: write nothing
        # (an idle agent under drift it may not correct would otherwise journal it every hour).
        previous = self.client.hget(self.state_key(agent), "tick_skip")
        if previous is not None and previous.decode() == self._skipped:
            commit.clear()
        else:
            commit.hset(self.state_key(agent), "tick_skip", self._skipped)

    def begin(self, commit: Commit, env: Envelope, trigger: str, reason: str, ledger: LedgerView, now: int) -> None:
        """Plan, and start the saga: close positions first, or send the first debit."""
        agent, k = env.agent, self.keys
        commit.hset(self.state_key(agent), "last_run_ms", now)
        risk = read_risk(self.client, k, agent)
        state = effective_state(risk, now)
        if state not in ("ACTIVE", "PAUSED", "HALTED"):
            return self._skip(commit, env, trigger, "no readable risk state for this agent: no move (fail closed)")
        balances = balances_of(ledger)
        if "drift" not in reason and sum(balances.values()) > 0:
            reason = f"{reason}; {drift_reason(balances, self.policy_for(agent))}"
        margin = ledger.held_by("trading", "margin")
        plan = plan_rebalance(balances, self.policy_for(agent), reason=reason, open_trading_margin=margin)
        planned_moves, impossible = physically_possible(plan.moves) if self.hold_physical else (list(plan.moves), [])
        saga = self.new_id()
        skey = saga_key(k, agent, saga)
        # Closing is allowed in every state; it is asked for only if a move out of trading is allowed.
        if plan.close_positions_first and any(m.source == "trading" and (state == "ACTIVE" or m.dest == "reserve")
                                              and m.dest not in risk.halted_buckets for m in planned_moves):
            if CloseAllPositions is None:
                return self._skip(commit, env, trigger, "positions must be closed first, and the trading messages "
                                                        "are not installed: no move")
            for fld, value in (("trigger", trigger), ("reason", reason), ("state", "closing"), ("started_ms", now),
                               ("updated_ms", now), ("sends", 0)):
                commit.hset(skey, fld, value)
            commit.hset(self.state_key(agent), "active", saga)
            planned = self._planned(saga, trigger, reason, list(plan.moves), [0] * len(plan.moves), True, state,
                                    plan.before, ())
            commit.emit(k.events(agent), self._wrap(planned, env))
            self._close_positions(commit, env, saga, margin)
            return None
        self._begin_moves(commit, env, saga, trigger, reason, planned_moves, ledger, risk, state, first=True,
                          dropped_before=impossible)

    def _begin_moves(self, commit: Commit, env: Envelope, saga: str, trigger: str, reason: str,
                     planned_moves: tuple[Move, ...] | list[Move], ledger: LedgerView, risk: RiskView, state: str,
                     first: bool, min_move: int | None = None, origins: list[str] | None = None,
                     weigh_fees: bool = True, dropped_before: list[str] | None = None) -> None:
        """Send the first debit of the moves the state allows; `origins` names, per planned move,
        the silo its money physically leaves from (default: the source bucket's home silo).
        `weigh_fees`: drop planned moves whose transfer fees exceed the policy's share (not for
        moves decided elsewhere: a breaker's, the referral policy's, an operator's)."""
        agent, k = env.agent, self.keys
        skey = saga_key(k, agent, saga)
        moves, dropped, positions = allowed_moves(planned_moves, state, risk.halted_buckets, dict(ledger.available),
                                                  self.policy_for(agent), min_move)
        dropped = [*(dropped_before or ()), *dropped]
        if not moves:
            why = "nothing to move: every bucket is within its minimum move of its target"
            if dropped:
                why = "no move allowed: " + "; ".join(dropped)
            if first:
                return self._skip(commit, env, trigger, f"{reason}; {why}")
            return self._finish(commit, env, saga, "completed", RebalanceCompleted(
                saga=saga, reason=f"{reason}; {why}", moves=0, moved=0, held=0))
        origins = [origins[i] if origins else HOME_SILO[moves[n].source] for n, i in enumerate(positions)]
        holds = silo_plan(moves, origins)[0] if self.hold_physical else [0] * len(moves)
        covered: dict[str, int] = {}
        if self.hold_physical and any(holds):
            moves, origins, holds, covered = self._weigh(agent, moves, origins, holds, dropped, weigh_fees)
            if not moves:
                why = "no move worth its cost: " + "; ".join(dropped)
                if first:
                    return self._skip(commit, env, trigger, f"{reason}; {why}")
                return self._finish(commit, env, saga, "completed", RebalanceCompleted(
                    saga=saga, reason=f"{reason}; {why}", moves=0, moved=0, held=0))
        for silo, amount in covered.items():
            commit.hset(skey, f"covered:{silo}", amount)
            # the surplus is spoken for: a later plan before the next reconciliation cannot use it again
            commit.incr(silo_state_key(k, agent), f"surplus:{silo}", -amount)
        for fld, value in (("trigger", trigger), ("reason", reason), ("state", "moving"),
                           ("moves", _encode_moves(moves, holds, origins)), ("cursor", 0),
                           ("updated_ms", self.clock.now_ms()), ("sends", 0)):
            commit.hset(skey, fld, value)
        if first:
            commit.hset(skey, "started_ms", self.clock.now_ms())
        commit.hset(self.state_key(agent), "active", saga)
        planned = self._planned(saga, trigger, reason, moves, holds, False, state, balances_of(ledger), tuple(dropped))
        commit.emit(k.events(agent), self._wrap(planned, env))
        self._send_debit(commit, env, saga, 0, moves[0].source, moves[0].dest, moves[0].amount, holds[0], reason,
                         open_=True)

    def _weigh(self, agent: str, moves: list[Move], origins: list[str], holds: list[int], dropped: list[str],
               weigh_fees: bool = True):
        """Drop moves whose transfer fees exceed the policy's share; let a destination silo's
        surplus (from the last reconciliation) stand in for a transfer. Appends why to `dropped`."""
        policy = self.policy_for(agent)
        _, keep, _, why = weigh_moves(moves, holds, origins, HOME_SILO, {},
                                      policy.max_transfer_fee_bp if weigh_fees else None)
        dropped.extend(why)
        moves = [m for m, k in zip(moves, keep, strict=True) if k]
        origins = [o for o, k in zip(origins, keep, strict=True) if k]
        holds = silo_plan(moves, origins)[0]
        holds, _, covered, why = weigh_moves(moves, holds, origins, HOME_SILO, self._surplus(agent), None)
        dropped.extend(why)
        return moves, origins, holds, {s: a for s, a in covered.items() if a > 0}

    def _surplus(self, agent: str) -> dict[str, int]:
        """What each silo held beyond its buckets at the last clean-enough reconciliation (the silo
        actor records it); nothing when no reconciliation is recent."""
        raw = {_text(k): _text(v) for k, v in self.client.hgetall(silo_state_key(self.keys, agent)).items()}
        at = int(raw.get("last_reconcile_ms", 0) or 0)
        if not at or self.clock.now_ms() - at > SURPLUS_FRESH_MS:
            return {}
        return {k.removeprefix("surplus:"): int(v) for k, v in raw.items()
                if k.startswith("surplus:") and int(v) > SURPLUS_MIN}

    def _planned(self, saga, trigger, reason, moves, holds, close_first, state, before, dropped) -> RebalancePlanned:
        pairs = tuple(zip(moves, holds, strict=True))
        return RebalancePlanned(
            saga=saga, trigger=trigger, reason=reason, close_positions_first=close_first, state=state,
            moves=tuple(PlannedMove(source=m.source, dest=m.dest, amount=m.amount, hold=h) for m, h in pairs),
            before=dict(before), after=apply_moves(dict(before), moves), dropped=dropped)

    # ------------------------------------------------------------------ driving a saga

    def answer(self, commit: Commit, env: Envelope, saga: str | None, now: int) -> None:
        """A leg's answer, or the trading role's `PositionsClosedAll`: re-read and carry on."""
        active = self._active(env.agent)
        if active is None or (saga is not None and saga != active):
            return None  # a late or repeated answer to a finished saga: nothing to do
        if saga is None:
            if self._saga(env.agent, active).get("state") != "closing":
                return None
            return self.drive(commit, env, active, now, tick=False, closed_reply=True)
        self.drive(commit, env, active, now, tick=False)

    def drive(
        self, commit: Commit, env: Envelope, saga: str, now: int, *, tick: bool, closed_reply: bool = False
    ) -> None:
        """Take the saga's next step from what Redis says about it."""
        agent = env.agent
        record = self._saga(agent, saga)
        stalled = tick and now - int(record.get("updated_ms", 0)) >= self.stall_ms
        sends = int(record.get("sends", 0))
        state = record.get("state")
        if state == "closing":
            return self._drive_closing(commit, env, saga, record, now, stalled, sends, closed_reply)
        if state != "moving":
            commit.hdel(self.state_key(agent), "active")  # a finished saga left as active: clear it
            return None
        moves = _decode_moves(record["moves"])
        cursor = int(record["cursor"])
        facts = read_leg(self.client, self.keys, agent, saga, cursor)
        if facts is None:
            raise RuntimeError(f"saga {saga} has no record of its leg {cursor}")
        sent = record.get(f"leg:{cursor}:sent", "debit")
        reason = record.get("reason", "")
        skey = saga_key(self.keys, agent, saga)
        if facts.settled == "credit":
            return self._advance(commit, env, saga, record, moves, cursor)
        if facts.settled == "return":
            return self._finish(commit, env, saga, "compensated", RebalanceCompensated(
                saga=saga, leg=cursor, returned=facts.returned, moves_done=cursor,
                reason=f"{facts.source} -> {facts.dest} {usd(facts.amount)} was not credited "
                       f"({self._refusal_text(facts) or 'no answer'}): the money went back to {facts.source}"))
        if not facts.debited:
            if facts.cancelled or facts.refused_stage == "debit" or (stalled and sends >= self.max_resends):
                if facts.token > 0:
                    commit.incr(skey, f"leg:{cursor}:token", -1)  # refused if the debit just happened
                why = self._refusal_text(facts) or f"{facts.source} did not answer after {sends + 1} sends"
                return self._finish(commit, env, saga, "failed", RebalanceFailed(
                    saga=saga, stage="debit", moves_done=cursor,
                    reason=f"{facts.source} -> {facts.dest} {usd(facts.amount)} not debited: {why}"))
            if stalled:
                self._send_debit(commit, env, saga, cursor, facts.source, facts.dest, facts.amount, facts.hold,
                                 reason, sends=sends + 1)
            return None
        # debited, the money is in transit
        if sent == "compensate":
            if stalled:  # the money must come back: resend for as long as it takes
                self._send(commit, env, saga, cursor, "compensate", facts, sends + 1, reason)
            return None
        if facts.refused_stage == "credit" or (sent == "credit" and stalled and sends >= self.max_resends):
            return self._send(commit, env, saga, cursor, "compensate", facts, 0, reason)
        if sent == "debit":
            return self._send(commit, env, saga, cursor, "credit", facts, 0, reason)
        if stalled:
            self._send(commit, env, saga, cursor, "credit", facts, sends + 1, reason)
        return None

    def _drive_closing(self, commit, env, saga, record, now, stalled, sends, closed_reply) -> None:
        agent = env.agent
        ledger = read_ledger(self.client, self.keys, agent)
        margin = ledger.held_by("trading", "margin")
        if margin == 0:
            risk = read_risk(self.client, self.keys, agent)
            state = effective_state(risk, now)
            reason = record.get("reason", "") + "; positions closed"
            plan = plan_rebalance(balances_of(ledger), self.policy_for(agent), reason=reason, open_trading_margin=0)
            planned_moves, impossible = (physically_possible(plan.moves) if self.hold_physical
                                         else (list(plan.moves), []))
            if state not in ("ACTIVE", "PAUSED", "HALTED"):
                return self._finish(commit, env, saga, "failed", RebalanceFailed(
                    saga=saga, stage="plan", moves_done=0, reason="no readable risk state after closing: no move"))
            return self._begin_moves(commit, env, saga, record.get("trigger", ""), reason, planned_moves, ledger,
                                     risk, state, first=False, dropped_before=impossible)
        if closed_reply or (stalled and sends >= self.max_resends):
            return self._finish(commit, env, saga, "failed", RebalanceFailed(
                saga=saga, stage="close_positions", moves_done=0,
                reason=f"positions still open ({usd(margin)} margin) after CloseAllPositions: no trading money moved"))
        if stalled:
            commit.hset(saga_key(self.keys, agent, saga), "sends", sends + 1)
            self._close_positions(commit, env, saga, margin)
        return None

    def _advance(self, commit, env, saga, record, moves, cursor) -> None:
        skey = saga_key(self.keys, env.agent, saga)
        nxt = cursor + 1
        if nxt < len(moves):
            commit.hset(skey, "cursor", nxt)
            source, dest, amount, hold, _origin = moves[nxt]
            return self._send_debit(commit, env, saga, nxt, source, dest, amount, hold, record.get("reason", ""),
                                    open_=True)
        moved = sum(m[2] for m in moves)
        held = sum(m[3] for m in moves)
        return self._finish(commit, env, saga, "completed", RebalanceCompleted(
            saga=saga, moves=len(moves), moved=moved, held=held, reason=record.get("reason", "")))

    def _finish(self, commit: Commit, env: Envelope, saga: str, state: str, event) -> None:
        """End the saga: its outcome, and the physical transfers its completed moves need."""
        agent, k = env.agent, self.keys
        skey = saga_key(k, agent, saga)
        record = self._saga(agent, saga)
        commit.hset(skey, "state", state).hset(skey, "updated_ms", self.clock.now_ms())
        commit.hdel(self.state_key(agent), "active")
        commit.emit(k.events(agent), self._wrap(event, env))
        done, origins = [], []
        for i, (source, dest, amount, _hold, origin) in enumerate(_decode_moves(record.get("moves", ""))):
            facts = read_leg(self.client, k, agent, saga, i)
            if facts is not None and facts.settled == "credit":
                done.append(Move(source, dest, amount, record.get("reason", "")))
                origins.append(origin)
        covered = {f.removeprefix("covered:"): int(v) for f, v in record.items() if f.startswith("covered:")}
        transfers = cover_transfers(silo_plan(done, origins)[1], covered)
        carried = assign_legs(self._held_legs(agent, saga, record), transfers, HOME_SILO)
        for n, ((src, dst, amount), legs) in enumerate(zip(transfers, carried, strict=True)):
            intent = PhysicalTransferIntended(saga=saga, from_silo=src, to_silo=dst, amount=amount,
                                              route=ROUTES[(src, dst)], reason=record.get("reason", ""))
            tid = f"{saga}:{n}"
            xkey = xfer_key(k, agent, tid)
            for fld, value in (("saga", saga), ("from_silo", src), ("to_silo", dst), ("amount", amount),
                               ("route", ROUTES[(src, dst)]), ("legs", encode_legs(legs)), ("state", "pending"),
                               ("hop", 0), ("attempts", 0), ("created_ms", self.clock.now_ms()),
                               ("reason", record.get("reason", ""))):
                commit.hset(xkey, fld, value)
            commit.hset(intents_key(k, agent), tid, f"{src}|{dst}|{amount}|pending")
            commit.emit(k.events(agent), self._wrap(intent, env))
        if transfers and self.execute_silos:
            commit.emit(k.agent_commands(agent, "silo"),
                        self._wrap(ExecuteSiloTransfers(reason=f"saga {saga} left {len(transfers)} transfer(s)"), env))
        log.info("rebalancer %s: saga %s %s", agent, saga, state)

    def _held_legs(self, agent: str, saga: str, record: dict) -> list[HeldLeg]:
        """The credited legs of the saga whose held part still waits for a deposit, in plan order."""
        out = []
        for i, (source, dest, _amount, _hold, _origin) in enumerate(_decode_moves(record.get("moves", ""))):
            facts = read_leg(self.client, self.keys, agent, saga, i)
            if facts is not None and facts.settled == "credit" and facts.landable > 0:
                out.append(HeldLeg(i, source, dest, facts.landable))
        return out

    # ------------------------------------------------------------------ sending

    def _send_debit(self, commit: Commit, env: Envelope, saga: str, leg: int, source: str, dest: str, amount: int,
                    hold: int, reason: str, *, open_: bool = False, sends: int = 0) -> None:
        agent, k = env.agent, self.keys
        skey = saga_key(k, agent, saga)
        if open_:
            open_leg(commit, k, agent, saga, leg, source, dest, amount, hold)
        commit.hset(skey, f"leg:{leg}:sent", "debit").hset(skey, "sends", sends)
        commit.hset(skey, "updated_ms", self.clock.now_ms())
        body = DebitLeg(saga=saga, leg=leg, source=source, dest=dest, amount=amount, reason=reason)
        commit.emit(k.agent_commands(agent, role_of(body)), self._wrap(body, env))

    def _send(self, commit: Commit, env: Envelope, saga: str, leg: int, stage: str, facts: LegFacts, sends: int,
              reason: str) -> None:
        agent, k = env.agent, self.keys
        skey = saga_key(k, agent, saga)
        commit.hset(skey, f"leg:{leg}:sent", stage).hset(skey, "sends", sends).hset(
            skey, "updated_ms", self.clock.now_ms()
        )
        if stage == "credit":
            body = CreditLeg(saga=saga, leg=leg, source=facts.source, dest=facts.dest, amount=facts.amount,
                             hold=facts.hold, reason=reason)
            commit.emit(k.agent_commands(agent, role_of(body)), self._wrap(body, env))
        else:
            body = CompensateLeg(
                saga=saga,
                leg=leg,
                source=facts.source,
                dest=facts.dest,
                amount=facts.amount,
                reason=f"compensation: {self._refusal_text(facts) or 'the credit did not come'}; {reason}",
            )
            commit.emit(k.agent_commands(agent, role_of(body)), self._wrap(body, env))

    def _close_positions(self, commit: Commit, env: Envelope, saga: str, margin: int) -> None:
        skey = saga_key(self.keys, env.agent, saga)
        commit.hset(skey, "updated_ms", self.clock.now_ms())
        body = CloseAllPositions(reason=f"rebalance {saga} moves trading money while {usd(margin)} is in open "
                                        "positions: close them first")
        commit.emit(self.keys.agent_commands(env.agent, role_of(body)), self._wrap(body, env))

    _skipped: str | None = None
    """The reason of the skip the decision in hand came to, if any (read by `tick`)."""

    def _skip(self, commit: Commit, env: Envelope, trigger: str, reason: str) -> None:
        self._skipped = f"{trigger}: {reason}"
        commit.emit(self.keys.events(env.agent), self._wrap(RebalanceSkipped(trigger=trigger, reason=reason), env))

    # ------------------------------------------------------------------ small helpers

    @staticmethod
    def _refusal_text(facts: LegFacts) -> str:
        if not facts.refused:
            return ""
        stage, code, reason = (facts.refused.split("|", 2) + ["", ""])[:3]
        return f"{stage} refused ({code}): {reason}"

    def _wrap(self, body, cause: Envelope) -> Envelope:
        return wrap(body, agent=cause.agent, now_ms=self.clock.now_ms(), new_id=self.new_id, cause=cause)


def build(steps: AtomicSteps, clock: Clock, new_id: IdFactory, venues: dict[str, str]) -> pykka.ActorRef:
    return Rebalancer.start(steps, clock, new_id)


