"""Wallet sandbox over raw HTTP: wallets, balances, sends, swaps, referral payouts, and USDC
moving into the casino and trading silos."""

from __future__ import annotations

import hashlib
import os

import httpx
import pytest

from sandbox import ManualClock, start_sandbox

V1 = "/v1"
HTTP = httpx.Client(timeout=10.0)
BASE_USDC = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"
ELSEWHERE = "0x" + "5" * 40


@pytest.fixture(scope="module")
def chain():
    with start_sandbox(seed=51, clock=ManualClock()) as handle:
        yield handle


def admin(handle, method: str, path: str, service: str = "wallet", **kwargs) -> dict:
    r = HTTP.request(method, handle.urls[service] + "/_sandbox" + path, **kwargs)
    assert r.status_code == 200, r.text
    return r.json()


class Holder:
    """A wallet agent with one created wallet; `fund` lands coins on its addresses."""

    def __init__(self, handle, referral_code: str | None = None, create: bool = True) -> None:
        self.handle = handle
        self.base = handle.urls["wallet"]
        r = HTTP.post(self.base + V1 + "/auth/register", json={"referral_code": referral_code} if referral_code else {})
        assert r.status_code == 201, r.text
        self.registration = r.json()
        self.key = self.registration["api_key"]
        if create:
            created = self.ok("POST", "/wallet/create", 201)
            self.addresses = created["addresses"]
            self.keys = created["sandbox_private_keys"]
            self.created = created

    def call(self, method: str, path: str, **kwargs) -> httpx.Response:
        headers = {"authorization": f"Bearer {self.key}", **kwargs.pop("headers", {})}
        return HTTP.request(method, self.base + V1 + path, headers=headers, **kwargs)

    def ok(self, method: str, path: str, status: int = 200, **kwargs) -> dict:
        r = self.call(method, path, **kwargs)
        assert r.status_code == status, r.text
        return r.json()

    def error(self, method: str, path: str, status: int, **kwargs) -> str:
        r = self.call(method, path, **kwargs)
        assert r.status_code == status, r.text
        return r.json()["error"]

    def fund(self, chain: str, token: str, amount: str, address: str | None = None) -> None:
        admin(self.handle, "POST", "/fund", json={"chain": chain, "address": address or self.addresses[chain],
                                                  "token": token, "amount": amount})

    def units(self, chain: str, token: str = "native", address: str | None = None) -> int:
        got = admin(self.handle, "GET", "/balances", params={"chain": chain,
                                                             "address": address or self.addresses[chain]})
        return int(got[token])

    def send(
        self, chain: str, to: str, amount: str, token: str | None = None, key: str | None = None
    ) -> httpx.Response:
        body = {"chain": chain, "to": to, "amount": amount, "private_key": key or self.keys[chain]}
        if token:
            body["token"] = token
        return self.call("POST", "/wallet/send", json=body)


# ── accounts and wallets ──────────────────────────────────────────────────────────────────────


def test_register_and_auth_errors(chain):
    h = Holder(chain, create=False)
    assert h.registration["agent_id"].startswith("ag_") and h.key.startswith("pk_live_") and len(h.key) == 56
    row = chain.ctx.store.one("SELECT api_key_hash FROM wallet_agents WHERE id = ?", (h.registration["agent_id"],))
    assert row["api_key_hash"] == hashlib.sha256(h.key.encode()).hexdigest()
    url = h.base + V1 + "/wallet/create"
    assert HTTP.post(url).json()["error"] == "unauthorized"
    r = HTTP.post(url, headers={"authorization": "Bearer pk_live_" + "0" * 48})
    assert (r.status_code, r.json()["error"]) == (401, "unauthorized")


