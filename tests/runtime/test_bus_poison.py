"""Issue 9, case 2: no entry, however malformed, stops a consumer; an entry that kills its worker
is traced and set aside after `max_crashes` deaths, and the entries behind it still run."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import msgspec
import pytest

from messages.codec import FIELD, MAX_ENTRY_BYTES, encode
from messages.envelope import seeded_ids, wrap
from messages.schema import BalancesChanged
from runtime.atomic import AtomicSteps
from runtime.bus import StreamBus, command_client
from tests.kit.bus import CountingHandler

pytestmark = pytest.mark.redis

AGENT = "agent-1"
_enc = msgspec.msgpack.Encoder()


def nested_command(depth: int) -> bytes:
    """An envelope whose body nests `depth` arrays before its `type` tag (~1 kB at depth 1000)."""
    body = b"\x82" + _enc.encode("x") + b"\x91" * depth + b"\x90" + _enc.encode("type") + _enc.encode("PlaceBet")
    return (b"\x84" + _enc.encode("id") + _enc.encode("m-deep") + _enc.encode("agent") + _enc.encode(AGENT)
            + _enc.encode("created_ms") + _enc.encode(1) + _enc.encode("body") + body)


def good_command(seed: int, cause: str = "good"):
    return wrap(BalancesChanged(cause=cause), agent=AGENT, now_ms=1, new_id=seeded_ids(seed))


def applied(client, keys) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in client.hgetall(keys.ledger(AGENT)).items()}


def test_malformed_entries_of_every_kind_are_dead_lettered_and_the_good_one_behind_them_runs(redis_url, keys, rclient):
    stream = keys.agent_commands(AGENT, "casino")
    malformed = {
        "nested too deeply": nested_command(1000),
        "exceeds the limit": b"\x90" * (MAX_ENTRY_BYTES + 1),
        "expected `object`, got `int`": _enc.encode(7),
        "Expected `str`, got `int`": _enc.encode({"id": 5, "agent": AGENT, "created_ms": 1,
                                                  "body": {"type": "BalancesChanged", "cause": "x"}}),
        "at `key` in `$`": b"\x81" * 5000 + b"\x00",  # maps nested as keys: refused before any depth
        "no 'm' field": None,
    }
    for raw in malformed.values():
        rclient.xadd(stream, {FIELD: raw} if raw is not None else {"other": b"\x00" * 10})
    good = good_command(1)
    rclient.xadd(stream, {FIELD: encode(good)})
    handler = CountingHandler(AtomicSteps(command_client(redis_url), keys))
    bus = StreamBus(redis_url, keys, "casino", [keys.shard(AGENT)], handler, block_ms=50)
    bus.ensure_groups()
    while bus.poll_once(block_ms=50):
        pass
    dead = rclient.xrange(keys.dead(keys.shard(AGENT)))
    errors = [f[b"error"].decode() for _, f in dead]
    assert len(errors) == len(malformed)
    for expected, error in zip(malformed, errors, strict=True):
        assert expected.lower() in error.lower(), (expected, error)
    assert applied(rclient, keys) == {"applied": 1, f"id:{good.id}": 1}
    assert rclient.xpending(stream, "g:casino")["pending"] == 0


KILLER_CONSUMER = textwrap.dedent("""
    import os, sys
    from runtime.keys import Keys
    from runtime.atomic import AtomicSteps
    from runtime.bus import StreamBus, command_client
    from tests.kit.bus import CountingHandler
    url, prefix, shard = sys.argv[1], sys.argv[2], int(sys.argv[3])
    keys = Keys(prefix=prefix, shards=4)
    inner = CountingHandler(AtomicSteps(command_client(url), keys))
    def handler(delivery):
        if delivery.envelope.body.cause == "poison":
            os._exit(70)   # the process dies in the handler, as a native crash or OOM kill would
        inner(delivery)
    bus = StreamBus(url, keys, "casino", [shard], handler, consumer="victim", batch=10, block_ms=50)
    bus.ensure_groups()
    bus.drain_own_pending()
    while bus.poll_once(block_ms=50):
        pass
""")


def test_an_entry_that_kills_its_worker_is_traced_and_set_aside(redis_url, keys, rclient):
    stream = keys.agent_commands(AGENT, "casino")
    envs = [good_command(1, "a"), good_command(2, "poison"), good_command(3, "b")]
    for env in envs:
        rclient.xadd(stream, {FIELD: encode(env)})
    exits = []
    for _ in range(6):  # what a supervisor does: restart the dead worker with the same consumer name
        proc = subprocess.run([sys.executable, "-c", KILLER_CONSUMER, redis_url, keys.prefix,
                               str(keys.shard(AGENT))], cwd=os.getcwd(), timeout=60, capture_output=True)
        assert proc.returncode in (0, 70), proc.stderr.decode()
        exits.append(proc.returncode)
        if proc.returncode == 0:
            break
    # first delivery, then max_crashes (2) marked redeliveries die; the next start sets it aside
    assert exits == [70, 70, 70, 0], exits
    dead = rclient.xrange(keys.dead(keys.shard(AGENT)))
    assert [f[b"msg_id"].decode() for _, f in dead] == [envs[1].id]
    assert "died 2 times while handling this entry" in dead[0][1][b"error"].decode()
    assert applied(rclient, keys) == {"applied": 2, f"id:{envs[0].id}": 1, f"id:{envs[2].id}": 1}
    assert rclient.xpending(stream, "g:casino")["pending"] == 0
    assert not rclient.hexists(keys.suspects(), "victim")  # cleared once the loop is over
