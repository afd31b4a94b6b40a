"""Redis key names and agent-to-shard partitioning.

Every key carries its shard as a Redis Cluster hash tag (`{S}`), so all keys one atomic step
touches for an agent live in one slot. The shard count is fixed when a deployment is created.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

DEFAULT_SHARDS = 64
ROLES = ("casino", "risk", "reserve", "trading", "referral", "escrow", "rebalancer")


def shard_of(agent: str, shards: int = DEFAULT_SHARDS) -> int:
    """A stable hash of the agent id (CRC-32, same on every machine and Python run)."""
    if shards <= 0:
        raise ValueError("shard count must be positive")
    return zlib.crc32(agent.encode()) % shards


@dataclass(frozen=True)
class Keys:
    """Every key of one deployment, given its prefix and shard count."""

    prefix: str = "tr"
    shards: int = DEFAULT_SHARDS

    def shard(self, agent: str) -> int:
        return shard_of(agent, self.shards)

    def _k(self, shard: int, *parts: str) -> str:
        return ":".join((self.prefix, f"{{{shard}}}", *parts))

    def commands(self, shard: int, role: str) -> str:
        return self._k(shard, "cmd", role)

    def control(self, shard: int) -> str:
        return self._k(shard, "control")

    def dead(self, shard: int) -> str:
        return self._k(shard, "dead")

    def events(self, agent: str) -> str:
        return self._k(self.shard(agent), "events", agent)

    def risk(self, agent: str) -> str:
        return self._k(self.shard(agent), "risk", agent)

    def ledger(self, agent: str) -> str:
        return self._k(self.shard(agent), "ledger", agent)

    def reservations(self, agent: str) -> str:
        return self._k(self.shard(agent), "resv", agent)

    def applied(self, agent: str) -> str:
        return self._k(self.shard(agent), "applied", agent)

    def credentials(self, agent: str) -> str:
        """The agent's venue ids and API keys (protect Redis with ACLs/TLS in production)."""
        return self._k(self.shard(agent), "venue", agent)

    def flows(self, agent: str) -> str:
        """Net transfers into each bucket (signed; not money the agent holds, so not in the ledger)."""
        return self._k(self.shard(agent), "flows", agent)

    def values(self, agent: str) -> str:
        """The agent's value series: one point (time, total, cumulative external flows) per commit that
        changed its ledger (a sorted set scored by the commit's time; see `runtime/lua/commit.lua`)."""
        return self._k(self.shard(agent), "values", agent)

    def marks(self, agent: str) -> str:
        """When the agent's open positions were last marked (`at_ms`) and how many are open (`open`)."""
        return self._k(self.shard(agent), "marks", agent)

    def failures(self, shard: int, role: str) -> str:
        return self._k(shard, "fails", role)

    def agents(self) -> str:
        """The set of agents this deployment serves (not shard-local: read by status tools)."""
        return f"{self.prefix}:agents"

    def agent_commands(self, agent: str, role: str) -> str:
        return self.commands(self.shard(agent), role)
