"""`treasury watch` writing into a pipe or a file, run as the real command in a subprocess:
a reader that goes away (`| head`) ends it quietly, SIGTERM leaves every printed frame on disk."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.supervisor.cli_helpers import clean_env
from tests.supervisor.test_status import deployment  # noqa: F401 - the fixture

pytestmark = pytest.mark.redis


def _watch_argv(redis_url, keys, *extra: str) -> list[str]:
    return [sys.executable, "-m", "supervisor.cli", "watch", "--redis-url", redis_url, "--prefix", keys.prefix,
            "--shard-count", str(keys.shards), "--no-probe", "--interval", "0.2", *extra]


def test_watch_into_head_stops_quietly(redis_url, keys, deployment):  # noqa: F811
    watch = subprocess.Popen(_watch_argv(redis_url, keys), env=clean_env(COLUMNS="100"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    head = subprocess.run(["head", "-n", "3"], stdin=watch.stdout, capture_output=True, timeout=60)
    watch.stdout.close()  # only head reads the pipe now: when it exits, the pipe has no reader
    err = watch.stderr.read().decode()
    code = watch.wait(timeout=60)
    assert len(head.stdout.decode().splitlines()) == 3
    assert code in (0, 141), (code, err)
    assert err == "", err  # no traceback, no "error: [Errno 32] Broken pipe"


def test_sigterm_flushes_what_watch_printed(tmp_path, redis_url, keys, deployment):  # noqa: F811
    out = tmp_path / "watch.txt"
    with out.open("wb") as sink:
        watch = subprocess.Popen(_watch_argv(redis_url, keys), env=clean_env(COLUMNS="100"),
                                 stdout=sink, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while out.stat().st_size == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        os.kill(watch.pid, signal.SIGTERM)
        _, err = watch.communicate(timeout=60)
    text = out.read_text()
    assert watch.returncode == 0, err
    assert "Traceback" not in err.decode()
    assert text.count("treasury watch —") >= 2  # every refresh is printed, not only a last frame
    assert "alice" in text and "command backlog" in text
