"""Trading sandbox over raw HTTP: routes, error codes and the real service's quirks."""

from __future__ import annotations

import hashlib
import os
from decimal import Decimal

import httpx
import pytest

from sandbox import ManualClock, start_sandbox
from sandbox.trading import fee_split

V1 = "/v1"
MICRO = 1_000_000
HTTP = httpx.Client(timeout=10.0)
"""One keep-alive client for the module: a new httpx client per request costs ~20 ms."""


class Trader:
    """A registered trading agent with raw-HTTP helpers (no client logic in the way)."""

    def __init__(self, handle, referral_code: str | None = None, collateral_usd: float = 0) -> None:
        self.base = handle.urls["trading"]
        body = {"referral_code": referral_code} if referral_code else {}
        r = HTTP.post(self.base + V1 + "/auth/register", json=body)
        assert r.status_code == 201, r.text
        self.registration = r.json()
        self.agent_id = self.registration["agent_id"]
        self.key = self.registration["api_key"]
        if collateral_usd:
            self.fund(collateral_usd)

    def fund(self, usd: float) -> dict:
        return admin(self.base, "POST", "/fund", json={"agent_id": self.agent_id, "amount_usd": usd})

    def call(self, method: str, path: str, **kwargs) -> httpx.Response:
        headers = {"authorization": f"Bearer {self.key}", **kwargs.pop("headers", {})}
        return HTTP.request(method, self.base + V1 + path, headers=headers, **kwargs)

    def ok(self, method: str, path: str, status: int = 200, **kwargs) -> dict:
        r = self.call(method, path, **kwargs)
        assert r.status_code == status, r.text
        return r.json()

    def error(self, method: str, path: str, status: int, **kwargs) -> dict:
        r = self.call(method, path, **kwargs)
        assert r.status_code == status, r.text
        return r.json()

    def open(self, coin="BTC", side="long", size=1000, leverage=None) -> dict:
        body = {"coin": coin, "side": side, "size_usd": size}
        if leverage is not None:
            body["leverage"] = leverage
        return self.ok("POST", "/trade/open", json=body)

    def account(self) -> dict:
        return admin(self.base, "GET", f"/account/{self.agent_id}")


def admin(base: str, method: str, path: str, **kwargs) -> dict:
    r = HTTP.request(method, base + "/_sandbox" + path, **kwargs)
    assert r.status_code == 200, r.text
    return r.json()


def set_price(handle, coin: str, price) -> None:
    admin(handle.urls["trading"], "POST", "/price", json={"coin": coin, "price": price})


@pytest.fixture(scope="module")
def shared_trading():
    """One manual-clock sandbox for the module: every test registers its own agents, and prices
    are pinned again before each test."""
    with start_sandbox(seed=21, clock=ManualClock()) as handle:
        yield handle


@pytest.fixture
def trading(shared_trading):
    set_price(shared_trading, "BTC", 100_000)
    set_price(shared_trading, "ETH", 4_000)
    return shared_trading


# ── registration, auth, markets ──────────────────────────────────────────────────────────────


def test_register_ids_keys_and_hashed_storage(trading):
    t = Trader(trading)
    reg = t.registration
    assert reg["agent_id"].startswith("ag_") and len(reg["agent_id"]) == 15
    assert reg["api_key"].startswith("sk_trade_") and len(reg["api_key"]) == 9 + 48
    assert reg["referral_code"].startswith("ref_") and reg["tier"] == "free"
    assert reg["deposit_address"].startswith("0x") and len(reg["deposit_address"]) == 42
    row = trading.ctx.store.one("SELECT api_key_hash FROM trading_agents WHERE id = ?", (t.agent_id,))
    assert row["api_key_hash"] == hashlib.sha256(t.key.encode()).hexdigest()
    stored = b"".join(open(trading.state_path + suffix, "rb").read() for suffix in ("", "-wal")
                      if os.path.exists(trading.state_path + suffix))
    assert t.key.encode() not in stored


def test_register_validation_and_lenient_body(trading):
    base = trading.urls["trading"] + V1 + "/auth/register"
    r = HTTP.post(base, json={"hl_wallet_address": "0x123"})
    assert (r.status_code, r.json()["error"]) == (400, "invalid_wallet")
    r = HTTP.post(base, json={"hl_signing_key": "0xnothex"})
    assert (r.status_code, r.json()["error"]) == (400, "invalid_signing_key")
    assert HTTP.post(base, content=b"{not json").status_code == 201
    own = "0x" + "ab" * 20
    r = HTTP.post(base, json={"hl_wallet_address": own.upper().replace("0X", "0x"), "hl_signing_key": "0x" + "1" * 64})
    assert r.status_code == 201 and r.json()["deposit_address"] == own and not r.json()["hl_wallet"]["generated"]


