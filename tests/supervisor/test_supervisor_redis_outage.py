"""Issue 9, case 6: SIGKILL of the embedded redis-server in a busy run. The supervisor starts it
again from its AOF, judges no heartbeat while it is away, halts nobody, and every command still
ends exactly once with the ledger matching the venue."""

from __future__ import annotations

import json
import time

import pytest

from tests.kit.faults import BusyRun

pytestmark = pytest.mark.redis


def test_embedded_redis_killed_mid_run_is_restarted_and_nothing_is_halted_or_lost(tmp_path):
    with BusyRun(tmp_path, seed=21, agents=("oa", "ob")) as run:
        run.wait(lambda: len(run.worker_pids()) == 2, 30, "the workers")
        for _ in range(15):
            run.bet()
        run.redis.kill()  # bets in flight; Redis gone without a goodbye
        run.wait(lambda: run.redis.restarts == 1 and run.supervisor.redis_outages == 1, 60,
                 "the supervisor to bring Redis back")
        for _ in range(15):
            run.bet()
        run.wait_all_terminal(120)
        supervisor = run.supervisor
        assert [len(slot.restarts) for slot in supervisor.slots] == [0, 0]  # no worker judged dead or hung
        assert not any(slot.escalated for slot in supervisor.slots)
        assert run.risk_states() == {"oa": "ACTIVE", "ob": "ACTIVE"}
        alerts = [json.loads(f[b"alert"]) for _, f in run.client.xrange("ft:alerts")]
        assert len(alerts) == 1 and alerts[0]["halted"] == [] and "restarted from its AOF" in alerts[0]["reason"]
        assert run.violations() == []


def test_an_external_redis_away_longer_than_the_heartbeat_limit_is_waited_for(tmp_path):
    """Redis the supervisor does not own: it waits, judges no heartbeat while Redis is away (the
    outage outlasts the 3 s heartbeat limit), kills no worker, halts nobody."""
    with BusyRun(tmp_path, seed=22, agents=("xa",)) as run:
        run.wait(lambda: len(run.worker_pids()) == 2, 30, "the workers")
        run.supervisor.redis_server = None  # as if Redis were run by someone else
        for _ in range(5):
            run.bet()
        run.redis.kill()
        time.sleep(5)  # longer than heartbeat_stale_ms (3 s): every heartbeat is stale by now
        assert run.redis.restarts == 0 and run.supervisor.redis_down_since is not None
        run.redis.restart()  # the operator (or a failover) brings it back
        run.wait(lambda: run.supervisor.redis_outages == 1, 30, "the supervisor to see Redis back")
        for _ in range(5):
            run.bet()
        run.wait_all_terminal(120)
        assert [len(slot.restarts) for slot in run.supervisor.slots] == [0, 0]
        assert run.risk_states() == {"xa": "ACTIVE"}
        assert run.violations() == []