def test_create_gives_every_chain_and_overwrites(chain):
    h = Holder(chain)
    a = h.addresses
    assert set(a) == {"ethereum", "base", "solana", "bitcoin", "tron", "monero"} and a["base"] == a["ethereum"]
    assert a["tron"].startswith("T") and a["bitcoin"].startswith("bc1q") and a["monero"].startswith("4")
    assert len(h.created["mnemonic"].split()) == 24 and "private_view_key" in h.created["monero_keys"]
    again = h.ok("POST", "/wallet/create", 201)
    assert again["addresses"]["base"] != a["base"]
    stored = chain.ctx.store.one("SELECT monero_address FROM wallet_wallets WHERE agent_id = ?",
                                 (h.registration["agent_id"],))
    assert stored["monero_address"] == again["addresses"]["monero"]


def test_native_balance_only_and_its_errors(chain):
    h = Holder(chain)
    h.fund("base", "USDC", "25")
    h.fund("base", "native", "0.5")
    h.fund("solana", "native", "1.25")
    got = h.ok("GET", f"/wallet/balance/{h.addresses['base']}")  # chain defaults to base
    assert got["balance"]["native"] == {"symbol": "ETH", "amount": "0.5", "wei": "500000000000000000"}
    assert "USDC" not in str(got["balance"])
    sol = h.ok("GET", f"/wallet/balance/{h.addresses['solana']}", params={"chain": "solana"})
    assert sol["balance"]["native"]["lamports"] == 1_250_000_000
    empty = h.ok("GET", f"/wallet/balance/{ELSEWHERE}", params={"chain": "ethereum"})
    assert empty["balance"]["native"]["amount"] == "0.0"
    assert h.error("GET", f"/wallet/balance/{ELSEWHERE}", 400, params={"chain": "dogecoin"}) == "unsupported_chain"
    assert h.error("GET", "/wallet/balance/0xnope", 502) == "rpc_error"
    bare = Holder(chain, create=False)
    assert bare.error("GET", f"/wallet/balance/{h.addresses['monero']}", 400, params={"chain": "monero"}) == \
        "view_key_required"


def test_usdc_balance(chain):
    h = Holder(chain)
    h.fund("base", "USDC", "10.5")
    h.fund("arbitrum", "USDC", "2", address=h.addresses["base"])
    got = h.ok("GET", "/wallet/usdc-balance", params={"base": h.addresses["base"], "arbitrum": h.addresses["base"],
                                                      "solana": h.addresses["solana"]})
    assert got["total_usdc"] == "12.5"
    assert [(b["chain"], b["usdc_balance"]) for b in got["balances"]] == [("base", "10.5"), ("arbitrum", "2"),
                                                                          ("solana", "0")]
    assert h.error("GET", "/wallet/usdc-balance", 400) == "no_addresses"


def test_portfolio_of_saved_addresses(chain):
    h = Holder(chain)
    h.fund("base", "native", "1")
    h.fund("solana", "native", "10")
    h.ok(
        "POST",
        "/wallet/portfolio/addresses",
        201,
        json={"label": "hot", "chain": "base", "address": h.addresses["base"]},
    )
    h.ok("POST", "/wallet/portfolio/addresses", 201, json={"label": "sol", "chain": "solana",
                                                             "address": h.addresses["solana"], "note": "gas"})
    prices = admin(chain, "GET", "/prices")["prices"]
    got = h.ok("GET", "/wallet/portfolio")
    assert got["total_value_usd"] == pytest.approx(prices["ETH"] + 10 * prices["SOL"], abs=0.01)
    assert set(got["by_chain"]) == {"base", "solana"} and [w["label"] for w in got["wallets"]] == ["hot", "sol"]
    assert h.ok("GET", "/wallet/portfolio/addresses")["count"] == 2
    assert h.error("POST", "/wallet/portfolio/addresses", 400, json={"label": "x", "chain": "mars",
                                                                      "address": "1"}) == "invalid_request"


