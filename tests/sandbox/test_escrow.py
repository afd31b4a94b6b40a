"""Sandbox escrow: routes, fees, referral share, states, the timeout refund; `EscrowClient`."""

from __future__ import annotations

import httpx
import pytest

from venue.client import EscrowClient, SandboxAdmin
from venue.client.escrow import tag_description
from venue.errors import VenueRejected

HTTP = httpx.Client(timeout=10)
"""One pooled client for raw calls (a fresh client per call costs a TLS context)."""


@pytest.fixture
def escrow_for():
    clients = []

    def make(handle, agent, **options):
        client = EscrowClient(handle.urls["escrow"], agent.client._key, casino_url=handle.urls["casino"],
                              backoff_s=0.001, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def raw(handle, agent, method, path, **kwargs):
    headers = {"authorization": f"Bearer {agent.client._key.reveal()}"} if agent else {}
    return HTTP.request(method, handle.urls["escrow"] + path, headers=headers, **kwargs)


def error_of(response, status):
    assert response.status_code == status, response.text
    return response.json()["error"]


def test_create_errors(sandbox, funded_agent):
    a, b = funded_agent(sandbox, 5), funded_agent(sandbox, 0)
    good = {"amount_usd": 1, "description": "write a poem", "counterparty_agent_id": b.agent_id}
    assert error_of(raw(sandbox, None, "POST", "/escrow/create", json=good), 401) == "unauthorized"
    cases = [({**good, "amount_usd": 0.09}, 400, "invalid_amount"), ({**good, "amount_usd": "abc"}, 400,
                                                                     "invalid_amount"),
             ({**good, "amount_usd": None}, 400, "invalid_amount"),
             ({**good, "description": "  x "}, 400, "invalid_description"),
             ({**good, "counterparty_agent_id": "bob"}, 400, "invalid_counterparty"),
             ({**good, "counterparty_agent_id": a.agent_id}, 400, "self_escrow"),
             ({**good, "counterparty_agent_id": "ag_000000000000"}, 404, "counterparty_not_found"),
             ({**good, "amount_usd": 6.01}, 402, "insufficient_balance")]
    for body, status, code in cases:
        assert error_of(raw(sandbox, a, "POST", "/escrow/create", json=body), status) == code
    # a bad body reads as {} (then fails validation), it is not invalid_json
    assert error_of(raw(sandbox, a, "POST", "/escrow/create", content=b"{oops"), 400) == "invalid_amount"
    r = raw(sandbox, a, "POST", "/escrow/create", json={**good, "amount_usd": 6.01})
    assert r.json()["balance"] == 6.0
    assert a.client.balance().balance == 6_000_000  # nothing moved


def test_create_debits_at_once_and_release_pays_net(sandbox, funded_agent, escrow_for):
    a, b = funded_agent(sandbox, 99), funded_agent(sandbox, 0)
    escrow = escrow_for(sandbox, a)
    created = escrow.create(b.agent_id, 10_000_000, "build a thing", timeout_hours=5000, idempotency_key="c1")
    assert created.escrow_id.startswith("esc_") and len(created.escrow_id) == 20
    assert created.commission == 100_000 and created.net_to_counterparty == 9_900_000
    assert created.status == "funded" and created.timeout_hours == 720  # clamped
    assert a.client.balance().balance == 90_000_000
    lock = a.client.ledger()[0]
    assert lock.reason == f"escrow_lock: {created.escrow_id}" and lock.service == "escrow"
    done = EscrowClient(sandbox.urls["escrow"], b.client._key).complete(created.escrow_id)
    assert done.status == "completed"
    released = escrow.release(created.escrow_id)
    assert released.amount_released == 9_900_000 and released.commission == 100_000
    assert released.referral_commission == 0
    assert b.client.balance().balance == 1_000_000 + 9_900_000
    view = escrow.get_escrow(created.escrow_id)
    assert view.status == "released" and view.released_at and view.completed_at
    assert [e.event for e in view.events] == ["created", "completed", "released"]


def test_timeout_hours_clamped_low_and_defaulted(sandbox, funded_agent, escrow_for):
    a, b = funded_agent(sandbox, 10), funded_agent(sandbox, 0)
    r = raw(sandbox, a, "POST", "/escrow/create", json={"amount_usd": "0.5", "description": "tiny",
                                                        "counterparty_agent_id": b.agent_id, "timeout_hours": 0.2})
    assert r.status_code == 201 and r.json()["timeout_hours"] == 1 and r.json()["amount_usd"] == 0.5
    r = raw(sandbox, a, "POST", "/escrow/create", json={"amount_usd": 0.5, "description": "tiny",
                                                        "counterparty_agent_id": b.agent_id})
    assert r.json()["timeout_hours"] == 24 and r.json()["commission_usd"] == 0.005


def test_state_and_permission_errors(sandbox, funded_agent, escrow_for):
    a, b, c = funded_agent(sandbox, 10), funded_agent(sandbox, 0), funded_agent(sandbox, 0)
    escrow_id = escrow_for(sandbox, a).create(b.agent_id, 2_000_000, "job", idempotency_key="s").escrow_id
    for action in ("complete", "release", "dispute"):
        assert error_of(raw(sandbox, None, "POST", f"/escrow/{action}/{escrow_id}"), 401) == "unauthorized"
        assert error_of(raw(sandbox, a, "POST", f"/escrow/{action}/esc_0000000000000000"), 404) == "not_found"
    assert error_of(raw(sandbox, a, "POST", f"/escrow/complete/{escrow_id}"), 403) == "forbidden"
    assert error_of(raw(sandbox, b, "POST", f"/escrow/release/{escrow_id}"), 403) == "forbidden"
    assert error_of(raw(sandbox, c, "POST", f"/escrow/dispute/{escrow_id}"), 403) == "forbidden"
    escrow_b = escrow_for(sandbox, b)
    assert escrow_b.dispute(escrow_id, "no show").reason == "no show"
    assert error_of(raw(sandbox, b, "POST", f"/escrow/complete/{escrow_id}"), 409) == "invalid_status"
    assert error_of(raw(sandbox, a, "POST", f"/escrow/release/{escrow_id}"), 409) == "invalid_status"
    assert error_of(raw(sandbox, a, "POST", f"/escrow/dispute/{escrow_id}"), 409) == "invalid_status"
    with pytest.raises(VenueRejected) as info:
        escrow_for(sandbox, a).release(escrow_id)
    assert info.value.status == 409 and info.value.code == "invalid_status"
    # completing twice is a 409 too
    other = escrow_for(sandbox, a).create(b.agent_id, 1_000_000, "job 2", idempotency_key="s2").escrow_id
    escrow_b.complete(other)
    assert error_of(raw(sandbox, b, "POST", f"/escrow/complete/{other}"), 409) == "invalid_status"
    r = raw(sandbox, a, "POST", f"/escrow/dispute/{other}", json={})
    assert r.json()["reason"] == "No reason provided"


def test_get_is_public_but_events_are_for_participants(sandbox, funded_agent, escrow_for):
    a, b, c = funded_agent(sandbox, 10), funded_agent(sandbox, 0), funded_agent(sandbox, 0)
    escrow_id = escrow_for(sandbox, a).create(b.agent_id, 1_000_000, "job", idempotency_key="g").escrow_id
    public = raw(sandbox, None, "GET", f"/escrow/{escrow_id}").json()
    assert public["status"] == "funded" and "events" not in public
    assert "events" not in raw(sandbox, c, "GET", f"/escrow/{escrow_id}").json()
    assert raw(sandbox, b, "GET", f"/escrow/{escrow_id}").json()["events"][0]["event"] == "created"
    assert error_of(raw(sandbox, None, "GET", "/escrow/open"), 404) == "not_found"


def test_referral_share_of_the_fee(fresh_sandbox, funded_agent, escrow_for):
    referrer = funded_agent(fresh_sandbox, 0)
    coded = funded_agent(fresh_sandbox, 0)
    creator = funded_agent(fresh_sandbox, 199, referral_code=referrer.referral_code)
    worker = funded_agent(fresh_sandbox, 0)
    escrow = escrow_for(fresh_sandbox, creator)
    # the creator's own referrer gets 15 % of the 1 % fee on release
    first = escrow.create(worker.agent_id, 100_000_000, "audit", idempotency_key="r1")
    assert escrow.release(first.escrow_id).referral_commission == 150_000
    assert referrer.client.balance().balance == 1_000_000 + 150_000
    # an explicit referral_code wins over referred_by
    second = escrow.create(worker.agent_id, 50_000_000, "audit 2", referral_code=coded.referral_code,
                           idempotency_key="r2")
    assert escrow.release(second.escrow_id).referral_commission == 75_000
    assert coded.client.balance().balance == 1_000_000 + 75_000
    stats = escrow.stats()
    assert stats.total_created == 2 and stats.total_released == 2
    assert stats.total_volume == 150_000_000 and stats.total_commission == 1_500_000


def test_timeout_refunds_creator_minus_fee_even_after_complete(fresh_sandbox, funded_agent, escrow_for):
    referrer = funded_agent(fresh_sandbox, 0)
    creator = funded_agent(fresh_sandbox, 99, referral_code=referrer.referral_code)
    worker = funded_agent(fresh_sandbox, 0)
    escrow = escrow_for(fresh_sandbox, creator)
    admin = SandboxAdmin(fresh_sandbox.root_url)
    funded = escrow.create(worker.agent_id, 10_000_000, "funded job", timeout_hours=1, idempotency_key="t1")
    completed = escrow.create(worker.agent_id, 20_000_000, "completed job", timeout_hours=1, idempotency_key="t2")
    disputed = escrow.create(worker.agent_id, 30_000_000, "disputed job", timeout_hours=1, idempotency_key="t3")
    later = escrow.create(worker.agent_id, 5_000_000, "long job", timeout_hours=48, idempotency_key="t4")
    escrow_for(fresh_sandbox, worker).complete(completed.escrow_id)
    escrow.dispute(disputed.escrow_id, "bad work")
    assert creator.client.balance().balance == 100_000_000 - 65_000_000
    assert admin.run_escrow_timeouts() == 0  # not due yet
    fresh_sandbox.ctx.clock.advance(3_600_000)  # exactly at auto_release_at
    # the next request (here a casino balance read) lets the due refunds land
    assert creator.client.balance().balance == 35_000_000 + 9_900_000 + 19_800_000
    assert worker.client.balance().balance == 1_000_000  # nothing for the worker, even after complete
    assert referrer.client.balance().balance == 1_000_000 + 15_000 + 30_000
    assert escrow.get_escrow(funded.escrow_id).status == "refunded"
    assert escrow.get_escrow(completed.escrow_id).status == "refunded"
    assert escrow.get_escrow(disputed.escrow_id).status == "disputed"  # locked, never auto-processed
    assert escrow.get_escrow(later.escrow_id).status == "funded"
    reasons = [e.reason for e in creator.client.ledger()[:2]]
    assert all(r.startswith("escrow_timeout_refund: ") for r in reasons)
    assert admin.run_escrow_timeouts() == 0
    assert error_of(raw(fresh_sandbox, creator, "POST", f"/escrow/release/{funded.escrow_id}"), 409) == \
        "invalid_status"
    admin.advance_clock(hours=48)
    assert escrow.get_escrow(later.escrow_id).status == "refunded"


def test_admin_run_timeouts_endpoint(fresh_sandbox, funded_agent, escrow_for):
    creator, worker = funded_agent(fresh_sandbox, 10), funded_agent(fresh_sandbox, 0)
    escrow_for(fresh_sandbox, creator).create(worker.agent_id, 1_000_000, "job", timeout_hours=1,
                                              idempotency_key="a")
    fresh_sandbox.ctx.clock.advance(3_600_001)
    assert SandboxAdmin(fresh_sandbox.root_url).run_escrow_timeouts() == 1


def test_create_once_and_find_created(sandbox, funded_agent, escrow_for):
    a, b = funded_agent(sandbox, 10), funded_agent(sandbox, 0)
    escrow = escrow_for(sandbox, a)
    created = escrow.create_once(b.agent_id, 3_000_000, "translate", idempotency_key="once-1")
    assert created.description == tag_description("translate", "once-1") and not created.recovered
    found = escrow.find_created(tag_description("translate", "once-1"), 3_000_000)
    assert found is not None and found.escrow_id == created.escrow_id and found.recovered
    assert escrow.find_created(tag_description("translate", "other"), 3_000_000) is None
    assert escrow.find_created(tag_description("translate", "once-1"), 2_000_000) is None
    with pytest.raises(ValueError):
        EscrowClient(sandbox.urls["escrow"], a.client._key).find_created("x", 1)
    with pytest.raises(VenueRejected) as info:
        escrow.create_once(b.agent_id, 50_000_000, "too big", idempotency_key="once-2")
    assert info.value.status == 402
