"""A worker that keeps dying: after N restarts in T seconds the supervisor halts every treasury
(committed, so the fence refuses spending at once) and raises an alert."""

from __future__ import annotations

import json
import threading
import time

import pytest

from actors.bootstrap import open_treasury
from actors.ledger import read_risk
from messages.envelope import seeded_ids
from messages.money import parse_usd
from messages.schema import RiskStateChanged
from runtime.atomic import AtomicSteps
from runtime.bus import command_client
from runtime.journal import read_journal
from supervisor.supervise import Supervisor, SupervisorConfig

pytestmark = pytest.mark.redis


def test_crash_loop_halts_every_treasury_and_alerts(redis_url, keys, rclient):
    steps = AtomicSteps(command_client(redis_url), keys)
    for agent in ("a1", "a2"):
        open_treasury(steps, agent, parse_usd("1000"), now_ms=0, new_id=seeded_ids(1))
        rclient.sadd(keys.agents(), agent)
    # No command keys: the casino worker refuses to start, every time.
    supervisor = Supervisor(redis_url, keys, ["casino"], {"casino": "http://127.0.0.1:9"},
                            env={"TREASURY_KEYS": "", "TREASURY_KEYS_FILE": ""},
                            config=SupervisorConfig(max_restarts=2, restart_window_s=60, base_backoff_s=0.05,
                                                    check_every_s=0.05))
    stop = threading.Event()
    runner = threading.Thread(target=supervisor.run, args=(stop,))
    runner.start()
    try:
        deadline = time.monotonic() + 60
        while not supervisor.alerts and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        runner.join(30)

    assert supervisor.alerts, "no alert raised"
    slot = supervisor.slots[0]
    assert slot.escalated and len(slot.restarts) == 3  # escalated on the third restart within the window
    alert = json.loads(rclient.xrange(f"{keys.prefix}:alerts")[0][1][b"alert"])
    assert alert["halted"] == ["a1", "a2"] and "restarted 3 times" in alert["reason"]
    for agent in ("a1", "a2"):
        risk = read_risk(rclient, keys, agent)
        assert (risk.state, risk.breaker) == ("HALTED", "supervisor")
        changes = [e.body for e in read_journal(rclient, keys, agent) if isinstance(e.body, RiskStateChanged)]
        assert [c.state for c in changes] == ["HALTED"]
        assert steps.reserve(agent, "after-halt", "casino", 10_000, 10**9, 0).status == "halted"
    assert rclient.xlen(keys.control(keys.shard("a1"))) >= 1


def test_crash_loop_traced_to_one_entry_alerts_without_halting_anyone(redis_url, keys, rclient):
    """Issue 9, case 2: a worker dying on one entry is that entry's problem, not every agent's."""
    steps = AtomicSteps(command_client(redis_url), keys)
    for agent in ("a1", "a2"):
        open_treasury(steps, agent, parse_usd("1000"), now_ms=0, new_id=seeded_ids(1))
        rclient.sadd(keys.agents(), agent)
    supervisor = Supervisor(redis_url, keys, ["casino"], {"casino": "http://127.0.0.1:9"},
                            config=SupervisorConfig(max_restarts=2, ticks=False))
    slot = supervisor.slots[0]
    stream = keys.commands(1, "casino")
    # what the casino worker's bus wrote before handling the redelivered entry it then died on
    rclient.hset(keys.suspects(), slot.consumer, f"{stream} 1-0")
    now = time.monotonic()
    for _ in range(3):
        slot.last_exit = "exited with -9"
        supervisor._schedule_restart(slot, now)
    assert slot.escalated and supervisor.alerts
    alert = json.loads(rclient.xrange(f"{keys.prefix}:alerts")[0][1][b"alert"])
    assert alert["halted"] == [] and f"traced to entry {stream} 1-0" in alert["reason"]
    for agent in ("a1", "a2"):
        assert read_risk(rclient, keys, agent).state == "ACTIVE"
