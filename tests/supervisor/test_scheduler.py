"""Ticks go only to agents that have work for them, spread over their period, each once per period."""

from __future__ import annotations

import pytest

import supervisor.scheduler as scheduler_module
from messages.codec import FIELD, decode
from messages.flow_msgs import ScanIncoming
from messages.schema import BalancesChanged
from messages.trading_msgs import CheckExits
from runtime.clock import ManualClock
from supervisor.scheduler import DEFAULT_TICKS, Scheduler, Tick, period_of, phase

pytestmark = pytest.mark.redis

AGENTS = [f"sch-{i}" for i in range(40)]
EXITS = Tick("exits", 15_000, CheckExits, needs=lambda keys, agent: keys.positions(agent))
RISK = Tick("risk", 60_000, BalancesChanged)


def published(client, keys, role):
    out = []
    for shard in range(keys.shards):
        for _, fields in client.xrange(keys.commands(shard, role)):
            out.append(decode(fields[FIELD]))
    return out


def test_each_agent_gets_one_tick_per_period_at_its_own_phase_never_all_at_once(rclient, keys):
    rclient.sadd(keys.agents(), *AGENTS)
    clock = ManualClock(1_000_000)
    sched = Scheduler(rclient, keys, clock, ["risk"], ticks=(RISK,))
    assert sched.run_once() == 0  # the first run only marks where the window starts
    per_run = []
    for _ in range(180):  # three periods, one run a second
        clock.advance(1_000)
        per_run.append(sched.run_once())
    sent = published(rclient, keys, "risk")
    # oracle: an agent's tick is due each time the clock crosses k * period + its phase
    expected = sorted((a, p) for a in AGENTS for p in range(period_of(RISK, a, 1_000_000) + 1,
                                                           period_of(RISK, a, clock.now_ms()) + 1))
    assert sorted((e.agent, int(e.id.split(":")[2])) for e in sent) == expected
    assert len({e.id for e in sent}) == len(sent)
    assert max(per_run) < len(AGENTS) / 4  # spread: no run sends more than a small slice
    assert len({phase(RISK, a) for a in AGENTS}) > 30


def test_an_agent_without_a_position_gets_no_exit_check(rclient, keys):
    rclient.sadd(keys.agents(), *AGENTS)
    holders = AGENTS[:5]
    for agent in holders:
        rclient.hset(keys.positions(agent), "p1", "{}")
    clock = ManualClock(2_000_000)
    sched = Scheduler(rclient, keys, clock, ["trading"], ticks=(EXITS,))
    sched.run_once()
    for _ in range(30):
        clock.advance(1_000)
        sched.run_once()
    sent = published(rclient, keys, "trading")
    assert {e.agent for e in sent} == set(holders)
    assert sorted(e.agent for e in sent) == sorted(holders * 2)  # two 15 s periods in 30 s


def test_a_second_scheduler_never_sends_a_tick_twice(rclient, keys):
    rclient.sadd(keys.agents(), *AGENTS)
    clock = ManualClock(3_000_000)
    one, two = (Scheduler(rclient, keys, clock, ["risk"], ticks=(RISK,)) for _ in range(2))
    one.run_once()
    two.run_once()
    for _ in range(120):
        clock.advance(1_000)
        one.run_once()
        two.run_once()
    ids = [e.id for e in published(rclient, keys, "risk")]
    assert len(ids) == 2 * len(AGENTS) and len(set(ids)) == len(ids)


SCAN = Tick("incoming", 10_000, ScanIncoming, idle_every_ms=40_000)


