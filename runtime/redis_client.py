"""Redis clients from a URL: a plain server or a Redis Cluster.

`redis://host:port/db` (and `rediss://`, `unix://`) gives a `redis.Redis`; `redis+cluster://host:port`
(or `rediss+cluster://` for TLS) gives a `redis.cluster.RedisCluster` that discovers every node
from the one named (a cluster has only database 0: a path other than `/` or `/0` is refused).

Every key carries its shard as a hash tag (`runtime.keys`), so each atomic step stays in one
slot; what a cluster changes for the callers is multi-key reads across shards (the bus and the
control listener read one slot at a time there: `is_cluster`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot

from messages.errors import ConfigError

CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}

Client = Any
"""`redis.Redis` or `redis.cluster.RedisCluster` (the same command methods; typed loosely)."""


def is_cluster_url(url: str) -> bool:
    """True for a `redis+cluster://` or `rediss+cluster://` URL."""
    return urlsplit(url).scheme in CLUSTER_SCHEMES


def is_cluster(client: Any) -> bool:
    """True when `client` talks to a Redis Cluster (a `RedisCluster` or its pipeline)."""
    return isinstance(client, RedisCluster)


def plain_url(url: str) -> str:
    """The `redis://` (or `rediss://`) URL of a cluster URL's seed node, without a database."""
    parts = urlsplit(url)
    scheme = CLUSTER_SCHEMES.get(parts.scheme)
    if scheme is None:
        return url
    if parts.path not in ("", "/", "/0"):
        raise ConfigError(f"a Redis Cluster has only database 0, not {parts.path.lstrip('/')!r}: {url}")
    return urlunsplit((scheme, parts.netloc, "", parts.query, parts.fragment))


def make_client(url: str, *, socket_timeout: float = 10, socket_connect_timeout: float = 5, **kwargs: Any) -> Client:
    """A client for `url`: `RedisCluster` for a `redis+cluster://` URL, else `redis.Redis`.

    Timeouts are in seconds. Errors: `ConfigError` for a cluster URL naming a database other
    than 0; redis errors (the seed node does not answer, it is not in cluster mode) when a
    cluster client is made, since it reads the slot map at once.
    """
    if is_cluster_url(url):
        kwargs.pop("health_check_interval", None)
        return RedisCluster.from_url(plain_url(url), socket_timeout=socket_timeout,
                                     socket_connect_timeout=socket_connect_timeout, **kwargs)
    return redis.Redis.from_url(url, socket_timeout=socket_timeout, socket_connect_timeout=socket_connect_timeout,
                                **kwargs)


def get_many(client: Client, keys: list[str]) -> list[bytes | None]:
    """GET of every key in `keys`, in order (None for a missing one): one MGET on a plain Redis;
    on a cluster, where one MGET may not span slots, one GET per key pipelined per node."""
    if not keys:
        return []
    if not is_cluster(client):
        return list(client.mget(keys))
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.get(key)
    return list(pipe.execute())


def slot_of(key: str | bytes) -> int:
    """The Redis Cluster hash slot of `key` (CRC16 of its `{tag}` if it has one, mod 16384)."""
    return int(key_slot(key.encode() if isinstance(key, str) else key))

