"""One owner per deployment directory, and what a dead owner left behind.

`treasury up` takes `<data-dir>/owner.lock` (an exclusive `flock`, released by the kernel when
the process dies, even by `kill -9`) and writes its pid there. A second `treasury up` on the same
directory cannot take it and stops with "already running here (pid N)".

Each long-lived child the owner starts (the embedded redis-server, the sandbox) gets its own lock
file (`redis.lock`, `sandbox.lock`) whose descriptor the child inherits, with the child's pid
written in it. The lock lives as long as the child, whoever its parent is. So when a new owner
finds a child lock still held, the previous owner died and left that child running (an orphan):
`stop_leftover` stops it (SIGTERM, then SIGKILL) before a new one starts, so two redis-servers
never share one append-only file and two sandboxes never share one SQLite file. The stale
`redis.url` of a dead owner is removed at the same time.

Linux and macOS (`fcntl.flock`).
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import time
from pathlib import Path
from typing import Callable

from messages.errors import ConfigError

OWNER_LOCK = "owner.lock"


class AlreadyRunning(ConfigError):
    """Another live `treasury up` owns the data directory."""

    def __init__(self, d: Path, pid: int | None):
        self.pid = pid
        super().__init__(f"already running here (pid {pid if pid is not None else '?'}): {d} has an owner; stop it "
                         f"first, or use another --data-dir")


def _read_record(path: Path) -> dict:
    try:
        data = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_record(fd: int, record: dict) -> None:
    data = json.dumps(record).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)


def _try_lock(path: Path) -> int | None:
    """An open descriptor holding an exclusive lock on `path`, or None when someone else holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def owner_pid(d: Path) -> int | None:
    """The pid of the live owner of data directory `d`, or None when nobody owns it."""
    path = d / OWNER_LOCK
    if not path.exists():
        return None
    fd = _try_lock(path)
    if fd is not None:  # we could take it: nobody holds it
        os.close(fd)
        return None
    pid = _read_record(path).get("pid")
    return pid if isinstance(pid, int) else -1


def pid_alive(pid: int) -> bool:
    """True while `pid` runs (a zombie, dead but not yet collected, counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


class OwnerLock:
    """The data directory's owner lock, held by this process until `release()` or its death.

    `acquire()` raises `AlreadyRunning(pid)` when another live process holds it. After it, `previous`
    is what the last owner wrote (its pid), so callers can say a dead owner was found."""

    def __init__(self, d: Path):
        self.dir = d
        self.path = d / OWNER_LOCK
        self.fd: int | None = None
        self.previous: dict = {}

    def acquire(self) -> "OwnerLock":
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = _try_lock(self.path)
        if fd is None:
            pid = _read_record(self.path).get("pid")
            raise AlreadyRunning(self.dir, pid if isinstance(pid, int) else None)
        self.fd = fd
        self.previous = _read_record(self.path)
        _write_record(fd, {"pid": os.getpid(), "started_ms": int(time.time() * 1000)})
        return self

    def release(self) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> "OwnerLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


class ChildLock:
    """A lock file a child process inherits (`pass_fds=[lock.fd]`), so it is held while the child lives.

    `take(say)` gets the lock, first stopping a leftover child that still holds it (see module doc);
    `record(pid)` writes the child's pid; `close()` drops this process's descriptor (the child's stays)."""

    def __init__(self, path: Path, what: str):
        self.path = path
        self.what = what
        self.fd: int | None = None

    def take(self, say: Callable[[str], None], timeout_s: float = 15.0) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = _try_lock(self.path)
        if fd is None:
            record = _read_record(self.path)
            pid = record.get("pid")
            stop_leftover(pid if isinstance(pid, int) else None, self.what, say, timeout_s)
            deadline = time.monotonic() + timeout_s
            while fd is None and time.monotonic() < deadline:
                time.sleep(0.05)
                fd = _try_lock(self.path)
            if fd is None:
                raise ConfigError(f"{self.what} lock {self.path} is still held after stopping pid {pid}: something "
                                  f"else runs on this data directory; stop it by hand")
        self.fd = fd
        _write_record(fd, {})
        return fd

    def record(self, pid: int, **extra) -> None:
        if self.fd is not None:
            _write_record(self.fd, {"pid": pid, **extra})

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def stop_leftover(pid: int | None, what: str, say: Callable[[str], None], timeout_s: float = 15.0) -> None:
    """Stop the `what` (pid `pid`) a dead owner left running: SIGTERM, then SIGKILL after `timeout_s`."""
    if pid is None or pid <= 0 or pid == os.getpid() or not pid_alive(pid):
        return
    say(f"found the {what} (pid {pid}) a previous `treasury up` left running when it died: stopping it")
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and pid_alive(pid):
        _reap(pid)
        time.sleep(0.05)
    if pid_alive(pid):
        say(f"the {what} (pid {pid}) ignored SIGTERM for {timeout_s:g} s: killing it")
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        time.sleep(0.2)
        _reap(pid)


def _reap(pid: int) -> None:
    """Collect `pid` if it happens to be our own child (a zombie counts as alive to kill(0))."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
