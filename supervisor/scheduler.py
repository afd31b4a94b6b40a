"""Periodic ticks: the pokes that make time-driven policy happen for every agent.

The venues fire nothing by themselves (stops need `check-exits`, escrow timeouts need a look),
and some rules are due by the calendar (weekly referral sweep, scheduled rebalance, a new UTC
day for the daily-loss breaker, a pause that has expired). Each tick kind is published once per
period to every agent, with a message id made of the kind, the agent and the period, so a
restarted scheduler, or two supervisors at once, cannot apply the same tick twice.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass

import redis

from messages.base import validate_agent_id
from messages.codec import FIELD, encode
from messages.envelope import Envelope
from messages.errors import BadAgentId
from runtime.clock import Clock
from runtime.keys import Keys

log = logging.getLogger("treasury.scheduler")


@dataclass(frozen=True)
class Tick:
    name: str
    role: str
    every_ms: int
    message: str  # "module:Class" of a body with no required fields


DEFAULT_TICKS = (
    Tick("exits", "trading", 15_000, "messages.trading_msgs:CheckExits"),
    Tick("escrows", "escrow", 300_000, "messages.escrow_msgs:SyncEscrows"),
    Tick("rebalance", "rebalancer", 3_600_000, "messages.treasury_msgs:RebalanceTick"),
    Tick("referrals", "referral", 6 * 3_600_000, "messages.referral_msgs:SweepReferrals"),
    Tick("reinvest", "referral", 24 * 3_600_000, "messages.referral_msgs:ReinvestReferrals"),
    Tick("risk", "risk", 3_600_000, "messages.schema:BalancesChanged"),
)


def _body(path: str):
    module, _, name = path.partition(":")
    cls = getattr(importlib.import_module(module), name)
    return cls(cause="scheduled tick") if name == "BalancesChanged" else cls()


class Scheduler:
    def __init__(self, client: redis.Redis, keys: Keys, clock: Clock, roles: list[str],
                 ticks: tuple[Tick, ...] = DEFAULT_TICKS):
        self.client = client
        self.keys = keys
        self.clock = clock
        self.ticks = tuple(t for t in ticks if t.role in roles)
        self._skipped: set[str] = set()

    def period_key(self, tick: Tick) -> str:
        return self.keys.schedule(tick.name)

    def _agents(self) -> list[str]:
        """The agent set, without names no message can carry (left by a version that did not
        check them): a tick for one would only be dead-lettered, every period."""
        agents = []
        for raw in sorted(self.client.smembers(self.keys.agents())):
            name = raw.decode(errors="replace")
            try:
                agents.append(validate_agent_id(name))
            except BadAgentId:
                if name not in self._skipped:
                    self._skipped.add(name)
                    log.warning("agent set holds %s, which is not a valid agent id: no ticks for it", ascii(name))
        return agents

    def run_once(self) -> int:
        """Publish every tick whose period has turned since it was last published; returns how many."""
        now = self.clock.now_ms()
        sent = 0
        agents = None
        for tick in self.ticks:
            period = now // tick.every_ms
            last = int(self.client.get(self.period_key(tick)) or -1)
            if period <= last:
                continue
            if agents is None:
                agents = self._agents()
            try:
                body = _body(tick.message)
            except (ImportError, AttributeError) as exc:
                log.warning("tick %s has no message type (%s): skipped", tick.name, exc)
                continue
            pipe = self.client.pipeline(transaction=False)
            for agent in agents:
                msg_id = f"tick:{tick.name}:{period}:{agent}"[:80]
                env = Envelope(id=msg_id, agent=agent, created_ms=now, body=body, correlation=msg_id)
                pipe.xadd(self.keys.agent_commands(agent, tick.role), {FIELD: encode(env)})
            pipe.set(self.period_key(tick), period)
            pipe.execute()
            sent += len(agents)
        return sent
