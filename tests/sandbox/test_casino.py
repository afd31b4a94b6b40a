"""Sandbox casino routes, through raw HTTP and through `CasinoClient`."""

from __future__ import annotations

import hashlib
import hmac
from decimal import Decimal

import httpx
import pytest

from venue.client import CasinoClient, SandboxAdmin
from venue.errors import VenueRejected

HTTP = httpx.Client(timeout=10)
"""One pooled client for raw calls (a fresh client per call costs a TLS context)."""

API = "/api/v1"


def raw(handle, agent, method, path, **kwargs):
    headers = kwargs.pop("headers", {})
    if agent is not None:
        headers["authorization"] = f"Bearer {agent.client._key.reveal()}"
    return HTTP.request(method, handle.urls["casino"] + API + path, headers=headers, **kwargs)


def error_of(response, status):
    assert response.status_code == status, response.text
    return response.json()["error"]


# ── registration, auth, account ──────────────────────────────────────────────────────────────


def test_register_shapes_ids_and_keys(sandbox):
    r = HTTP.post(sandbox.urls["casino"] + API + "/auth/register", json={})
    assert r.status_code == 201
    body = r.json()
    assert body["agent_id"].startswith("ag_") and len(body["agent_id"]) == 15
    assert body["api_key"].startswith("sk_live_") and len(body["api_key"]) == 8 + 48
    assert body["referral_code"].startswith("ref_") and len(body["referral_code"]) == 12
    assert body["balance"] == 0.0 and body["tier"] == "free" and body["risk_factor"] == 0.25
    # keys are stored hashed, never in clear
    store = sandbox.ctx.store
    row = store.one("SELECT key_hash FROM casino_agents WHERE id = ?", (body["agent_id"],))
    assert row["key_hash"] == hashlib.sha256(body["api_key"].encode()).hexdigest()
    assert store.one("SELECT 1 FROM casino_agents WHERE key_hash = ?", (body["api_key"],)) is None


def test_register_tolerates_a_bad_body_and_claims_the_faucet(sandbox):
    r = HTTP.post(sandbox.urls["casino"] + API + "/auth/register", content=b"not json")
    assert r.status_code == 201
    client = CasinoClient(sandbox.urls["casino"], r.json()["api_key"])
    balance = client.balance()
    assert balance.balance == 1_000_000  # the $1 faucet claim registration fires
    assert balance.recent_activity[0].reason == "faucet_claim"


@pytest.mark.parametrize("path,method", [("/auth/balance", "GET"), ("/auth/ledger", "GET"),
                                         ("/auth/withdraw", "POST"), ("/games/coin-flip", "POST"),
                                         ("/bets/batch", "POST"), ("/bets/history", "GET"),
                                         ("/kelly/config", "PUT"), ("/stats/pay", "POST")])
def test_auth_is_required(sandbox, path, method):
    url = sandbox.urls["casino"] + API + path
    assert error_of(HTTP.request(method, url, json={}), 401) == "unauthorized"
    bad = {"authorization": "Bearer sk_live_" + "0" * 48}
    assert error_of(HTTP.request(method, url, json={}, headers=bad), 401) == "unauthorized"


def test_balance_and_ledger(sandbox, funded_agent):
    agent = funded_agent(sandbox, 20)
    b = raw(sandbox, agent, "GET", "/auth/balance").json()
    assert b["balance_usd"] == 21.0
    assert b["lifetime"] == {"total_deposited": 20.0, "total_withdrawn": 0.0, "total_wagered": 0.0,
                             "total_won": 0.0, "net_profit": 0.0}
    entries = raw(sandbox, agent, "GET", "/auth/ledger").json()["entries"]
    assert [e["reason"] for e in entries] == ["deposit", "faucet_claim"]  # newest first
    assert set(entries[0]) >= {"id", "agentId", "type", "amount", "balanceAfter", "reason", "reference", "service",
                               "createdAt", "at"}
    ledger = agent.client.ledger()
    assert ledger[0].amount == 20_000_000 and ledger[0].balance_after == 21_000_000


