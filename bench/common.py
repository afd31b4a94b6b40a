"""What the benchmarks share: their own redis-server on a free port, CPU and memory readings.

Every benchmark runs against a Redis it starts itself (never a shared test database) and
prints a table and one JSON line, with its baseline measured in the same run.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import socket
import subprocess
import tempfile
import time
from typing import Iterator

import redis

CLK_TCK = os.sysconf("SC_CLK_TCK")


def redis_server_binary() -> str:
    """REDIS_SERVER, else the system's redis-server (not a venv copy an older library may ship)."""
    for candidate in (os.environ.get("REDIS_SERVER"), "/usr/bin/redis-server", "/usr/local/bin/redis-server"):
        if candidate and os.path.exists(candidate):
            return candidate
    return shutil.which("redis-server") or "redis-server"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def own_redis(*extra: str, port: int | None = None) -> Iterator[tuple[str, subprocess.Popen]]:
    """A fresh redis-server (no persistence) on its own port; yields (url, process)."""
    port = port or free_port()
    workdir = tempfile.mkdtemp(prefix="bench-redis-")
    proc = subprocess.Popen([redis_server_binary(), "--port", str(port), "--save", "",
                             "--appendonly", "no", "--dir", workdir, *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    for _ in range(200):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.02)
    client.close()
    try:
        yield url, proc
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process (from /proc), in seconds; 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def machine() -> str:
    cpu = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, {cpu}, "
            f"Python {platform.python_version()}")


def memory_by_kind(client: redis.Redis, prefix: str) -> dict[str, tuple[int, int]]:
    """Kind of key (its name without prefix, shard tag and agent: `events`, `values`, ...) ->
    (bytes by MEMORY USAGE, keys), for seeing what grows."""
    out: dict[str, tuple[int, int]] = {}
    for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        parts = key.decode().split(":")
        kind = parts[2] if len(parts) > 2 and parts[1].startswith("{") else parts[1]
        size, n = out.get(kind, (0, 0))
        out[kind] = (size + int(client.memory_usage(key, samples=0) or 0), n + 1)
    return out


def prefix_memory(client: redis.Redis, prefix: str) -> tuple[int, int]:
    """(bytes, keys) of every key under `prefix:` by MEMORY USAGE (exact: SAMPLES 0)."""
    total = n = 0
    for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        total += int(client.memory_usage(key, samples=0) or 0)
        n += 1
    return total, n
