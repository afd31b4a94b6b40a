"""Drift rebalancing: when the buckets have wandered from their weights, and how to put them back.

A bucket's drift is |actual share − target share| of the treasury total. A rebalance is planned
when a trigger says so (drift beyond 5 %, the schedule, a big win, a breaker, a large escrow);
the plan itself always aims at the targets.

How the plan is built, and why:

* Every bucket's adjustment is `target − balance` (targets from `allocate`, so they sum to the
  total exactly). An adjustment under the minimum move ($10) is not made; that money stays in
  the reserve's account, which absorbs the difference so the plan still conserves the total.
* When a single bucket gives (or a single bucket receives), it is paired directly with each
  bucket on the other side, the reserve first. When two give and two receive, money goes through
  the reserve: every surplus in first, then the reserve pays the deficits. Either way the reserve
  is topped up (past its floor, to its target) before any other bucket receives a cent; every
  move is one bucket's whole adjustment, so none is under $10 (a reserve adjustment under $10 is
  skipped); and the reserve, which only grows before it shrinks, cannot go negative. Moves are
  ledger entries; physical transfers are netted per silo afterwards, so a hop through the
  reserve costs no extra on-chain transfer. (In a treasury under about $75 the $10 minimum can
  leave a target unreachable; there a move its source cannot fund is trimmed or dropped.)
* If money must leave the trading bucket while it holds open positions, the plan says so with
  `close_positions_first`: margin posted on the venue cannot be moved, and shrinking the free
  collateral of a cross-margined account pulls the liquidation prices closer, so the positions
  are closed before the plan is applied.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction

from actors.policy.breakers import BreakerResult
from actors.policy.buckets import (
    BP_SCALE,
    DEFAULT_POLICY,
    Policy,
    PolicyError,
    allocate,
    exceeds_share,
    require_int,
)
from messages.base import BUCKETS

REBALANCE_AFTER: frozenset[str] = frozenset({"emergency_rebalance", "stop_session", "halt_trading"})
"""Breaker actions after which the buckets are rebalanced: money was freed or the reserve is short."""


@dataclass(frozen=True)
class Move:
    """Move `amount` micro-USD from one bucket's ledger account to another's."""

    source: str
    dest: str
    amount: int
    reason: str


@dataclass(frozen=True)
class RebalancePlan:
    """The moves that bring the buckets back to their targets, in the order to apply them."""

    moves: tuple[Move, ...]
    close_positions_first: bool
    """Money leaves the trading bucket while positions are open: close them before any move."""
    reason: str
    before: dict[str, int]
    after: dict[str, int]
    """The balances once the moves are applied."""

    @property
    def empty(self) -> bool:
        return not self.moves


# ---------------------------------------------------------------- drift


def _checked_balances(balances: Mapping[str, int]) -> dict[str, int]:
    if set(balances) != set(BUCKETS):
        raise PolicyError(f"balances must name exactly the buckets {', '.join(BUCKETS)}, got {sorted(balances)}")
    return {name: require_int(balances[name], f"balance of {name}", minimum=0) for name in BUCKETS}


def drift_bp(balance: int, total: int, target_bp: int) -> Fraction:
    """|balance / total − target| in basis points, exactly (0 for an empty treasury)."""
    if total <= 0:
        return Fraction(0)
    return abs(Fraction(balance * BP_SCALE, total) - target_bp)


def drifts_bp(balances: Mapping[str, int], policy: Policy = DEFAULT_POLICY) -> dict[str, Fraction]:
    """Every bucket's drift from its target, in exact basis points."""
    checked = _checked_balances(balances)
    total = sum(checked.values())
    return {name: drift_bp(checked[name], total, policy.targets_bp[name]) for name in BUCKETS}


def drifted(balances: Mapping[str, int], policy: Policy = DEFAULT_POLICY) -> bool:
    """Trigger: some bucket's drift is beyond the limit (5 %); exactly 5 % is not."""
    checked = _checked_balances(balances)
    total = sum(checked.values())
    return any(
        exceeds_share(abs(checked[name] * BP_SCALE - total * bp), total * BP_SCALE, policy.drift_bp)
        for name, bp in policy.targets_bp.items()
    )


# ---------------------------------------------------------------- the other triggers


def schedule_due(last_run_ms: int | None, now_ms: int, policy: Policy = DEFAULT_POLICY) -> bool:
    """Trigger: the scheduled rebalance is due (never ran, or last run + interval ≤ now)."""
    return last_run_ms is None or last_run_ms + policy.rebalance_interval_ms <= now_ms