def test_deposit_address_new_then_existing_and_unsupported(sandbox, funded_agent):
    agent = funded_agent(sandbox, 0)
    first = raw(sandbox, agent, "POST", "/auth/deposit-address", json={})
    assert first.status_code == 201 and first.json()["chain"] == "base"
    assert first.json()["address"].startswith("0x") and len(first.json()["address"]) == 42
    again = raw(sandbox, agent, "POST", "/auth/deposit-address", json={"chain": "base"})
    assert again.status_code == 200 and again.json()["address"] == first.json()["address"]
    assert raw(sandbox, agent, "POST", "/auth/deposit-address", json={"chain": "bitcoin"}).json()["address"] \
        .startswith("bc1q")
    r = raw(sandbox, agent, "POST", "/auth/deposit-address", json={"chain": "dogecoin"})
    assert error_of(r, 400) == "unsupported_chain" and "base" in r.json()["supported"]
    assert agent.client.deposit_address("solana").chain == "solana"


def test_deposits_list_after_credit(sandbox, funded_agent):
    agent = funded_agent(sandbox, 7)
    deposits = agent.client.deposits()
    assert len(deposits) == 1 and deposits[0].status == "credited" and deposits[0].amount == 7_000_000
    assert raw(sandbox, agent, "GET", "/auth/deposits").json()["deposits"][0]["agentId"] == agent.agent_id


def test_withdraw_errors(sandbox, funded_agent):
    agent = funded_agent(sandbox, 5)
    addr = "0x" + "ab" * 20
    cases = [({"amount": "5", "address": addr}, "invalid_amount"), ({"amount": -1, "address": addr}, "invalid_amount"),
             ({"amount": 0.5, "address": addr}, "minimum_withdrawal"),
             ({"amount": 100_001, "address": addr}, "maximum_withdrawal"),
             ({"amount": 2, "address": "0x123"}, "invalid_address"), ({"amount": 2}, "invalid_address")]
    for body, code in cases:
        assert error_of(raw(sandbox, agent, "POST", "/auth/withdraw", json=body), 400) == code
    r = raw(sandbox, agent, "POST", "/auth/withdraw", json={"amount": 6, "address": addr})
    assert error_of(r, 400) == "insufficient_balance"
    assert r.json()["total_needed"] == 6.5 and r.json()["available"] == 6.0
    assert error_of(raw(sandbox, agent, "POST", "/auth/withdraw", content=b"{bad"), 400) == "invalid_json"
    assert agent.client.balance().balance == 6_000_000  # nothing moved


def test_withdraw_completed_and_pending_review(sandbox, funded_agent):
    agent = funded_agent(sandbox, 1500)
    addr = "0x" + "cd" * 20
    done = agent.client.withdraw(10_000_000, addr, idempotency_key="w1")
    assert done.status == "completed" and done.tx_hash.startswith("0x") and done.fee == 500_000
    assert done.new_balance == 1501_000_000 - 10_500_000
    review = agent.client.withdraw(1001_000_000, addr, idempotency_key="w2")
    assert review.status == "pending_review" and review.tx_hash is None
    assert agent.client.balance().balance == 1501_000_000 - 10_500_000 - 1001_500_000  # already debited
    statuses = {w.id: w.status for w in agent.client.withdrawals()}
    assert statuses[done.withdrawal_id] == "completed" and statuses[review.withdrawal_id] == "reviewing"
    assert agent.client.balance().lifetime.total_withdrawn == 10_000_000


def test_pay_errors_and_transfer(sandbox, funded_agent):
    a, b = funded_agent(sandbox, 10), funded_agent(sandbox, 0)
    cases = [({"amount": 1}, 400, "invalid_request"),
             ({"to_agent_id": b.agent_id, "amount": "1"}, 400, "invalid_request"),
             ({"to_agent_id": b.agent_id, "amount": 0.001}, 400, "invalid_amount"),
             ({"to_agent_id": a.agent_id, "amount": 1}, 400, "same_agent"),
             ({"to_agent_id": "ag_000000000000", "amount": 1}, 404, "recipient_not_found"),
             ({"to_agent_id": b.agent_id, "amount": 50}, 400, "insufficient_balance")]
    for body, status, code in cases:
        assert error_of(raw(sandbox, a, "POST", "/stats/pay", json=body), status) == code
    paid = a.client.pay(b.agent_id, 2_500_000, "thanks", idempotency_key="p1")
    assert paid.tx_id.startswith("pay_") and paid.sender_new_balance == 8_500_000
    assert b.client.balance().balance == 3_500_000


