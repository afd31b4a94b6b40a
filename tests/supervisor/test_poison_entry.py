"""Issue 9, case 2 end to end: a 1 kB command nesting 1,000 arrays before its `type` tag, added to
the casino stream of a running deployment, is dead-lettered with its error; the casino worker
never dies, nobody is halted, and the bet behind it runs."""

from __future__ import annotations

import msgspec
import pytest

from messages.codec import FIELD
from tests.kit.faults import BusyRun

pytestmark = pytest.mark.redis

_enc = msgspec.msgpack.Encoder()


def test_a_deeply_nested_entry_is_dead_lettered_and_the_bet_behind_it_settles(tmp_path):
    with BusyRun(tmp_path, seed=31, agents=("pa", "pb")) as run:
        run.wait(lambda: len(run.worker_pids()) == 2, 30, "the workers")
        body = b"\x82" + _enc.encode("x") + b"\x91" * 1000 + b"\x90" + _enc.encode("type") + _enc.encode("PlaceBet")
        deep = (b"\x84" + _enc.encode("id") + _enc.encode("m-deep") + _enc.encode("agent") + _enc.encode("pa")
                + _enc.encode("created_ms") + _enc.encode(1) + _enc.encode("body") + body)
        assert 1000 < len(deep) < 1200
        run.client.xadd(run.keys.agent_commands("pa", "casino"), {FIELD: deep})
        for _ in range(3):
            run.bet()
        run.wait_all_terminal(60)
        dead = [f for s in range(run.keys.shards) for _, f in run.client.xrange(run.keys.dead(s))]
        assert [f[b"error"] for f in dead] == [b"undecodable message: nested too deeply"]
        assert [len(slot.restarts) for slot in run.supervisor.slots] == [0, 0]  # no worker died
        assert run.supervisor.alerts == [] and run.risk_states() == {"pa": "ACTIVE", "pb": "ACTIVE"}
        assert run.violations() == []
