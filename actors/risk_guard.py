"""RiskGuard: the only writer of an agent's risk state; trips breakers and broadcasts the result.

It re-evaluates an agent whenever a balance changes (a `BalancesChanged` written in the same
atomic step as the change) and on the hourly tick. The treasury-level breakers judge the agent's
**value series** (`keys.values`: one point per ledger commit, carrying the commit's time, the
total and the cumulative external flows), point by point in time order, each point in the UTC day
it happened: so a loss counts in its own day whatever order, or how late, the re-checks come in.
They measure performance (total − flows), so paying for work or receiving money is neither a
loss nor a gain (`actors/flows.py`). Positions count at their marked value (`trading:unrealized`).

Every state change — a breaker's, a pause's expiry, a command's — goes through
`actors.policy.authority.may_change`, the one table of who may move the state which way. A
change is committed through the same keys the fence reads, with a fence sequence number, so once
PAUSED or HALTED is committed no spend can be reserved; the control-stream broadcast then tells
every spending actor to stop its loops.
"""

from __future__ import annotations

import logging

import pykka

from actors.base import TreasuryActor
from actors.ledger import RiskView, read_ledger, read_risk
from actors.policy.authority import NO_END, effective, may_change, strictness
from actors.policy.breakers import (
    DAY_MS,
    MAX_PAUSE_MS,
    ORIGIN,
    BreakerResult,
    Performance,
    ValuePoint,
    judge_point,
    judge_trading,
    reserve_floor,
    trading_drawdown,
    utc_day,
)
from actors.policy.effective import effective_policy
from messages.catalogue import role_of
from messages.envelope import Envelope, IdFactory, wrap
from messages.schema import (
    BalancesChanged,
    BreakerFired,
    BucketHalted,
    BucketResumed,
    CommandRefused,
    ResumeBucket,
    RiskControl,
    RiskStateChanged,
    SetRisk,
)
from runtime.atomic import AtomicSteps
from runtime.bus import Delivery, HandlerRejected
from runtime.clock import Clock

log = logging.getLogger(__name__)

STATE_ACTIONS = {"halt": "HALTED", "pause": "PAUSED"}
"""Breaker actions that change the treasury-wide risk state (the others act on one bucket)."""

REBALANCE_REQUEST_EVERY_MS = 3600 * 1000
"""An unanswered emergency rebalance is asked for again at most this often."""


def _text(raw: dict, name: str, default: str = "") -> str:
    value = raw.get(name.encode(), raw.get(name))
    return default if value is None else (value.decode() if isinstance(value, bytes) else str(value))