def test_saved_addresses_are_capped_at_50(chain):
    h = Holder(chain, create=False)
    for i in range(50):
        h.ok("POST", "/wallet/portfolio/addresses", 201, json={"label": f"a{i}", "chain": "tron", "address": f"T{i}"})
    assert h.error("POST", "/wallet/portfolio/addresses", 400, json={"label": "x", "chain": "tron",
                                                                      "address": "T"}) == "limit_reached"


# ── send ──────────────────────────────────────────────────────────────────────────────────────


def test_usdc_send_moves_funds_and_pays_gas(chain):
    h = Holder(chain)
    h.fund("base", "USDC", "100")
    h.fund("base", "native", "0.001")
    r = h.send("base", ELSEWHERE, "12.345678", token=BASE_USDC)
    assert r.status_code == 200, r.text
    sent = r.json()
    assert sent["from"] == h.addresses["base"] and sent["tx_hash"].startswith("0x") and sent["token"] == BASE_USDC
    assert h.units("base", "USDC") == 87_654_322 and h.units("base", "USDC", address=ELSEWHERE) >= 12_345_678
    assert h.units("base") == 10**15 - 2 * 10**12  # 0.001 ETH less the flat gas


@pytest.mark.parametrize("body,status,code", [
    ({"chain": "base", "to": ELSEWHERE, "amount": "1"}, 400, "invalid_request"),
    ({"chain": "dogecoin", "to": ELSEWHERE, "amount": "1", "private_key": "k"}, 400, "unsupported_chain"),
    ({"chain": "bitcoin", "to": "bc1qxyz", "amount": "0.1", "private_key": "k"}, 501, "not_implemented"),
    ({"chain": "base", "to": ELSEWHERE, "amount": "1", "private_key": "0xnot-a-key"}, 400, "send_failed"),
    ({"chain": "base", "to": "0xshort", "amount": "1", "private_key": "KEY"}, 400, "send_failed"),
    ({"chain": "base", "to": ELSEWHERE, "amount": "1.0000001", "private_key": "KEY", "token": BASE_USDC}, 400,
     "send_failed"),
    ({"chain": "base", "to": ELSEWHERE, "amount": "1", "private_key": "KEY", "token": "0x" + "9" * 40}, 400,
     "send_failed"),
    ({"chain": "base", "to": ELSEWHERE, "amount": "1000", "private_key": "KEY", "token": BASE_USDC}, 400,
     "send_failed"),
    ({"chain": "tron", "to": ELSEWHERE, "amount": "5", "private_key": "TRONKEY"}, 400, "tx_create_failed"),
])
def test_send_refusals(chain, body, status, code):
    h = Holder(chain)
    h.fund("base", "USDC", "10")
    h.fund("base", "native", "0.01")
    body = dict(body)
    if body.get("private_key") == "KEY":
        body["private_key"] = h.keys["base"]
    if body.get("private_key") == "TRONKEY":
        body["private_key"] = h.keys["tron"]
    assert h.error("POST", "/wallet/send", status, json=body) == code
    assert h.units("base", "USDC") == 10_000_000 and h.units("base") == 10**16


def test_usdc_without_gas_cannot_move(chain):
    h = Holder(chain)
    h.fund("base", "USDC", "50")
    r = h.send("base", ELSEWHERE, "1", token=BASE_USDC)
    assert (r.status_code, r.json()["error"]) == (400, "send_failed") and h.units("base", "USDC") == 50_000_000


def test_solana_send_ignores_the_token_and_moves_sol(chain):
    h = Holder(chain)
    h.fund("solana", "native", "3")
    h.fund("solana", "USDC", "100")
    r = h.send("solana", h.addresses["solana"][::-1], "1", token="EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v")
    assert r.status_code == 200, r.text
    assert h.units("solana", "USDC") == 100_000_000  # the USDC did not move…
    assert h.units("solana") == 2 * 10**9 - 5_000  # …one SOL did, plus the fee


