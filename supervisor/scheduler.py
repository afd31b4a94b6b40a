"""Periodic ticks: the pokes that make time-driven policy happen for every agent that needs them.

The venues fire nothing by themselves (stops need `check-exits`, escrow timeouts need a look),
and some rules are due by the calendar (weekly referral sweep, scheduled rebalance, a new UTC
day for the daily-loss breaker, a pause that has expired). Each tick kind is published once per
period to every agent that has work for it, with a message id made of the kind, the agent and
the period, so a restarted scheduler, or two supervisors at once, cannot apply the same tick twice.

Cheap at scale:
- a tick may name the key whose existence means the agent has work (`needs`): an agent with no
  open position gets no exit check, one with no open escrow no escrow sync;
- a tick may come less often to an idle agent (`idle_every_ms`): one whose ledger has not changed
  for `IDLE_AFTER_MS` (the newest point of its value series) gets the minute's income scans once
  every 15 minutes, and the minute rate back from its next ledger change;
- ticks are spread over their period: each agent has its own phase (a hash of tick and agent),
  so 10,000 agents get their 15 s exit checks a few at a time, never all at once at start;
- the agent list is cached and re-read only when the agent count changes or once a minute, and
  the scheduler does nothing between its runs (at most one per `every_ms`).
"""

from __future__ import annotations

import bisect
import logging
import zlib
from dataclasses import dataclass
from typing import Any, Callable

import redis

from messages.base import Message, validate_agent_id
from messages.catalogue import CommandFacts, facts_for
from messages.codec import FIELD, encode
from messages.envelope import Envelope
from messages.errors import BadAgentId, ConfigError
from messages.escrow_msgs import SyncEscrows
from messages.flow_msgs import ScanIncoming
from messages.referral_msgs import ReinvestReferrals, SweepReferrals
from messages.schema import BalancesChanged
from messages.silo_msgs import SiloTick
from messages.trading_msgs import CheckExits
from messages.treasury_msgs import RebalanceTick
from runtime.clock import Clock
from runtime.keys import Keys
from runtime.redis_client import get_many

log = logging.getLogger("treasury.scheduler")

NeedsKey = Callable[[Keys, str], str]


def _positions(keys: Keys, agent: str) -> str:
    return keys.positions(agent)


def _open_escrows(keys: Keys, agent: str) -> str:
    return keys.escrows(agent)


@dataclass(frozen=True)
class Tick:
    """A periodic poke: `command` is an internal poke of the catalogue, which names its role and
    builds its body; `needs` names the key whose existence means the agent has work for it."""

    name: str
    every_ms: int
    command: type[Message]
    needs: NeedsKey | None = None
    """The key whose existence means the agent has work for this tick; None: every agent."""
    idle_every_ms: int | None = None
    """For an idle agent (no ledger change for `IDLE_AFTER_MS`), the tick once per this period (a
    multiple of `every_ms`) instead of every `every_ms`; None: the same for every agent."""

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
    Tick("exits", 15_000, CheckExits, needs=_positions),
    Tick("escrows", 300_000, SyncEscrows, needs=_open_escrows),
    Tick("incoming", 60_000, ScanIncoming, idle_every_ms=900_000),
    Tick("rebalance", 3_600_000, RebalanceTick),
    Tick("referrals", 6 * 3_600_000, SweepReferrals),
    Tick("reinvest", 24 * 3_600_000, ReinvestReferrals),
    Tick("risk", 3_600_000, BalancesChanged),
    Tick("silos", 60_000, SiloTick, idle_every_ms=900_000),
)
"""The ticks. Income scans (`incoming`: escrow payouts in the casino ledger; `silos`: transfers in
flight, deposits and payments from outside, the hourly reconciliation) run every minute for an
agent whose money moved in the last `IDLE_AFTER_MS`, every 15 minutes for an idle one: an idle
agent's casino ledger gains rows only from what is paid in, so nothing scrolls out of its 50-row
window meanwhile (a betting agent also asks for a scan every 20th bet: `actors.casino`), and a
transfer in flight is watched every minute from the ledger change that started it."""

IDLE_AFTER_MS = 2 * 3_600_000
"""An agent whose ledger has not changed for this long is idle for `Tick.idle_every_ms` (longer
than a transfer's 30-minute deposit deadline: a transfer is watched every minute to its end)."""

AGENTS_REFRESH_MS = 60_000


def phase(tick: Tick, agent: str) -> int:
    """The agent's offset within the tick's period (ms): the same on every machine and run."""
    return zlib.crc32(f"{tick.name}:{agent}".encode()) % tick.every_ms


def period_of(tick: Tick, agent: str, now_ms: int) -> int:
    """The period of `tick` the agent is in at `now_ms`; a new one starts at each phase crossing."""
    return (now_ms - phase(tick, agent)) // tick.every_ms


