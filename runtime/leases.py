"""Shard leases: which worker of a role serves which shards, so per-agent order holds.

A consumer group alone would spread one agent's commands over several consumers and lose their
order. Instead each shard of a role is leased to one worker at a time, renewed on every
heartbeat. Live workers of a role split the shards evenly: a worker takes free shards up to its
fair share and gives back what it holds above it, so a new worker gets work and a dead worker's
shards are taken over once its lease expires — on this machine or another.

One heartbeat is one call (runtime/lua/leases.lua): every lease of a role lives in one hash,
`<prefix>:{lease:<role>}:held` (shard -> "owner|expires_ms", Redis server time), next to the
role's live-worker set, both in one cluster slot. So a worker renews all its shards in one
round trip, whatever the shard count.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import redis

from runtime.keys import Keys


def _script() -> str:
    return resources.files("runtime").joinpath("lua", "leases.lua").read_text()


def held_key(prefix: str, role: str) -> str:
    return Keys(prefix).leases(role)


def members_key(prefix: str, role: str) -> str:
    return Keys(prefix).members(role)


def lease_holders(client: redis.Redis, prefix: str, role: str) -> dict[int, str]:
    """Shard -> owner of every unexpired lease of `role` (for status tools and tests)."""
    secs, micros = client.time()
    now = secs * 1000 + micros // 1000
    out = {}
    held: Any = client.hgetall(held_key(prefix, role))
    for shard, value in held.items():
        owner, _, expires = (value.decode() if isinstance(value, bytes) else value).rpartition("|")
        if int(expires) > now:
            out[int(shard)] = owner
    return out


@dataclass
class ShardLeases:
    client: redis.Redis
    prefix: str
    role: str
    shard_count: int
    owner: str
    lease_ms: int = 10_000
    owned: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._round = self.client.register_script(_script())

    def _call(self, mode: str) -> set[int]:
        reply = self._round(keys=[held_key(self.prefix, self.role), members_key(self.prefix, self.role)],
                            args=[self.owner, self.lease_ms, self.shard_count, _offset(self.owner, self.shard_count),
                                  mode])
        return {int(s) for s in reply}

    def refresh(self, now_ms: int | None = None) -> tuple[set[int], set[int]]:
        """Renew, rebalance and take over in one call; returns (gained, lost) shards since the last call.

        `now_ms` is ignored (kept for callers): expiry is decided by the Redis server's clock.
        Errors: redis.RedisError (the caller serves nothing it could not renew).
        """
        owned = self._call("refresh")
        gained, lost = owned - self.owned, self.owned - owned
        self.owned = owned
        return gained, lost

    def release_all(self) -> None:
        self._call("release")
        self.owned.clear()


def _offset(owner: str, shard_count: int) -> int:
    """Where a worker starts looking for free shards: spread, so workers rarely collide."""
    return zlib.crc32(owner.encode()) % shard_count