def test_auth_errors(trading):
    url = trading.urls["trading"] + V1 + "/auth/account"
    r = HTTP.get(url)
    assert (r.status_code, r.json()["error"]) == (401, "unauthorized")
    r = HTTP.get(url, headers={"authorization": "Bearer sk_trade_" + "0" * 48})
    assert (r.status_code, r.json()["error"]) == (401, "invalid_key")


def test_account_defaults_and_unknown_route(trading):
    t = Trader(trading)
    acc = t.ok("GET", "/auth/account")
    assert acc["max_leverage"] == 10 and acc["max_position_usd"] == 10_000
    assert (
        acc["total_volume"] == acc["total_pnl"] == 0
        and acc["hl_wallet"]["address"] == t.registration["deposit_address"]
    )
    assert "_info" in acc
    r = t.call("GET", "/trade/nothing")
    assert (r.status_code, r.json()["error"]) == (404, "not_found")


def test_markets_and_prices(trading):
    base = trading.urls["trading"] + V1
    listed = HTTP.get(base + "/markets").json()["markets"]
    by_ticker = {m["ticker"]: m for m in listed}
    assert {"BTC", "ETH", "SOL", "TSLA", "GOLD"} <= set(by_ticker)
    assert by_ticker["BTC"]["max_leverage"] == 40 and by_ticker["TSLA"]["coin"] == "xyz:TSLA"
    assert by_ticker["TSLA"]["dex"] == "xyz" and by_ticker["GOLD"]["category"] == "commodities"
    assert HTTP.get(base + "/markets/tsla").json()["coin"] == "xyz:TSLA"
    assert HTTP.get(base + "/markets/BTC/price").json()["price"] == 100_000
    r = HTTP.get(base + "/markets/NOPE")
    assert (r.status_code, r.json()["error"]) == (404, "market_not_found")


# ── open: every refusal ──────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("body,status,code", [
    ({"side": "long", "size_usd": 100}, 400, "invalid_request"),
    ({"coin": "BTC", "side": "long", "size_usd": 0}, 400, "invalid_request"),
    ({"coin": "BTC", "side": "long", "size_usd": "100"}, 400, "invalid_size"),
    ({"coin": "BTC", "side": "long", "size_usd": -5}, 400, "invalid_size"),
    ({"coin": "BTC", "side": "up", "size_usd": 100}, 400, "invalid_side"),
    ({"coin": "BTC", "side": "long", "size_usd": 100, "leverage": 0.5}, 400, "invalid_leverage"),
    ({"coin": "BTC", "side": "long", "size_usd": 100, "leverage": "9"}, 400, "invalid_leverage"),
    ({"coin": "BTC", "side": "long", "size_usd": 10_001}, 400, "position_too_large"),
    ({"coin": "NOPE", "side": "long", "size_usd": 100}, 400, "trade_failed"),
    ({"coin": "PURR", "side": "long", "size_usd": 100}, 400, "trade_failed"),
    ({"coin": "BTC", "side": "long", "size_usd": 9.99}, 400, "trade_failed"),
])
def test_open_refusals(trading, body, status, code):
    t = Trader(trading, collateral_usd=5_000)
    err = t.error("POST", "/trade/open", status, json=body)
    assert err["error"] == code
    if code == "position_too_large":
        assert err["max_position_usd"] == 10_000
    assert t.ok("GET", "/trade/positions?status=all")["count"] == 0
    assert t.account()["collateral_micros"] == 5_000 * MICRO


def test_open_needs_collateral_and_rejects_bad_json(trading):
    t = Trader(trading)
    err = t.error("POST", "/trade/open", 400, json={"coin": "BTC", "side": "long", "size_usd": 100})
    assert err["error"] == "trade_failed" and "margin" in err["message"].lower()
    r = t.call("POST", "/trade/open", content=b"{oops", headers={"content-type": "application/json"})
    assert (r.status_code, r.json()["error"]) == (400, "invalid_json")


