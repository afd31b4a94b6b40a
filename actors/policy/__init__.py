"""The treasury's policy as pure functions: no I/O, no store, no clock (time is always `now_ms`).

The actors hold the state and do the talking; these modules decide. Each module has one job:

* `buckets` — target weights, exact allocation, the operator's `Policy` and its defaults;
* `breakers` — the seven circuit breakers, their evaluation, and the peak/day-start marks;
* `drift` — when to rebalance and the plan of moves that does it;
* `trading_rules` — order checks, stop prices, Kelly trade sizing, the trailing stop;
* `escrow_rules` — escrow fee, timeout, reserve limit, what a refund returns;
* `referral` — sweeping and reinvesting referral income;
* `chains` — the eight chains, a balance cache, valuation and swap minimums.

The rules and their numbers are written up in docs/policy.md.
"""

from actors.policy.breakers import (
    BreakerResult,
    RiskMarks,
    TotalsSnapshot,
    bet_size,
    casino_session,
    daily_loss,
    escrow_lock,
    evaluate_totals,
    reserve_floor,
    trading_drawdown,
    treasury_drawdown,
    utc_day,
)
from actors.policy.buckets import (
    DEFAULT_POLICY,
    RESERVE_FLOOR_BP,
    TARGETS_BP,
    Policy,
    PolicyConfigError,
    PolicyError,
    allocate,
)
from actors.policy.drift import Move, RebalancePlan, apply_moves, drifted, plan_rebalance
from actors.policy.escrow_rules import check_escrow, escrow_fee, returned_to_reserve
from actors.policy.trading_rules import OrderCheck, TrailingStop, size_trade, stop_prices, validate_order

__all__ = [
    "DEFAULT_POLICY",
    "RESERVE_FLOOR_BP",
    "TARGETS_BP",
    "BreakerResult",
    "Move",
    "OrderCheck",
    "Policy",
    "PolicyConfigError",
    "PolicyError",
    "RebalancePlan",
    "RiskMarks",
    "TotalsSnapshot",
    "TrailingStop",
    "allocate",
    "apply_moves",
    "bet_size",
    "casino_session",
    "check_escrow",
    "daily_loss",
    "drifted",
    "escrow_fee",
    "escrow_lock",
    "evaluate_totals",
    "plan_rebalance",
    "reserve_floor",
    "returned_to_reserve",
    "size_trade",
    "stop_prices",
    "trading_drawdown",
    "treasury_drawdown",
    "utc_day",
    "validate_order",
]
