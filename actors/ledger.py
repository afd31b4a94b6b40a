"""Reading an agent's ledger and risk state from Redis (writes only happen in atomic steps)."""

from __future__ import annotations

from dataclasses import dataclass, field

import redis

from messages.keys import Keys
from messages.schema import BUCKETS


@dataclass(frozen=True)
class LedgerView:
    """Bucket balances in micro-USD: what is available and what is reserved by in-flight spends."""

    available: dict[str, int]
    reserved: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.available.values()) + sum(self.reserved.values())

    def bucket(self, name: str) -> int:
        return self.available.get(name, 0) + self.reserved.get(name, 0)

    def known(self) -> bool:
        return bool(self.available)


def read_ledger(client: redis.Redis, keys: Keys, agent: str) -> LedgerView:
    raw = client.hgetall(keys.ledger(agent))
    available: dict[str, int] = {}
    reserved: dict[str, int] = {}
    for k, v in raw.items():
        name = k.decode() if isinstance(k, bytes) else k
        amount = int(v)
        if name.endswith(":reserved"):
            reserved[name.removesuffix(":reserved")] = amount
        elif name in BUCKETS:
            available[name] = amount
    return LedgerView(available, reserved)


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
