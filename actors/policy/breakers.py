"""Circuit breakers: small pure checks that say when to stop spending.

In the manner of Freqtrade's protections, each breaker is one function of plain numbers that
returns `None` (nothing to do) or a `BreakerResult` naming the action. They read no clock and no
store: the actors pass the balances and `now_ms`, act on the result, and journal its `reason`.

Boundaries are exact integer comparisons and always fall the same way: **at** a limit is still
allowed, one micro-USD **beyond** it fires. A 5.00 % daily loss does not pause; 5 % + 1 micro does.
The reserve floor and the size caps follow the same rule (at the floor / at the cap is fine).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Literal

from actors.policy.buckets import (
    DAY_MS,
    DEFAULT_POLICY,
    Policy,
    below_share,
    bp_text,
    exceeds_share,
    percent,
    require_int,
    usd,
)

Action = Literal["pause", "halt", "halt_trading", "stop_session", "emergency_rebalance", "reject"]
Scope = Literal["treasury", "trading", "casino", "bet", "escrow"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

SEVERITY: tuple[Action, ...] = ("halt", "pause", "halt_trading", "stop_session", "emergency_rebalance", "reject")
"""Actions from most to least severe: a treasury-wide halt first, a single refusal last."""


@dataclass(frozen=True)
class BreakerResult:
    """A breaker that fired: what to do, to what, until when, and why (with the figures)."""

    breaker: str
    """Machine name, e.g. `daily_loss`; stable, used in events and tests."""
    action: Action
    reason: str
    """A sentence for people, carrying the amounts and the limit."""
    until_ms: int | None
    """When the action expires by itself; `None` means only an operator can lift it."""
    scope: Scope


def _utc(ms: int) -> str:
    """A millisecond timestamp as a UTC time for a reason sentence (no clock is read)."""
    return (_EPOCH + timedelta(milliseconds=ms)).strftime("%Y-%m-%d %H:%M UTC")


def _loss_beyond(start: int, now: int, limit_bp: int) -> bool:
    """A loss from `start` to `now` of more than `limit_bp` of `start` (nothing to lose from ≤ 0)."""
    return start > 0 and exceeds_share(start - now, start, limit_bp)


# ---------------------------------------------------------------- the seven breakers


def daily_loss(day_start_total: int, total: int, now_ms: int, *, limit_bp: int = DEFAULT_POLICY.daily_loss_bp,
               pause_ms: int = DEFAULT_POLICY.daily_pause_ms) -> BreakerResult | None:
    """1. Lost more than 5 % of the day-start total today: pause all spending for 24 h.

    The pause lifts by itself at `until_ms`; a bad day should cool off, not end the treasury.
    """
    require_int(day_start_total, "day_start_total")
    require_int(total, "total")
    require_int(now_ms, "now_ms", minimum=0)
    if not _loss_beyond(day_start_total, total, limit_bp):
        return None
    loss = day_start_total - total
    until = now_ms + pause_ms
    return BreakerResult(
        "daily_loss", "pause",
        f"lost {usd(loss)} today, {percent(loss, day_start_total)} of the day-start {usd(day_start_total)}, "
        f"beyond the {bp_text(limit_bp)} daily limit: spending paused until {_utc(until)}",
        until, "treasury")


def casino_session(session_start: int, session_balance: int, *,
                   stop_bp: int = DEFAULT_POLICY.casino_session_stop_bp) -> BreakerResult | None:
    """2. A casino session down more than 50 % of its starting stake: stop it, remainder to reserve."""
    require_int(session_start, "session_start")
    require_int(session_balance, "session_balance")
    if not _loss_beyond(session_start, session_balance, stop_bp):
        return None
    loss = session_start - session_balance
    return BreakerResult(
        "casino_session",
        "stop_session",
        f"casino session down {usd(loss)}, {percent(loss, session_start)} of its {usd(session_start)} start, "
        f"beyond the {bp_text(stop_bp)} stop: session stopped, "
        f"the remaining {usd(session_balance)} goes to the reserve",
        None,
        "casino",
    )


def trading_drawdown(trading_peak: int, trading_balance: int, *,
                     limit_bp: int = DEFAULT_POLICY.trading_drawdown_bp) -> BreakerResult | None:
    """3. The trading bucket more than 20 % below its peak: close every position, halt trading.

    Only an operator resumes: a strategy that lost a fifth of its money needs a look, not a timer.
    """
    require_int(trading_peak, "trading_peak")
    require_int(trading_balance, "trading_balance")
    if not _loss_beyond(trading_peak, trading_balance, limit_bp):
        return None
    drop = trading_peak - trading_balance
    return BreakerResult(
        "trading_drawdown", "halt_trading",
        f"trading bucket {usd(trading_balance)} is {percent(drop, trading_peak)} below its {usd(trading_peak)} peak, "
        f"beyond the {bp_text(limit_bp)} limit: closing all positions, trading halted until an operator lifts it "
        f"(resume-bucket)",
        None, "trading")


def treasury_drawdown(peak: int, total: int, *,
                      limit_bp: int = DEFAULT_POLICY.treasury_drawdown_bp) -> BreakerResult | None:
    """4. The treasury total more than 20 % below its peak: halt everything, alert, manual resume."""
    require_int(peak, "peak")
    require_int(total, "total")
    if not _loss_beyond(peak, total, limit_bp):
        return None
    drop = peak - total
    return BreakerResult(
        "treasury_drawdown", "halt",
        f"treasury total {usd(total)} is {percent(drop, peak)} below its {usd(peak)} peak, "
        f"beyond the {bp_text(limit_bp)} limit: everything halted, an operator must resume",
        None, "treasury")


def reserve_floor(reserve: int, total: int, *, floor_bp: int = DEFAULT_POLICY.reserve_floor_bp) -> BreakerResult | None:
    """5. The reserve below 20 % of the total: rebalance now, before anything else is spent."""
    require_int(reserve, "reserve")
    require_int(total, "total")
    if total <= 0 or not below_share(reserve, total, floor_bp):
        return None
    return BreakerResult(
        "reserve_floor", "emergency_rebalance",
        f"reserve {usd(reserve)} is {percent(reserve, total)} of the {usd(total)} total, "
        f"below its {bp_text(floor_bp)} floor: emergency rebalance",
        None, "treasury")


def bet_size(stake: int, bucket_balance: int, *, max_bp: int = DEFAULT_POLICY.max_bet_bp) -> BreakerResult | None:
    """6. One bet of more than 2 % of its bucket: refuse it (the bet, not the bucket)."""
    require_int(stake, "stake", minimum=0)
    require_int(bucket_balance, "bucket_balance")
    if not exceeds_share(stake, bucket_balance, max_bp):
        return None
    return BreakerResult(
        "bet_size", "reject",
        f"stake {usd(stake)} is {percent(stake, bucket_balance)} of the {usd(bucket_balance)} bucket, "
        f"above the {bp_text(max_bp)} cap per bet",
        None, "bet")


def escrow_lock(locked: int, amount: int, fee: int, reserve: int, *,
                limit_bp: int = DEFAULT_POLICY.escrow_reserve_bp) -> BreakerResult | None:
    """7. Escrow would tie up more than 30 % of the reserve: refuse the new escrow.

    Counted: what is already locked, the new amount, and its fee (`escrow_rules.escrow_fee`). The
    real service takes the fee out of the amount, so adding it on top over-counts by the fee —
    deliberately, on the safe side.
    """
    require_int(locked, "locked", minimum=0)
    require_int(amount, "amount", minimum=0)
    require_int(fee, "fee", minimum=0)
    require_int(reserve, "reserve")
    after = locked + amount + fee
    if not exceeds_share(after, reserve, limit_bp):
        return None
    return BreakerResult(
        "escrow_lock", "reject",
        f"escrow would lock {usd(after)} ({usd(locked)} already + {usd(amount)} + {usd(fee)} fee), "
        f"{percent(after, reserve)} of the {usd(reserve)} reserve, above the {bp_text(limit_bp)} limit",
        None, "escrow")


# ---------------------------------------------------------------- treasury-level evaluation


@dataclass(frozen=True)
class TotalsSnapshot:
    """The balances RiskGuard sees after a change, with the marks it keeps (peaks, day start)."""

    total: int
    peak: int
    day_start: int
    reserve: int
    trading: int
    trading_peak: int


def evaluate_totals(snapshot: TotalsSnapshot, now_ms: int, policy: Policy = DEFAULT_POLICY) -> list[BreakerResult]:
    """Run the treasury-level breakers (1, 3, 4, 5); return every one that fired, most severe first."""
    fired = [
        daily_loss(
            snapshot.day_start, snapshot.total, now_ms, limit_bp=policy.daily_loss_bp, pause_ms=policy.daily_pause_ms
        ),
        trading_drawdown(snapshot.trading_peak, snapshot.trading, limit_bp=policy.trading_drawdown_bp),
        treasury_drawdown(snapshot.peak, snapshot.total, limit_bp=policy.treasury_drawdown_bp),
        reserve_floor(snapshot.reserve, snapshot.total, floor_bp=policy.reserve_floor_bp),
    ]
    return sorted((r for r in fired if r is not None), key=lambda r: SEVERITY.index(r.action))


# ---------------------------------------------------------------- the marks the breakers measure from


def utc_day(now_ms: int) -> int:
    """Days since the epoch, UTC: the day a millisecond timestamp falls in."""
    return now_ms // DAY_MS


@dataclass(frozen=True)
class RiskMarks:
    """Peak and day-start of one balance (the treasury total, or one bucket), updated purely.

    The day start is the first balance observed in a new UTC day, so an actor should observe at
    least once soon after midnight (any balance change or a tick does).
    """

    peak: int
    day_start: int
    day_start_day: int

    @classmethod
    def first(cls, total: int, now_ms: int) -> RiskMarks:
        """Marks of a balance seen for the first time."""
        require_int(total, "total")
        return cls(total, total, utc_day(now_ms))

    def observe(self, total: int, now_ms: int) -> RiskMarks:
        """The marks after seeing `total` at `now_ms`: the peak only rises; a new UTC day resets the day start.

        A clock that steps back into an earlier day does not reset anything.
        """
        require_int(total, "total")
        day = utc_day(now_ms)
        if day > self.day_start_day:
            return RiskMarks(max(self.peak, total), total, day)
        return replace(self, peak=max(self.peak, total))

    def shifted(self, delta: int) -> RiskMarks:
        """The marks after money entered (+) or left (−) this balance without being won or lost.

        A deposit, an owner's withdrawal, or a rebalance moving money out of the trading bucket is
        not P&L; shifting the peak and the day start by the same amount keeps the drawdown and
        daily-loss breakers measuring gains and losses only.
        """
        require_int(delta, "delta")
        return replace(self, peak=self.peak + delta, day_start=self.day_start + delta)


# ---------------------------------------------------------------- performance: values less flows


MAX_PAUSE_MS = 30 * DAY_MS
"""The longest pause with an end (a longer one is a pause until resumed, its own explicit choice)."""


@dataclass(frozen=True, order=True)
class ValuePoint:
    """One point of an agent's value series: at `at_ms` (the commit's time), after its `seq`-th
    ledger commit, the treasury was worth `total` micro-USD and `flows` micro-USD had entered it
    from outside, net, since it opened (capital included)."""

    at_ms: int
    seq: int
    total: int
    flows: int
    unrealized: int = 0
    """Of `total`, the open positions' unrealized P&L at their marks."""
    trading: int | None = None
    """The trading bucket's value (available and every held kind, positions at their mark); None on
    a point written before the series carried it."""
    trading_base: int = 0
    """What the trading bucket's performance is measured against, read in the same commit as
    `trading`: net transfers into trading (flows `trading`) plus its external flows."""

    @property
    def performance(self) -> int:
        """What was won or lost since opening: total less net external flows."""
        return self.total - self.flows

    @property
    def trading_performance(self) -> int | None:
        """What trading won or lost: its value less what was moved or paid into it (None: not recorded)."""
        return None if self.trading is None else self.trading - self.trading_base

    @classmethod
    def parse(cls, member: bytes | str) -> ValuePoint:
        """A point from its series member `"<at_ms>|<seq>|<total>|<flows>|<unrealized>|<trading>|<trading_base>"`
        (see `runtime/lua/commit.lua`); the last two are absent on older points."""
        text = member.decode() if isinstance(member, bytes) else member
        return cls(*(int(part) for part in text.split("|")))


