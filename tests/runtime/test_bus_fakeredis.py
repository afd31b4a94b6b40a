"""Fast unit tests of the bus's decode and dead-letter paths, the ledger views and the journal
helpers, on fakeredis (no Lua needed on these paths; everything Lua is tested on real Redis)."""

import fakeredis
import pytest

from actors.ledger import read_ledger, read_risk
from messages.codec import FIELD, encode
from messages.envelope import seeded_ids, wrap
from messages.schema import BalancesChanged
from runtime.bus import HandlerRejected, StreamBus
from runtime.journal import group_caught_up
from runtime.keys import Keys

KEYS = Keys("u", 4)
AGENT = "ag-u"


@pytest.fixture
def r():
    return fakeredis.FakeRedis()


def make_bus(r, handler):
    return StreamBus(None, KEYS, "casino", [KEYS.shard(AGENT)], handler, clients=(r, r), block_ms=1)


def test_malformed_entries_are_dead_lettered_and_acked_without_calling_the_handler(r):
    calls = []
    bus = make_bus(r, calls.append)
    bus.ensure_groups()
    bus.ensure_groups()  # idempotent
    stream = KEYS.agent_commands(AGENT, "casino")
    r.xadd(stream, {FIELD: b"\x00garbage"})
    assert bus.poll_once() == 1
    assert calls == []
    dead = r.xrange(KEYS.dead(KEYS.shard(AGENT)))
    assert len(dead) == 1 and dead[0][1][b"stream"].decode() == stream
    assert r.xpending(stream, "g:casino")["pending"] == 0
    assert group_caught_up(r, stream, "g:casino")


def test_a_rejected_command_is_dead_lettered_and_journaled(r):
    def reject(delivery):
        raise HandlerRejected("the casino role does not handle BalancesChanged")

    bus = make_bus(r, reject)
    bus.ensure_groups()
    env = wrap(BalancesChanged(cause="x"), agent=AGENT, now_ms=1, new_id=seeded_ids(1))
    r.xadd(KEYS.agent_commands(AGENT, "casino"), {FIELD: encode(env)})
    bus.poll_once()
    dead = r.xrange(KEYS.dead(KEYS.shard(AGENT)))
    assert dead[0][1][b"msg_id"].decode() == env.id
    assert r.xlen(KEYS.events(AGENT)) == 1


def test_ledger_and_risk_views(r):
    r.hset(KEYS.ledger(AGENT), mapping={"casino": 5, "casino:reserved": 2, "reserve": 10, "junk": 99})
    r.hset(KEYS.risk(AGENT), mapping={"state": "PAUSED", "until_ms": 7, "halt:trading": "drawdown", "peak": 20})
    ledger = read_ledger(r, KEYS, AGENT)
    assert ledger.total == 17 and ledger.bucket("casino") == 7
    risk = read_risk(r, KEYS, AGENT)
    assert (risk.state, risk.until_ms, risk.peak, risk.halted_buckets) == ("PAUSED", 7, 20, {"trading": "drawdown"})
    assert not read_risk(r, KEYS, "nobody").known


def test_an_entry_naming_an_agent_of_another_shard_is_dead_lettered_then_journaled(r):
    # on a Redis Cluster the dead stream and that agent's journal are in different slots: one MULTI
    # may not hold both, so the dead entry goes first and the journal note right after
    other = next(s for s in range(KEYS.shards) if s != KEYS.shard(AGENT))

    def reject(delivery):
        raise HandlerRejected("wrong shard")

    bus = StreamBus(None, KEYS, "casino", [other], reject, clients=(r, r), block_ms=1)
    bus.ensure_groups()
    env = wrap(BalancesChanged(cause="x"), agent=AGENT, now_ms=1, new_id=seeded_ids(1))
    stream = KEYS.commands(other, "casino")
    r.xadd(stream, {FIELD: encode(env)})
    bus.poll_once()
    dead = r.xrange(KEYS.dead(other))
    assert [d[1][b"msg_id"].decode() for d in dead] == [env.id]
    assert r.xpending(stream, "g:casino")["pending"] == 0
    assert r.xlen(KEYS.events(AGENT)) == 1
