"""A deployment directory has one owner (issue 13, cases 2 and 3), run with the real command:

- a second `treasury up` on the same directory says "already running here (pid N)", exit 2, and
  touches nothing of the first;
- after `kill -9` of the owner, the next `up` stops the redis-server and sandbox it left (saying
  so), removes its stale redis.url, and resumes on the same data: one server per data directory.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from supervisor.ownership import pid_alive
from tests.supervisor.cli_helpers import clean_env, one_line_error, treasury

pytestmark = pytest.mark.redis


class Up:
    """A `treasury up` subprocess whose stderr lines are collected as they come."""

    def __init__(self, d: Path, env: dict[str, str], *extra: str):
        self.proc = subprocess.Popen([sys.executable, "-m", "supervisor.cli", "up", "--data-dir", str(d),
                                      "--roles", "risk", *extra], env=env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.lines).split())  # rich may wrap long lines

    def wait_running(self, timeout_s: float = 90) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if "running owner pid" in self.text:
                return
            if self.proc.poll() is not None:
                self._reader.join(5)
                raise AssertionError(f"treasury up exited {self.proc.returncode}: {self.text}")
            time.sleep(0.1)
        raise AssertionError(f"treasury up did not start: {self.text}")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(60)
        self._reader.join(5)
        return code


def _lock_pid(path: Path) -> int | None:
    try:
        return json.loads(path.read_text() or "{}").get("pid")
    except (OSError, ValueError):
        return None


def _wait_gone(pid: int, timeout_s: float = 20) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return False


def _kill_leftovers(d: Path) -> None:
    for lock in (d / "redis" / "server.lock", d / "sandbox.lock"):
        pid = _lock_pid(lock)
        if pid and pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_one_owner_and_what_a_killed_owner_left_is_stopped(tmp_path):
    d = tmp_path / "deploy"
    env = clean_env()  # no REDIS_URL: the deployment's own embedded redis-server, AOF in d/redis
    first = Up(d, env)
    try:
        first.wait_running()
        added = treasury("agent", "add", "alice", "--capital", "100", "--data-dir", str(d), env=env, timeout=120)
        assert added.returncode == 0, added.stderr

        second = treasury("up", "--data-dir", str(d), "--roles", "risk", env=env)
        line = one_line_error(second)
        assert line.startswith(f"treasury up: error: already running here (pid {first.proc.pid})")
        assert first.proc.poll() is None and (d / "redis.url").exists()  # the first one is untouched

        redis_pid, sandbox_pid = _lock_pid(d / "redis" / "server.lock"), _lock_pid(d / "sandbox.lock")
        assert redis_pid and sandbox_pid
        first.proc.kill()  # kill -9: no clean-up runs
        first.proc.wait(10)
        assert pid_alive(redis_pid) and pid_alive(sandbox_pid)  # orphans, still holding the data files

        line = one_line_error(treasury("status", "--data-dir", str(d), env=env))
        assert "is not running (its redis.url is left from a stopped run)" in line

        third = Up(d, env)
        try:
            third.wait_running()
            assert f"removed the stale redis.url left by a previous run (pid {first.proc.pid}" in third.text
            assert f"found the redis-server (pid {redis_pid}) a previous `treasury up` left running" in third.text
            assert f"found the sandbox (pid {sandbox_pid})" in third.text
            assert not pid_alive(redis_pid) and not pid_alive(sandbox_pid)
            new_redis = _lock_pid(d / "redis" / "server.lock")
            assert new_redis not in (None, redis_pid) and pid_alive(new_redis)
            listed = treasury("agent", "list", "--data-dir", str(d), "--json", env=env)
            assert listed.returncode == 0, listed.stderr
            (alice,) = json.loads(listed.stdout)["agents"]  # the ledger survived, from the same AOF
            assert alice["agent"] == "alice" and alice["total_micros"] == 100_000_000
        finally:
            assert third.stop() == 0, third.text
        assert _wait_gone(new_redis) and not (d / "redis.url").exists()
    finally:
        if first.proc.poll() is None:
            first.proc.kill()
        _kill_leftovers(d)


def test_a_stale_url_file_whose_redis_is_gone_is_removed_not_followed(tmp_path, redis_url, prefix):
    d = tmp_path / "deploy"
    d.mkdir()
    (d / "redis.url").write_text("redis://127.0.0.1:1/0\n")  # the dead owner's Redis is gone too
    (d / "owner.lock").write_text(json.dumps({"pid": 999_999_999}))
    up = Up(d, clean_env(REDIS_URL=redis_url), "--prefix", prefix, "--venues-from", "http://127.0.0.1:9")
    try:
        up.wait_running()
        assert "removed the stale redis.url left by a previous run (pid 999999999" in up.text
        assert (d / "redis.url").read_text() == redis_url
    finally:
        assert up.stop() == 0, up.text
    assert "Traceback" not in up.text
