"""Start and stop worker processes, and find the Redis to use (REDIS_URL or an embedded one)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from typing import Iterator

from messages.errors import ConfigError
from supervisor.embedded_redis import EmbeddedRedis


@contextlib.contextmanager
def redis_for_run(data_dir: str | None = None, say=None,
                  url: str | None = None) -> Iterator[tuple[str, EmbeddedRedis | None]]:
    """Yields (url, embedded server or None): `url` when given, else REDIS_URL when set (either may
    be a `redis+cluster://` URL), else a fresh embedded redis-server (one that a dead owner left
    on `data_dir` is stopped first; `say(line)` tells the operator; appendfsync from
    TREASURY_REDIS_APPENDFSYNC: always, the default, everysec or no)."""
    url = url or os.environ.get("REDIS_URL")
    if url:
        yield url, None
        return
    server = EmbeddedRedis(data_dir=data_dir, say=say,
                           appendfsync=os.environ.get("TREASURY_REDIS_APPENDFSYNC", "always"))
    try:
        yield server.start(), server
    finally:
        server.stop()


@dataclass
class WorkerProcess:
    role: str
    process: subprocess.Popen
    consumer: str

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def terminate(self, timeout_s: float = 15.0) -> int:
        """SIGTERM (graceful drain), then SIGKILL if it does not exit in time."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self.process.stdout:
            self.process.stdout.close()
        return self.process.returncode


def spawn_worker(role: str, redis_url: str, *, prefix: str, shard_count: int, casino_url: str = "",
                 clock: str = "system", shards: str = "all", consumer: str | None = None,
                 extra: list[str] | None = None, env: dict[str, str] | None = None,
                 ready_timeout_s: float = 20.0) -> WorkerProcess:
    """Start `python -m supervisor.worker` and wait for its ready line."""
    args = [sys.executable, "-m", "supervisor.worker", "--role", role, "--redis-url", redis_url, "--prefix", prefix,
            "--shard-count", str(shard_count), "--shards", shards, "--casino-url", casino_url, "--clock", clock]
    if consumer:
        args += ["--consumer", consumer]
    args += extra or []
    # Own session: a terminal's Ctrl-C reaches only the supervisor, which then stops the workers
    # in order (drain first), instead of every process at once.
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                            env={**os.environ, **(env or {}), "TREASURY_PARENT_PID": str(os.getpid())},
                            start_new_session=True)
    line = readline_with_timeout(proc, ready_timeout_s)
    try:
        ready = json.loads(line)
    except json.JSONDecodeError:
        proc.kill()
        raise ConfigError(f"worker {role} did not start: {line!r}") from None
    return WorkerProcess(role, proc, ready["consumer"])


def readline_with_timeout(proc: subprocess.Popen, timeout_s: float) -> str:
    import selectors

    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    if not sel.select(timeout_s):
        proc.kill()
        raise ConfigError(f"worker did not report ready within {timeout_s}s")
    return proc.stdout.readline()
