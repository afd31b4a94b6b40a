"""`treasury status --json` and `watch --json`: the snapshot with every figure's unit in its name.

The convention of every JSON output of the command line (README, "Units in JSON"): money is an
integer of micro-USD in a field ending `_micros`; times are epoch milliseconds or durations in
milliseconds in fields ending `_ms`; shares end `_bp` (basis points). `collect_status` keeps its
short internal names (the rich view reads them); this module renames them on the way out:

- money fields (`total`, `available`, `reserved`, `amount`, `margin`, `peak`, ...) holding an
  integer → `<name>_micros`;
- a worker's `shards` `[first, last, count]` → `{"first": .., "last": .., "count": ..}`, and the
  snapshot's shard count `shards` → `shard_count`;
- the risk hash's `day` (days since 1970-01-01 UTC) → `day_epoch_days`, with `day_utc`
  (`"2026-12-04"`) beside it.

Fields whose names already carry a unit are left as they are.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

MONEY_KEYS = frozenset({
    "total", "available", "reserved", "amount", "margin", "peak", "day_start", "trading_peak", "collateral",
    "pnl", "unrealized_pnl", "realized_pnl", "fee", "fee_open", "notional", "value", "stake", "bucket_after",
    "budget", "capital", "returned", "held", "venue_fee", "net_to_counterparty", "credited",
    # the other scalar micro-USD fields of the message schema (`Micros` / `SignedMicros`)
    "bucket_before", "casino_balance", "expected_out", "fees", "fixed_stake", "hold", "income", "locked_after",
    "min_out", "moved", "paid", "payout", "quote_out", "remaining", "to_reserve", "to_trading",
})
"""Field names that hold integer micro-USD in the snapshot and the journal's event bodies."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _labelled(key: str, value: Any, parent: str) -> list[tuple[str, Any]]:
    if key in MONEY_KEYS and _is_int(value):
        return [(f"{key}_micros", value)]
    if key == "shards" and isinstance(value, list) and len(value) == 3:
        first, last, count = value
        return [("shards", {"first": first, "last": last, "count": count})]
    if key == "shards" and _is_int(value) and parent == "":
        return [("shard_count", value)]
    if key == "day" and _is_int(value):
        day = (date(1970, 1, 1) + timedelta(days=value)).isoformat() if 0 < value < 2_000_000 else None
        return [("day_epoch_days", value), ("day_utc", day)]
    return [(key, _walk(value, key))]


def _walk(value: Any, parent: str) -> Any:
    if isinstance(value, dict):
        out: dict = {}
        for k, v in value.items():
            for name, labelled in _labelled(str(k), v, parent):
                out[name] = labelled
        return out
    if isinstance(value, list):
        return [_walk(v, parent) for v in value]
    return value


def label_units(value: Any) -> Any:
    """Any JSON-ready value (an event body, a record) with its money fields renamed `*_micros`."""
    return _walk(value, "body")


def unlabel_units(value: Any) -> Any:
    """`label_units` undone one level deep (for `status.summarize`, which reads the short names)."""
    if not isinstance(value, dict):
        return value
    return {(k.removesuffix("_micros") if k.removesuffix("_micros") in MONEY_KEYS else k): v for k, v in value.items()}


def with_units(status: dict) -> dict:
    """A copy of a `collect_status` snapshot with the units named (see the module docstring)."""
    return _walk(status, "")