def test_an_idle_agent_gets_its_scans_less_often_and_the_full_rate_once_its_money_moves(rclient, keys, monkeypatch):
    idle_after = 30_000
    monkeypatch.setattr(scheduler_module, "IDLE_AFTER_MS", idle_after)
    rclient.sadd(keys.agents(), *AGENTS)
    start = 4_000_000
    busy, wakes, idle = AGENTS[:8], AGENTS[8], AGENTS[9:]
    for agent in busy:  # money moved just now: busy for `idle_after`
        rclient.zadd(keys.values(agent), {f"{start}|1|0|0|0|0|0": start})
    wake_at = start + 60_500  # its money moves a minute in
    clock = ManualClock(start)
    sched = Scheduler(rclient, keys, clock, ["casino"], ticks=(SCAN,))
    sched.run_once()
    for _ in range(120):
        clock.advance(1_000)
        if clock.now_ms() - 1_000 < wake_at <= clock.now_ms():
            rclient.zadd(keys.values(wakes), {f"{wake_at}|1|0|0|0|0|0": wake_at})
        sched.run_once()
    got = sorted((e.agent, int(e.id.split(":")[2])) for e in published(rclient, keys, "casino"))

    # oracle: each period crossed is sent if, at the run that crosses it (the first whole second at
    # or after the crossing), the agent's last ledger change is less than `idle_after` old, or if
    # the period is the idle turn (every fourth)
    def expected_for(agent, changed_at):
        out = []
        for period in range(period_of(SCAN, agent, start) + 1, period_of(SCAN, agent, clock.now_ms()) + 1):
            run_at = -(-(period * SCAN.every_ms + phase(SCAN, agent)) // 1_000) * 1_000
            recent = changed_at is not None and changed_at <= run_at and run_at - changed_at < idle_after
            if recent or period % 4 == 0:
                out.append((agent, period))
        return out

    expected = sorted([x for a in busy for x in expected_for(a, start)] + expected_for(wakes, wake_at)
                      + [x for a in idle for x in expected_for(a, None)])
    assert got == expected
    per_agent = {a: sum(1 for g, _ in got if g == a) for a in AGENTS}
    assert all(3 <= per_agent[a] <= 4 for a in idle)  # 120 s: once every 40 s
    first = {a: sum(1 for g, p in got if g == a and p * SCAN.every_ms + phase(SCAN, a) <= start + idle_after - 1_000)
             for a in busy}
    assert all(n >= 2 for n in first.values()), first  # every 10 s while busy
    assert per_agent[wakes] > max(per_agent[a] for a in idle)


def test_income_scans_slow_down_only_for_idle_agents_by_default():
    slowed = {t.name: t.idle_every_ms for t in DEFAULT_TICKS if t.idle_every_ms}
    assert set(slowed) == {"incoming", "silos"}
    assert all(every % 60_000 == 0 and every <= 900_000 for every in slowed.values())
    assert scheduler_module.IDLE_AFTER_MS > 30 * 60_000  # a transfer in flight is watched every minute to its deadline


class CountingClient:
    """The test's Redis client, counting the EXISTS and ZREVRANGE probes sent through pipelines."""

    def __init__(self, client):
        self.client, self.probes = client, 0

    def __getattr__(self, name):
        return getattr(self.client, name)

    def pipeline(self, *args, **kwargs):
        pipe, outer = self.client.pipeline(*args, **kwargs), self

        class Counting:
            def __getattr__(self, name):
                if name in ("exists", "zrevrange"):
                    outer.probes += 1
                return getattr(pipe, name)

        return Counting()


def test_each_crossed_phase_is_looked_at_once_whether_or_not_it_is_ticked(rclient, keys):
    """An agent with nothing to do (no position; idle, not its turn) is probed once per period, not
    at every run until the window is stored again."""
    rclient.sadd(keys.agents(), *AGENTS)
    counting = CountingClient(rclient)
    clock = ManualClock(5_000_000)
    sched = Scheduler(counting, keys, clock, ["trading", "casino"], ticks=(EXITS, SCAN))
    sched.run_once()
    for _ in range(60):
        clock.advance(1_000)
        sched.run_once()
    end = clock.now_ms()
    crossings = sum(period_of(t, a, end) - period_of(t, a, 5_000_000) for t in (EXITS, SCAN) for a in AGENTS)
    turns = sum(1 for a in AGENTS for p in range(period_of(SCAN, a, 5_000_000) + 1, period_of(SCAN, a, end) + 1)
                if p % 4 == 0)
    assert counting.probes == crossings - turns  # an idle agent on its turn needs no probe
    assert published(rclient, keys, "trading") == []
