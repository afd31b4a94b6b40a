"""A Redis Cluster that does not answer is a Redis outage like any other: a client can be made
during it (the slot map is read at the first command once a node answers), and commands and
pipelines raise `ClusterUnreachable`, a `redis.ConnectionError`, so the bus's backoff, the
supervisor's outage handling and the CLI's one-line errors cover it. redis-py's own
`RedisClusterUnreachableError` is no `RedisError`: it would have ended a worker as a bug.

The outage is three masters stopped with SIGSTOP (a stall: connections time out), then resumed.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import pytest
import redis

from messages.codec import FIELD, encode
from messages.envelope import seeded_ids, wrap
from messages.schema import BalancesChanged
from runtime.atomic import AtomicSteps
from runtime.bus import StreamBus
from runtime.keys import Keys
from runtime.redis_client import ClusterUnreachable, TreasuryCluster, is_cluster, make_client
from runtime.redis_faults import Fault, classify


@pytest.fixture(scope="module")
def cluster():
    from supervisor.embedded_cluster import LocalCluster

    try:
        local = LocalCluster(3)
        local.start()
    except Exception as exc:  # no redis-server, no cluster support, no free ports: not this machine
        pytest.skip(f"cannot start a Redis Cluster here: {exc}")
    yield local
    local.stop()


class Stalled:
    """Every node stopped while the block runs, resumed after it."""

    def __init__(self, cluster):
        self.cluster = cluster

    def __enter__(self) -> None:
        for proc in self.cluster.procs:
            proc.send_signal(signal.SIGSTOP)

    def __exit__(self, *exc: object) -> None:
        for proc in self.cluster.procs:
            proc.send_signal(signal.SIGCONT)


def _until_answers(client) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            client.ping()
            return
        except redis.RedisError:
            assert time.monotonic() < deadline, "the cluster did not answer again"
            time.sleep(0.1)


@pytest.fixture
def quick(cluster) -> Iterator[TreasuryCluster]:
    client = make_client(cluster.url, socket_timeout=0.5, socket_connect_timeout=0.5)
    yield client
    client.close()


def test_a_client_made_while_the_cluster_is_down_connects_once_it_answers(cluster):
    keys = Keys("outage", 4)
    with Stalled(cluster):
        client = make_client(cluster.url, socket_timeout=0.5, socket_connect_timeout=0.5)
        assert is_cluster(client) and not client.connected
        AtomicSteps(client, keys)  # scripts registered without a round trip, as on a plain Redis
        with pytest.raises(ClusterUnreachable) as raised:
            client.set(keys.ledger("a"), 1)
        assert isinstance(raised.value, redis.ConnectionError)
        assert classify(raised.value) is not Fault.FATAL
    _until_answers(client)
    assert client.connected
    client.set(keys.ledger("a"), 1)
    assert client.get(keys.ledger("a")) == b"1"
    client.close()


def test_a_made_client_raises_a_redis_error_from_commands_and_pipelines_while_the_cluster_is_down(cluster, quick):
    keys = Keys("outage2", 4)
    quick.set(keys.ledger("a"), 1)
    with Stalled(cluster):
        with pytest.raises(ClusterUnreachable):
            quick.get(keys.ledger("a"))
        pipe = quick.pipeline(transaction=False)
        pipe.get(keys.ledger("a"))
        with pytest.raises(ClusterUnreachable):
            pipe.execute()
    _until_answers(quick)
    assert quick.get(keys.ledger("a")) == b"1"


def test_a_bus_made_during_an_outage_delivers_once_the_cluster_answers(cluster):
    keys = Keys("outage3", 4)
    agent = "ag-late"
    seen = []
    with Stalled(cluster):  # short timeouts: each client's first try at the slot map waits them out
        clients = tuple(make_client(cluster.url, socket_timeout=0.5, socket_connect_timeout=0.5) for _ in range(2))
        bus = StreamBus(None, keys, "casino", list(range(keys.shards)), lambda d: seen.append(d),
                        clients=clients, block_ms=1)
    try:
        _until_answers(bus.client)
        bus.ensure_groups()
        env = wrap(BalancesChanged(cause="x"), agent=agent, now_ms=1, new_id=seeded_ids(1))
        bus.client.xadd(keys.agent_commands(agent, "casino"), {FIELD: encode(env)})
        deadline = time.monotonic() + 10
        while not seen:
            bus.poll_once()
            assert time.monotonic() < deadline
        assert len(seen) == 1
    finally:
        bus.close()