class RiskGuard(TreasuryActor):
    """The risk role: the only writer of each agent's risk state (`ACTIVE`/`PAUSED`/`HALTED`, a
    pause's end in epoch ms, per-bucket halts) and of its peak and day-start totals (micro-USD).

    Handles `BalancesChanged` (judge the new points of the value series with the breakers of
    `actors.policy.breakers`: drawdowns and the daily loss in basis points of the flow-adjusted peak
    or day-start, micro-USD), `SetRisk` (a state set by a signed command, allowed by the authority
    table of `actors.policy.authority`; a resume re-arms the breakers) and `ResumeBucket` (lift one
    bucket's halt). A state
    change is committed with the next fence sequence number, so the fence refuses spends from that
    step on, then broadcast on the control stream (`RiskControl`). Journal: `BreakerFired`,
    `RiskStateChanged`, `BucketHalted`, `BucketResumed`, `CommandRefused` (a resume that does not
    apply). Breakers that need money moved ask the rebalancer (`Rebalance`).
    """

    role = "risk"
    handlers = {BalancesChanged: "evaluate", SetRisk: "set_by_command", ResumeBucket: "resume_bucket"}

    # ------------------------------------------------------------------ the value series

    def _points_after(self, agent: str, seq: int, since_ms: int) -> list[ValuePoint]:
        """Points with a sequence number above `seq`, in time order (a lagging clock is tolerated a day)."""
        members = self.client.zrangebyscore(self.keys.values(agent), max(0, since_ms - DAY_MS), "+inf")
        points = [p for p in map(ValuePoint.parse, members) if p.seq > seq]
        return sorted(points)

    def _latest(self, agent: str) -> ValuePoint:
        last = self.client.zrevrange(self.keys.values(agent), 0, 0)
        return ValuePoint.parse(last[0]) if last else ORIGIN

    def _boundary(self, agent: str, day: int) -> ValuePoint:
        """The last point before midnight starting `day` (UTC): the value at the day boundary."""
        found = self.client.zrevrangebyscore(self.keys.values(agent), f"({day * DAY_MS}", "-inf", start=0, num=1)
        return ValuePoint.parse(found[0]) if found else ORIGIN

    def _performance(self, raw: dict, latest: ValuePoint) -> Performance:
        peak = _text(raw, "peak_perf")
        return Performance(int(peak) if peak else latest.performance if latest is not ORIGIN else 0,
                           int(_text(raw, "rearm_day", "-1")), int(_text(raw, "rearm_level", "0")))

    def _trading_now(self, ledger, agent: str) -> tuple[int, int]:
        """(trading value, what its performance is measured against) read now: only for a series
        whose points do not record the trading bucket yet (written before they did)."""
        flows = self.client.hmget(self.keys.flows(agent), "trading", "external:trading")
        return ledger.bucket("trading"), int(flows[0] or 0) + int(flows[1] or 0)

    def _trading(self, raw: dict, latest: ValuePoint, ledger, agent: str,
                 policy) -> tuple[int, int, int, BreakerResult | None]:
        """(trading value, its peak level in performance units, what performance is measured
        against, the trading drawdown if it fired), all micro-USD.

        Value and base come from the latest point of the value series, both written in the commit
        that last moved money (so a transfer and its flow are seen together or not at all, however
        the evaluation interleaves with the bucket actors' commits)."""
        stored = _text(raw, "trading_peak_perf")
        if latest.trading is not None:
            level, fired = judge_trading(int(stored) if stored else None, latest, policy)
            return latest.trading, level, latest.trading_base, fired
        value, base = self._trading_now(ledger, agent)  # a series written before points carried trading
        level = max(int(stored), value - base) if stored else value - base
        return value, level, base, trading_drawdown(level + base, value, limit_bp=policy.trading_drawdown_bp)

    # ------------------------------------------------------------------ evaluation

    def evaluate(self, delivery: Delivery, poke: BalancesChanged) -> None:
        env = delivery.envelope
        agent, now = env.agent, self.clock.now_ms()
        risk = read_risk(self.client, self.keys, agent)
        if not risk.known:
            raise HandlerRejected(f"agent {agent} has no risk state")
        raw = self.client.hgetall(self.keys.risk(agent))
        policy = effective_policy(self.client, self.keys, agent)
        ledger = read_ledger(self.client, self.keys, agent)
        latest = self._latest(agent)
        marks = self._performance(raw, latest)
        judged = int(_text(raw, "judged_seq", "0"))
        fired = []
        boundaries: dict[int, ValuePoint] = {}
        for point in self._points_after(agent, judged, int(_text(raw, "judged_ms", "0"))):
            day = utc_day(point.at_ms)
            if day not in boundaries:
                boundaries[day] = self._boundary(agent, day)
            marks, results, _, _ = judge_point(point, marks, boundaries[day], now, policy)
            fired.extend((r, point) for r in results)
            judged = max(judged, point.seq)
        today = utc_day(now)
        boundary = self._boundary(agent, today)
        day_level = marks.day_start_level(today, boundary)
        day_start = day_level + latest.flows
        peak = marks.peak + latest.flows
        total = latest.total if latest is not ORIGIN else ledger.total
        trading, trading_level, trading_base, trading_fired = self._trading(raw, latest, ledger, agent,
                                                                            policy)

        commit = self.steps.new_commit(agent)
        rk = self.keys.risk(agent)
        for fld, value in (("peak", peak), ("day_start", day_start), ("day", today), ("total", total),
                           ("peak_perf", marks.peak), ("judged_seq", judged), ("judged_ms", latest.at_ms),
                           ("trading_peak_perf", trading_level), ("trading_peak", trading_level + trading_base),
                           # for `treasury status`: P&L as the breakers see it, and their limits
                           ("pnl_start", latest.performance), ("pnl_today", latest.performance - day_level),
                           ("unrealized", latest.unrealized), ("trading_value", trading),
                           ("day_unrealized", boundary.unrealized if marks.rearm_day != today
                            else int(_text(raw, "rearm_unrealized", "0"))),
                           ("limit_daily_loss_bp", policy.daily_loss_bp),
                           ("limit_drawdown_bp", policy.treasury_drawdown_bp),
                           ("limit_trading_drawdown_bp", policy.trading_drawdown_bp)):
            commit.hset(rk, fld, value)

        bucket_results = [r for r in (trading_fired,
                                      reserve_floor(ledger.bucket("reserve"), ledger.total,
                                                    floor_bp=policy.reserve_floor_bp)) if r is not None]
        # Bucket-level breakers act in every state: closing positions is right even while paused.
        self._bucket_actions(commit, env, risk, bucket_results, now)

        current = effective(risk.state, risk.until_ms, now)
        best = None  # the strictest state any fired breaker asks for
        for result, point in fired:
            target = (STATE_ACTIONS[result.action], result.until_ms or NO_END)
            if best is None or strictness(*target) > strictness(*best[0]):
                best = (target, result, point)
        if best is not None and strictness(*best[0]) > strictness(*current) \
                and may_change(risk.state, risk.until_ms, *best[0], "breaker", now) is None:
            (state, until), result, point = best
            self._change(commit, env, risk, state, result.breaker, result.reason, until, point.total,
                         peak, day_start)
        elif risk.state == "PAUSED" and current[0] == "ACTIVE":
            self._change(commit, env, risk, "ACTIVE", "pause_expired", "pause expired; spending resumes",
                         NO_END, total, peak, day_start)
        commit.ack(delivery.stream, delivery.group, delivery.entry_id)
        self._commit(commit, env.id, now)
        self._trim_values(agent, raw, min(latest.at_ms if latest is not ORIGIN else now, now))

    def _trim_values(self, agent: str, raw: dict, judged_ms: int) -> None:
        """Drop the value points no later evaluation can read: the next one reads points from
        `judged_ms` − 1 day on and the last point before each of their midnights, so everything
        before the last point preceding midnight of day(`judged_ms` − 1 day) goes. Once per UTC day
        per agent (two round trips), so an agent's series holds about two days of points, however
        long it runs (the journal keeps the history)."""
        keep_day = utc_day(max(0, judged_ms - DAY_MS))
        if int(_text(raw, "values_trimmed_day", "-1")) >= keep_day:
            return
        series = self.keys.values(agent)
        keeper = self.client.zrevrangebyscore(series, f"({keep_day * DAY_MS}", "-inf", start=0, num=1, withscores=True)
        if keeper:
            self.client.zremrangebyscore(series, "-inf", f"({int(keeper[0][1])}")
        self.client.hset(self.keys.risk(agent), "values_trimmed_day", keep_day)

    def _bucket_actions(self, commit, env: Envelope, risk: RiskView, results, now: int) -> None:
        """Breakers that act on one bucket or ask for a rebalance, each acted on once.

        Trading drawdown halts the trading bucket (the fence then refuses its spends) and asks the
        trading actor to close every position, durably, in this same commit. A reserve under its
        floor asks the Rebalancer for an emergency rebalance, at most once an hour.
        """
        agent, k = env.agent, self.keys
        rk = k.risk(agent)
        for result in results:
            if result.action == "halt_trading" and "trading" not in risk.halted_buckets:
                from messages.trading_msgs import CloseAllPositions

                commit.hset(rk, "halt:trading", result.reason)
                commit.hset(rk, f"fired:{result.breaker}", f"{now}|halt_trading")
                commit.emit(k.events(agent), wrap(BucketHalted(bucket="trading", breaker=result.breaker,
                                                               reason=result.reason),
                                                  agent=agent, now_ms=now, new_id=self.new_id, cause=env))
                commit.emit(k.agent_commands(agent, role_of(CloseAllPositions)),
                            wrap(CloseAllPositions(reason=result.reason, reply_to=None), agent=agent, now_ms=now,
                                 new_id=self.new_id, cause=env))
                commit.emit(k.control(k.shard(agent)), wrap(RiskControl(state=risk.state or "ACTIVE",
                                                                        reason=result.reason),
                                                            agent=agent, now_ms=now, new_id=self.new_id, cause=env),
                            maxlen=10_000)
            elif result.action == "emergency_rebalance":
                last = int(self.client.hget(rk, "rebalance_requested_ms") or 0)
                if now - last < REBALANCE_REQUEST_EVERY_MS:
                    continue
                from messages.treasury_msgs import Rebalance

                commit.hset(rk, "rebalance_requested_ms", now)
                commit.hset(rk, f"fired:{result.breaker}", f"{now}|{result.action}")
                commit.emit(k.events(agent), wrap(BreakerFired(breaker=result.breaker, action=result.action,
                                                               reason=result.reason),
                                                  agent=agent, now_ms=now, new_id=self.new_id, cause=env))
                commit.emit(k.agent_commands(agent, role_of(Rebalance)),
                            wrap(Rebalance(trigger=result.breaker, reason=result.reason), agent=agent, now_ms=now,
                                 new_id=self.new_id, cause=env))

    def resume_bucket(self, delivery: Delivery, cmd: ResumeBucket) -> None:
        env = delivery.envelope
        agent, now, k = env.agent, self.clock.now_ms(), self.keys
        risk = read_risk(self.client, k, agent)
        commit = self.steps.new_commit(agent)
        if cmd.bucket in risk.halted_buckets:
            commit.hdel(k.risk(agent), f"halt:{cmd.bucket}")
            if cmd.bucket == "trading":  # measure the next drawdown from here, not from the old peak
                latest = self._latest(agent)
                if latest.trading is not None:
                    value, base = latest.trading, latest.trading_base
                else:
                    value, base = self._trading_now(read_ledger(self.client, k, agent), agent)
                commit.hset(k.risk(agent), "trading_peak_perf", value - base).hset(k.risk(agent), "trading_peak", value)
            commit.emit(k.events(agent), wrap(BucketResumed(bucket=cmd.bucket, reason=cmd.reason), agent=agent,
                                              now_ms=now, new_id=self.new_id, cause=env))
        else:
            commit.emit(k.events(agent), wrap(CommandRefused(command="ResumeBucket",
                                                              reason=f"the {cmd.bucket} bucket is not halted"),
                                              agent=agent, now_ms=now, new_id=self.new_id, cause=env))
        commit.ack(delivery.stream, delivery.group, delivery.entry_id)
        self._commit(commit, env.id, now)

    def set_by_command(self, delivery: Delivery, cmd: SetRisk) -> None:
        """Pause, halt or resume on a signed command, if its authority allows the change.

        Refused (a `CommandRefused` in the journal, nothing else changed): an end on anything but a
        pause, an end not in the future or more than 30 days ahead, and a change that relaxes the
        state without the authority `may_change` requires. A resume to ACTIVE re-arms the drawdown
        and daily-loss breakers at the current level; the event records the old peak and day-start.
        """
        env = delivery.envelope
        agent, now, k = env.agent, self.clock.now_ms(), self.keys
        risk = read_risk(self.client, k, agent)
        if not risk.known:
            raise HandlerRejected(f"agent {agent} has no risk state")
        until = cmd.until_ms or NO_END
        problem = None
        if until != NO_END and cmd.state != "PAUSED":
            problem = f"an end time applies only to a pause, not to {cmd.state}"
        elif until != NO_END and until <= now:
            problem = f"the pause would end {now - until} ms in the past; a pause must end in the future"
        elif until != NO_END and until - now > MAX_PAUSE_MS:
            problem = (f"the pause would last {(until - now) / 3_600_000:.1f} h, more than the "
                       f"{MAX_PAUSE_MS // 3_600_000} h allowed; pause until resumed instead")
        elif cmd.state == "ACTIVE" and (risk.state or "ACTIVE") == "ACTIVE":
            problem = f"{agent} is already ACTIVE: nothing to resume"
        else:
            problem = may_change(risk.state, risk.until_ms, cmd.state, until, delivery.authority, now)
        commit = self.steps.new_commit(agent)
        if problem is not None:
            commit.emit(k.events(agent), wrap(CommandRefused(command="SetRisk", reason=problem), agent=agent,
                                              now_ms=now, new_id=self.new_id, cause=env))
        else:
            raw = self.client.hgetall(k.risk(agent))
            latest = self._latest(agent)
            total = latest.total if latest is not ORIGIN else read_ledger(self.client, k, agent).total
            old_peak, old_day_start = risk.peak, risk.day_start
            if cmd.state == "ACTIVE":  # a resume: both breakers measure from here on
                rearmed = self._performance(raw, latest).rearmed(latest.performance, now)
                rk = k.risk(agent)
                commit.hset(rk, "peak_perf", rearmed.peak).hset(rk, "rearm_day", rearmed.rearm_day)
                commit.hset(rk, "rearm_level", rearmed.rearm_level).hset(rk, "judged_seq", latest.seq)
                commit.hset(rk, "rearm_unrealized", latest.unrealized).hset(rk, "pnl_today", 0)
                commit.hset(rk, "judged_ms", latest.at_ms).hset(rk, "peak", total).hset(rk, "day_start", total)
                self._change(commit, env, risk, "ACTIVE", signed_by(env), cmd.reason, NO_END, total, total, total,
                             old_peak=old_peak, old_day_start=old_day_start)
            else:
                self._change(commit, env, risk, cmd.state, signed_by(env), cmd.reason, until, total, old_peak,
                             old_day_start)
        commit.ack(delivery.stream, delivery.group, delivery.entry_id)
        self._commit(commit, env.id, now)

    def _change(self, commit, env: Envelope, risk: RiskView, state: str, breaker: str, reason: str, until_ms: int,
                total: int, peak: int, day_start: int, *, old_peak: int | None = None,
                old_day_start: int | None = None) -> None:
        agent, now, k = env.agent, self.clock.now_ms(), self.keys
        rk = k.risk(agent)
        commit.next_seq(rk)
        commit.hset(rk, "state", state).hset(rk, "reason", reason).hset(rk, "breaker", breaker)
        commit.hset(rk, "until_ms", until_ms)
        if not is_manual(breaker):
            commit.hset(rk, f"fired:{breaker}", f"{now}|{state}")
        changed = RiskStateChanged(state=state, previous=risk.state or "ACTIVE", breaker=breaker, reason=reason,
                                   total=total, peak=peak, day_start=day_start, until_ms=until_ms or None,
                                   old_peak=old_peak, old_day_start=old_day_start)
        commit.emit(k.events(agent), wrap(changed, agent=agent, now_ms=now, new_id=self.new_id, cause=env))
        control = RiskControl(state=state, reason=reason, until_ms=until_ms or None)
        commit.emit(k.control(k.shard(agent)), wrap(control, agent=agent, now_ms=now, new_id=self.new_id, cause=env),
                    maxlen=10_000)
        log.info("risk %s: %s -> %s (%s)", agent, risk.state, state, reason)


def is_manual(breaker: str) -> bool:
    """A risk change made by a command or by a pause running out, not by a breaker."""
    return breaker in ("operator", "agent", "pause_expired") or breaker.startswith("key ")


def signed_by(env: Envelope) -> str:
    """Who set a risk state by hand, for `RiskStateChanged.breaker`: `key <key id>` of the command's
    signature (an operator's or the agent's own key), `operator` for an unsigned one (no gate)."""
    from runtime.signing import parse_signature

    try:
        return f"key {parse_signature(env.signature).key_id}" if env.signature else "operator"
    except Exception:  # noqa: BLE001 - the gate verified it already; a name is all that is wanted here
        return "operator"


def build(steps: AtomicSteps, clock: Clock, new_id: IdFactory, venues: dict[str, str]) -> pykka.ActorRef:
    return RiskGuard.start(steps, clock, new_id)
