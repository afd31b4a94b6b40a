"""A Redis Cluster of masters on loopback, for tests and benchmarks (never for a deployment's data).

Every node is the same redis-server binary started with `--cluster-enabled yes` on its own free
port, no persistence, in a temporary directory. Three masters or more are joined with
`redis-cli --cluster create ... --cluster-replicas 0 --cluster-yes`; one or two (which redis-cli
refuses) get their slots with CLUSTER ADDSLOTS and meet each other. `url` is a `redis+cluster://`
URL (`runtime.redis_client`). Stopped with `stop()` or at the end of a `with` block.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from types import TracebackType
from typing import Any

import redis

from messages.errors import ConfigError

SLOTS = 16384


def _free_port() -> int:
    """A free port whose cluster bus port (port + 10000) is valid and free too."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port + 10000 > 65535:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise ConfigError("no free loopback port pair for a cluster node")


def system_redis_server() -> str:
    """REDIS_SERVER, else the system's redis-server (a cluster needs `redis-cli` beside it)."""
    for candidate in (os.environ.get("REDIS_SERVER"), "/usr/bin/redis-server", "/usr/local/bin/redis-server",
                      shutil.which("redis-server")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise ConfigError("no redis-server binary found for a cluster (install redis-server)")


class LocalCluster:
    """`nodes` masters on 127.0.0.1 sharing the 16384 slots evenly; `url` once started."""

    def __init__(self, nodes: int = 3, binary: str | None = None, timeout_s: float = 20):
        if nodes < 1:
            raise ConfigError("a cluster needs at least one node")
        self.nodes = nodes
        self.binary = binary or system_redis_server()
        self.cli = os.path.join(os.path.dirname(self.binary), "redis-cli")
        self.timeout_s = timeout_s
        self.ports: list[int] = []
        self.procs: list[subprocess.Popen[bytes]] = []
        self.workdir = ""

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.ports[0]}"

    def start(self) -> str:
        """Start the nodes, join them, wait until every node says `cluster_state:ok`; returns `url`."""
        self.workdir = tempfile.mkdtemp(prefix="redis-cluster-")
        try:
            for _ in range(self.nodes):
                port = _free_port()
                folder = os.path.join(self.workdir, str(port))
                os.makedirs(folder)
                self.procs.append(subprocess.Popen(
                    [self.binary, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                     "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "5000", "--save", "",
                     "--appendonly", "no", "--dir", folder],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
                self.ports.append(port)
            for port in self.ports:
                self._wait(lambda c: bool(c.ping()), port)
            self._join()
            for port in self.ports:
                self._wait(_cluster_ok, port)
        except BaseException:
            self.stop()
            raise
        return self.url

    def _join(self) -> None:
        if self.nodes >= 3 and os.access(self.cli, os.X_OK):
            addresses = [f"127.0.0.1:{p}" for p in self.ports]
            subprocess.run([self.cli, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
                           check=True, capture_output=True, timeout=self.timeout_s)
            return
        per = SLOTS // self.nodes
        for i, port in enumerate(self.ports):
            first, last = i * per, SLOTS - 1 if i == self.nodes - 1 else (i + 1) * per - 1
            client: Any = redis.Redis(port=port)  # execute_command is untyped
            client.execute_command("CLUSTER ADDSLOTS", *range(first, last + 1))
            if i:
                client.execute_command("CLUSTER MEET", "127.0.0.1", self.ports[0])
            client.close()

    def _wait(self, ready, port: int) -> None:  # type: ignore[no-untyped-def]
        client = redis.Redis(port=port, socket_timeout=2)
        deadline = time.monotonic() + self.timeout_s
        try:
            while True:
                try:
                    if ready(client):
                        return
                except redis.RedisError:
                    pass
                if time.monotonic() > deadline:
                    raise ConfigError(f"cluster node 127.0.0.1:{port} not ready after {self.timeout_s} s")
                time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.procs.clear()
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _cluster_ok(client: Any) -> bool:
    state = client.execute_command("CLUSTER INFO").get("cluster_state")  # parsed into a dict by redis-py
    return state in ("ok", b"ok")