def test_tron_and_monero_sends(chain):
    h = Holder(chain)
    h.fund("tron", "native", "100")
    r = h.send("tron", "T" + "2" * 33, "12.5")
    assert r.status_code == 200 and r.json()["amount"] == "12.5 TRX" and h.units("tron") == 87_500_000
    h.fund("monero", "native", "2")
    r = h.call("POST", "/wallet/send", json={"chain": "monero", "to": "4" + "8" * 94, "amount": "0.5"})
    assert r.status_code == 200, r.text
    assert h.units("monero") == 1_500_000_000_000 - 30_000_000
    bare = Holder(chain, create=False)
    assert bare.error("POST", "/wallet/send", 400, json={"chain": "monero", "to": "4x", "amount": "1"}) == \
        "keys_required"


def test_multi_send_is_evm_only(chain):
    h = Holder(chain)
    h.fund("base", "native", "1")
    r = h.call("POST", "/wallet/multi-send", json={"chain": "base", "private_key": h.keys["base"],
                                                   "recipients": [{"to": ELSEWHERE, "amount": "0.1"},
                                                                  {"to": "0xbad", "amount": "0.1"}]})
    assert r.status_code == 200 and (r.json()["sent"], r.json()["failed"]) == (1, 1)
    assert (
        h.error(
            "POST",
            "/wallet/multi-send",
            400,
            json={"chain": "solana", "private_key": "k", "recipients": [{"to": "x", "amount": "1"}]},
        )
        == "not_supported"
    )


# ── swaps ─────────────────────────────────────────────────────────────────────────────────────


def swap_body(h, amount: int = 20_000_000, **extra) -> dict:
    return {"from_chain": "base", "to_chain": "base", "from_token": "USDC", "to_token": "ETH", "amount": str(amount),
            "to_address": h.addresses["base"], **extra}


def test_quote_includes_the_half_percent_fee(chain):
    h = Holder(chain)
    eth = admin(chain, "GET", "/prices")["prices"]["ETH"]
    q = h.ok("GET", "/wallet/swap/quote", params={k: v for k, v in swap_body(h).items() if k != "to_address"})
    assert q["integrator_fee"]["rate"] == "0.5%" and q["integrator_fee"]["estimated_fee_usd"] == 0.1
    assert int(q["quote"]["toAmount"]) == pytest.approx(20 * 0.995 / eth * 1e18, rel=1e-6)
    bad = {**swap_body(h), "to_token": "DOGE"}
    bad.pop("to_address")
    assert h.error("GET", "/wallet/swap/quote", 400, params=bad) == "quote_failed"
    assert h.error("GET", "/wallet/swap/quote", 400, params={"from_chain": "base"}) == "invalid_request"


def test_swap_order_deposit_and_output(chain):
    h = Holder(chain)
    h.fund("base", "USDC", "30")
    h.fund("base", "native", "0.01")
    order = h.ok("POST", "/wallet/swap", json=swap_body(h))
    assert order["status"] == "awaiting_deposit" and order["deposit"]["amount"] == "20"
    eth_before = h.units("base")
    status = h.ok("GET", f"/wallet/swap/status/{order['order_id']}")
    assert status["status"] == "awaiting_deposit"
    assert h.send("base", order["deposit"]["address"], "20", token=BASE_USDC).status_code == 200
    status = h.ok("GET", f"/wallet/swap/status/{order['order_id']}")
    assert status["status"] == "completed" and status["output_amount"] == order["output"]["expected_amount"]
    assert h.units("base") == eth_before - 2 * 10**12 + int(order["output"]["expected_amount"])
    assert h.units("base", "USDC") == 10_000_000
    assert h.error("GET", "/wallet/swap/status/wgy_nope", 400) == "status_check_failed"


def test_short_deposit_is_refunded(chain):
    h = Holder(chain)
    h.fund("base", "USDC", "30")
    h.fund("base", "native", "0.01")
    order = h.ok("POST", "/wallet/swap", json=swap_body(h))
    h.send("base", order["deposit"]["address"], "5", token=BASE_USDC)
    status = h.ok("GET", f"/wallet/swap/status/{order['order_id']}")
    assert (status["status"], status["reason"], status["refund_amount"]) == ("refunded", "insufficient_deposit",
                                                                             "5000000")
    assert h.units("base", "USDC") == 30_000_000


