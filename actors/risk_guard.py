"""RiskGuard: the only writer of an agent's risk state; trips breakers and broadcasts the result.

It re-evaluates an agent whenever a balance changes (a `BalancesChanged` written in the same
atomic step as the change), tracking the peak total and the total at the start of the UTC day.
A state change is committed through the same keys the fence reads, with a fence sequence number,
so once PAUSED or HALTED is committed no spend can be reserved; the control-stream broadcast then
tells every spending actor to stop its loops.
"""

from __future__ import annotations

import logging

import pykka

from actors.base import TreasuryActor
from actors.ledger import RiskView, read_ledger, read_risk
from actors.policy.breakers import RiskMarks, TotalsSnapshot, evaluate_totals
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

REBALANCE_REQUEST_EVERY_MS = 3600 * 1000
"""An unanswered emergency rebalance is asked for again at most this often."""
"""Breaker actions that change the treasury-wide risk state (the others act on one bucket)."""


class RiskGuard(TreasuryActor):
    """The risk role: the only writer of each agent's risk state (`ACTIVE`/`PAUSED`/`HALTED`, a
    pause's end in epoch ms, per-bucket halts) and of its peak and day-start totals (micro-USD).

    Handles `BalancesChanged` (re-evaluate the breakers of `actors.policy.breakers` on the ledger:
    drawdowns and the daily loss in basis points of the peak or day-start total), `SetRisk` (a state set by
    hand; a resume to ACTIVE needs an operator key) and `ResumeBucket` (lift one bucket's halt). A state
    change is committed with the next fence sequence number, so the fence refuses spends from that
    step on, then broadcast on the control stream (`RiskControl`). Journal: `BreakerFired`,
    `RiskStateChanged`, `BucketHalted`, `BucketResumed`, `CommandRefused` (a resume that does not
    apply). Breakers that need money moved ask the rebalancer (`Rebalance`).
    """

    role = "risk"
    handlers = {BalancesChanged: "evaluate", SetRisk: "set_by_operator", ResumeBucket: "resume_bucket"}

    def evaluate(self, delivery: Delivery, poke: BalancesChanged) -> None:
        env = delivery.envelope
        agent, now = env.agent, self.clock.now_ms()
        risk = read_risk(self.client, self.keys, agent)
        if not risk.known:
            raise HandlerRejected(f"agent {agent} has no risk state")
        ledger = read_ledger(self.client, self.keys, agent)
        total = ledger.total
        marks = RiskMarks(risk.peak, risk.day_start, risk.day).observe(total, now)
        # The trading bucket's performance: its value less what transfers moved in (a rebalance out
        # of trading is not a trading loss).
        net_in = int(self.client.hget(self.keys.flows(agent), "trading") or 0)
        trading = ledger.bucket("trading") - net_in
        trading_peak = max(int(self.client.hget(self.keys.risk(agent), "trading_peak") or 0), trading)
        peak, day_start = marks.peak, marks.day_start
        commit = self.steps.new_commit(agent)
        rk = self.keys.risk(agent)
        commit.hset(rk, "peak", peak).hset(rk, "day_start", day_start).hset(rk, "day", marks.day_start_day)
        commit.hset(rk, "total", total).hset(rk, "trading_peak", trading_peak)

        state = risk.state
        expired = state == "PAUSED" and 0 < risk.until_ms <= now
        snapshot = TotalsSnapshot(total=total, peak=peak, day_start=day_start, reserve=ledger.bucket("reserve"),
                                  trading=trading, trading_peak=trading_peak)
        results = evaluate_totals(snapshot, now, effective_policy(self.client, self.keys, agent))
        # Bucket-level breakers act in every state: closing positions is right even while paused.
        self._bucket_actions(commit, env, risk, [r for r in results if r.action not in STATE_ACTIONS], now)
        if state == "ACTIVE" or expired:
            fired = [r for r in results if r.action in STATE_ACTIONS]
            if fired:
                top = fired[0]
                self._change(commit, env, risk, STATE_ACTIONS[top.action], top.breaker, top.reason, top.until_ms or 0,
                             total, peak, day_start)
            elif expired:
                self._change(commit, env, risk, "ACTIVE", "pause_expired", "pause expired; spending resumes",
                             0, total, peak, day_start)
        commit.ack(delivery.stream, delivery.group, delivery.entry_id)
        self._commit(commit, env.id, now)

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
                net_in = int(self.client.hget(k.flows(agent), "trading") or 0)
                commit.hset(
                    k.risk(agent), "trading_peak", read_ledger(self.client, k, agent).bucket("trading") - net_in
                )
            commit.emit(k.events(agent), wrap(BucketResumed(bucket=cmd.bucket, reason=cmd.reason), agent=agent,
                                              now_ms=now, new_id=self.new_id, cause=env))
        else:
            commit.emit(k.events(agent), wrap(CommandRefused(command="ResumeBucket",
                                                              reason=f"the {cmd.bucket} bucket is not halted"),
                                              agent=agent, now_ms=now, new_id=self.new_id, cause=env))
        commit.ack(delivery.stream, delivery.group, delivery.entry_id)
        self._commit(commit, env.id, now)

    def set_by_operator(self, delivery: Delivery, cmd: SetRisk) -> None:
        env = delivery.envelope
        agent, now = env.agent, self.clock.now_ms()
        risk = read_risk(self.client, self.keys, agent)
        if not risk.known:
            raise HandlerRejected(f"agent {agent} has no risk state")
        commit = self.steps.new_commit(agent)
        if cmd.state == "ACTIVE" and (risk.state or "ACTIVE") == "ACTIVE":  # a resume with nothing to resume
            commit.emit(self.keys.events(agent), wrap(CommandRefused(command="SetRisk", reason=f"{agent} is already "
                                                                     f"ACTIVE: nothing to resume"),
                                                      agent=agent, now_ms=now, new_id=self.new_id, cause=env))
            commit.ack(delivery.stream, delivery.group, delivery.entry_id)
            self._commit(commit, env.id, now)
            return
        self._change(commit, env, risk, cmd.state, signed_by(env), cmd.reason, cmd.until_ms or 0,
                     int(self.client.hget(self.keys.risk(agent), "total") or risk.peak), risk.peak, risk.day_start)
        commit.ack(delivery.stream, delivery.group, delivery.entry_id)
        self._commit(commit, env.id, now)

    def _change(self, commit, env: Envelope, risk: RiskView, state: str, breaker: str, reason: str, until_ms: int,
                total: int, peak: int, day_start: int) -> None:
        agent, now, k = env.agent, self.clock.now_ms(), self.keys
        rk = k.risk(agent)
        commit.next_seq(rk)
        commit.hset(rk, "state", state).hset(rk, "reason", reason).hset(rk, "breaker", breaker)
        commit.hset(rk, "until_ms", until_ms)
        changed = RiskStateChanged(state=state, previous=risk.state or "ACTIVE", breaker=breaker, reason=reason,
                                   total=total, peak=peak, day_start=day_start, until_ms=until_ms or None)
        commit.emit(k.events(agent), wrap(changed, agent=agent, now_ms=now, new_id=self.new_id, cause=env))
        control = RiskControl(state=state, reason=reason, until_ms=until_ms or None)
        commit.emit(k.control(k.shard(agent)), wrap(control, agent=agent, now_ms=now, new_id=self.new_id, cause=env),
                    maxlen=10_000)
        log.info("risk %s: %s -> %s (%s)", agent, risk.state, state, reason)


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
