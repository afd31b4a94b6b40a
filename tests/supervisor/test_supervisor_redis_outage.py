"""Issue 9, case 6: SIGKILL of the embedded redis-server in a busy run. The supervisor starts it
again from its AOF, judges no heartbeat while it is away, halts nobody, and every command still
ends exactly once with the ledger matching the venue."""

from __future__ import annotations

import json

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
