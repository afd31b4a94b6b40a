"""`TradingClient` against the sandbox: typed money, leverage capping, and opens that happen
exactly once whatever the network does."""

from __future__ import annotations

import logging
from decimal import Decimal

import httpx
import pytest

from sandbox import ManualClock, start_sandbox
from venue.client import SandboxAdmin
from venue.client.trading import TradingClient
from venue.client.trading_types import OpenedPosition, Position, PositionList
from venue.errors import VenueNotApplied, VenueRejected, VenueUnavailable

MICRO = 1_000_000
HTTP = httpx.Client(timeout=10.0)
FAST = {"backoff_s": 0.0001, "max_backoff_s": 0.001}


def trading_admin(handle, method: str, path: str, **kwargs) -> dict:
    r = HTTP.request(method, handle.urls["trading"] + "/_sandbox" + path, **kwargs)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture(scope="module")
def shared():
    with start_sandbox(seed=31, clock=ManualClock()) as handle:
        yield handle


def new_trader(handle, collateral_usd: int = 10_000, **options) -> TradingClient:
    client = TradingClient(handle.urls["trading"], **{**FAST, **options})
    registration = client.register()
    if collateral_usd:
        trading_admin(handle, "POST", "/fund", json={"agent_id": registration.agent_id, "amount_usd": collateral_usd})
    return client


class LoseAnswers(httpx.BaseTransport):
    """Forwards requests over real HTTP but loses chosen answers: `after` lets the handler run
    and then drops the response (the dangerous case); `before` never sends the request."""

    def __init__(self, path: str, *, after: int = 0, before: int = 0, kind: str = "drop") -> None:
        self.inner = httpx.HTTPTransport()
        self.path, self.after, self.before, self.kind = path, after, before, kind
        self.sent = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path.endswith(self.path):
            if self.before:
                self.before -= 1
                raise httpx.ConnectError("connection refused (test)", request=request)
            self.sent += 1
            response = self.inner.handle_request(request)
            if self.after:
                self.after -= 1
                response.read()
                if self.kind == "timeout":
                    raise httpx.ReadTimeout("timed out (test)", request=request)
                if self.kind == "garbage":
                    return httpx.Response(200, content=b"<html>bad gateway</html>", request=request)
                raise httpx.RemoteProtocolError("peer closed connection (test)", request=request)
            return response
        return self.inner.handle_request(request)


# ── typed answers and leverage ───────────────────────────────────────────────────────────────


def test_account_markets_and_money_as_micros(shared):
    client = new_trader(shared, collateral_usd=0)
    account = client.account()
    assert account.max_leverage == 10 and account.max_position_usd == 10_000 * MICRO
    markets = {m.ticker: m for m in client.markets()}
    assert markets["TSLA"].coin == "xyz:TSLA" and markets["PURR"].max_leverage == 3
    assert client.market("gold").coin == "xyz:GOLD"
    assert isinstance(client.price("BTC"), Decimal)
    assert client.deposit_address().startswith("0x") and client.referral_code().startswith("ref_")


def test_leverage_is_capped_on_the_client_side(shared):
    client = new_trader(shared)
    assert client.capped_leverage("BTC") == 5
    assert client.capped_leverage("BTC", 50) == 10  # the account maximum
    assert client.capped_leverage("PURR") == 3  # below the default: the market maximum
    opened = client.open_position("PURR", "long", 50 * MICRO)  # would be trade_failed at 5×
    assert opened.leverage == 3
    client.update_risk_settings(max_leverage=25)
    assert client.capped_leverage("BTC", 50) == 20  # free tier cap applied by the service
    with pytest.raises(ValueError):
        client.capped_leverage("BTC", 0)
    with pytest.raises(VenueRejected):
        client.capped_leverage("NOPE")


