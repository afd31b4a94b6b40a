"""The applied-id set is bounded by how long a duplicate can still come; ack-only commits write nothing."""

from __future__ import annotations

import pytest

from runtime.atomic import APPLIED_RETENTION_MS, AtomicSteps
from runtime.signing import MAX_TTL_MS

pytestmark = pytest.mark.redis

AGENT = "agent-b"


def test_ids_are_kept_while_a_duplicate_can_come_and_forgotten_after(rclient, keys):
    steps = AtomicSteps(rclient, keys)
    assert APPLIED_RETENTION_MS > MAX_TTL_MS  # a re-sent signed command is refused by its nonce before
    c = steps.new_commit(AGENT).incr(keys.ledger(AGENT), "n", 1)
    assert steps.commit(c, "m1", 1_000).status == "ok"
    c = steps.new_commit(AGENT).incr(keys.ledger(AGENT), "n", 1)
    assert steps.commit(c, "m1", 1_000 + APPLIED_RETENTION_MS - 1).status == "duplicate"
    c = steps.new_commit(AGENT).incr(keys.ledger(AGENT), "n", 1)
    assert steps.commit(c, "m2", 1_000 + APPLIED_RETENTION_MS + 1).status == "ok"
    assert [m.decode() for m in rclient.zrange(keys.applied(AGENT), 0, -1)] == ["m2"]
    assert int(rclient.hget(keys.ledger(AGENT), "n")) == 2


def test_a_commit_that_only_acknowledges_writes_nothing_else(rclient, keys):
    steps = AtomicSteps(rclient, keys)
    stream = keys.agent_commands(AGENT, "escrow")
    rclient.xgroup_create(stream, "g:escrow", id="0", mkstream=True)
    rclient.xadd(stream, {"m": b"tick"})
    (_, [(entry_id, _)]), = rclient.xreadgroup("g:escrow", "c", {stream: ">"})
    result = steps.commit(steps.new_commit(AGENT).ack(stream, "g:escrow", entry_id.decode()), "tick:1", 5)
    assert result.applied
    assert rclient.xpending(stream, "g:escrow")["pending"] == 0
    assert not rclient.exists(keys.applied(AGENT), keys.events(AGENT))
