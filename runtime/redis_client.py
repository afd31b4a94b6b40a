"""Redis clients from a URL: a plain server or a Redis Cluster.

`redis://host:port/db` (and `rediss://`, `unix://`) gives a `redis.Redis`; `redis+cluster://host:port`
(or `rediss+cluster://` for TLS) gives a `redis.cluster.RedisCluster` that discovers every node
from the one named (a cluster has only database 0: a path other than `/` or `/0` is refused).

Every key carries its shard as a hash tag (`runtime.keys`), so each atomic step stays in one
slot; what a cluster changes for the callers is multi-key reads across shards (the bus and the
control listener read one slot at a time there: `is_cluster`).
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.cluster import ClusterPipeline, RedisCluster
from redis.crc import key_slot
from redis.exceptions import RedisClusterUnreachableError

from messages.errors import ConfigError
from runtime.packing import CONNECTION_FOR_SCHEME

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


class ClusterUnreachable(redis.ConnectionError):
    """No node of a Redis Cluster answered. redis-py says so with `RedisClusterUnreachableError`,
    which is no `RedisError`; the treasury's cluster client raises this instead, so every
    `except redis.RedisError` (the bus's backoff, the supervisor's outage handling, the CLI's one
    line) covers a cluster that is down as it covers a plain Redis that is down."""


def _translated(exc: RedisClusterUnreachableError) -> ClusterUnreachable:
    error = ClusterUnreachable(str(exc))
    error.__cause__ = exc
    return error


class _Pipeline(ClusterPipeline):
    """A cluster pipeline whose `execute` raises `ClusterUnreachable` for an unreachable cluster."""

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().execute(*args, **kwargs)
        except RedisClusterUnreachableError as exc:
            raise _translated(exc) from exc


class TreasuryCluster(RedisCluster):
    """A `RedisCluster` that behaves as `redis.Redis` does when the servers are down.

    It can be made while no node answers (redis-py's reads the slot map at once and fails): the
    slot map is then read at its first command, and every command raises `ClusterUnreachable`
    (a `redis.ConnectionError`) until a node answers, so a worker or supervisor started during an
    outage rides it out like one on a plain Redis. Commands and pipelines of a made client raise
    `ClusterUnreachable` too when the whole cluster goes away. Cross-slot mistakes stay
    `RedisClusterException` (not a Redis fault: a bug)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.__dict__["_deferred"] = (args, kwargs)
        self.__dict__["_connect_lock"] = threading.Lock()
        self.__dict__["_connecting"] = False
        try:
            self._connect()
        except ClusterUnreachable:
            pass  # read the slot map at the first command

    def _connect(self) -> None:
        with self.__dict__["_connect_lock"]:
            deferred = self.__dict__["_deferred"]
            if deferred is None:
                return
            self.__dict__["_connecting"] = True
            try:
                super().__init__(*deferred[0], **deferred[1])
            except RedisClusterUnreachableError as exc:
                raise _translated(exc) from exc
            finally:
                self.__dict__["_connecting"] = False
            self.__dict__["_deferred"] = None

    def __getattr__(self, name: str) -> Any:
        # only called for an attribute the instance lacks: before the slot map could be read
        if name.startswith("__") or self.__dict__.get("_deferred") is None or self.__dict__.get("_connecting"):
            raise AttributeError(name)
        self._connect()
        return getattr(self, name)

    @property
    def connected(self) -> bool:
        """Whether the slot map has been read (the client was made, or has since reached a node)."""
        return self.__dict__.get("_deferred") is None

    def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().execute_command(*args, **kwargs)  # type: ignore[no-untyped-call]
        except RedisClusterUnreachableError as exc:
            raise _translated(exc) from exc

    def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> Any:
        pipe = super().pipeline(transaction, shard_hint)  # type: ignore[no-untyped-call]
        pipe.__class__ = _Pipeline
        return pipe

    def close(self) -> None:
        if self.connected:
            super().close()


def make_client(url: str, *, socket_timeout: float = 10, socket_connect_timeout: float = 5, **kwargs: Any) -> Client:
    """A client for `url`: `RedisCluster` for a `redis+cluster://` URL, else `redis.Redis`.

    Connections pack commands with `runtime.packing.FastPacker` (the same bytes, less CPU).
    Timeouts are in seconds. Errors: `ConfigError` for a cluster URL naming a database other
    than 0. Neither client needs its server up to be made: a cluster one (`TreasuryCluster`)
    reads the slot map at its first command if it cannot at once, and raises `ClusterUnreachable`
    until then; redis errors (a node not in cluster mode) when a node answers wrongly.
    """
    connection_class = CONNECTION_FOR_SCHEME.get(urlsplit(plain_url(url)).scheme)
    if connection_class is not None:
        kwargs.setdefault("connection_class", connection_class)  # packs without redis-py's encoder loop
    if is_cluster_url(url):
        kwargs.pop("health_check_interval", None)
        return TreasuryCluster.from_url(plain_url(url), socket_timeout=socket_timeout,
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

