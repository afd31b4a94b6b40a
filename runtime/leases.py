"""Shard leases: which worker of a role serves which shards, so per-agent order holds.

A consumer group alone would spread one agent's commands over several consumers and lose their
order. Instead each shard of a role is leased to one worker at a time (`SET NX PX`), renewed on
every heartbeat. Live workers of a role split the shards evenly: a worker takes free shards up
to its fair share and gives back what it holds above it, so a new worker gets work and a dead
worker's shards are taken over once its lease expires — on this machine or another.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import redis

from runtime.keys import Keys

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_ACQUIRE = """
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


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
        self._renew = self.client.register_script(_RENEW)
        self._release = self.client.register_script(_RELEASE)
        self._acquire = self.client.register_script(_ACQUIRE)

    def key(self, shard: int) -> str:
        return Keys(self.prefix).lease(self.role, shard)

    def members_key(self) -> str:
        return Keys(self.prefix).members(self.role)

    def live_members(self, now_ms: int) -> int:
        """Workers of this role that announced themselves within one lease period."""
        self.client.zremrangebyscore(self.members_key(), "-inf", now_ms - self.lease_ms)
        return max(1, self.client.zcard(self.members_key()))

    def refresh(self, now_ms: int) -> tuple[set[int], set[int]]:
        """Renew, rebalance and take over; returns (gained, lost) shards since the last call."""
        self.client.zadd(self.members_key(), {self.owner: now_ms})
        lost = {s for s in self.owned if not self._renew(keys=[self.key(s)], args=[self.owner, self.lease_ms])}
        self.owned -= lost
        fair = math.ceil(self.shard_count / self.live_members(now_ms))
        released: set[int] = set()
        for shard in sorted(self.owned, reverse=True)[: max(0, len(self.owned) - fair)]:
            self._release(keys=[self.key(shard)], args=[self.owner])
            released.add(shard)
        self.owned -= released
        gained: set[int] = set()
        if len(self.owned) < fair:
            start = _offset(self.owner, self.shard_count)
            for i in range(self.shard_count):
                shard = (start + i) % self.shard_count
                if shard in self.owned:
                    continue
                # a free shard, or one our own previous incarnation held (restarted under the same name)
                if self._acquire(keys=[self.key(shard)], args=[self.owner, self.lease_ms]):
                    gained.add(shard)
                    self.owned.add(shard)
                    if len(self.owned) >= fair:
                        break
        return gained, lost | released

    def release_all(self) -> None:
        for shard in list(self.owned):
            self._release(keys=[self.key(shard)], args=[self.owner])
        self.owned.clear()
        self.client.zrem(self.members_key(), self.owner)


def _offset(owner: str, shard_count: int) -> int:
    """Where a worker starts looking for free shards: spread, so workers rarely collide."""
    import zlib

    return zlib.crc32(owner.encode()) % shard_count