def test_leverage_is_silently_capped_at_the_account_max(trading):
    t = Trader(trading, collateral_usd=1_000)
    opened = t.open("BTC", "long", 1_000, leverage=50)
    assert opened["leverage"] == 10 and opened["margin_used"] == 100
    assert opened["max_leverage"] == 40
    assert t.open("ETH", "long", 1_000)["leverage"] == 5  # the default


def test_fees_margin_and_pnl_on_notional(trading):
    t = Trader(trading, collateral_usd=1_000)
    opened = t.open("BTC", "long", 2_000, leverage=4)
    assert opened["entry_price"] == 100_000 and opened["margin_used"] == 500
    assert opened["fee_breakdown"] == {"hyperliquid": 0.7, "purple_flea_builder": 0.4} and opened["fee"] == 1.1
    assert opened["liquidation_price"] == 75_050  # entry × (1 − (1/4 − 0.0005))
    assert t.account()["collateral_micros"] == (1_000 - 500 - 1.1) * MICRO
    set_price(trading, "BTC", 103_000)
    closed = t.ok("POST", "/trade/close", json={"position_id": opened["position_id"]})
    assert closed["exit_price"] == 103_000 and closed["pnl"] == 60.0  # 2000 × 3 %, fees not deducted
    assert closed["pnl_percent"] == 3.0 and closed["fee"] == 1.1 and closed["status"] == "closed"
    assert t.account()["collateral_micros"] == round((1_000 + 60 - 2.2) * MICRO)
    acc = t.ok("GET", "/auth/account")
    assert acc["total_volume"] == 4_000 and acc["total_fees_paid"] == 2.2 and acc["total_pnl"] == 60


def test_short_pnl_and_the_unsigned_pnl_percent(trading):
    t = Trader(trading, collateral_usd=1_000)
    opened = t.open("ETH", "short", 1_000, leverage=2)
    set_price(trading, "ETH", 3_800)
    closed = t.ok("POST", "/trade/close", json={"position_id": opened["position_id"]})
    assert closed["pnl"] == 50.0 and closed["pnl_percent"] == -5.0  # the service does not sign it by side


def test_close_refusals(trading):
    t, other = Trader(trading, collateral_usd=1_000), Trader(trading)
    assert t.error("POST", "/trade/close", 400, json={})["error"] == "provide position_id"
    assert t.error("POST", "/trade/close", 404, json={"position_id": "pos_nope"})["error"] == "position_not_found"
    opened = t.open()
    assert other.error("POST", "/trade/close", 404, json={"position_id": opened["position_id"]})["error"] == \
        "position_not_found"
    t.ok("POST", "/trade/close", json={"position_id": opened["position_id"]})
    assert t.error("POST", "/trade/close", 404, json={"position_id": opened["position_id"]})["error"] == \
        "position_not_found"


def test_positions_listing_shapes(trading):
    t = Trader(trading, collateral_usd=1_000)
    opened = t.open("xyz:TSLA", "long", 500)
    hl = t.ok("GET", "/trade/positions")
    assert hl["source"] == "hyperliquid" and hl["count"] == 1
    row = hl["positions"][0]
    assert row["position_id"] == opened["position_id"] and row["leverage"]["value"] == 5 and "size" in row
    db = t.ok("GET", "/trade/positions", params={"status": "all"})
    assert db["source"] == "database"
    row = db["positions"][0]
    assert {"id", "agentId", "sizeUsd", "entryPrice", "marginUsed", "openedAt", "closedAt"} <= set(row)
    assert row["coin"] == "xyz:TSLA" and row["status"] == "open"


# ── stop loss / take profit ───────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("side,kind,trigger,not_yet,fires", [
    ("long", "stop-loss", 95_000, 95_001, 95_000),
    ("long", "take-profit", 105_000, 104_999, 105_000),
    ("short", "stop-loss", 105_000, 104_999, 105_000),
    ("short", "take-profit", 95_000, 95_001, 95_000),
])
def test_exits_fire_only_on_check_and_by_the_real_rules(trading, side, kind, trigger, not_yet, fires):
    t = Trader(trading, collateral_usd=1_000)
    opened = t.open("BTC", side, 1_000, leverage=2)
    order = t.ok("POST", f"/trade/{kind}", json={"position_id": opened["position_id"], "trigger_price": trigger})
    assert order["type"] == kind.replace("-", "_") and order["trigger_price"] == trigger
    assert order["entry_price"] == 100_000 and order["size_usd"] == 1_000
    set_price(trading, "BTC", not_yet)
    check = t.ok("POST", "/trade/check-exits")
    assert check["triggered"] == 0 and len(check["not_yet_triggered"]) == 1
    set_price(trading, "BTC", fires)
    assert t.ok("GET", "/trade/positions")["count"] == 1  # nothing fires until the client checks
    check = t.ok("POST", "/trade/check-exits")
    assert check["checked"] == 1 and check["triggered"] == 1
    execution = check["executions"][0]
    assert execution["position_id"] == opened["position_id"] and execution["exit_price"] == fires
    assert t.ok("GET", "/trade/positions")["count"] == 0
    assert t.ok("POST", "/trade/check-exits")["checked"] == 0