def big_win(win: int, bucket_before: int, policy: Policy = DEFAULT_POLICY) -> bool:
    """Trigger: one win of more than 20 % of the bucket's balance before it; its excess belongs elsewhere."""
    require_int(win, "win")
    require_int(bucket_before, "bucket_before")
    return win > 0 and exceeds_share(win, bucket_before, policy.big_win_bp)


def after_breaker(result: BreakerResult | None) -> bool:
    """Trigger: a breaker fired that freed money or found the reserve short."""
    return result is not None and result.action in REBALANCE_AFTER


def before_escrow(amount: int, reserve: int, policy: Policy = DEFAULT_POLICY) -> bool:
    """Trigger: an escrow of more than 10 % of the reserve is about to lock money.

    Topping the reserve up first means the 30 % escrow limit is measured against a full reserve,
    and the lock does not leave the reserve short of its floor right after.
    """
    require_int(amount, "amount", minimum=0)
    require_int(reserve, "reserve")
    return exceeds_share(amount, reserve, policy.large_escrow_bp)


# ---------------------------------------------------------------- the plan


def apply_moves(balances: Mapping[str, int], moves: Iterable[Move]) -> dict[str, int]:
    """The balances after applying `moves` in order; refuses a move that would overdraw its source."""
    result = dict(balances)
    for move in moves:
        require_int(move.amount, "move amount", minimum=1)
        if move.source == move.dest or move.source not in result or move.dest not in result:
            raise PolicyError(f"move {move.source} → {move.dest}: not two different known buckets")
        if result[move.source] < move.amount:
            raise PolicyError(f"move of {move.amount} from {move.source} would overdraw its {result[move.source]}")
        result[move.source] -= move.amount
        result[move.dest] += move.amount
    return result


def _adjustments(balances: dict[str, int], policy: Policy) -> dict[str, int]:
    """target − balance per bucket, with adjustments under the minimum move left in the reserve."""
    targets = allocate(sum(balances.values()), policy.targets_bp)
    adjust = {name: targets[name] - balances[name] for name in BUCKETS}
    for name in BUCKETS:
        if name != "reserve" and abs(adjust[name]) < policy.min_move:
            adjust["reserve"] += adjust[name]
            adjust[name] = 0
    return adjust


def _fundable(balances: dict[str, int], moves: list[Move], policy: Policy) -> list[Move]:
    """Trim any move its source cannot fund at that point, dropping what falls under the minimum.

    Only a treasury too small for the $10 minimum (under about $75) ever needs this: there the
    minimum can leave the reserve's target unreachable, and no bucket may go negative.
    """
    running = dict(balances)
    kept: list[Move] = []
    for move in moves:
        amount = min(move.amount, running[move.source])
        if amount < max(policy.min_move, 1):
            continue
        running[move.source] -= amount
        running[move.dest] += amount
        kept.append(move if amount == move.amount else Move(move.source, move.dest, amount, move.reason))
    return kept


def plan_rebalance(balances: Mapping[str, int], policy: Policy = DEFAULT_POLICY, *, reason: str,
                   open_trading_margin: int = 0) -> RebalancePlan:
    """Plan the moves that bring every bucket to its target (see the module docstring for how)."""
    before = _checked_balances(balances)
    require_int(open_trading_margin, "open_trading_margin", minimum=0)
    adjust = _adjustments(before, policy)
    givers = [name for name in BUCKETS if adjust[name] < 0]
    takers = [name for name in BUCKETS if adjust[name] > 0]

    if len(givers) == 1 or len(takers) == 1:
        # One bucket on one side: pair it directly with each bucket on the other side. Only a
        # reserve adjustment can be under the minimum here; it is simply not made.
        if len(givers) == 1:
            pairs = [(givers[0], taker, adjust[taker]) for taker in takers]
        else:
            pairs = [(giver, takers[0], -adjust[giver]) for giver in givers]
        moves = [Move(source, dest, amount, reason) for source, dest, amount in pairs if amount >= policy.min_move]
    else:
        # Two on each side: through the reserve, every surplus in first, then every deficit out.
        moves = [Move(name, "reserve", -adjust[name], reason) for name in givers if name != "reserve"]
        moves += [Move("reserve", name, adjust[name], reason) for name in takers if name != "reserve"]

    moves = _fundable(before, moves, policy)
    trading_out = sum(m.amount for m in moves if m.source == "trading")
    return RebalancePlan(tuple(moves), trading_out > 0 and open_trading_margin > 0, reason,
                         before, apply_moves(before, moves))