# ── games ────────────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("path,body,code", [
    ("coin-flip", {"side": "edge", "amount": 1}, "invalid_side"),
    ("coin-flip", {"side": "heads", "amount": "1"}, "invalid_amount"),
    ("coin-flip", {"side": "heads", "amount": 0}, "invalid_amount"),
    ("coin-flip", {"side": "heads", "amount": 0.001}, "minimum_bet"),
    ("coin-flip", {"side": "heads", "amount": True}, "invalid_amount"),
    ("dice", {"direction": "sideways", "threshold": 50, "amount": 1}, "invalid_direction"),
    ("dice", {"direction": "over", "threshold": 100, "amount": 1}, "invalid_threshold"),
    ("dice", {"direction": "over", "amount": 1}, "invalid_threshold"),
    ("multiplier", {"target_multiplier": 1.0, "amount": 1}, "invalid_multiplier"),
    ("multiplier", {"target_multiplier": 1001, "amount": 1}, "invalid_multiplier"),
    ("custom", {"win_probability": 0.5, "amount": 1}, "invalid_probability"),
    ("custom", {"win_probability": 100, "amount": 1}, "invalid_probability"),
    ("coin-flip", {"side": "heads", "amount": 500}, "insufficient_balance"),
])
def test_bet_errors(sandbox, funded_agent, path, body, code):
    agent = funded_agent(sandbox, 100)
    r = raw(sandbox, agent, "POST", f"/games/{path}", json=body)
    assert error_of(r, 400) == code
    assert agent.client.balance().balance == 101_000_000


def test_bet_bad_json_is_invalid_json(sandbox, funded_agent):
    agent = funded_agent(sandbox, 10)
    assert error_of(raw(sandbox, agent, "POST", "/games/dice", content=b"{"), 400) == "invalid_json"
    assert error_of(raw(sandbox, agent, "POST", "/games/dice", content=b'{"amount": NaN}'), 400) == "invalid_json"


def test_kelly_limit(sandbox, funded_agent):
    agent = funded_agent(sandbox, 99)  # + $1 faucet = $100 bankroll
    r = raw(sandbox, agent, "POST", "/games/coin-flip", json={"side": "heads", "amount": 12.51})
    assert error_of(r, 400) == "kelly_limit_exceeded"
    assert r.json()["max_bet"] == 12.5  # round2(100 × 0.25 × 0.5)
    assert r.json()["kelly"]["max_bet"] == 12.5
    with pytest.raises(VenueRejected) as info:
        agent.client.bet("custom", 6_000_000, {"win_probability": 20}, client_seed="k", idempotency_key="k")
    assert info.value.code == "kelly_limit_exceeded"
    assert info.value.details["max_bet_micros"] == 5_000_000  # 100 × 0.25 × 0.2
    ok = agent.client.bet("coin_flip", 12_500_000, {"side": "heads"}, client_seed="edge", idempotency_key="e")
    assert ok.amount_bet == 12_500_000
    # risk factor: PUT /kelly/config
    assert error_of(raw(sandbox, agent, "PUT", "/kelly/config", json={"risk_factor": 1.5}), 400) \
        == "invalid_risk_factor"
    assert error_of(raw(sandbox, agent, "PUT", "/kelly/config", json={"risk_factor": 0.05}), 400) \
        == "invalid_risk_factor"
    config = agent.client.set_risk_factor(1.0)
    assert config.risk_factor == 1.0
    bankroll = agent.client.balance().balance
    limits = agent.client.kelly_limits()
    assert limits["risk_factor"] == 1.0 and limits["limits"]["coin_flip"]["max_bet"] > 0
    assert agent.client.balance().risk_factor == 1.0
    big = bankroll // 2 // 10_000 * 10_000
    placed = agent.client.bet("coin_flip", big, {"side": "tails"}, client_seed="big", idempotency_key="b")
    assert placed.amount_bet == big


