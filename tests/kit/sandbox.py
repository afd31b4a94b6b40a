"""Sandbox fixtures, loaded for the whole suite by tests/conftest.py: real HTTP on loopback, seeded.

- `sandbox`: one sandbox for the whole session (system clock). Tests on it must create their own
  agents and leave faults off.
- `fresh_sandbox`: a new sandbox per test with a `ManualClock`, for clock and state tests.
- `sandbox_factory`: start sandboxes with custom settings; all are stopped after the test.
- `funded_agent`: a factory for a casino agent with a balance and a client holding its key.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from sandbox import ManualClock, SandboxHandle, start_sandbox
from venue.client import CasinoClient, SandboxAdmin

FAST = {"backoff_s": 0.001, "max_backoff_s": 0.01}
"""Client options for tests: retries without real waiting."""


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxHandle]:
    with start_sandbox(seed=7) as handle:
        yield handle


@pytest.fixture
def sandbox_factory() -> Iterator[Callable[..., SandboxHandle]]:
    started: list[SandboxHandle] = []

    def start(**kwargs: Any) -> SandboxHandle:
        kwargs.setdefault("clock", ManualClock())
        handle = start_sandbox(**kwargs)
        started.append(handle)
        return handle

    yield start
    for handle in started:
        handle.stop()


@pytest.fixture
def fresh_sandbox(sandbox_factory: Callable[..., SandboxHandle]) -> SandboxHandle:
    return sandbox_factory(seed=11)


@dataclass
class Agent:
    agent_id: str
    client: CasinoClient
    referral_code: str


@pytest.fixture
def funded_agent() -> Iterator[Callable[..., Agent]]:
    clients: list[CasinoClient] = []

    def make(handle: SandboxHandle, dollars: int = 100, *, referral_code: str | None = None,
             **client_options: Any) -> Agent:
        options = {**FAST, **client_options}
        client = CasinoClient(handle.urls["casino"], **options)
        clients.append(client)
        registration = client.register(referral_code)
        if dollars:
            SandboxAdmin(handle.root_url).credit(registration.agent_id, dollars * 1_000_000)
        return Agent(registration.agent_id, client, registration.referral_code)

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def admin_for() -> Callable[[SandboxHandle], SandboxAdmin]:
    return lambda handle: SandboxAdmin(handle.root_url)
