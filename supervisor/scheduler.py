"""Periodic ticks: the pokes that make time-driven policy happen for every agent.

The venues fire nothing by themselves (stops need `check-exits`, escrow timeouts need a look),
and some rules are due by the calendar (weekly referral sweep, scheduled rebalance, a new UTC
day for the daily-loss breaker, a pause that has expired). Each tick kind is published once per
period to every agent, with a message id made of the kind, the agent and the period, so a
restarted scheduler, or two supervisors at once, cannot apply the same tick twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import redis

from messages.base import Message, validate_agent_id
from messages.catalogue import CommandFacts, facts_for
from messages.codec import FIELD, encode
from messages.envelope import Envelope
from messages.errors import BadAgentId, ConfigError
from messages.escrow_msgs import SyncEscrows
from messages.referral_msgs import ReinvestReferrals, SweepReferrals
from messages.schema import BalancesChanged
from messages.silo_msgs import SiloTick
from messages.trading_msgs import CheckExits
from messages.treasury_msgs import RebalanceTick
from runtime.clock import Clock
from runtime.keys import Keys

log = logging.getLogger("treasury.scheduler")


@dataclass(frozen=True)
class Tick:
    """A periodic poke: `command` is an internal poke of the catalogue, which names its role and
    builds its body."""

    name: str
    every_ms: int
    command: type[Message]

    @property
    def facts(self) -> CommandFacts:
        return facts_for(self.command)

    @property
    def role(self) -> str:
        return self.facts.role

    def body(self) -> Message:
        poke = self.facts.poke
        if poke is None:
            raise ConfigError(f"tick {self.name}: {self.command.__name__} is not a poke the scheduler may send")
        return poke()


DEFAULT_TICKS = (
    Tick("exits", 15_000, CheckExits),
    Tick("escrows", 300_000, SyncEscrows),
    Tick("rebalance", 3_600_000, RebalanceTick),
    Tick("referrals", 6 * 3_600_000, SweepReferrals),
    Tick("reinvest", 24 * 3_600_000, ReinvestReferrals),
    Tick("risk", 3_600_000, BalancesChanged),
    Tick("silos", 60_000, SiloTick),
)


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
            body = tick.body()
            pipe = self.client.pipeline(transaction=False)
            for agent in agents:
                msg_id = f"tick:{tick.name}:{period}:{agent}"[:80]
                env = Envelope(id=msg_id, agent=agent, created_ms=now, body=body, correlation=msg_id)
                pipe.xadd(self.keys.agent_commands(agent, tick.role), {FIELD: encode(env)})
            pipe.set(self.period_key(tick), period)
            pipe.execute()
            sent += len(agents)
        return sent