def test_payouts_are_gross_and_match_the_real_tables(sandbox, funded_agent):
    agent = funded_agent(sandbox, 999)
    cases = [("coin_flip", {"side": "heads"}, "1.99"),
             ("dice", {"direction": "over", "threshold": 75}, "3.98"),
             ("dice", {"direction": "under", "threshold": 10}, "9.95"),
             ("multiplier", {"target_multiplier": 3.5}, "3.5"),
             ("custom", {"win_probability": 33}, "3.0152")]
    for i, (game, params, multiplier) in enumerate(cases):
        before = agent.client.balance().balance
        bet = agent.client.bet(game, 1_000_000, params, client_seed=f"gross-{i}", idempotency_key=f"g{i}")
        assert bet.payout_multiplier == multiplier
        expected_won = int(Decimal(multiplier) * 1_000_000) if bet.won else 0
        assert bet.amount_won == round(expected_won, -4)  # cents on the wire
        assert agent.client.balance().balance == before - 1_000_000 + expected_won


def test_bet_writes_debit_and_credit_ledger_entries(sandbox, funded_agent):
    agent = funded_agent(sandbox, 100)
    seen = set()
    for i in range(12):
        bet = agent.client.bet("coin_flip", 1_000_000, {"side": "heads"}, client_seed=f"l{i}", idempotency_key=f"l{i}")
        entries = [e for e in agent.client.ledger() if e.reference == bet.bet_id]
        reasons = sorted(e.reason for e in entries)
        assert reasons == (["reservation", "reservation_release"] if bet.won else ["reservation"])
        seen.add(bet.won)
    assert seen == {True, False}


def test_provably_fair_roll_recomputes(sandbox, funded_agent):
    agent = funded_agent(sandbox, 100)
    bets = [agent.client.bet("dice", 1_000_000, {"direction": "over", "threshold": 50}, client_seed=f"pf{i}",
                             idempotency_key=f"pf{i}") for i in range(5)]
    seed_hash = agent.client.seed_hash().server_seed_hash
    unrevealed = agent.client.verify_bet(bets[0].bet_id)
    assert unrevealed.server_seed is None and unrevealed.revealed is False
    rotation = agent.client.rotate_seed()
    assert rotation.previous_seed_hash == seed_hash != rotation.new_seed_hash
    server_seed = rotation.previous_seed
    assert hashlib.sha256(server_seed.encode()).hexdigest() == seed_hash
    for nonce, bet in enumerate(bets):
        assert bet.nonce == nonce and bet.server_seed_hash == seed_hash
        digest = hmac.new(server_seed.encode(), f"{bet.client_seed}:{nonce}".encode(), hashlib.sha256).hexdigest()
        assert digest == bet.result_hash
        roll = (int(digest[:8], 16) % 10000) / 100
        assert Decimal(bet.roll) == Decimal(str(roll))
        assert bet.result["dice_value"] == int(roll) + 1
        assert bet.won == (int(roll) + 1 > 50)
        verified = agent.client.verify_bet(bet.bet_id)
        assert verified.valid is True and verified.server_seed == server_seed
    r = raw(sandbox, agent, "POST", "/fairness/verify", json={"bet_id": "bet_nope"})
    assert error_of(r, 404) == "bet_not_found"
    after = agent.client.bet("coin_flip", 1_000_000, {"side": "heads"}, client_seed="new", idempotency_key="n")
    assert after.nonce == 0 and after.server_seed_hash == rotation.new_seed_hash


def test_server_seed_rotates_every_1000_bets(fresh_sandbox, funded_agent):
    from sandbox.casino import SEED_ROTATION

    agent = funded_agent(fresh_sandbox, 10)
    store = fresh_sandbox.ctx.store
    agent.client.bet("coin_flip", 10_000, {"side": "heads"}, client_seed="r0", idempotency_key="r0")
    store.execute("UPDATE casino_seeds SET nonce = ? WHERE agent_id = ? AND active = 1",
                  (SEED_ROTATION - 1, agent.agent_id))
    last = agent.client.bet("coin_flip", 10_000, {"side": "heads"}, client_seed="r1", idempotency_key="r1")
    assert last.nonce == SEED_ROTATION - 1
    nxt = agent.client.bet("coin_flip", 10_000, {"side": "heads"}, client_seed="r2", idempotency_key="r2")
    assert nxt.nonce == 0 and nxt.server_seed_hash != last.server_seed_hash
    assert agent.client.verify_bet(last.bet_id).valid is True


