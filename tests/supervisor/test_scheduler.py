"""Ticks go only to agents that have work for them, spread over their period, each once per period."""

from __future__ import annotations

import pytest

from messages.codec import FIELD, decode
from messages.schema import BalancesChanged
from messages.trading_msgs import CheckExits
from runtime.clock import ManualClock
from supervisor.scheduler import Scheduler, Tick, period_of, phase

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
