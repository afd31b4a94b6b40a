"""Fixtures of the referral, onboarding and chain-view tests (helpers in tests/kit/referral.py):
a sandbox on a still clock per test module, atomic steps on the test Redis, a manual clock."""

from __future__ import annotations

import pytest

from runtime.atomic import AtomicSteps
from runtime.bus import command_client
from runtime.clock import ManualClock
from sandbox.clock import ManualClock as SandboxClock
from sandbox.runner import start_sandbox


@pytest.fixture(scope="module")
def sandbox():
    handle = start_sandbox(seed=11, clock=SandboxClock())
    yield handle
    handle.stop()


@pytest.fixture
def steps(redis_url, keys):
    client = command_client(redis_url)
    yield AtomicSteps(client, keys)
    client.close()


@pytest.fixture
def clock():
    return ManualClock()