def test_default_client_seed_is_auto(sandbox, funded_agent):
    agent = funded_agent(sandbox, 10)
    r = raw(sandbox, agent, "POST", "/games/coin-flip", json={"side": "heads", "amount": 1})
    assert r.json()["proof"]["client_seed"].startswith("auto_")


def test_referral_commissions_on_losing_bets(fresh_sandbox, funded_agent):
    top = funded_agent(fresh_sandbox, 0)
    mid = funded_agent(fresh_sandbox, 0, referral_code=top.referral_code)
    low = funded_agent(fresh_sandbox, 0, referral_code=mid.referral_code)
    player = funded_agent(fresh_sandbox, 999, referral_code=low.referral_code)
    losses = 0
    for i in range(20):
        bet = player.client.bet("custom", 4_000_000, {"win_probability": 10}, client_seed=f"ref{i}",
                                idempotency_key=f"ref{i}")
        losses += 0 if bet.won else 1
    assert losses > 0
    # $1 faucet each, then 10 % / 5 % / 2.5 % of each $4 losing stake
    assert low.client.balance().balance == 1_000_000 + losses * 400_000
    assert mid.client.balance().balance == 1_000_000 + losses * 200_000
    assert top.client.balance().balance == 1_000_000 + losses * 100_000
    stats = low.client.referral_stats()
    assert stats.total_referrals == 1 and stats.total_earned == losses * 400_000
    assert stats.by_level["level_1"]["earned_usd"] == losses * 0.4
    assert mid.client.referral_stats().by_level["level_2"]["earned_usd"] == pytest.approx(losses * 0.2)
    assert low.client.referral_code().referral_code == low.referral_code
    reasons = {e.reason.split(":")[0] for e in top.client.ledger()}
    assert "referral_commission_l3" in reasons


# ── batch and history ────────────────────────────────────────────────────────────────────────


def test_batch_runs_sequentially_with_inline_errors(sandbox, funded_agent):
    agent = funded_agent(sandbox, 99)
    bets = [{"game": "coin_flip", "amount": 1}, {"game": "dice", "amount": 1, "threshold": 75},
            {"game": "nope", "amount": 1}, {"game": "coin_flip", "amount": 1000},
            {"game": "multiplier", "amount": 1}, {"game": "custom", "amount": 1, "win_probability": 0}]
    r = raw(sandbox, agent, "POST", "/bets/batch", json={"bets": bets})
    assert r.status_code == 200
    body = r.json()
    errors = [item.get("error") for item in body["results"]]
    assert errors == [None, None, "invalid_game", "insufficient_balance", None, "invalid_probability"]
    assert body["summary"]["total"] == 6 and body["summary"]["errors"] == 3
    assert body["summary"]["total_wagered"] == 0  # the real service's bug, reproduced
    assert body["results"][0]["result"]["side_chosen"] == "heads"  # batch defaults
    assert body["kelly_max_next_bet"] == pytest.approx(body["balance_after"] * 0.25, abs=0.01)
    assert error_of(raw(sandbox, agent, "POST", "/bets/batch", json={"bets": []}), 400) == "invalid_bets"
    assert error_of(raw(sandbox, agent, "POST", "/bets/batch", json={}), 400) == "invalid_bets"
    too_many = {"bets": [{"game": "coin_flip", "amount": 0.01}] * 21}
    assert error_of(raw(sandbox, agent, "POST", "/bets/batch", json=too_many), 400) == "too_many_bets"
    result = agent.client.bet_batch([{"game": "coin_flip", "amount": 1_000_000, "side": "tails"},
                                     {"game": "dice", "amount": 2_000_000}], idempotency_key="batch")
    assert result.summary.total_wagered == 3_000_000  # recomputed by the client
    assert abs(result.balance_after - agent.client.balance().balance) <= 5_000  # cents on the wire


