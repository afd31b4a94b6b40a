"""Fixture of the EscrowManager tests (see tests/kit/escrow.py): `world`, a treasury agent with its
sandbox casino account, a counterparty, and the escrow role's stream group."""

from __future__ import annotations

import pytest

from actors.bootstrap import open_treasury
from messages.envelope import seeded_ids
from runtime.atomic import AtomicSteps
from runtime.bus import command_client
from runtime.clock import ManualClock
from sandbox import ManualClock as VenueClock
from sandbox import start_sandbox
from tests.kit.escrow import AGENT, CASINO_BUCKET, FAST, FLOAT, GROUP, RESERVE, World
from venue.client import CasinoClient, SandboxAdmin


@pytest.fixture
def world(redis_url, keys, rclient):
    clock = ManualClock()
    sandbox = start_sandbox(seed=5, clock=VenueClock(clock.now_ms()))
    admin = SandboxAdmin(sandbox.root_url)
    casino = CasinoClient(sandbox.urls["casino"], **FAST)
    creator = casino.register()
    counterparty = CasinoClient(sandbox.urls["casino"], **FAST).register()
    already = CasinoClient(sandbox.urls["casino"], creator.api_key, **FAST).balance().balance
    admin.credit(creator.agent_id, CASINO_BUCKET + FLOAT - already)
    steps = AtomicSteps(command_client(redis_url), keys)
    open_treasury(steps, AGENT, RESERVE + CASINO_BUCKET, now_ms=clock.now_ms(), new_id=seeded_ids(1),
                  buckets={"reserve": RESERVE, "casino": CASINO_BUCKET})
    rclient.hset(keys.credentials(AGENT), mapping={"casino_agent_id": creator.agent_id,
                                                   "casino_key": creator.api_key.reveal()})
    rclient.xgroup_create(keys.agent_commands(AGENT, "escrow"), GROUP, id="0", mkstream=True)
    w = World(steps=steps, keys=keys, client=rclient, sandbox=sandbox, admin=admin, clock=clock,
              creator_id=creator.agent_id, creator_key=creator.api_key.reveal(),
              counterparty_id=counterparty.agent_id, counterparty_key=counterparty.api_key.reveal())
    yield w
    for ref in w.actors:
        ref.stop()
    for client in w.venues:
        client.close()
    casino.close()
    admin.close()
    sandbox.stop()
