"""Command streams are trimmed to what their consumer groups still need, never further."""

from __future__ import annotations

import random

import pytest

from messages.codec import FIELD, encode
from messages.envelope import seeded_ids, wrap
from messages.schema import BalancesChanged
from runtime.atomic import AtomicSteps
from runtime.bus import StreamBus, command_client
from runtime.trim import StreamTrimmer
from tests.kit.bus import CountingHandler

pytestmark = pytest.mark.redis

AGENT = "agent-1"


def publish(client, stream, n, seed=1):
    new_id = seeded_ids(seed)
    ids = []
    for i in range(n):
        env = wrap(BalancesChanged(cause=f"c{i}"), agent=AGENT, now_ms=i, new_id=new_id)
        ids.append(client.xadd(stream, {FIELD: encode(env)}).decode())
    return ids


def remaining(client, stream):
    return [e[0].decode() for e in client.xrange(stream)]


def test_handled_entries_are_trimmed_and_the_stream_stays_empty(redis_url, keys, rclient):
    steps = AtomicSteps(command_client(redis_url), keys)
    stream = keys.agent_commands(AGENT, "casino")
    publish(rclient, stream, 30)
    bus = StreamBus(redis_url, keys, "casino", [keys.shard(AGENT)], CountingHandler(steps), block_ms=50)
    bus.ensure_groups()
    while bus.poll_once(block_ms=50):
        pass
    assert rclient.xlen(stream) == 30  # nothing trimmed before the trim step
    assert bus.trim_acknowledged() == 30
    assert rclient.xlen(stream) == 0
    assert int(rclient.hget(keys.ledger(AGENT), "applied")) == 30  # every entry was applied first


def test_a_pending_entry_and_everything_after_it_are_kept(redis_url, keys, rclient):
    steps = AtomicSteps(command_client(redis_url), keys)
    stream = keys.agent_commands(AGENT, "casino")
    new_id = seeded_ids(5)
    envs = [wrap(BalancesChanged(cause=f"c{i}"), agent=AGENT, now_ms=i, new_id=new_id) for i in range(6)]
    ids = [rclient.xadd(stream, {FIELD: encode(e)}).decode() for e in envs]
    handler = CountingHandler(steps, fail_on={envs[2].id})
    bus = StreamBus(redis_url, keys, "casino", [keys.shard(AGENT)], handler, block_ms=50, max_deliveries=9)
    bus.ensure_groups()
    while bus.poll_once(block_ms=50):
        pass
    bus.trim_acknowledged()
    # entries 0 and 1 are acked by the only group; entry 2 failed and is pending: kept, with all after it
    assert remaining(rclient, stream) == ids[2:]
    rclient.xadd(stream, {FIELD: encode(envs[0])})  # not yet delivered: kept too
    bus.trim_acknowledged()
    assert remaining(rclient, stream)[:4] == ids[2:]


def test_a_stream_nobody_reads_is_left_alone(rclient, keys):
    stream = keys.agent_commands(AGENT, "casino")
    publish(rclient, stream, 5)
    assert StreamTrimmer(rclient).trim([stream, keys.agent_commands(AGENT, "risk")]) == 0
    assert rclient.xlen(stream) == 5


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_reads_and_acks_of_two_groups_never_lose_an_unacked_entry(rclient, keys, seed):
    rng = random.Random(seed)
    stream = keys.agent_commands(AGENT, "escrow")
    trimmer = StreamTrimmer(rclient)
    groups = ("ga", "gb")
    all_ids: list[str] = []
    acked: dict[str, set[str]] = {g: set() for g in groups}
    delivered: dict[str, list[str]] = {g: [] for g in groups}
    for g in groups:
        rclient.xgroup_create(stream, g, id="0", mkstream=True)
    for step in range(60):
        action = rng.choice(["add", "add", "read", "ack", "trim"])
        if action == "add":
            all_ids += publish(rclient, stream, rng.randint(1, 3), seed=step)
        elif action == "read":
            g = rng.choice(groups)
            reply = rclient.xreadgroup(g, "c", {stream: ">"}, count=rng.randint(1, 4))
            for _, entries in reply or []:
                delivered[g] += [e[0].decode() for e in entries]
        elif action == "ack":
            g = rng.choice(groups)
            unacked = [i for i in delivered[g] if i not in acked[g]]
            for i in rng.sample(unacked, k=min(len(unacked), rng.randint(0, 3))):
                rclient.xack(stream, g, i)
                acked[g].add(i)
        else:
            trimmer.trim([stream])
        # oracle: an entry some group has not acknowledged must still be there
        needed = [i for i in all_ids if any(i not in acked[g] for g in groups)]
        present = set(remaining(rclient, stream))
        assert set(needed) <= present
    trimmer.trim([stream])
    needed = [i for i in all_ids if any(i not in acked[g] for g in groups)]
    first_needed = needed[0] if needed else None
    # and everything before the first entry still needed is gone
    expected = all_ids[all_ids.index(first_needed):] if first_needed else []
    assert remaining(rclient, stream) == expected
