"""Fuzzing the bus on a real Redis: any entry bytes, next to good commands.

Each example adds a batch of hostile entries (random bytes, deep nesting, wrong field names,
huge values) around one good command to a stream, and lets a real `StreamBus` serve it. The
oracle: the bus call returns (the loop would go on), the good command reaches the handler exactly
once, every other entry is on the dead stream exactly once with a one-line error, and nothing is
left pending. 40 examples of up to 8 entries each in the default run.
"""

from __future__ import annotations

import uuid

import msgspec
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from messages.codec import FIELD, encode
from messages.envelope import seeded_ids, wrap
from messages.schema import Allocate
from runtime.bus import StreamBus
from runtime.keys import Keys

pytestmark = pytest.mark.redis

def _nested_before_tag(depth: int) -> dict:
    hole = msgspec.msgpack.encode("HOLE")
    frame = msgspec.msgpack.encode({"id": "m1", "agent": "alice", "created_ms": 1, "correlation": "m1",
                                    "body": {"x": "HOLE", "type": "PlaceBet"}})
    return {FIELD: frame.replace(hole, b"\x91" * depth + b"\xc0")}


HOSTILE = st.one_of(
    st.integers(1, 100_000).map(_nested_before_tag),
    st.binary(max_size=300).map(lambda b: {FIELD: b}),
    st.integers(1, 100_000).map(lambda n: {FIELD: b"\x91" * n + b"\xc0"}),
    st.binary(min_size=1, max_size=20).map(lambda b: {b"x": b}),
    st.text(max_size=50).map(lambda s: {FIELD: msgspec.msgpack.encode({"id": s, "agent": s, "body": {"type": s}})}),
    st.just({FIELD: msgspec.msgpack.encode({"id": "m1", "agent": "a\nb", "created_ms": 1, "correlation": "m1",
                                            "body": {"type": "Allocate", "capital": 2**63}})}),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(before=st.lists(HOSTILE, max_size=4), after=st.lists(HOSTILE, max_size=4))
def test_hostile_entries_are_dead_lettered_and_the_good_one_runs(redis_url, before, after):
    keys = Keys(prefix=f"fz{uuid.uuid4().hex[:10]}", shards=1)
    client = redis.Redis.from_url(redis_url)
    handled = []

    def handle(delivery) -> None:  # an actor commits its effects and the acknowledgement together
        handled.append(delivery.envelope.id)
        client.xack(delivery.stream, delivery.group, delivery.entry_id)

    bus = StreamBus(redis_url, keys, "casino", [0], handle, block_ms=10, new_id=seeded_ids(1))
    try:
        bus.ensure_groups()
        stream = keys.commands(0, "casino")
        good = wrap(Allocate(capital=1_000_000), agent="alice", now_ms=1, new_id=seeded_ids(2))
        for fields in before:
            client.xadd(stream, fields)
        client.xadd(stream, {FIELD: encode(good)})
        for fields in after:
            client.xadd(stream, fields)
        total = len(before) + 1 + len(after)
        while bus.poll_once(wait=False):
            pass
        assert handled == [good.id]
        dead = client.xrange(keys.dead(0))
        assert len(dead) == total - 1
        for _, entry in dead:
            error = entry[b"error"].decode()
            assert error and "\n" not in error and "\x1b" not in error
        assert client.xpending(stream, bus.group)["pending"] == 0
    finally:
        bus.close()
        for key in client.scan_iter(match=f"{keys.prefix}:*"):
            client.delete(key)
        client.close()
