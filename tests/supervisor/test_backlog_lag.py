"""The command backlog's lag where Redis reports none (probe item 18): on the embedded Redis 6.2
(no `lag` in XINFO GROUPS) and on Redis 7 after an entry was deleted, the lag is counted from the
group's last-delivered id, not shown as `?`."""

from __future__ import annotations

import pytest
import redis

from runtime.keys import Keys
from supervisor import status as status_mod
from supervisor.embedded_redis import EmbeddedRedis
from supervisor.status import backlog_rows

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def redis62():
    with EmbeddedRedis(appendonly=False) as url:
        client = redis.Redis.from_url(url)
        yield client
        client.close()


@pytest.fixture(params=["shared", "embedded"])
def server(request, rclient):
    return rclient if request.param == "shared" else request.getfixturevalue("redis62")


def _backlog(client: redis.Redis, keys: Keys, *, delete_one: bool) -> dict:
    """Shard 1 of the casino role: 5 commands, 2 delivered (1 acknowledged); optionally the 4th deleted."""
    stream = keys.commands(1, "casino")
    ids = [client.xadd(stream, {"m": f"c{n}"}) for n in range(5)]
    client.xgroup_create(stream, "g:casino", id="0")
    client.xreadgroup("g:casino", "w1", {stream: ">"}, count=2)
    client.xack(stream, "g:casino", ids[0])
    if delete_one:
        client.xdel(stream, ids[3])
    return backlog_rows(client, keys, roles=["casino"])["casino"]


@pytest.mark.parametrize("delete_one, lag", [(False, 3), (True, 2)])
def test_lag_is_the_entries_not_yet_delivered(server, prefix, delete_one, lag):
    keys = Keys(prefix=prefix, shards=4)
    try:
        row = _backlog(server, keys, delete_one=delete_one)
    finally:
        server.delete(*[keys.commands(s, "casino") for s in range(keys.shards)])
    assert (row["pending"], row["lag"]) == (1, lag)  # oracle: 5 added, 2 delivered, minus the deleted one
    assert row["busy_shards"] == [{"shard": 1, "pending": 1, "lag": lag}]
    assert not row.get("lag_at_least")


def test_a_long_backlog_is_counted_up_to_a_bound(redis62, prefix, monkeypatch):
    monkeypatch.setattr(status_mod, "LAG_SCAN", 2)
    keys = Keys(prefix=prefix, shards=4)
    try:
        row = _backlog(redis62, keys, delete_one=False)
    finally:
        redis62.delete(*[keys.commands(s, "casino") for s in range(keys.shards)])
    assert row["lag"] == 2 and row["lag_at_least"] is True  # shown as "2+"
