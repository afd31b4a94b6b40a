"""The seeded price walk and the pure trading rules the sandbox is built on."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

from sandbox.prices import MARKETS, SPOT_ASSETS, PriceBook, resolve_market
from sandbox.trading import exit_fires, fee_split, limit_fills, liquidation_price, pnl_of

MICRO = 1_000_000


def book(seed=1, **kw) -> PriceBook:
    return PriceBook(seed, [m.instrument for m in MARKETS], **kw)


def test_same_seed_same_walk_and_ticks_are_respected():
    a, b, c = book(9), book(9), book(10)
    assert a.tick(30) == b.tick(30) != c.tick(30)
    for market in MARKETS:
        price = a.price(market.coin)
        assert price > 0 and price == price.quantize(market.instrument.tick)


def test_snapshot_restore_continues_the_same_walk():
    whole = book(4)
    whole.tick(10)
    whole.tick(15, "BTC")
    halves = book(4)
    halves.tick(10)
    saved = halves.snapshot()
    resumed = book(4)
    resumed.restore(saved)
    resumed.tick(15, "BTC")
    assert resumed.prices() == whole.prices()


def test_the_clock_drives_one_step_per_interval():
    prices = book(2, step_ms=1_000, epoch_ms=10_000)
    start = prices.prices()
    assert not prices.advance_to(10_999) and prices.prices() == start
    assert prices.advance_to(13_000)
    stepped = book(2)
    stepped.tick(3)
    assert prices.prices() == stepped.prices()


def test_pinned_prices_round_to_the_tick_and_refuse_nonsense():
    prices = book()
    assert prices.set_price("BTC", Decimal("101234.6")) == Decimal("101235")
    with pytest.raises(ValueError):
        prices.set_price("BTC", Decimal("-1"))
    assert resolve_market("tsla").coin == "xyz:TSLA" and resolve_market("nope") is None
    assert {a.name for a in SPOT_ASSETS} == {"ETH", "SOL", "BTC", "TRX", "XMR"}


def test_trading_rules():
    assert fee_split(10_000 * MICRO, "free") == (3_500_000, 2_000_000)
    assert fee_split(10_000 * MICRO, "pro") == (3_500_000, 1_000_000)
    assert fee_split(10_000 * MICRO, "whale") == (3_500_000, 0)
    assert pnl_of("long", 1_000 * MICRO, Decimal(100), Decimal(110)) == 100 * MICRO
    assert pnl_of("short", 1_000 * MICRO, Decimal(100), Decimal(110)) == -100 * MICRO
    assert liquidation_price("long", Decimal(100), Decimal(10), Decimal("0.01")) == Decimal("90.05")
    assert liquidation_price("short", Decimal(100), Decimal(10), Decimal("0.01")) == Decimal("109.95")
    assert exit_fires("stop_loss", "long", Decimal(95), Decimal(95)) and not exit_fires("stop_loss", "long",
                                                                                        Decimal(96), Decimal(95))
    assert exit_fires("take_profit", "short", Decimal(90), Decimal(90))
    assert limit_fills("long", Decimal(99), Decimal(100)) and not limit_fills("short", Decimal(99), Decimal(100))


def test_the_sandbox_clock_moves_prices_and_liquidates(fresh_sandbox):
    http = httpx.Client(timeout=10.0)
    trading = fresh_sandbox.urls["trading"]
    reg = http.post(trading + "/v1/auth/register", json={}).json()
    http.post(trading + "/_sandbox/fund", json={"agent_id": reg["agent_id"], "amount_usd": 100})
    http.post(trading + "/_sandbox/price", json={"coin": "PURR", "price": "0.2"})
    headers = {"authorization": f"Bearer {reg['api_key']}"}
    opened = http.post(trading + "/v1/trade/open", headers=headers,
                       json={"coin": "PURR", "side": "long", "size_usd": 100, "leverage": 3}).json()
    before = http.get(trading + "/v1/markets/PURR/price").json()["price"]
    http.post(fresh_sandbox.root_url + "/_sandbox/clock/advance", json={"ms": 2_000})
    assert http.get(trading + "/v1/markets/PURR/price").json()["price"] != before
    # Walk the clock until the 3× long is liquidated (PURR is volatile); the seed fixes when.
    for _ in range(200):
        if http.get(trading + "/v1/trade/positions", headers=headers).json()["count"] == 0:
            break
        http.post(fresh_sandbox.root_url + "/_sandbox/clock/advance", json={"ms": 60_000})
    else:
        pytest.fail("no liquidation in 200 minutes of a 3× PURR long")
    account = http.get(trading + f"/_sandbox/account/{reg['agent_id']}").json()
    assert account["margin_locked_micros"] == 0 and account["open_positions"] == []
    assert account["collateral_micros"] < (100 - opened["margin_used"]) * MICRO + MICRO  # the margin is gone
    rows = http.get(trading + "/v1/trade/positions", headers=headers, params={"status": "all"}).json()["positions"]
    assert [r["status"] for r in rows] == ["open"]  # and the service's database never noticed
    http.close()