def test_slippage_bound_is_honoured(chain):
    h = Holder(chain)
    admin(chain, "POST", "/swap-slippage", json={"bps": 150})
    try:
        r = h.call("POST", "/wallet/swap", json=swap_body(h, max_slippage_bps=100))
        assert (r.status_code, r.json()["error"]) == (400, "swap_failed") and "slippage" in r.json()["message"].lower()
        quote = h.ok("GET", "/wallet/swap/quote", params={k: v for k, v in swap_body(h).items() if k != "to_address"})
        r = h.call("POST", "/wallet/swap", json=swap_body(h, min_output_amount=quote["quote"]["toAmount"]))
        assert (r.status_code, r.json()["error"]) == (400, "swap_failed")
        ok = h.ok("POST", "/wallet/swap", json=swap_body(h, max_slippage_bps=200))
        assert int(ok["output"]["expected_amount"]) == pytest.approx(int(quote["quote"]["toAmount"]) * 0.985, rel=1e-6)
        assert h.error("POST", "/wallet/swap", 400, json=swap_body(h, max_slippage_bps="1")) == "invalid_request"
    finally:
        admin(chain, "POST", "/swap-slippage", json={"bps": None})
    assert h.error("POST", "/wallet/swap", 400, json={"from_chain": "base"}) == "invalid_request"


# ── referral ─────────────────────────────────────────────────────────────────────────────────


def test_referral_earnings_and_whole_balance_withdrawal(chain):
    referrer = Holder(chain, create=False)
    agent = Holder(chain, referral_code=referrer.registration["referral_code"])
    assert referrer.error("POST", "/referral/withdraw", 400, json={}) == "invalid_request"
    r = referrer.call("POST", "/referral/withdraw", json={"address": ELSEWHERE})
    assert r.status_code == 400 and r.json()["error"] == "insufficient_balance" and r.json()["minimum"] == 1
    agent.ok("POST", "/wallet/swap", json=swap_body(agent, amount=3_000 * 10**6))  # fee $15, commission $1.50
    stats = referrer.ok("GET", "/referral/stats")
    assert (stats["total_referrals"], stats["total_earned_usd"], stats["available_usd"]) == (1, 1.5, 1.5)
    done = referrer.ok("POST", "/referral/withdraw", json={"address": ELSEWHERE})
    assert (done["amount_usd"], done["status"], done["chain"]) == (1.5, "pending", "base")
    r = referrer.call("POST", "/referral/withdraw", json={"address": ELSEWHERE})
    assert r.json()["error"] == "insufficient_balance" and r.json()["pending_usd"] == 1.5
    assert referrer.ok("GET", "/referral/stats")["pending_usd"] == 1.5


# ── deposits into the other silos ───────────────────────────────────────────────────────────────


def test_usdc_to_a_casino_deposit_address_is_credited_after_the_poll_delay(fresh_sandbox):
    casino = HTTP.post(fresh_sandbox.urls["casino"] + "/api/v1/auth/register", json={}).json()
    headers = {"authorization": f"Bearer {casino['api_key']}"}
    address = HTTP.post(fresh_sandbox.urls["casino"] + "/api/v1/auth/deposit-address", json={"chain": "base"},
                        headers=headers).json()["address"]
    balance = lambda: HTTP.get(fresh_sandbox.urls["casino"] + "/api/v1/auth/balance",  # noqa: E731
                               headers=headers).json()["balance_usd"]
    start = balance()
    h = Holder(fresh_sandbox)
    h.fund("base", "USDC", "40")
    h.fund("base", "native", "0.01")
    assert h.send("base", address, "25", token=BASE_USDC).status_code == 200
    pending = admin(fresh_sandbox, "GET", "/deposits")["deposits"]
    assert [(d["service"], d["agent_id"], d["amount_micros"], d["status"]) for d in pending] == [
        ("casino", casino["agent_id"], 25_000_000, "pending")]
    assert admin(fresh_sandbox, "POST", "/deliver-deposits")["delivered"] == [] and balance() == start
    HTTP.post(fresh_sandbox.root_url + "/_sandbox/clock/advance", json={"ms": 60_000})
    admin(fresh_sandbox, "POST", "/deliver-deposits")
    assert balance() == start + 25
    assert admin(fresh_sandbox, "GET", "/deposits")["deposits"][0]["status"] == "delivered"