def test_open_close_and_exits_round_trip(shared):
    client = new_trader(shared)
    trading_admin(shared, "POST", "/price", json={"coin": "ETH", "price": 4_000})
    opened = client.open_position_once("ETH", "long", 1_000 * MICRO, 4)
    assert isinstance(opened, OpenedPosition) and not opened.reconstructed
    assert opened.size_usd == 1_000 * MICRO and opened.margin_used == 250 * MICRO
    assert opened.fee == 550_000 and opened.fee_hyperliquid + opened.fee_builder == opened.fee
    with pytest.raises(ValueError):
        client.set_exits(opened, stop_price=4_100, take_profit_price=4_400)  # a long's stop above entry
    pair = client.set_exits(opened, stop_price=Decimal("3800.5"), take_profit_price=4_400)
    assert pair.stop_loss.trigger_price == Decimal("3800.5") and pair.take_profit.type == "take_profit"
    trading_admin(shared, "POST", "/price", json={"coin": "ETH", "price": 4_400})
    fired = client.check_exits()
    assert fired.triggered == 1 and fired.executions[0].pnl == 100 * MICRO
    listing = client.positions(show_all=True)
    assert isinstance(listing, PositionList) and listing.source == "database"
    assert listing.positions[0].status == "closed" and listing.positions[0].unrealized_pnl == 100 * MICRO
    assert client.positions().count == 0


def test_limits_risk_and_close_all(shared):
    client = new_trader(shared)
    trading_admin(shared, "POST", "/price", json={"coin": "SOL", "price": 200})
    order = client.place_limit("SOL", "short", 200 * MICRO, Decimal("210"))
    assert order.status == "pending" and order.limit_price == 210
    assert [o.order_id for o in client.limit_orders()] == [order.order_id]
    trading_admin(shared, "POST", "/price", json={"coin": "SOL", "price": 211})
    check = client.check_limits()
    assert [f.order_id for f in check.filled] == [order.order_id] and check.filled[0].position_id
    second = client.place_limit("SOL", "long", 100 * MICRO, 150)
    assert client.cancel_limit(second.order_id) == "cancelled"
    settings = client.update_risk_settings(max_daily_loss_usd=300 * MICRO, max_position_usd=20_000 * MICRO)
    assert settings.max_daily_loss_usd == 300 * MICRO and settings.max_position_usd == 20_000 * MICRO
    assert client.update_risk_settings(max_daily_loss_usd=None).max_daily_loss_usd is None
    result = client.close_all()
    assert result.closed == 1 and client.positions().count == 1  # still on the exchange


def test_position_rows_parse_both_spellings():
    camel = {"id": "pos_1", "coin": "xyz:TSLA", "side": "short", "sizeUsd": 99.999999, "entryPrice": 350.5,
             "leverage": 3, "marginUsed": 33.33, "liquidationPrice": 466.7, "status": "closed",
             "unrealizedPnl": -1.25, "openedAt": 1_767_225_600, "closedAt": None, "_info": {}}
    snake = {"position_id": None, "coin": "BTC", "side": "long", "size_usd": "1000", "entry_price": "97000",
             "leverage": {"type": "cross", "value": 7}, "unrealized_pnl": 12.5}
    a, b = Position.from_wire(camel), Position.from_wire(snake)
    assert (a.position_id, a.size_usd, a.unrealized_pnl, a.opened_at_s) == ("pos_1", 99_999_999, -1_250_000,
                                                                             1_767_225_600)
    assert (b.position_id, b.size_usd, b.leverage, b.entry_price) == (None, 1_000 * MICRO, 7, 97_000)
    with pytest.raises(ValueError):
        Position.from_wire({**snake, "size_usd": float("nan")})


# ── exactly-once opens and closes ─────────────────────────────────────────────────────────────


@pytest.mark.parametrize("kind", ["drop", "garbage", "timeout"])
def test_a_lost_answer_after_the_open_is_found_not_repeated(shared, kind):
    transport = LoseAnswers("/trade/open", after=1, kind=kind)
    client = new_trader(shared, transport=transport, settle_s=0)
    opened = client.open_position_once("BTC", "long", 500 * MICRO, 2, idempotency_key=f"lost-after-{kind}")
    assert opened.reconstructed and opened.size_usd == 500 * MICRO and opened.side == "long"
    assert transport.sent == 1
    rows = client.positions(show_all=True).positions
    assert [r.position_id for r in rows] == [opened.position_id]
    log = SandboxAdmin(shared.root_url).idempotency(f"lost-after-{kind}")
    assert log["count"] == 1 and log["successes"] == 1


