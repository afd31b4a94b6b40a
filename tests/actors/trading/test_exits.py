"""The `CheckExits` tick: a trailing stop that ratchets (moving the venue's trigger) and then
fires, venue-fired stops and targets settled, and a liquidation the venue's database never
mentions, with the books checked after every tick."""

from __future__ import annotations

from decimal import Decimal

import pytest

from messages.trading_msgs import CheckExits, OpenPosition, PositionClosed, PositionOpened, StopMoved
from tests.kit.trading import TRADING, USD, assert_books, exit_triggers, order

pytestmark = pytest.mark.redis

FEE = 2_750_000
"""5.5 bp of the $5,000 notional every default order gets (see test_trading)."""


def test_a_trailing_stop_ratchets_then_fires(harness):
    h = harness
    h.set_price("BTC", "100000")
    opened = h.one(h.send(order(trail_bp=300, take_profit_multiple="5")), PositionOpened)
    assert (opened.stop_loss, opened.take_profit, opened.trail_bp) == ("98000.0", "110000.0", 300)

    # at the entry the 3 % trail sits below the 2 % stop: nothing moves
    tick = h.send(CheckExits())
    assert h.events(tick, StopMoved) == [] and h.events(tick, PositionClosed) == []

    h.set_price("BTC", "103000")
    tick = h.send(CheckExits())
    moved = h.one(tick, StopMoved)
    assert (moved.previous, Decimal(moved.stop_loss), Decimal(moved.best_price)) == ("98000.0", Decimal("99910"),
                                                                                     Decimal("103000"))
    assert sorted(exit_triggers(h)["stop_loss"]) == [Decimal("98000"), Decimal("99910")]

    h.set_price("BTC", "106000")
    moved = h.one(h.send(CheckExits()), StopMoved)
    assert Decimal(moved.stop_loss) == Decimal("102820")
    h.set_price("BTC", "104000")  # pulls back, above the trail: the stop does not give ground
    tick = h.send(CheckExits())
    assert h.events(tick, StopMoved) == [] and h.events(tick, PositionClosed) == []
    assert Decimal(h.positions()[opened.position_id].trail.stop) == Decimal("102820")
    assert_books(h)

    h.set_price("BTC", "102500")
    tick = h.send(CheckExits())
    closed = h.one(tick, PositionClosed)
    assert (closed.reason, closed.exit_price, closed.pnl, closed.fee) == ("trailing_stop", "102500", 125 * USD, FEE)
    assert closed.returned == 1_000 * USD + 125 * USD - FEE
    assert h.positions() == {} and h.client.positions().positions == []
    assert_books(h)
    assert h.ledger()["bucket"] == TRADING + 125 * USD - 2 * FEE


def test_a_short_trailing_stop_follows_the_price_down(harness):
    h = harness
    h.set_price("BTC", "100000")
    opened = h.one(h.send(order(side="short", trail_bp=100, stop_distance="0.01", take_profit_multiple="10")),
                   PositionOpened)
    assert opened.stop_loss == "101000.0"
    h.set_price("BTC", "97000")
    moved = h.one(h.send(CheckExits()), StopMoved)
    assert Decimal(moved.stop_loss) == Decimal("97970")
    h.set_price("BTC", "98000")
    closed = h.one(h.send(CheckExits()), PositionClosed)
    assert (closed.reason, closed.pnl) == ("trailing_stop", 100 * USD)  # a 2 % fall on a $5,000 short
    assert_books(h)


def test_the_tick_settles_a_venue_fired_stop_and_target_together(harness):
    h = harness
    h.set_price("BTC", "100000")
    h.set_price("ETH", "3000")
    short = h.one(h.send(order(side="short")), PositionOpened)
    long = h.one(h.send(order(coin="ETH", notional=4_000 * USD, stop_distance="0.025")), PositionOpened)
    assert (short.stop_loss, long.take_profit) == ("102000.0", "3150.0")
    tick = h.send(CheckExits())
    assert h.events(tick, PositionClosed) == []

    h.set_price("BTC", "102500")   # through the short's stop
    h.set_price("ETH", "3150")     # at the long's target
    tick = h.send(CheckExits())
    closed = {e.position_id: e for e in h.events(tick, PositionClosed)}
    assert (closed[short.position_id].reason, closed[short.position_id].pnl) == ("stop_loss", -125 * USD)
    assert (closed[long.position_id].reason, closed[long.position_id].pnl) == ("take_profit", 200 * USD)
    assert closed[short.position_id].returned == 1_000 * USD - 125 * USD - FEE
    assert h.positions() == {} and h.client.positions().positions == []
    assert_books(h)
    assert h.ledger()["bucket"] == TRADING - 125 * USD + 200 * USD - 2 * FEE - 2 * 2_200_000


def test_a_liquidation_is_settled_as_the_loss_of_the_margin(harness):
    h = harness
    h.set_price("BTC", "100000")
    opened = h.one(h.send(order()), PositionOpened)
    # At 5× the exchange liquidates near 80,050; the price gaps past the 98,000 stop before any tick.
    h.set_price("BTC", "79000")
    assert h.client.positions().positions == []
    assert [r.status for r in h.venue_rows()] == ["open"]   # the venue's database does not know
    closed = h.one(h.send(CheckExits()), PositionClosed)
    assert (closed.position_id, closed.reason, closed.liquidated, closed.returned) == (
        opened.position_id, "liquidated", True, 0)
    assert h.positions() == {}
    assert_books(h)
    assert h.ledger()["bucket"] == TRADING - FEE - 1_000 * USD
    # A later tick does not settle it again, whatever the venue's database does with its stop.
    h.set_price("BTC", "99000")
    assert h.events(h.send(CheckExits()), PositionClosed) == []
    assert_books(h)


def test_open_position_command_defaults(harness):
    """The take-profit multiple defaults to the 2× minimum and Kelly to half."""
    cmd = OpenPosition(coin="BTC", side="long", win_rate="0.6", win_loss_ratio="1.5", stop_distance="0.01", leverage=3)
    assert (cmd.take_profit_multiple, cmd.kelly, cmd.trail_bp, cmd.notional) == ("2", "half", None, None)
