"""Sandbox faucet and `FaucetClient`."""

from __future__ import annotations

import httpx
import pytest

from sandbox.faucet import claim
from venue.client import FaucetClient, SandboxAdmin
from venue.errors import VenueRejected

HTTP = httpx.Client(timeout=10)
"""One pooled client for raw calls (a fresh client per call costs a TLS context)."""


def post(handle, **kwargs):
    return HTTP.post(handle.urls["faucet"] + "/faucet/claim", **kwargs)


def test_claim_errors(sandbox, funded_agent):
    assert post(sandbox, json={}).json()["error"] == "invalid_request"
    assert post(sandbox, json={"agent_casino_id": "bob"}).status_code == 400
    assert post(sandbox, content=b"{not json").json()["error"] == "invalid_request"  # read as {}
    r = post(sandbox, json={"agent_casino_id": "ag_000000000000"})
    assert r.status_code == 404 and r.json()["error"] == "agent_not_found"
    agent = funded_agent(sandbox, 0)  # registration already claimed
    r = post(sandbox, json={"agent_casino_id": agent.agent_id})
    assert r.status_code == 409 and r.json()["error"] == "already_claimed"
    assert agent.client.balance().balance == 1_000_000


def test_has_deposits_and_a_fresh_claim(fresh_sandbox, funded_agent):
    agent = funded_agent(fresh_sandbox, 5)
    store = fresh_sandbox.ctx.store
    # make the faucet forget the registration claim, to reach the deposit check
    store.execute("DELETE FROM faucet_claims WHERE agent_id = ?", (agent.agent_id,))
    r = post(fresh_sandbox, json={"agent_casino_id": agent.agent_id})
    assert r.status_code == 403 and r.json()["error"] == "has_deposits"
    newcomer = funded_agent(fresh_sandbox, 0)
    referrer = funded_agent(fresh_sandbox, 0)
    store.execute("DELETE FROM faucet_claims WHERE agent_id = ?", (newcomer.agent_id,))
    faucet = FaucetClient(fresh_sandbox.urls["faucet"], backoff_s=0.001)
    result = faucet.claim(newcomer.agent_id, referrer.referral_code)
    assert result.credited == 1_000_000 and result.claim_id.startswith("fc_") and result.referral_tracked
    assert newcomer.client.balance().balance == 2_000_000
    assert newcomer.client.ledger()[0].service == "faucet"
    with pytest.raises(VenueRejected) as info:
        faucet.claim(newcomer.agent_id)
    assert info.value.status == 409 and info.value.code == "already_claimed"
    stats = faucet.stats()
    assert stats.total_claims == 2 and stats.total_distributed == 2_000_000  # referrer + the new claim
    faucet.close()


def test_claim_function_refuses_unknown_ids(fresh_sandbox):
    from sandbox.runner import ApiError

    with pytest.raises(ApiError) as info:
        claim(fresh_sandbox.ctx, 42, None, ip="x")
    assert info.value.status == 400
    assert SandboxAdmin(fresh_sandbox.root_url).health()["ok"]