def test_a_request_lost_before_the_server_is_sent_again(shared):
    transport = LoseAnswers("/trade/open", before=2)
    client = new_trader(shared, transport=transport)
    opened = client.open_position_once("ETH", "short", 300 * MICRO, idempotency_key="lost-before")
    assert not opened.reconstructed and transport.sent == 1
    assert client.positions(show_all=True).count == 1


def test_open_gives_up_when_nothing_ever_arrives(shared):
    client = new_trader(shared, transport=LoseAnswers("/trade/open", before=5))
    with pytest.raises(VenueNotApplied) as info:
        client.open_position_once("BTC", "long", 100 * MICRO, attempts=3)
    assert isinstance(info.value, VenueRejected) and client.positions(show_all=True).count == 0


def test_a_definite_refusal_is_not_retried(shared):
    transport = LoseAnswers("/trade/open")
    client = new_trader(shared, collateral_usd=0, transport=transport)
    with pytest.raises(VenueRejected) as info:
        client.open_position_once("BTC", "long", 100 * MICRO)
    assert info.value.code == "trade_failed" and transport.sent == 1


def test_a_lost_close_is_found_not_repeated(shared):
    transport = LoseAnswers("/trade/close", after=1)
    client = new_trader(shared, transport=transport)
    trading_admin(shared, "POST", "/price", json={"coin": "GOLD", "price": 2_600})
    opened = client.open_position_once("GOLD", "long", 1_000 * MICRO)
    trading_admin(shared, "POST", "/price", json={"coin": "GOLD", "price": 2_626})
    closed = client.close_position_once(opened.position_id)
    assert closed.reconstructed and closed.pnl == 10 * MICRO and closed.exit_price == Decimal("2626")
    assert transport.sent == 1


def test_faults_never_double_open_or_lose_an_open(sandbox_factory):
    """Random 500s, drops and garbage, half of them after the handler ran, on every route the
    client uses: each returned open exists once, and every open the server made was returned."""
    handle = sandbox_factory(seed=41)
    admin = SandboxAdmin(handle.root_url)
    client = new_trader(handle, collateral_usd=50_000, retries=8)
    client.account(), client.markets()  # cached before the network turns bad
    admin.set_faults(error_rate=0.12, drop_rate=0.12, garbage_rate=0.12, after_ratio=0.5, seed=5)
    returned, not_applied, unknown = [], 0, 0
    keys = [f"fault-open-{i}" for i in range(24)]
    for key in keys:
        try:
            returned.append(client.open_position_once("BTC", "long", 150 * MICRO, 2, idempotency_key=key))
        except VenueNotApplied:
            not_applied += 1
        except VenueUnavailable:
            unknown += 1
    injected = admin.faults()["injected"]
    admin.set_faults()
    assert sum(injected.values()) > 10 and any(k.endswith("_after") for k in injected)
    rows = client.positions(show_all=True).positions
    ids = [r.position_id for r in rows]
    assert len(ids) == len(set(ids))
    assert sorted(p.position_id for p in returned) == sorted(ids) or unknown
    assert len(rows) <= len(returned) + unknown
    succeeded = [k for k in keys if admin.idempotency(k)["successes"] >= 1]
    assert all(admin.idempotency(k)["successes"] <= 1 for k in keys)  # never opened twice
    assert len(succeeded) == len(rows)
    assert len(returned) + not_applied + unknown == len(keys)
    assert any(p.reconstructed for p in returned)  # some answers really were lost after the open


# ── secrets ────────────────────────────────────────────────────────────────────────────────────


def test_the_api_key_never_shows(shared, caplog):
    caplog.set_level(logging.DEBUG)
    client = TradingClient(shared.urls["trading"], **FAST)
    registration = client.register()
    key = registration.api_key.reveal()
    client.account()
    with pytest.raises(VenueRejected) as info:
        client.open_position("BTC", "long", 1 * MICRO)
    bad = TradingClient(shared.urls["trading"], "sk_trade_" + "f" * 48, **FAST)
    with pytest.raises(VenueRejected) as denied:
        bad.account()
    assert denied.value.code == "invalid_key"
    texts = [repr(registration), str(registration), repr(client), repr(bad), str(info.value), repr(info.value),
             str(denied.value), caplog.text]
    assert not any(key in text or "f" * 48 in text for text in texts)
