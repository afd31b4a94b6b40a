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


def ip(n):
    return {"x-forwarded-for": f"10.1.0.{n}"}


def test_claim_errors(sandbox, funded_agent):
    assert post(sandbox, json={}, headers=ip(1)).json()["error"] == "invalid_request"
    assert post(sandbox, json={"agent_casino_id": "bob"}, headers=ip(1)).status_code == 400
    assert post(sandbox, content=b"{not json", headers=ip(1)).json()["error"] == "invalid_request"  # read as {}
    r = post(sandbox, json={"agent_casino_id": "ag_000000000000"}, headers=ip(2))
    assert r.status_code == 404 and r.json()["error"] == "agent_not_found"


def test_one_claim_per_ip_per_day_and_five_a_minute(fresh_sandbox, funded_agent):
    a, b, c = (funded_agent(fresh_sandbox, 0) for _ in range(3))
    first = post(fresh_sandbox, json={"agent_casino_id": a.agent_id}, headers=ip(3))
    assert first.status_code == 200 and first.json()["credited"] == 1
    assert a.client.balance().balance == 1_000_000
    again = post(fresh_sandbox, json={"agent_casino_id": b.agent_id}, headers=ip(3))
    assert again.status_code == 429 and again.json()["error"] == "ip_rate_limited"
    r = post(fresh_sandbox, json={"agent_casino_id": a.agent_id}, headers=ip(4))
    assert r.status_code == 409 and r.json()["error"] == "already_claimed"
    # the IP check comes before the agent check, as on the real faucet
    assert post(fresh_sandbox, json={"agent_casino_id": "ag_000000000000"}, headers=ip(3)).json()["error"] \
        == "ip_rate_limited"
    for _ in range(2):
        post(fresh_sandbox, json={}, headers=ip(3))
    limited = post(fresh_sandbox, json={"agent_casino_id": c.agent_id}, headers=ip(3))
    assert limited.status_code == 429 and limited.json()["error"] == "rate_limited"  # the 6th in a minute
    fresh_sandbox.ctx.clock.advance(24 * 3_600_000)
    later = post(fresh_sandbox, json={"agent_casino_id": c.agent_id}, headers=ip(3))
    assert later.status_code == 200 and c.client.balance().balance == 1_000_000
    assert b.client.balance().balance == 0


def test_has_deposits_and_a_fresh_claim(fresh_sandbox, funded_agent):
    agent = funded_agent(fresh_sandbox, 5)
    r = post(fresh_sandbox, json={"agent_casino_id": agent.agent_id}, headers=ip(5))
    assert r.status_code == 403 and r.json()["error"] == "has_deposits"
    referrer = funded_agent(fresh_sandbox, 0)
    newcomer = funded_agent(fresh_sandbox, 0, referral_code=referrer.referral_code)
    # its own transport, so it has its own httpx client whose headers name the caller's IP
    faucet = FaucetClient(fresh_sandbox.urls["faucet"], backoff_s=0.001, transport=httpx.HTTPTransport())
    faucet._http.headers["x-forwarded-for"] = "10.1.0.6"
    result = faucet.claim(newcomer.agent_id)
    assert result.credited == 1_000_000 and result.referral_tracked and result.agent_id == newcomer.agent_id
    assert newcomer.client.balance().balance == 1_000_000
    entry = newcomer.client.ledger()[0]
    assert (entry.service, entry.reason, entry.reference) == ("faucet", "faucet_claim: $1 free credits",
                                                              result.claim_id)
    faucet._http.headers["x-forwarded-for"] = "10.1.0.7"
    with pytest.raises(VenueRejected) as info:
        faucet.claim(newcomer.agent_id)
    assert info.value.status == 409 and info.value.code == "already_claimed"
    stats = faucet.stats()
    # the sandbox's own first registration claimed too (from "unknown"), then this one
    assert stats.total_claims == 2 and stats.total_value == 2_000_000 and stats.total_agents == 2
    faucet.close()


def test_claim_function_refuses_unknown_ids(fresh_sandbox):
    from sandbox.http import ApiError

    with pytest.raises(ApiError) as info:
        claim(fresh_sandbox.ctx, 42, None, ip="x")
    assert info.value.status == 400
    assert SandboxAdmin(fresh_sandbox.root_url).health()["ok"]