def test_first_exit_cancels_its_sibling(trading):
    t = Trader(trading, collateral_usd=1_000)
    opened = t.open("BTC", "long", 1_000)
    t.ok("POST", "/trade/stop-loss", json={"position_id": opened["position_id"], "trigger_price": 90_000})
    t.ok("POST", "/trade/take-profit", json={"position_id": opened["position_id"], "trigger_price": 101_000})
    set_price(trading, "BTC", 101_000)
    check = t.ok("POST", "/trade/check-exits")
    assert [e["type"] for e in check["executions"]] == ["take_profit"] and check["not_yet_triggered"] == []
    set_price(trading, "BTC", 80_000)
    assert t.ok("POST", "/trade/check-exits")["triggered"] == 0


@pytest.mark.parametrize("body,status,code", [
    ({"trigger_price": 90_000}, 400, "missing_position_id"),
    ({"position_id": "POS", "trigger_price": -1}, 400, "invalid_trigger_price"),
    ({"position_id": "POS", "trigger_price": "90000"}, 400, "invalid_trigger_price"),
    ({"position_id": "pos_nope", "trigger_price": 90_000}, 404, "position_not_found"),
])
def test_exit_refusals(trading, body, status, code):
    t = Trader(trading, collateral_usd=1_000)
    opened = t.open()
    if body.get("position_id") == "POS":
        body = {**body, "position_id": opened["position_id"]}
    assert t.error("POST", "/trade/stop-loss", status, json=body)["error"] == code


def test_exit_on_a_closed_position_is_refused(trading):
    t = Trader(trading, collateral_usd=1_000)
    opened = t.open()
    t.ok("POST", "/trade/close", json={"position_id": opened["position_id"]})
    err = t.error("POST", "/trade/take-profit", 400, json={"position_id": opened["position_id"], "trigger_price": 1})
    assert err["error"] == "position_not_open"


# ── liquidation and close-all: the exchange and the database disagree ─────────────────────────────


def test_liquidation_takes_the_margin_and_leaves_a_stale_db_row(trading):
    t = Trader(trading, collateral_usd=1_000)
    opened = t.open("BTC", "long", 1_000, leverage=10)
    assert opened["liquidation_price"] == 90_050
    set_price(trading, "BTC", 90_100)
    assert t.ok("GET", "/trade/positions")["count"] == 1
    set_price(trading, "BTC", 89_000)
    assert t.ok("GET", "/trade/positions")["count"] == 0  # gone from the exchange
    row = t.ok("GET", "/trade/positions", params={"status": "all"})["positions"][0]
    assert row["status"] == "open"  # the service's database was never told
    err = t.error("POST", "/trade/close", 400, json={"position_id": opened["position_id"]})
    assert err["error"] == "close_failed"
    # At the liquidation price the loss (99.50) plus the closing fee (0.55) use the whole $100
    # margin: nothing comes back, and the opening fee was paid too.
    hl, builder = fee_split(1_000 * MICRO, "free")
    assert 100 * MICRO - 99_500_000 - hl - builder < 0
    account = t.account()
    assert account["collateral_micros"] == 1_000 * MICRO - 100 * MICRO - hl - builder
    assert account["margin_locked_micros"] == 0 and account["open_positions"] == []


def test_exit_on_a_liquidated_position_records_a_simulated_fill(trading):
    t = Trader(trading, collateral_usd=1_000)
    opened = t.open("BTC", "short", 1_000, leverage=10)
    t.ok("POST", "/trade/stop-loss", json={"position_id": opened["position_id"], "trigger_price": 105_000})
    set_price(trading, "BTC", 112_000)
    collateral = t.account()["collateral_micros"]
    check = t.ok("POST", "/trade/check-exits")
    assert check["executions"][0]["execution"] == "simulated"
    assert t.account()["collateral_micros"] == collateral
    assert t.ok("GET", "/trade/positions", params={"status": "all"})["positions"][0]["status"] == "closed"


