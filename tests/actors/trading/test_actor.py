"""TradingBucket against a real Redis and the sandbox over loopback HTTP: opening with absolute
stops, every refusal, closing (one, all, while halted), and the books (`assert_books`: exact
conservation, and agreement with the venue's account) after every step."""

from __future__ import annotations

from decimal import Decimal

import pytest

from actors.transfers import open_leg
from messages.codec import decode_entry
from messages.schema import BalancesChanged, RiskControl
from messages.trading_msgs import (
    CheckExits,
    CloseAllPositions,
    ClosePosition,
    OrderRefused,
    PositionClosed,
    PositionOpened,
    PositionsClosedAll,
)
from messages.treasury_msgs import DebitLeg, FundsDebited
from runtime.bus import HandlerRejected
from runtime.control import ControlChanged
from tests.kit.trading import TRADING, USD, assert_books, exit_triggers, order
from venue.client.trading import TradingClient
from venue.errors import VenueRejected

pytestmark = pytest.mark.redis

# ---------------------------------------------------------------- opening


@pytest.mark.parametrize("side, stop, target", [("long", "98000", "104000"), ("short", "102000", "96000")])
def test_an_order_opens_with_its_stop_and_target_at_absolute_prices(harness, side, stop, target):
    h = harness
    h.set_price("BTC", "100000")
    d = h.send(order(side=side))
    opened = h.one(d, PositionOpened)
    # Kelly: f* = 0.55 − 0.45/2 = 0.325, half of it, capped at 2 % of $10,000 = $200 at risk; at a 2 %
    # stop that is $10,000 of notional, whose $2,000 margin at 5× is over 10 % of the bucket: held
    # to $1,000 of margin, $5,000 of notional.
    assert (opened.side, opened.entry_price, opened.notional, opened.margin, opened.leverage) == (
        side, "100000", 5_000 * USD, 1_000 * USD, 5)
    assert opened.sizing.margin_capped and opened.sizing.risk == 100 * USD
    assert opened.fee == 2_750_000  # 5.5 bp of $5,000
    assert (Decimal(opened.stop_loss), Decimal(opened.take_profit)) == (Decimal(stop), Decimal(target))
    assert exit_triggers(h) == {"stop_loss": [Decimal(stop)], "take_profit": [Decimal(target)]}
    rows = h.venue_rows()
    assert [(r.position_id, r.side, r.size_usd, r.status) for r in rows] == [
        (opened.position_id, side, 5_000 * USD, "open")
    ]
    record = h.positions()[opened.position_id]
    assert (record.stop_loss, record.take_profit, record.margin, record.opened_by) == (
        opened.stop_loss, opened.take_profit, 1_000 * USD, d.envelope.id)
    assert h.events(d, BalancesChanged) == []  # sent to RiskGuard's stream, not the journal
    assert h.rclient.xlen(h.steps.keys.agent_commands(h.agent, "risk")) == 1
    assert_books(h)


def test_a_take_profit_multiple_above_two_and_a_smaller_kelly_size(harness):
    h = harness
    h.set_price("ETH", "3000")
    d = h.send(order(coin="ETH", win_rate="0.4", win_loss_ratio="2", kelly="quarter", take_profit_multiple="3",
                     stop_distance="0.05", leverage=2))
    opened = h.one(d, PositionOpened)
    # f* = 0.4 − 0.6/2 = 0.1, a quarter = 2.5 % of the bucket, capped at 2 %: $200 at a 5 % stop
    # is $4,000 of notional, $2,000 of margin at 2× — over 10 %: $1,000 of margin, $2,000 notional.
    assert (opened.notional, opened.margin) == (2_000 * USD, 1_000 * USD)
    assert (Decimal(opened.stop_loss), Decimal(opened.take_profit)) == (Decimal("2850"), Decimal("3450"))
    assert_books(h)


# ---------------------------------------------------------------- refusals