ORIGIN = ValuePoint(0, 0, 0, 0)
"""The value before the first point: nothing held, nothing put in."""


@dataclass(frozen=True)
class Performance:
    """What the treasury-level breakers measure from, in performance units (total − flows).

    `peak` is the highest performance seen since opening or since the last resume; `rearm_day` /
    `rearm_level` the UTC day and performance of the last resume (-1 when none): within that day
    the day-start is the resumed level rather than the value at midnight.
    """

    peak: int
    rearm_day: int = -1
    rearm_level: int = 0

    def day_start_level(self, day: int, boundary: ValuePoint) -> int:
        """The performance the daily loss of `day` is measured from: the value at the day boundary
        (`boundary`: the last point before midnight), or the resumed level on the day of a resume."""
        return self.rearm_level if day == self.rearm_day else boundary.performance

    def rearmed(self, level: int, now_ms: int) -> Performance:
        """After an operator's resume at performance `level`: both breakers measure from here."""
        return Performance(level, utc_day(now_ms), level)


def judge_point(point: ValuePoint, marks: Performance, boundary: ValuePoint, now_ms: int,
                policy: Policy = DEFAULT_POLICY) -> tuple[Performance, list[BreakerResult], int, int]:
    """Judge the daily-loss and drawdown breakers at one point of the value series.

    `boundary` is the last point before midnight of the point's UTC day (`ORIGIN` if none). Both
    reference values are shifted by the point's flows, so flows are neither gains nor losses:
    day-start = day-start level + flows, peak = peak level + flows. Returns the marks after the
    point (the peak rises to a new high first), the breakers that fired (most severe first), and
    the flow-adjusted day-start and peak, in micro-USD.
    """
    marks = replace(marks, peak=max(marks.peak, point.performance))
    day_start = marks.day_start_level(utc_day(point.at_ms), boundary) + point.flows
    peak = marks.peak + point.flows
    fired = [
        daily_loss(day_start, point.total, now_ms, limit_bp=policy.daily_loss_bp, pause_ms=policy.daily_pause_ms),
        treasury_drawdown(peak, point.total, limit_bp=policy.treasury_drawdown_bp),
    ]
    return marks, sorted((r for r in fired if r is not None), key=lambda r: SEVERITY.index(r.action)), day_start, peak



def judge_trading(level: int | None, point: ValuePoint, policy: Policy = DEFAULT_POLICY
                  ) -> tuple[int, BreakerResult | None]:
    """Judge the trading drawdown at `point`, which records the trading bucket (`point.trading`).

    `level` is the trading peak in performance units (value − net transfers in − external flows
    in, micro-USD; None: none yet). Value and base come from the same point, written in the same
    commit as the money moved (`runtime/lua/commit.lua`), so a transfer out of trading, or its
    return, moves the peak by exactly its amount and is never a loss or a gain. Returns the level
    after the point and the breaker's result (None if it does not fire).
    """
    perf = point.trading_performance
    if perf is None or point.trading is None:
        raise ValueError("the point does not record the trading bucket")
    level = perf if level is None else max(level, perf)
    return level, trading_drawdown(level + point.trading_base, point.trading, limit_bp=policy.trading_drawdown_bp)