def test_close_all_only_touches_the_database(trading):
    t = Trader(trading, collateral_usd=2_000)
    a, b = t.open("BTC", "long", 1_000), t.open("ETH", "short", 1_000)
    set_price(trading, "BTC", 110_000)
    result = t.ok("POST", "/trade/close-all")
    assert result["closed"] == 2 and set(result["position_ids"]) == {a["position_id"], b["position_id"]}
    rows = t.ok("GET", "/trade/positions", params={"status": "all"})["positions"]
    assert {r["status"] for r in rows} == {"closed"} and {r["unrealized_pnl"] for r in rows} == {0}
    hl = t.ok("GET", "/trade/positions")
    assert hl["count"] == 2 and {p["position_id"] for p in hl["positions"]} == {None}
    assert t.account()["margin_locked_micros"] == 400 * MICRO  # still on the exchange
    assert t.error("POST", "/trade/close", 404, json={"position_id": a["position_id"]})["error"] == "position_not_found"
    assert t.ok("GET", "/auth/account")["total_pnl"] == 0


# ── limit orders ───────────────────────────────────────────────────────────────────────────────


def test_limit_orders_lifecycle(trading):
    t = Trader(trading, collateral_usd=2_000)
    order = t.ok("POST", "/trade/limit", 201, json={"coin": "BTC", "side": "long", "size_usd": 1_000,
                                                     "limit_price": 98_000, "leverage": 25})
    assert order["status"] == "pending" and order["leverage"] == 10
    other = t.ok("POST", "/trade/limit", 201, json={"coin": "ETH", "side": "short", "size_usd": 500,
                                                     "limit_price": 4_100})
    assert t.ok("POST", "/trade/check-limits")["filled"] == []
    set_price(trading, "BTC", 97_500)
    result = t.ok("POST", "/trade/check-limits")
    assert [f["order_id"] for f in result["filled"]] == [order["order_id"]] and result["pending"] == 1
    assert result["filled"][0]["fill_price"] == 97_500
    positions = t.ok("GET", "/trade/positions")["positions"]
    assert [p["position_id"] for p in positions] == [result["filled"][0]["position_id"]]
    assert t.ok("DELETE", f"/trade/limit-orders/{other['order_id']}")["status"] == "cancelled"
    assert t.error("DELETE", f"/trade/limit-orders/{other['order_id']}", 400)["error"] == "invalid_status"
    assert t.error("DELETE", "/trade/limit-orders/lim_nope", 404)["error"] == "order_not_found"
    assert {o["status"] for o in t.ok("GET", "/trade/limit-orders")["orders"]} == {"filled", "cancelled"}


def test_limit_order_refusals(trading):
    t = Trader(trading)
    body = {"coin": "BTC", "side": "long", "size_usd": 100, "limit_price": 90_000}
    assert t.error("POST", "/trade/limit", 400, json={**body, "coin": "NOPE"})["error"] == "unknown_coin"
    assert t.error("POST", "/trade/limit", 400, json={**body, "size_usd": 20_000})["error"] == "too_large"
    assert t.error("POST", "/trade/limit", 400, json={"coin": "BTC"})["error"] == "invalid_request"
    for _ in range(10):
        t.ok("POST", "/trade/limit", 201, json=body)
    assert t.error("POST", "/trade/limit", 400, json=body)["error"] == "limit_reached"


# ── risk settings and the daily loss limit ─────────────────────────────────────────────────────


def test_risk_settings(trading):
    t = Trader(trading)
    got = t.ok("GET", "/trade/risk-settings")
    assert got["risk_settings"] == {"max_leverage": 10, "max_position_usd": 10_000, "max_daily_loss_usd": None}
    updated = t.ok("POST", "/trade/risk-settings", json={"max_leverage": 35, "max_position_usd": 80_000})
    assert updated["risk_settings"]["max_leverage"] == 20 and updated["risk_settings"]["max_position_usd"] == 50_000
    assert t.error("POST", "/trade/risk-settings", 400, json={"max_leverage": 51})["error"] == "invalid_value"
    assert t.error("POST", "/trade/risk-settings", 400, json={"max_daily_loss_usd": -1})["error"] == "invalid_value"
    assert t.error("POST", "/trade/risk-settings", 400, json={"max_position_usd": 0})["error"] == "invalid_value"
    assert t.error("POST", "/trade/risk-settings", 400, json={})["error"] == "no_changes"
    assert t.ok("POST", "/trade/risk-settings", json={"max_daily_loss_usd": None})["risk_settings"][
        "max_daily_loss_usd"] is None