class Scheduler:
    def __init__(self, client: redis.Redis, keys: Keys, clock: Clock, roles: list[str],
                 ticks: tuple[Tick, ...] = DEFAULT_TICKS, every_ms: int = 1_000):
        self.client = client
        self.keys = keys
        self.clock = clock
        self.ticks = tuple(t for t in ticks if t.role in roles)
        self.every_ms = every_ms
        self._next_run = 0
        self._agents: list[str] = []
        self._agents_count = -1
        self._agents_read_ms = 0
        self._phases: dict[str, tuple[list[int], list[str]]] = {}  # tick -> agents sorted by phase
        self._skipped: set[str] = set()

    def period_key(self, tick: Tick) -> str:
        return self.keys.schedule(tick.name)

    def _read_agents(self) -> list[str]:
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

    def agents(self, now: int) -> list[str]:
        """Every agent, from a cache re-read when the count changes or once a minute."""
        count = self.client.scard(self.keys.agents())
        if count != self._agents_count or now - self._agents_read_ms >= AGENTS_REFRESH_MS:
            self._agents = self._read_agents() if count else []
            self._agents_count, self._agents_read_ms = count, now
            self._phases = {}
            for tick in self.ticks:
                pairs = sorted((phase(tick, a), a) for a in self._agents)
                self._phases[tick.name] = ([p for p, _ in pairs], [a for _, a in pairs])
        return self._agents

    def due(self, tick: Tick, last: int, now: int) -> list[str]:
        """Agents whose phase of `tick` lies in (last, now] (a window at most one period long)."""
        phases, agents = self._phases[tick.name]
        if now - last >= tick.every_ms:
            return list(agents)
        lo, hi = last % tick.every_ms, now % tick.every_ms
        if lo < hi:
            return agents[bisect.bisect_right(phases, lo):bisect.bisect_right(phases, hi)]
        return agents[bisect.bisect_right(phases, lo):] + agents[:bisect.bisect_right(phases, hi)]

    def _each(self, agents: list[str], read: Callable[[Any, str], Any]) -> list[Any]:
        """`read(pipeline, agent)` for each agent, in one pipelined round trip; the replies in order."""
        if not agents:
            return []
        pipe = self.client.pipeline(transaction=False)
        for agent in agents:
            read(pipe, agent)
        return list(pipe.execute())

    def _busy_or_idle_turn(self, tick: Tick, due: list[str], now: int) -> list[str]:
        """Of `due`, the idle agents whose turn it is (one period of `tick` in every
        `idle_every_ms`: no read), and the others whose ledger changed in the last `IDLE_AFTER_MS`
        (the newest point of the value series, one pipelined read)."""
        every = max(1, (tick.idle_every_ms or tick.every_ms) // tick.every_ms)
        turn = {a for a in due if period_of(tick, a, now) % every == 0}
        others = [a for a in due if a not in turn]
        newest = self._each(others, lambda pipe, a: pipe.zrevrange(self.keys.values(a), 0, 0, withscores=True))
        busy = {a for a, point in zip(others, newest, strict=True) if point and now - int(point[0][1]) < IDLE_AFTER_MS}
        return [a for a in due if a in turn or a in busy]

    def run_once(self) -> int:
        """Publish every agent's ticks whose phase was crossed since the last run; returns how many.

        The window starts where the last run (of any scheduler of this deployment) ended, kept
        in Redis per tick; a first run, or one after a pause longer than the period, starts now,
        so nothing is published in a burst. Errors: redis.RedisError (the next run tries again).
        """
        now = self.clock.now_ms()
        if now < self._next_run or not self.ticks:
            return 0
        self._next_run = now + self.every_ms
        agents = self.agents(now)
        if not agents:
            return 0
        lasts = get_many(self.client, [self.period_key(t) for t in self.ticks])  # one slot each on a cluster
        sent = 0
        pipe = self.client.pipeline(transaction=False)
        for tick, raw in zip(self.ticks, lasts, strict=True):
            if raw is None or now - int(raw) > tick.every_ms:
                # first run, or after a long pause: start now (each agent's next phase), no burst
                pipe.set(self.period_key(tick), now)
                continue
            last = int(raw)
            if last >= now:
                continue
            due = self.due(tick, last, now)
            looked = bool(due)  # agents whose phase was crossed: the window moves past them, ticked or not
            if due and tick.needs is not None:
                has = self._each(due, lambda pipe, a, needs=tick.needs: pipe.exists(needs(self.keys, a)))
                due = [a for a, there in zip(due, has, strict=True) if there]
            if due and tick.idle_every_ms is not None:
                due = self._busy_or_idle_turn(tick, due, now)
            if looked or now - last >= tick.every_ms // 2:
                # the window is stored once an agent's phase was crossed in it (else the next run
                # would look at the same agents again), and at least twice a period (so it never
                # looks like a pause); between, the next run looks at it again and finds nothing new
                pipe.set(self.period_key(tick), now)
            if not due:
                continue
            body = tick.body()
            for agent in due:
                period = period_of(tick, agent, now)
                msg_id = f"tick:{tick.name}:{period}:{agent}"[:80]
                env = Envelope(id=msg_id, agent=agent, created_ms=now, body=body, correlation=msg_id)
                pipe.xadd(self.keys.agent_commands(agent, tick.role), {FIELD: encode(env)})
            sent += len(due)
        pipe.execute()
        return sent