def test_batch_kelly_checks_each_item_against_the_live_balance(sandbox, funded_agent):
    agent = funded_agent(sandbox, 9)  # $10: cap 1.25 per coin flip
    result = agent.client.bet_batch([{"game": "coin_flip", "amount": 1_250_000}, {"game": "coin_flip",
                                                                                   "amount": 2_000_000}],
                                    idempotency_key="kb")
    from venue.client.types import BetError

    assert isinstance(result.results[1], BetError) and result.results[1].error == "kelly_limit_exceeded"


def test_history_filters_and_lookup(sandbox, funded_agent):
    agent = funded_agent(sandbox, 100)
    for i in range(4):
        agent.client.bet("coin_flip" if i % 2 else "dice", 1_000_000, {"side": "heads"} if i % 2 else {
            "direction": "over", "threshold": 50}, client_seed=f"h{i}", idempotency_key=f"h{i}")
    rows = agent.client.bet_history()
    assert [r.client_seed for r in rows] == ["h3", "h2", "h1", "h0"]  # newest first
    assert all(r.result_hash for r in rows)
    assert {r.game for r in agent.client.bet_history(game="dice")} == {"dice"}
    won = agent.client.bet_history(outcome="won")
    assert all(r.won for r in won)
    assert error_of(raw(sandbox, agent, "GET", "/bets/history", params={"game": "poker"}), 400) == "invalid_game"
    assert len(agent.client.bet_history(limit=2)) == 2
    found = agent.client.find_bet("h2")
    assert found is not None and found.recovered and found.game == "dice"
    assert found.new_balance == agent.client.balance().balance
    assert agent.client.find_bet("never") is None
    csv_text = raw(sandbox, agent, "GET", "/bets/export.csv").text
    assert csv_text.splitlines()[0].startswith("bet_id,game,amount_usd")
    assert "h1" in csv_text


def test_find_bet_uses_the_csv_export_when_history_lacks_client_seeds(sandbox, funded_agent):
    agent = funded_agent(sandbox, 50)
    bet = agent.client.bet("coin_flip", 1_000_000, {"side": "tails"}, client_seed="csv-only", idempotency_key="c")

    def strip_seeds(request: httpx.Request) -> httpx.Response:
        upstream = HTTP.request(request.method, str(request.url), headers=dict(request.headers),
                                 content=request.content)
        if request.url.path.endswith("/bets/history"):
            body = upstream.json()
            for row in body["bets"]:
                row.pop("client_seed")
            return httpx.Response(upstream.status_code, json=body)
        return httpx.Response(upstream.status_code, content=upstream.content, headers=upstream.headers)

    client = CasinoClient(sandbox.urls["casino"], agent.client._key, transport=httpx.MockTransport(strip_seeds))
    found = client.find_bet("csv-only")
    assert found is not None and found.bet_id == bet.bet_id and found.nonce == bet.nonce
    assert found.roll == bet.roll and found.amount_won == bet.amount_won
    assert client.find_bet("missing") is None


def test_admin_credit_returns_new_balance(sandbox, funded_agent):
    agent = funded_agent(sandbox, 0)
    assert SandboxAdmin(sandbox.urls["casino"]).credit(agent.agent_id, 2_500_000) == 3_500_000


def test_the_key_stays_out_of_logs_over_real_http(sandbox, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    client = CasinoClient(sandbox.urls["casino"], backoff_s=0.001)
    registration = client.register()
    key = registration.api_key.reveal()
    SandboxAdmin(sandbox.root_url).credit(registration.agent_id, 10_000_000)
    client.balance()
    client.bet("coin_flip", 1_000_000, {"side": "heads"}, client_seed="log", idempotency_key="log")
    with pytest.raises(VenueRejected) as info:
        client.bet("coin_flip", 900_000_000, {"side": "heads"}, client_seed="log2", idempotency_key="log2")
    texts = [record.getMessage() for record in caplog.records] + [str(info.value), repr(info.value), repr(client),
                                                                  repr(registration)]
    assert any("HTTP Request" in t or "send_request" in t for t in texts)  # logging was on
    assert not [t for t in texts if key in t or key[8:] in t]
    client.close()