def test_usdc_to_a_trading_deposit_address_becomes_collateral(fresh_sandbox):
    trader = HTTP.post(fresh_sandbox.urls["trading"] + "/v1/auth/register", json={}).json()
    h = Holder(fresh_sandbox)
    h.fund("ethereum", "USDC", "500")
    h.fund("ethereum", "native", "0.01")
    assert h.send("ethereum", trader["deposit_address"], "500", token="0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
                  ).status_code == 200
    HTTP.post(fresh_sandbox.root_url + "/_sandbox/clock/advance", json={"ms": 60_000})
    admin(fresh_sandbox, "POST", "/deliver-deposits")
    account = admin(fresh_sandbox, "GET", f"/account/{trader['agent_id']}", service="trading")
    assert account["collateral_micros"] == 500_000_000


def test_explicit_deposit_route_with_its_own_delay(fresh_sandbox):
    casino = HTTP.post(fresh_sandbox.urls["casino"] + "/api/v1/auth/register", json={}).json()
    target = "0x" + "7" * 40
    admin(fresh_sandbox, "POST", "/deposit-routes", json={"address": target, "service": "casino",
                                                           "agent_id": casino["agent_id"], "delay_ms": 5_000})
    h = Holder(fresh_sandbox)
    h.fund("base", "USDC", "3")
    h.fund("base", "native", "0.01")
    h.send("base", target, "3", token=BASE_USDC)
    HTTP.post(fresh_sandbox.root_url + "/_sandbox/clock/advance", json={"ms": 5_000})
    delivered = admin(fresh_sandbox, "POST", "/deliver-deposits")["delivered"]
    assert [d["status"] for d in delivered] == ["delivered"]
    transfers = admin(fresh_sandbox, "GET", "/transfers", params={"to": target})["transfers"]
    assert [(t["units"], t["token"]) for t in transfers] == [("3000000", "USDC")]


# ── persistence and secrets ──────────────────────────────────────────────────────────────────


def test_balances_survive_a_restart(sandbox_factory, tmp_path):
    path = str(tmp_path / "state.sqlite")
    first = sandbox_factory(seed=8, state_path=path)
    h = Holder(first)
    h.fund("base", "USDC", "7.25")
    first.stop()
    second = sandbox_factory(seed=8, state_path=path)
    h.handle, h.base = second, second.urls["wallet"]
    got = h.ok("GET", "/wallet/usdc-balance", params={"base": h.addresses["base"]})
    assert got["total_usdc"] == "7.25"


def test_private_keys_are_never_stored_or_logged(chain, caplog):
    caplog.set_level("DEBUG")
    h = Holder(chain)
    h.fund("base", "native", "0.1")
    key = h.keys["base"]
    assert h.send("base", ELSEWHERE, "0.01").status_code == 200
    r = h.send("base", ELSEWHERE, "99")  # refused: the key must not be echoed back either
    assert key not in r.text and key not in caplog.text
    stored = b"".join(open(chain.state_path + suffix, "rb").read() for suffix in ("", "-wal")
                      if os.path.exists(chain.state_path + suffix))
    assert key.encode() not in stored and key.removeprefix("0x").encode() not in stored
    assert h.created["mnemonic"].encode() not in stored