REFUSALS = {
    "no edge": (order(win_rate="0.3", win_loss_ratio="1"), "no_edge", "no edge"),
    "take-profit under 2x the stop": (order(take_profit_multiple="1.5"), "reward_risk_too_low", "less than 2 ×"),
    "leverage over the policy cap": (order(leverage=6), "leverage_above_cap", "above the 5× cap"),
    "leverage over the market's cap": (order(coin="PURR", leverage=4), "leverage_above_cap", "venue 3×"),
    "margin over 10 % of the bucket": (order(notional=6_000 * USD), "margin_above_cap", "above 10.00 %"),
    "no stop-loss": (order(stop_distance="0"), "missing_stop_loss", "every order carries a stop-loss"),
    "under the venue minimum": (order(notional=9 * USD), "too_small", "minimum"),
    "unknown market": (order(coin="NOPE"), "unknown_market", "NOPE"),
}


@pytest.mark.parametrize("name", sorted(REFUSALS))
def test_an_order_breaking_a_rule_is_refused_with_its_reason(harness, name):
    h = harness
    h.set_price("BTC", "100000")
    command, code, words = REFUSALS[name]
    d = h.send(command)
    refused = h.one(d, OrderRefused)
    assert refused.code == code and words in refused.reason
    assert h.events(d, PositionOpened) == [] and h.venue_rows() == []
    assert_books(h)


@pytest.mark.parametrize("risk, code", [({"state": "PAUSED", "reason": "daily loss"}, "paused"),
                                        ({"state": "HALTED", "reason": "drawdown"}, "halted"),
                                        ({"halt:trading": "trading drawdown"}, "bucket_halted")])
def test_the_fence_refuses_an_order_while_spending_is_stopped(harness, risk, code):
    h = harness
    h.set_price("BTC", "100000")
    h.set_risk(**risk)
    d = h.send(order())
    refused = h.one(d, OrderRefused)
    assert refused.code == code and refused.sizing is not None
    assert h.venue_rows() == []
    assert_books(h)


def test_a_halt_broadcast_stops_orders_before_any_venue_call(harness):
    h = harness
    h.actor.tell(ControlChanged(h.agent, RiskControl(state="HALTED", reason="operator halt")))
    d = h.send(order())
    refused = h.one(d, OrderRefused)
    assert (refused.code, refused.sizing) == ("halted", None)
    assert h.venue_rows() == []
    assert_books(h)


# ---------------------------------------------------------------- closing


def test_close_one_position_settles_pnl_and_both_fees(harness):
    h = harness
    h.set_price("BTC", "100000")
    opened = h.one(h.send(order()), PositionOpened)
    h.set_price("BTC", "101000")
    d = h.send(ClosePosition(position_id=opened.position_id, reason="agent takes profit"))
    closed = h.one(d, PositionClosed)
    assert (closed.pnl, closed.fee, closed.exit_price, closed.reason) == (
        50 * USD,
        2_750_000,
        "101000",
        "agent takes profit",
    )
    assert closed.returned == 1_000 * USD + 50 * USD - 2_750_000 and not closed.liquidated
    assert h.positions() == {}
    assert [r.status for r in h.venue_rows()] == ["closed"]
    assert_books(h)
    assert h.ledger()["bucket"] == TRADING + 50 * USD - 2 * 2_750_000
    again = h.send(ClosePosition(position_id=opened.position_id, reason="twice"))
    assert h.one(again, OrderRefused).code == "unknown_position"
    assert_books(h)


def test_close_all_closes_every_position_even_while_halted(harness):
    h = harness
    h.set_price("BTC", "100000")
    h.set_price("ETH", "3000")
    long = h.one(h.send(order()), PositionOpened)
    short = h.one(h.send(order(coin="ETH", side="short", notional=4_000 * USD)), PositionOpened)
    assert_books(h)
    h.set_risk(state="HALTED", reason="treasury drawdown")
    h.set_risk(**{"halt:trading": "trading bucket 20 % below its peak"})  # RiskGuard's unsigned order
    h.set_price("BTC", "99000")
    h.set_price("ETH", "3030")
    d = h.send(CloseAllPositions(reason="trading drawdown breaker"))
    done = h.one(d, PositionsClosedAll)
    closed = {e.position_id: e for e in h.events(d, PositionClosed)}
    assert set(closed) == {long.position_id, short.position_id}
    assert (closed[long.position_id].pnl, closed[short.position_id].pnl) == (-50 * USD, -40 * USD)
    assert (done.reason, done.closed, done.pnl, done.fees) == ("trading drawdown breaker", 2, -90 * USD,
                                                                2_750_000 + 2_200_000)
    assert h.client.positions().positions == [] and h.positions() == {}
    assert_books(h)
    assert h.ledger()["margin"] == 0