def test_daily_loss_limit_blocks_opens(trading):
    t = Trader(trading, collateral_usd=5_000)
    t.ok("POST", "/trade/risk-settings", json={"max_daily_loss_usd": 50})
    opened = t.open("BTC", "long", 2_000)
    set_price(trading, "BTC", 97_000)
    t.ok("POST", "/trade/close", json={"position_id": opened["position_id"]})  # −60 and fees
    err = t.error("POST", "/trade/open", 403, json={"coin": "BTC", "side": "long", "size_usd": 100})
    assert err["error"] == "daily_loss_limit_reached" and err["resets_at"].endswith("Z")
    assert t.ok("GET", "/trade/risk-settings")["today"]["trading_blocked"] is True


# ── referral ─────────────────────────────────────────────────────────────────────────────────


def test_referral_commission_and_whole_balance_withdrawal(trading):
    referrer = Trader(trading)
    trader = Trader(trading, referral_code=referrer.registration["referral_code"], collateral_usd=5_000)
    grand = Trader(trading, referral_code=trader.registration["referral_code"])  # a referred agent cannot refer
    assert trading.ctx.store.one("SELECT referred_by FROM trading_agents WHERE id = ?",
                                 (grand.agent_id,))["referred_by"] is None
    err = referrer.error("POST", "/referral/withdraw", 400, json={"address": "0x" + "1" * 40})
    assert err["error"] == "insufficient_balance" and err["minimum"] == 1
    for _ in range(2):
        opened = trader.open("BTC", "long", 10_000, leverage=10)
        trader.ok("POST", "/trade/close", json={"position_id": opened["position_id"]})
    stats = referrer.ok("GET", "/referral/stats")
    assert stats["total_referrals"] == 1 and stats["total_earned_usd"] == 1.6  # 4 fills × 20 % × $2 builder fee
    assert referrer.error("POST", "/referral/withdraw", 400, json={"address": "nope"})["error"] == "invalid_address"
    done = referrer.ok("POST", "/referral/withdraw", json={"address": "0x" + "1" * 40})
    assert done["amount_usd"] == 1.6 and done["status"] == "pending" and done["withdrawal_id"].startswith("rw_")
    err = referrer.error("POST", "/referral/withdraw", 400, json={"address": "0x" + "1" * 40})
    assert err["error"] == "insufficient_balance" and err["available_usd"] == 0


# ── rate limits, persistence, determinism ───────────────────────────────────────────────────────


def test_rate_limit_when_switched_on(trading):
    t = Trader(trading, collateral_usd=10_000)
    admin(t.base, "POST", "/rate-limits", json={"enabled": True})
    codes = [t.call("POST", "/trade/open", json={"coin": "BTC", "side": "long", "size_usd": 10}).status_code
             for _ in range(31)]
    assert codes.count(200) == 30 and codes[-1] == 429
    assert t.call("POST", "/trade/open", json={}).json()["error"] == "rate_limited"
    admin(t.base, "POST", "/rate-limits", json={"enabled": False})


def test_state_survives_a_restart(sandbox_factory, tmp_path):
    path = str(tmp_path / "state.sqlite")
    first = sandbox_factory(seed=5, state_path=path)
    t = Trader(first, collateral_usd=1_000)
    opened = t.open("SOL", "long", 300)
    admin(t.base, "POST", "/tick", json={"steps": 25})
    prices = admin(t.base, "GET", "/prices")["prices"]
    before = t.account()
    first.stop()
    second = sandbox_factory(seed=5, state_path=path)
    t.base = second.urls["trading"]
    assert admin(t.base, "GET", "/prices")["prices"] == prices
    assert t.account() == before
    rows = t.ok("GET", "/trade/positions")["positions"]
    assert [r["position_id"] for r in rows] == [opened["position_id"]]
    assert Trader(second).agent_id != t.agent_id  # ids keep counting after a restart


def test_seeded_prices_replay(sandbox_factory):
    runs = []
    for seed in (3, 3, 4):
        handle = sandbox_factory(seed=seed)
        runs.append(admin(handle.urls["trading"], "POST", "/tick", json={"steps": 40})["prices"])
    assert runs[0] == runs[1] and runs[0] != runs[2]
    assert all(Decimal(str(p)) > 0 for p in runs[0].values())
