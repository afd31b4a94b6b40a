"""Many agents onboarded in parallel: every one registered and funded once, failures reported."""

from __future__ import annotations

import threading

import pytest

from actors.ledger import read_ledger
from messages.errors import ConfigError
from messages.money import parse_usd
from runtime.bus import command_client
from sandbox.runner import start_sandbox
from supervisor.onboard_many import onboard_many

pytestmark = pytest.mark.redis


def test_parallel_onboarding_on_the_sandbox_is_complete_and_a_rerun_changes_nothing(redis_url, keys):
    client = command_client(redis_url)
    agents = [(f"many-{i}", parse_usd("100")) for i in range(8)]
    seen = []
    with start_sandbox(seed=11) as sandbox:
        venues = dict(sandbox.urls)
        report = onboard_many(client, keys, venues, "paper", agents, parallel=4,
                              progress=lambda done, total: seen.append((done, total)))
        assert sorted(report.done) == sorted(a for a, _ in agents) and report.failed == {}
        assert seen == [(n, 8) for n in range(1, 9)]
        for name, capital in agents:
            assert read_ledger(client, keys, name).total == capital
            assert client.hget(keys.credentials(name), "casino_key")
        again = onboard_many(client, keys, venues, "paper", agents, parallel=4)
        assert all("exists already: nothing was done" in line and "allocated" not in line for line in again.lines)
        for name, capital in agents:
            assert read_ledger(client, keys, name).total == capital
    assert {m.decode() for m in client.smembers(keys.agents())} == {a for a, _ in agents}


def test_one_failure_is_reported_and_the_others_go_on():
    lock = threading.Lock()
    added = []

    def add(client, keys, venues, mode, name, capital):
        if name == "bad":
            raise ConfigError("the casino refused the registration")
        with lock:
            added.append(name)
        return f"agent {name}: ok"

    report = onboard_many(None, None, {}, "paper", [("a", 1), ("bad", 1), ("c", 1)], parallel=2, add=add)
    assert sorted(report.done) == ["a", "c"] and sorted(added) == ["a", "c"]
    assert report.failed == {"bad": "ConfigError: the casino refused the registration"}
