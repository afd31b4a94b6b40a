"""Redis key names and agent-to-shard partitioning.

Every key carries its shard as a Redis Cluster hash tag (`{S}`), so all keys one atomic step
touches for an agent live in one slot. The shard count is fixed when a deployment is created.
"""

from __future__ import annotations

import functools
import inspect
import zlib
from dataclasses import dataclass

from messages.catalogue import ROLES  # noqa: F401 - re-exported: the roles are a fact of the catalogue

DEFAULT_SHARDS = 64


def shard_of(agent: str, shards: int = DEFAULT_SHARDS) -> int:
    """A stable hash of the agent id (CRC-32, same on every machine and Python run)."""
    if shards <= 0:
        raise ValueError("shard count must be positive")
    return _shard_of(agent, shards)


@functools.lru_cache(maxsize=65_536)
def _shard_of(agent: str, shards: int) -> int:
    # remembered: every key name of an agent needs its shard, a bet a dozen times
    return zlib.crc32(agent.encode()) % shards


@functools.lru_cache(maxsize=65_536)
def _agent_tag(prefix: str, shards: int, agent: str) -> str:
    return f"{prefix}:{{{shard_of(agent, shards)}}}"


@dataclass(frozen=True)
class Keys:
    """Every Redis key of one deployment, given its prefix and shard count.

    Each method's docstring starts with the key's Redis type, then says what it holds and who
    writes it; docs/architecture.md's key table is generated from them (`python -m runtime.keys
    --markdown`). Money in hashes is integer micro-USD, times are epoch milliseconds.
    """

    prefix: str = "tr"
    shards: int = DEFAULT_SHARDS

    def shard(self, agent: str) -> int:
        """The agent's shard (`shard_of`)."""
        return shard_of(agent, self.shards)

    def _k(self, shard: int | str, *parts: str) -> str:
        return ":".join((self.prefix, f"{{{shard}}}", *parts))

    def _ak(self, agent: str, *parts: str) -> str:
        # an agent's key: its "<prefix>:{<shard>}" remembered (a bet names a dozen of its keys)
        return ":".join((_agent_tag(self.prefix, self.shards, agent), *parts))

    # ---------------------------------------------------------------- per shard

    def commands(self, shard: int, role: str) -> str:
        """Stream. Commands for one role on one shard (field `m`: an encoded envelope); consumed by
        the role's group `g:<role>`, trimmed once every group has acknowledged an entry."""
        return self._k(shard, "cmd", role)

    def control(self, shard: int) -> str:
        """Stream. ACTIVE / PAUSED / HALTED broadcasts (`RiskControl`) for the shard's agents; read
        without a group by every worker (written by RiskGuard)."""
        return self._k(shard, "control")

    def dead(self, shard: int) -> str:
        """Stream. Dead-lettered commands with their error, deliveries and raw envelope (the bus)."""
        return self._k(shard, "dead")

    def failures(self, shard: int, role: str) -> str:
        """Hash. Stream entry id → handler failures so far, for the retry backoff (the bus)."""
        return self._k(shard, "fails", role)

    def parked(self, shard: int, role: str) -> str:
        """Hash. Stream entry id → JSON (msg_id, agent, type, since_ms, error, alerted): spends of
        `role` whose outcome is still unknown after `max_deliveries` tries. Still pending, retried,
        alerted past a deadline, never dead-lettered with their funds in limbo (the bus)."""
        return self._k(shard, "parked", role)

    # ---------------------------------------------------------------- per agent

    def events(self, agent: str) -> str:
        """Stream. The agent's journal: every event (every actor, through commits); never trimmed
        but by `treasury journal archive`, which moves old entries to files first."""
        return self._ak(agent, "events", agent)

    def risk(self, agent: str) -> str:
        """Hash. Risk state (`state`, `until_ms`, `reason`, `halt:<bucket>`), `fence_seq`, peak and
        day-start totals (RiskGuard; read by the fence)."""
        return self._ak(agent, "risk", agent)

    def ledger(self, agent: str) -> str:
        """Hash. Buckets' available micro-USD (`<bucket>`) and what is held (`<bucket>:reserved`,
        `trading:margin`, `referral:in_transit`, ...); each field has one writing actor."""
        return self._ak(agent, "ledger", agent)

    def reservations(self, agent: str) -> str:
        """Hash. Message id → `bucket|amount|seq|at_ms`: spends the fence reserved, not yet settled."""
        return self._ak(agent, "resv", agent)

    def applied(self, agent: str) -> str:
        """Sorted set. Message ids already committed (score: when), for exactly-once commits; kept
        one hour, as long as a duplicate can still come."""
        return self._ak(agent, "applied", agent)

    def credentials(self, agent: str) -> str:
        """Hash. The agent's venue ids and API keys (`<service>_key`, `<service>_agent_id`; written
        by onboarding). Protect Redis with ACLs/TLS in production."""
        return self._ak(agent, "venue", agent)

    def flows(self, agent: str) -> str:
        """Hash. Net transfers into each bucket (signed micro-USD; not money the agent holds, so not in
        the ledger; transfer legs write it, RiskGuard reads it for the trading drawdown)."""
        return self._ak(agent, "flows", agent)

    def values(self, agent: str) -> str:
        """Sorted set. The agent's value series: one point
        `<at_ms>|<seq>|<total>|<flows>|<unrealized>|<trading>|<trading_base>` (micro-USD) per commit
        that changed its ledger, scored by the commit's time (commit.lua; read by RiskGuard)."""
        return self._ak(agent, "values", agent)

    def marks(self, agent: str) -> str:
        """Hash. When the agent's open positions were last marked (`at_ms`) and how many are open
        (`open`) (TradingBucket; read by the fence)."""
        return self._ak(agent, "marks", agent)

    def session(self, agent: str) -> str:
        """Hash. The casino session: `id`, `budget` and `pnl` (micro-USD), `state`, `reason` (CasinoBucket)."""
        return self._ak(agent, "session", agent)

    def rebalance(self, agent: str) -> str:
        """Hash. The active saga id and the last run (Rebalancer)."""
        return self._ak(agent, "rebal", agent)

    def policy(self, agent: str) -> str:
        """Hash. The agent's `set-policy` overrides of the default policy (Rebalancer); every actor reads
        them through `actors.policy.effective.effective_policy`."""
        return self._ak(agent, "policy", agent)

    def saga(self, agent: str, saga: str) -> str:
        """Hash. One rebalance saga: its moves, cursor, state, and each leg's progress (Rebalancer
        and the bucket actors' transfer legs)."""
        return self._ak(agent, "saga", agent, saga)

    def silo_intents(self, agent: str) -> str:
        """Hash. `<saga>:<n>` → `source|dest|amount|status`: physical moves between venues a saga
        needs (Rebalancer)."""
        return self._ak(agent, "silo_intents", agent)

    def positions(self, agent: str) -> str:
        """Hash. Position id → booked position record (msgpack) of open trading positions (TradingBucket)."""
        return self._ak(agent, "positions", agent)

    def trade_plans(self, agent: str) -> str:
        """Hash. Message id → the order plan of an open in flight (TradingBucket)."""
        return self._ak(agent, "trade_plans", agent)

    def escrows(self, agent: str) -> str:
        """Hash. Escrow id → record of the agent's open escrows (EscrowManager)."""
        return self._ak(agent, "escrows", agent)

    def escrows_closed(self, agent: str) -> str:
        """Hash. Escrow id → record of released or refunded escrows (EscrowManager)."""
        return self._ak(agent, "escrows_closed", agent)

    def escrow_creating(self, agent: str) -> str:
        """Hash. Message id → intent of an escrow creation in flight, for the look-up after a crash
        (EscrowManager)."""
        return self._ak(agent, "escrow_creating", agent)

    def referral(self, agent: str) -> str:
        """Hash. Per-source watermarks of referral income already counted (ReferralBucket)."""
        return self._ak(agent, "referral", agent)

    def archived(self, agent: str) -> str:
        """Hash. Where the journal's archived part is: `dir` and `last_id`, the last entry moved to
        the day files (`treasury journal archive`; read by every reader of the whole journal)."""
        return self._ak(agent, "archived", agent)

    def onboarding(self, agent: str) -> str:
        """Hash. Onboarding step → outcome, so a resumed onboarding skips what is done."""
        return self._ak(agent, "onboard", agent)

    def addresses(self, agent: str) -> str:
        """Hash. Chain → the agent's public wallet address (onboarding)."""
        return self._ak(agent, "addr", agent)

    def chains(self, agent: str) -> str:
        """Hash. Chain → cached balance reading with its time (ChainView)."""
        return self._ak(agent, "chains", agent)

    def nonce(self, key_id: str, nonce: str, agent: str | None = None) -> str:
        """String. A command signature's nonce, claimed once, expiring after its window (the command
        gate). In the agent's shard; without an agent, outside any shard."""
        if agent is None:
            return f"{self.prefix}:nonce:{key_id}:{nonce}"
        return self._ak(agent, "nonce", key_id, nonce)

    def agent_commands(self, agent: str, role: str) -> str:
        """Stream. `commands` of the agent's shard for `role`."""
        return self.commands(self.shard(agent), role)

    # ---------------------------------------------------------------- deployment-wide (no shard)

    def agents(self) -> str:
        """Set. The agents this deployment serves (not shard-local: read by status tools)."""
        return f"{self.prefix}:agents"

    def deployment(self) -> str:
        """Hash. Shard count, venues and mode of the deployment (`treasury up`)."""
        return f"{self.prefix}:deployment"

    def workers(self) -> str:
        """Hash. Worker consumer name → heartbeat JSON (workers; read by the supervisor and status)."""
        return f"{self.prefix}:workers"

    def suspects(self) -> str:
        """Hash. Consumer name → `<stream> <entry id>` of the redelivered entry it is handling now: if
        the worker dies, this names the entry in its hands (the bus; read by the supervisor)."""
        return f"{self.prefix}:suspects"

    def alerts(self) -> str:
        """Stream. Supervisor alerts (a worker restarted too often, ...)."""
        return f"{self.prefix}:alerts"

    def supervisor(self) -> str:
        """Hash. Worker slot (consumer name) → JSON: role, pid, start time, restarts and last exit
        reason (the supervisor, at every start and exit; deleted when it stops; read by status)."""
        return f"{self.prefix}:supervisor"

    def leases(self, role: str) -> str:
        """Hash. Shard → `owner|expires_ms` (Redis server time) for every shard lease of `role`; one
        script call per worker heartbeat renews, gives back and takes over (shard leases)."""
        return f"{self.prefix}:{{lease:{role}}}:held"

    def members(self, role: str) -> str:
        """Sorted set. Live workers of `role` (score: last renewal), to share shards; in the same
        cluster slot as `leases` (shard leases)."""
        return f"{self.prefix}:{{lease:{role}}}:members"

    def schedule(self, tick: str) -> str:
        """String. Epoch ms up to which the scheduler has published the tick's per-agent phases."""
        return f"{self.prefix}:sched:{tick}"

    def clock(self) -> str:
        """String. Simulated `now` in epoch ms shared by the demo's processes (`RedisClock`)."""
        return f"{self.prefix}:clock"


