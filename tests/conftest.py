"""Shared fixtures: a real Redis (REDIS_TEST_URL, default db 15 on 127.0.0.1:6379) for bus tests,
fakeredis for fast unit tests. Each test gets its own key prefix and cleans it up.

Helpers shared by several test modules are in the `tests.kit` package; fixtures are in conftest.py
files, so no test module imports another."""

from __future__ import annotations

import os
import uuid

import pytest
import redis

from runtime.keys import Keys

pytest_plugins = ["tests.kit.sandbox"]
"""The sandbox fixtures (tests/kit/sandbox.py) serve the venue client and sandbox tests."""

REDIS_TEST_URL = os.environ.get("REDIS_TEST_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
def redis_url() -> str:
    client = redis.Redis.from_url(REDIS_TEST_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.fail(f"no Redis at {REDIS_TEST_URL}: start one (.ci/run does) or set REDIS_TEST_URL")
    finally:
        client.close()
    return REDIS_TEST_URL


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
