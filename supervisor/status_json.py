"""`treasury status --json` and `watch --json`: the snapshot with every figure's unit in its name.

The convention of every JSON output of the command line (README, "Units in JSON"): money is an
integer of micro-USD in a field ending `_micros`; times are epoch milliseconds or durations in
milliseconds in fields ending `_ms`; shares end `_bp` (basis points). `collect_status` keeps its
short internal names (the rich view reads them); this module renames them on the way out:

- money fields (`total`, `available`, `reserved`, `amount`, `margin`, `peak`, ...) holding an
  integer → `<name>_micros`; one holding a map of integers (a bucket's `held` by kind, even an
  empty one) → `<name>_micros` too, the unit named once on the map;
- a worker's `shards` `[first, last, count]` → `{"first": .., "last": .., "count": ..}`, and the
  snapshot's shard count `shards` → `shard_count`;
- the risk hash's `day` (days since 1970-01-01 UTC) → `day_epoch_days`, with `day_utc`
  (`"2026-12-04"`) beside it.

- an ISO time string in a field ending `_at` (the venue's `auto_release_at`) → `<stem>_ms`
  (epoch milliseconds), with the text kept as `<stem>_utc`.

Fields whose names already carry a unit are left as they are. A message body (`label_message`)
is labelled from its schema: every field declared `Micros` / `SignedMicros` (at any depth, in
nested structs such as a bet's `sizing`, in lists and in maps of them) gets `_micros`, whatever
its name, so a new money field is labelled without being listed here.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import msgspec
import msgspec.inspect as mi

from messages.money import MAX_MICROS

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
    if key in MONEY_KEYS and isinstance(value, dict) and all(_is_int(v) for v in value.values()):
        return [(f"{key}_micros", value)]  # a map of amounts (a bucket's `held` by kind) names the unit once
    if key == "shards" and isinstance(value, list) and len(value) == 3:
        first, last, count = value
        return [("shards", {"first": first, "last": last, "count": count})]
    if key == "shards" and _is_int(value) and parent == "":
        return [("shard_count", value)]
    if key.endswith("_at") and isinstance(value, str) and (ms := _iso_ms(value)) is not None:
        return [(f"{key[:-3]}_ms", ms), (f"{key[:-3]}_utc", value)]
    if key == "day" and _is_int(value):
        day = (date(1970, 1, 1) + timedelta(days=value)).isoformat() if 0 < value < 2_000_000 else None
        return [("day_epoch_days", value), ("day_utc", day)]
    return [(key, _walk(value, key))]


def _iso_ms(text: str) -> int | None:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return int(moment.timestamp() * 1000)


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


# ---------------------------------------------------------------- message bodies, by their schema

_UNIT_SUFFIXES = ("_micros", "_bp", "_ms", "_usd")


def _is_micros(info: Any) -> bool:
    """A field declared `Micros` or `SignedMicros` (an int bounded by `MAX_MICROS`), or optional one."""
    if isinstance(info, mi.UnionType):
        members = [t for t in info.types if not isinstance(t, mi.NoneType)]
        return len(members) == 1 and _is_micros(members[0])
    return isinstance(info, mi.IntType) and info.le == MAX_MICROS


def _by_type(info: Any, value: Any) -> Any:
    if isinstance(info, mi.UnionType):
        if isinstance(value, dict):
            for member in info.types:
                if isinstance(member, mi.StructType) and (member.tag_field is None or
                                                          value.get(member.tag_field) == member.tag):
                    return _by_type(member, value)
        members = [t for t in info.types if not isinstance(t, mi.NoneType)]
        return _by_type(members[0], value) if len(members) == 1 else value
    if isinstance(info, mi.StructType) and isinstance(value, dict):
        out = dict(value)
        for field in info.fields:
            name = field.encode_name
            if name not in out:
                continue
            item = out.pop(name)
            money = _is_micros(field.type) or (
                isinstance(field.type, (mi.DictType, mi.ListType)) and _is_micros(
                    field.type.value_type if isinstance(field.type, mi.DictType) else field.type.item_type))
            if money and not name.endswith(_UNIT_SUFFIXES):
                out[f"{name}_micros"] = item
            else:
                out[name] = _by_type(field.type, item)
        return out
    if isinstance(info, (mi.ListType, mi.SetType, mi.FrozenSetType, mi.VarTupleType)) and isinstance(value, list):
        return [_by_type(info.item_type, v) for v in value]
    if isinstance(info, mi.DictType) and isinstance(value, dict):
        return {k: _by_type(info.value_type, v) for k, v in value.items()}
    return value


def money_fields(type_name: str) -> frozenset[str]:
    """The fields of message type `type_name` declared `Micros` / `SignedMicros` (or a map or list of
    them), from its schema; empty for an unknown type. What a summary shows in dollars."""
    return _MONEY_FIELDS.get(type_name, frozenset())


def _money_fields_of(cls: type) -> frozenset[str]:
    out = set()
    for field in mi.type_info(cls).fields:
        t = field.type
        inner = t.value_type if isinstance(t, mi.DictType) else t.item_type if isinstance(t, mi.ListType) else None
        if _is_micros(t) or (inner is not None and _is_micros(inner)):
            out.add(field.encode_name)
    return frozenset(out)


def _all_money_fields() -> dict[str, frozenset[str]]:
    from messages.schema import ALL_MESSAGES

    return {cls.__name__: _money_fields_of(cls) for cls in ALL_MESSAGES}


_MONEY_FIELDS = _all_money_fields()


def label_message(message: msgspec.Struct) -> dict:
    """A message body as JSON-ready data with its money fields named `*_micros` from its schema
    (see the module docstring), then any remaining known money name (`label_units`)."""
    return label_units(_by_type(mi.type_info(type(message)), msgspec.to_builtins(message)))
