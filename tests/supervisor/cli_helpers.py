"""Running the real `treasury` command in a subprocess, for the command-line tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

DEAD_REDIS = "redis://127.0.0.1:1/0"
"""A URL nothing listens on (port 1)."""


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any deployment pointers, plus `extra`."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("REDIS_URL", "TREASURY_DATA_DIR", "TREASURY_KEYS", "TREASURY_KEYS_FILE")}
    env.update(extra)
    return env


def treasury(*args: str, env: dict[str, str] | None = None, cwd=None,
             timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "supervisor.cli", *args], env=env if env is not None else clean_env(),
                          cwd=cwd, capture_output=True, text=True, timeout=timeout)


def one_line_error(proc: subprocess.CompletedProcess, code: int = 2) -> str:
    """Assert `proc` failed with `code`, printed nothing on stdout and exactly one line on stderr."""
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stdout == "", proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def stop_up(proc: subprocess.Popen, timeout: float = 30) -> None:
    """Stop a `treasury up` started by a test as an operator would (SIGTERM: it drains its workers
    and exits), killing it only if it has not exited after `timeout` seconds."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
