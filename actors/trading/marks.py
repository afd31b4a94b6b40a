"""Marking open positions to the venue's mark price: what they are worth now, and how fresh that is.

An open position counts in the trading bucket at its **marked value**: its posted margin
(`trading:margin`) plus its unrealized P&L at the venue's mark price, which the ledger holds in
the signed field `trading:unrealized` (sum over positions). The trading actor re-marks on every
trading event (open, close, the exit check every 15 s) in the same commit, and records when
(`keys.marks(agent)`: `at_ms`, `open`). A mark older than `MARK_MAX_AGE_MS` is **unknown**, and
the fence refuses every new spend while positions are open with unknown marks (fail closed).
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal

from actors.trading.book import PositionRecord
from runtime.atomic import MARK_MAX_AGE_MS  # noqa: F401 - one limit for the fence and the actors (60 s)


def unrealized(record: PositionRecord, price: Decimal) -> int:
    """The position's unrealized P&L in micro-USD at `price`: notional × (price / entry − 1), negated
    for a short, floored (the safe side), and never below −margin (an isolated position loses at
    most its margin: beyond that it is liquidated)."""
    entry = Decimal(record.entry_price)
    if entry <= 0 or price <= 0:
        raise ValueError(f"position {record.position_id}: prices must be positive (entry {entry}, mark {price})")
    move = (price - entry) / entry
    if record.side in ("short", "sell"):
        move = -move
    pnl = int((Decimal(record.notional) * move).to_integral_value(rounding=ROUND_FLOOR))
    return max(pnl, -record.margin)


def book_unrealized(records: list[PositionRecord], prices: dict[str, Decimal]) -> int:
    """The sum of `unrealized` over the open positions, each at its coin's mark in `prices`."""
    return sum(unrealized(r, prices[r.coin]) for r in records)


def marks_stale(open_positions: int, at_ms: int, now_ms: int, max_age_ms: int = MARK_MAX_AGE_MS) -> bool:
    """True when positions are open and their mark is unknown: never taken, or older than the limit.
    (`runtime/lua/reserve.lua` applies the same rule inside the fence.)"""
    return open_positions > 0 and (at_ms <= 0 or now_ms - at_ms > max_age_ms)
