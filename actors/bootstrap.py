"""Open an agent's treasury: allocate capital to the buckets and set the risk state ACTIVE.

It is one atomic, idempotent step (keyed on the agent), so running it twice, or from two
processes at once, allocates once.
"""

from __future__ import annotations

from actors.policy.buckets import TARGETS_BP, allocate
from actors.policy.effective import effective_policy
from messages.envelope import IdFactory, wrap
from messages.schema import BUCKETS, CapitalAllocated
from runtime.atomic import AtomicSteps, CommitResult
from runtime.clock import DAY_MS
from runtime.keys import Keys

TARGET_BP = TARGETS_BP  # the targets as the status views import them


def open_treasury(steps: AtomicSteps, agent: str, capital: int, *, now_ms: int, new_id: IdFactory,
                  buckets: dict[str, int] | None = None) -> CommitResult:
    keys: Keys = steps.keys
    parts = buckets if buckets is not None else allocate(capital)
    commit = steps.new_commit(agent)
    for bucket in BUCKETS:
        commit.hset(keys.ledger(agent), bucket, parts.get(bucket, 0))
        commit.hset(keys.ledger(agent), f"{bucket}:reserved", 0)
    total = sum(parts.values())
    # The capital is the first external flow (source "capital"): performance starts at 0.
    commit.hset(keys.flows(agent), "external", total)
    for bucket in BUCKETS:
        commit.hset(keys.flows(agent), f"external:{bucket}", parts.get(bucket, 0))
    risk = keys.risk(agent)
    policy = effective_policy(steps.client, keys, agent)
    for fld, value in (("state", "ACTIVE"), ("reason", "opened"), ("breaker", ""), ("until_ms", 0),
                       ("peak", total), ("day_start", total), ("day", now_ms // DAY_MS),
                       ("trading_peak", parts.get("trading", 0)), ("peak_perf", 0), ("trading_peak_perf", 0),
                       ("total", total), ("trading_value", parts.get("trading", 0)),
                       # the limits RiskGuard will judge by, so status shows them before its first judgement
                       ("limit_daily_loss_bp", policy.daily_loss_bp),
                       ("limit_drawdown_bp", policy.treasury_drawdown_bp),
                       ("limit_trading_drawdown_bp", policy.trading_drawdown_bp)):
        commit.hset(risk, fld, value)
    event = wrap(CapitalAllocated(buckets=parts, total=total), agent=agent, now_ms=now_ms, new_id=new_id)
    commit.emit(keys.events(agent), event)
    return steps.commit(commit, f"open:{agent}", now_ms)