def test_close_all_with_nothing_open_still_answers(harness):
    h = harness
    done = h.one(h.send(CloseAllPositions(reason="rebalance"), signed=True), PositionsClosedAll)
    assert (done.closed, done.pnl, done.fees) == (0, 0, 0)
    assert_books(h)


def test_an_unsigned_close_all_without_a_halt_or_a_waiting_rebalance_is_refused(harness):
    h = harness
    h.set_price("BTC", "100000")
    h.one(h.send(order()), PositionOpened)
    with pytest.raises(HandlerRejected, match="unsigned CloseAllPositions"):
        h.send(CloseAllPositions(reason="forged"))
    assert len(h.positions()) == 1  # nothing was closed


def test_a_tick_with_nothing_open_calls_no_venue(harness, monkeypatch):
    h = harness

    def no_call(self, *args, **kwargs):
        raise AssertionError("the venue was called")

    for name in ("check_exits", "positions", "price", "account"):
        monkeypatch.setattr(TradingClient, name, no_call)
    d = h.send(CheckExits())
    assert h.events(d) == []
    assert_books(h, venue_exact=False)


def test_close_all_answers_the_coordinator_it_names(harness):
    h = harness
    keys = h.steps.keys
    h.send(CloseAllPositions(reason="rebalance"), signed=True)
    h.send(CloseAllPositions(reason="drawdown", reply_to="risk"), signed=True)
    h.send(CloseAllPositions(reason="journal only", reply_to=None), signed=True)
    reasons = {role: [decode_entry(f).body.reason for _, f in h.rclient.xrange(keys.agent_commands(h.agent, role))]
               for role in ("rebalancer", "risk")}
    assert reasons == {"rebalancer": ["rebalance"], "risk": ["drawdown"]}
    assert [e.reason for e in h.events(kind=PositionsClosedAll)] == ["rebalance", "drawdown", "journal only"]


def test_the_trading_bucket_carries_out_a_rebalance_leg(harness):
    """Money leaves the trading bucket by the rebalancer's saga, one leg at a time (actors/transfers)."""
    h = harness
    commit = h.steps.new_commit(h.agent)
    open_leg(commit, h.steps.keys, h.agent, "saga1", 0, "trading", "reserve", 500 * USD)
    h.steps.commit(commit, "open-saga1", h.clock.now_ms())
    d = h.send(DebitLeg(saga="saga1", leg=0, source="trading", dest="reserve", amount=500 * USD, reason="drift"))
    assert h.one(d, FundsDebited).amount == 500 * USD
    assert h.ledger()["available"] == TRADING - 500 * USD and h.pending() == 0


def test_a_position_whose_stops_the_venue_refuses_is_closed_at_once(harness, monkeypatch):
    h = harness
    h.set_price("BTC", "100000")

    def refuse(self, *args, **kwargs):
        raise VenueRejected("trading", "trigger refused", code="invalid_trigger_price", status=400)

    monkeypatch.setattr(TradingClient, "set_exits", refuse)
    d = h.send(order())
    opened, closed = h.one(d, PositionOpened), h.one(d, PositionClosed)
    assert (closed.position_id, closed.reason, closed.pnl, closed.fee) == (
        opened.position_id,
        "exits_refused",
        0,
        2_750_000,
    )
    assert h.positions() == {} and [r.status for r in h.venue_rows()] == ["closed"]
    assert_books(h)


def test_closing_a_liquidated_position_books_the_margin_as_lost(harness):
    h = harness
    h.set_price("ETH", "3000")
    opened = h.one(h.send(order(coin="ETH")), PositionOpened)
    h.set_price("ETH", "2000")  # far through the 5× liquidation price: the exchange closed it
    closed = h.one(h.send(ClosePosition(position_id=opened.position_id, reason="agent exit")), PositionClosed)
    assert (closed.liquidated, closed.returned) == (True, 0)
    assert_books(h)
