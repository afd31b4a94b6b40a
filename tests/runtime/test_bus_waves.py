"""The bus with a non-blocking `submit`: a batch is handed over in waves of different agents, each
agent's entries one after the other in stream order, each acknowledged by its own commit."""

from __future__ import annotations

import pytest
import redis

from messages.codec import FIELD, encode
from messages.envelope import seeded_ids, wrap
from messages.schema import BalancesChanged
from runtime.atomic import AtomicSteps
from runtime.bus import StreamBus, command_client
from tests.kit.bus import CountingHandler

pytestmark = pytest.mark.redis

AGENTS = ["wave-a", "wave-b", "wave-c"]


class LazyFuture:
    """Runs the handler when the bus waits for it, so the test sees what was handed over together."""

    def __init__(self, log, handler, delivery):
        self.log, self.handler, self.delivery = log, handler, delivery

    def get(self, timeout=None):
        self.log.append(("done", self.delivery.envelope.agent, self.delivery.envelope.id))
        return self.handler(self.delivery)


def setup_bus(redis_url, keys, handler, log):
    def submit(delivery):
        log.append(("start", delivery.envelope.agent, delivery.envelope.id))
        return LazyFuture(log, handler, delivery)

    bus = StreamBus(redis_url, keys, "casino", range(keys.shards), handler, block_ms=50, submit=submit)
    bus.ensure_groups()
    return bus


def publish(rclient, keys, order):
    ids = seeded_ids(5)
    sent = []
    for agent in order:
        env = wrap(BalancesChanged(cause="t"), agent=agent, now_ms=1, new_id=ids)
        rclient.xadd(keys.agent_commands(agent, "casino"), {FIELD: encode(env)})
        sent.append(env)
    return sent


def test_an_agent_never_has_two_entries_in_flight_and_keeps_its_order(redis_url, keys, rclient):
    steps = AtomicSteps(command_client(redis_url), keys)
    handler = CountingHandler(steps)
    log: list[tuple[str, str, str]] = []
    bus = setup_bus(redis_url, keys, handler, log)
    sent = publish(rclient, keys, ["wave-a", "wave-b", "wave-a", "wave-c", "wave-a", "wave-b"] * 3)
    while bus.poll_once(block_ms=20):
        pass
    assert bus.processed == len(sent) and handler.calls == len(sent)
    in_flight: set[str] = set()
    for kind, agent, _ in log:
        if kind == "start":
            assert agent not in in_flight, "a second entry of an agent was handed over before the first was done"
            in_flight.add(agent)
        else:
            in_flight.discard(agent)
    assert max(sum(1 for k, _, _ in log[:i] if k == "start") - sum(1 for k, _, _ in log[:i] if k == "done")
               for i in range(len(log) + 1)) > 1, "different agents were handed over together"
    for agent in AGENTS:
        done = [mid for kind, a, mid in log if kind == "done" and a == agent]
        assert done == [e.id for e in sent if e.agent == agent]
        pending = rclient.xpending(keys.agent_commands(agent, "casino"), "g:casino")["pending"]
        assert pending == 0
        assert int(rclient.hget(keys.ledger(agent), "applied")) == sum(1 for e in sent if e.agent == agent)


def test_a_redis_fault_in_a_wave_concludes_the_others_and_leaves_its_entry_pending(redis_url, keys, rclient):
    steps = AtomicSteps(command_client(redis_url), keys)
    handler = CountingHandler(steps)
    sent = publish(rclient, keys, AGENTS)
    broken = sent[1].id

    def flaky(delivery):
        if delivery.envelope.id == broken:
            raise redis.ConnectionError("connection reset")
        return handler(delivery)

    bus = setup_bus(redis_url, keys, flaky, [])
    with pytest.raises(redis.ConnectionError):
        bus.poll_once(block_ms=20)
    assert bus.processed == 2  # the rest of the wave was applied and counted
    assert rclient.xpending(keys.agent_commands(sent[1].agent, "casino"), "g:casino")["pending"] == 1
    bus.handler = handler
    bus.submit = None
    assert bus.drain_own_pending() == 1  # as after any outage: it is handled once, now
    assert all(int(rclient.hget(keys.ledger(e.agent), "applied")) == 1 for e in sent)


def test_a_batch_spreads_into_waves_of_each_agents_kth_entry_cut_where_an_entry_names_no_agent():
    from runtime.bus import _Prepared, _waves

    def ready(agent):
        return _Prepared(wrap(BalancesChanged(cause="t"), agent=agent, now_ms=1, new_id=seeded_ids(1)), None, None)

    order = ["a", "a", "b", "c", "b", None, "a", "b"]  # None: an entry that did not decode
    items = [("s", f"1-{i}", {b"m": b"x"}) for i in range(len(order))]
    prepared = [ready(agent) if agent else _Prepared(None, ValueError("bad"), None) for agent in order]
    waves = [[entry_id for _, entry_id, _, _ in wave] for wave in _waves(items, prepared)]
    assert waves == [["1-0", "1-2", "1-3"], ["1-1", "1-4"], ["1-5"], ["1-6", "1-7"]]
