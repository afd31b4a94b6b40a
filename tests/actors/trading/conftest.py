"""Fixtures of the TradingBucket tests (see tests/kit/trading.py): a sandbox with a still clock per
module, and one funded trading agent with its actor per test."""

from __future__ import annotations

import itertools

import httpx
import pytest

from actors.bootstrap import open_treasury
from actors.trading.actor import TradingBucket
from actors.trading.venue import trading_client_factory
from messages.envelope import seeded_ids
from runtime.atomic import AtomicSteps
from runtime.bus import command_client
from runtime.clock import ManualClock
from sandbox import ManualClock as VenueClock
from sandbox import start_sandbox
from tests.kit.trading import TRADING, USD, Harness
from venue.client.trading import TradingClient

_agents = itertools.count(1)


@pytest.fixture(scope="module")
def venue():
    with start_sandbox(seed=23, clock=VenueClock()) as handle:
        yield handle


@pytest.fixture
def harness(venue, redis_url, keys, rclient):
    steps = AtomicSteps(command_client(redis_url), keys)
    clock = ManualClock()
    agent = f"trader-{next(_agents)}"
    client = TradingClient(venue.urls["trading"], retries=0)
    registration = client.register()
    httpx.post(f"{venue.urls['trading']}/_sandbox/fund",
               json={"agent_id": registration.agent_id, "amount_usd": str(TRADING // USD)}).raise_for_status()
    rclient.hset(keys.credentials(agent), "trading_key", registration.api_key.reveal())
    open_treasury(steps, agent, 30_000 * USD, now_ms=clock.now_ms(), new_id=seeded_ids(5),
                  buckets={"reserve": 12_000 * USD, "trading": TRADING, "casino": 4_500 * USD, "referral": 3_500 * USD})
    rclient.xgroup_create(keys.agent_commands(agent, "trading"), "g:trading", id="0", mkstream=True)
    actor = TradingBucket.start(
        steps, clock, seeded_ids(99, "e"), trading_client_factory(rclient, keys, venue.urls["trading"])
    )
    h = Harness(agent, registration.agent_id, steps, actor, clock, venue, rclient, client)
    yield h
    actor.stop()
    client.close()