class _Template(Keys):
    """Keys rendered with placeholders, for the key table."""

    def shard(self, agent: str) -> int:
        return "S"  # type: ignore[return-value]

    def _ak(self, agent: str, *parts: str) -> str:
        return self._k(self.shard(agent), *parts)


_PLACEHOLDERS = {"shard": "S", "agent": "<agent>", "role": "<role>", "saga": "<saga>", "key_id": "<key_id>",
                 "nonce": "<nonce>", "tick": "<tick>"}


def key_table() -> list[tuple[str, str, str]]:
    """(key pattern, Redis type, what it holds) for every key method of `Keys`, in source order."""
    template = _Template(prefix="<prefix>")
    rows = []
    for name, member in vars(Keys).items():
        if name.startswith("_") or not callable(member) or name in ("shard", "agent_commands"):
            continue
        params = [p for p in inspect.signature(member).parameters if p != "self"]
        pattern = getattr(template, name)(*(_PLACEHOLDERS[p] for p in params))
        doc = " ".join((inspect.getdoc(member) or "").split())
        kind, _, text = doc.partition(". ")
        rows.append((pattern, kind.lower(), text))
    return rows


def markdown_table() -> str:
    """The key table as Markdown (docs/architecture.md carries it verbatim)."""
    lines = ["| key | type | holds |", "|---|---|---|"]
    lines += [f"| `{pattern}` | {kind} | {text.replace('|', chr(92) + '|')} |" for pattern, kind, text in key_table()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """`python -m runtime.keys --markdown`: print the key table."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m runtime.keys", description="The Redis key table.")
    parser.add_argument("--markdown", action="store_true", help="as a Markdown table (the default)")
    parser.parse_args(argv)
    print(markdown_table(), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
