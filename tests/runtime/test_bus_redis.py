"""The bus against a real Redis server: delivery, recovery, dead stream, duplicates, blocking."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from messages.codec import FIELD, decode, encode
from messages.envelope import seeded_ids, wrap
from messages.schema import BalancesChanged, CommandRefused
from runtime.atomic import AtomicSteps
from runtime.bus import HandlerRejected, StreamBus, command_client
from tests.kit.bus import CountingHandler

pytestmark = pytest.mark.redis

AGENT = "agent-1"


def publish(client, keys, n, seed=1, agent=AGENT, role="casino"):
    new_id = seeded_ids(seed)
    envs = [wrap(BalancesChanged(cause=f"c{i}"), agent=agent, now_ms=i, new_id=new_id) for i in range(n)]
    for env in envs:
        client.xadd(keys.agent_commands(agent, role), {FIELD: encode(env)})
    return envs


def make_bus(redis_url, keys, handler, **kw):
    return StreamBus(redis_url, keys, "casino", [keys.shard(AGENT)], handler, block_ms=100, **kw)


def counts(client, keys):
    return {k.decode(): int(v) for k, v in client.hgetall(keys.ledger(AGENT)).items()}


def pending_count(client, keys, role="casino"):
    return client.xpending(keys.agent_commands(AGENT, role), f"g:{role}")["pending"]


def test_every_entry_applied_once_and_acked(redis_url, keys, rclient):
    steps = AtomicSteps(command_client(redis_url), keys)
    envs = publish(rclient, keys, 50)
    bus = make_bus(redis_url, keys, CountingHandler(steps))
    bus.ensure_groups()
    while bus.poll_once(block_ms=50):
        pass
    c = counts(rclient, keys)
    assert c["applied"] == 50
    assert all(c[f"id:{e.id}"] == 1 for e in envs)
    assert pending_count(rclient, keys) == 0


def test_duplicate_message_id_applied_once(redis_url, keys, rclient):
    steps = AtomicSteps(command_client(redis_url), keys)
    env = publish(rclient, keys, 1)[0]
    for _ in range(3):  # the same message published again, e.g. by a retrying producer
        rclient.xadd(keys.agent_commands(AGENT, "casino"), {FIELD: encode(env)})
    handler = CountingHandler(steps)
    bus = make_bus(redis_url, keys, handler)
    bus.ensure_groups()
    while bus.poll_once(block_ms=50):
        pass
    assert handler.calls == 4
    assert counts(rclient, keys)["applied"] == 1
    assert pending_count(rclient, keys) == 0


def test_undecodable_entries_go_to_the_dead_stream(redis_url, keys, rclient):
    steps = AtomicSteps(command_client(redis_url), keys)
    stream = keys.agent_commands(AGENT, "casino")
    rclient.xadd(stream, {FIELD: b"\xc1not msgpack"})
    rclient.xadd(stream, {"other": b"x"})
    good = publish(rclient, keys, 1)[0]
    tampered = encode(good).replace(b"BalancesChanged", b"BalancesChangee")
    rclient.xadd(stream, {FIELD: tampered})
    bus = make_bus(redis_url, keys, CountingHandler(steps))
    bus.ensure_groups()
    while bus.poll_once(block_ms=50):
        pass
    dead = rclient.xrange(keys.dead(keys.shard(AGENT)))
    errors = [fields[b"error"].decode() for _, fields in dead]
    assert len(dead) == 3
    assert "undecodable" in errors[0] or "invalid" in errors[0]
    assert "no 'm' field" in errors[1]
    assert "BalancesChangee" in errors[2]
    assert dead[0][1][b"raw"] == b"\xc1not msgpack"
    assert counts(rclient, keys)["applied"] == 1  # the good one, and nothing else changed
    assert pending_count(rclient, keys) == 0


def test_failing_handler_is_retried_then_dead_lettered_with_a_journal_entry(redis_url, keys, rclient):
    steps = AtomicSteps(command_client(redis_url), keys)
    bad, good = publish(rclient, keys, 2)
    handler = CountingHandler(steps, fail_on={bad.id})
    bus = make_bus(redis_url, keys, handler, max_deliveries=3, retry_backoff_ms=1)
    stop = threading.Event()
    thread = threading.Thread(target=bus.run, args=(stop,))
    thread.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not rclient.xlen(keys.dead(keys.shard(AGENT))):
        time.sleep(0.02)
    stop.set()
    thread.join(5)
    dead = rclient.xrange(keys.dead(keys.shard(AGENT)))
    assert len(dead) == 1
    assert dead[0][1][b"msg_id"].decode() == bad.id
    assert b"handler failure" in dead[0][1][b"error"]
    assert handler.calls == 4  # 3 attempts of the bad one, 1 of the good one
    assert counts(rclient, keys) == {"applied": 1, f"id:{good.id}": 1}
    journal = [decode(f[FIELD]) for _, f in rclient.xrange(keys.events(AGENT))]
    assert [type(e.body) for e in journal] == [CommandRefused]
    assert journal[0].causation == bad.id and "handler failure" in journal[0].body.reason
    assert pending_count(rclient, keys) == 0


CONSUMER_THAT_DIES = textwrap.dedent("""
    import os, signal, sys
    from runtime.keys import Keys
    from runtime.atomic import AtomicSteps
    from runtime.bus import StreamBus, command_client
    from tests.kit.bus import CountingHandler
    url, prefix, shard, die_at = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    keys = Keys(prefix=prefix, shards=4)
    inner = CountingHandler(AtomicSteps(command_client(url), keys))
    seen = 0
    def handler(delivery):
        global seen
        seen += 1
        if seen == die_at:
            os.kill(os.getpid(), signal.SIGKILL)   # dies mid-batch, holding unacked entries
        inner(delivery)
    bus = StreamBus(url, keys, "casino", [shard], handler, consumer="doomed", batch=20, block_ms=100)
    bus.ensure_groups()
    while True:
        bus.poll_once()
