"""Reading an agent's ledger and risk state from Redis (writes only happen in atomic steps)."""

from __future__ import annotations

from dataclasses import dataclass, field

import redis

from messages.schema import BUCKETS
from runtime.keys import Keys

HELD_KINDS = ("reserved", "locked", "margin", "in_transit")
"""Money of a bucket that is not available but still the treasury's: `reserved` by an in-flight
spend (the fence), `locked` in escrow, `margin` in open positions, `in_transit` between silos.
Ledger fields are `<bucket>` (available) and `<bucket>:<kind>`."""


@dataclass(frozen=True)
class LedgerView:
    """Bucket balances in micro-USD: what is available, and what is held and in what form."""

    available: dict[str, int]
    held: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def reserved(self) -> dict[str, int]:
        return {b: kinds.get("reserved", 0) for b, kinds in self.held.items()}

    def held_by(self, bucket: str, kind: str) -> int:
        return self.held.get(bucket, {}).get(kind, 0)

    @property
    def total(self) -> int:
        return sum(self.available.values()) + sum(sum(k.values()) for k in self.held.values())

    def bucket(self, name: str) -> int:
        """Everything the bucket owns: available plus every held kind."""
        return self.available.get(name, 0) + sum(self.held.get(name, {}).values())

    def known(self) -> bool:
        return bool(self.available)

    def moved(self, bucket: str, available_delta: int, kind: str, held_delta: int) -> "LedgerView":
        """This view after moving money within `bucket` (e.g. available -> reserved by the fence)."""
        available = dict(self.available)
        available[bucket] = available.get(bucket, 0) + available_delta
        held = {b: dict(k) for b, k in self.held.items()}
        held.setdefault(bucket, {})[kind] = held.get(bucket, {}).get(kind, 0) + held_delta
        return LedgerView(available, held)


def read_ledger(client: redis.Redis, keys: Keys, agent: str) -> LedgerView:
    return ledger_from(client.hgetall(keys.ledger(agent)))


def ledger_from(raw: dict) -> LedgerView:
    """A LedgerView from the ledger hash's fields (as HGETALL returns them, e.g. from a pipeline)."""
    available: dict[str, int] = {}
    held: dict[str, dict[str, int]] = {}
    for k, v in raw.items():
        name = k.decode() if isinstance(k, bytes) else k
        bucket, _, kind = name.partition(":")
        if bucket not in BUCKETS or (kind and kind not in HELD_KINDS):
            continue
        if kind:
            held.setdefault(bucket, {})[kind] = int(v)
        else:
            available[bucket] = int(v)
    return LedgerView(available, held)


@dataclass(frozen=True)
class RiskView:
    state: str
    reason: str
    breaker: str
    until_ms: int
    peak: int
    day_start: int
    day: int
    fence_seq: int
    halted_buckets: dict[str, str]

    @property
    def known(self) -> bool:
        return bool(self.state)


def read_risk(client: redis.Redis, keys: Keys, agent: str) -> RiskView:
    raw = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
           for k, v in client.hgetall(keys.risk(agent)).items()}
    return RiskView(
        state=raw.get("state", ""),
        reason=raw.get("reason", ""),
        breaker=raw.get("breaker", ""),
        until_ms=int(raw.get("until_ms") or 0),
        peak=int(raw.get("peak") or 0),
        day_start=int(raw.get("day_start") or 0),
        day=int(raw.get("day") or 0),
        fence_seq=int(raw.get("fence_seq") or 0),
        halted_buckets={k.removeprefix("halt:"): v for k, v in raw.items() if k.startswith("halt:")},
    )