""")


def _run_doomed(redis_url, keys, die_at):
    proc = subprocess.run([sys.executable, "-c", CONSUMER_THAT_DIES, redis_url, keys.prefix, str(keys.shard(AGENT)),
                           str(die_at)], cwd=os.getcwd(), timeout=30, capture_output=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()


def test_killed_consumer_entries_are_taken_over_by_another(redis_url, keys, rclient):
    envs = publish(rclient, keys, 20)
    _run_doomed(redis_url, keys, die_at=8)
    assert counts(rclient, keys)["applied"] == 7
    assert pending_count(rclient, keys) == 13  # the dead consumer holds the rest of its batch
    steps = AtomicSteps(command_client(redis_url), keys)
    rescuer = make_bus(redis_url, keys, CountingHandler(steps), consumer="rescuer", claim_idle_ms=0)
    assert rescuer.claim_stale() == 13
    c = counts(rclient, keys)
    assert c["applied"] == 20 and all(c[f"id:{e.id}"] == 1 for e in envs)
    assert pending_count(rclient, keys) == 0


def test_restarted_consumer_drains_its_own_pending_first(redis_url, keys, rclient):
    publish(rclient, keys, 10)
    _run_doomed(redis_url, keys, die_at=4)
    publish(rclient, keys, 5, seed=2)  # new work arrives while it is down
    steps = AtomicSteps(command_client(redis_url), keys)
    order: list[str] = []
    inner = CountingHandler(steps)

    def handler(d):
        order.append(d.envelope.body.cause)
        inner(d)

    restarted = make_bus(redis_url, keys, handler, consumer="doomed")
    assert restarted.drain_own_pending() == 7
    assert order == [f"c{i}" for i in range(3, 10)]
    while restarted.poll_once(block_ms=50):
        pass
    assert counts(rclient, keys)["applied"] == 15
    assert pending_count(rclient, keys) == 0


def test_blocking_read_really_blocks(redis_url, keys, rclient):
    steps = AtomicSteps(command_client(redis_url), keys)
    bus = StreamBus(redis_url, keys, "casino", [keys.shard(AGENT)], CountingHandler(steps), block_ms=400,
                    consumer="idle")
    bus.ensure_groups()
    calls = []
    real = bus.reader.xreadgroup
    bus.reader.xreadgroup = lambda *a, **kw: calls.append(kw.get("block")) or real(*a, **kw)
    started = time.monotonic()
    for _ in range(3):
        assert bus.poll_once() == 0
    elapsed = time.monotonic() - started
    assert calls == [400, 400, 400]  # one blocking server call per poll: no client-side spinning
    assert elapsed >= 1.0  # each empty poll waited on the server (3 x 400 ms)


def test_a_blocked_read_wakes_up_for_new_work(redis_url, keys, rclient):
    steps = AtomicSteps(command_client(redis_url), keys)
    bus = StreamBus(redis_url, keys, "casino", [keys.shard(AGENT)], CountingHandler(steps), block_ms=5000)
    bus.ensure_groups()
    timer = threading.Timer(0.2, publish, args=(rclient, keys, 1))
    timer.start()
    assert bus.poll_once() == 1
    timer.join()



def test_new_shards_and_a_stop_end_a_long_idle_read_at_once(redis_url, keys, rclient):
    """An idle bus's read blocks long (a worker's: 5 s, few calls to Redis); a shard handed to it,
    or a stop, ends the read under way (`wake`) instead of waiting for its block to run out, and
    the wait itself is no stall (`stalled_s`, what the heartbeat reports)."""
    steps = AtomicSteps(command_client(redis_url), keys)
    other = (keys.shard(AGENT) + 1) % keys.shards
    bus = StreamBus(redis_url, keys, "casino", [other], CountingHandler(steps), block_ms=600_000,
                    claim_every_ms=600_000)
    stop = threading.Event()
    thread = threading.Thread(target=bus.run, args=(stop,), daemon=True)
    thread.start()
    wait_until(lambda: bus._reading, "the bus to block")
    assert bus.stalled_s() == 0.0
    publish(rclient, keys, 1)
    bus.request_shards([other, keys.shard(AGENT)])
    wait_until(lambda: counts(rclient, keys).get("applied") == 1, "the new shard's entry")  # not in 600 s
    wait_until(lambda: bus._reading, "the bus to block again")
    stop.set()
    bus.wake()
    thread.join(60)
    assert not thread.is_alive()


def wait_until(predicate, what, seconds=60):
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _run_until(bus, done, seconds=10):
    stop = threading.Event()
    thread = threading.Thread(target=bus.run, args=(stop,))
    thread.start()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not done():
        time.sleep(0.02)
    stop.set()
    thread.join(5)


def test_an_entry_that_failed_then_succeeded_leaves_nothing_behind(redis_url, keys, rclient):
    """Its failure count, last error and crash mark go once it is applied: a busy deployment's
    retries do not pile up in the failures hash."""
    steps = AtomicSteps(command_client(redis_url), keys)
    (env,) = publish(rclient, keys, 1)
    inner = CountingHandler(steps)
    tries = []

    def flaky(delivery):
        tries.append(delivery.deliveries)
        if len(tries) < 3:
            raise RuntimeError("the venue hiccuped")
        inner(delivery)

    bus = make_bus(redis_url, keys, flaky, max_deliveries=5, retry_backoff_ms=1)
    _run_until(bus, lambda: counts(rclient, keys).get("applied") == 1)
    assert counts(rclient, keys) == {"applied": 1, f"id:{env.id}": 1} and len(tries) == 3
    stream = keys.agent_commands(AGENT, "casino")
    assert rclient.hgetall(bus._failures_key(stream)) == {}


def test_a_dead_letter_after_failures_keeps_the_first_cause(redis_url, keys, rclient):
    """An entry that failed, then was set aside for another reason (here its handler's refusal;
    for a signed spend, a signature that expired while it was retried), is dead-lettered with both."""
    (env,) = publish(rclient, keys, 1)
    tries = []

    def failing_then_refusing(delivery):
        tries.append(1)
        if len(tries) < 3:
            raise ValueError("win_prob 1e-320 is too precise")
        raise HandlerRejected("command refused (expired): signature expired 7605 ms ago")

    bus = make_bus(redis_url, keys, failing_then_refusing, max_deliveries=5, retry_backoff_ms=1)
    _run_until(bus, lambda: rclient.xlen(keys.dead(keys.shard(AGENT))) > 0)
    (entry,) = rclient.xrange(keys.dead(keys.shard(AGENT)))
    error = entry[1][b"error"].decode()
    assert "signature expired" in error and "after it failed: ValueError: win_prob 1e-320 is too precise" in error
    assert rclient.hgetall(bus._failures_key(keys.agent_commands(AGENT, "casino"))) == {}
