"""Case 1 of the breaker cases through the trading actor: open positions are marked at the venue's
price on opening and at every exit check. Real Redis, sandbox venue."""

from __future__ import annotations

from decimal import Decimal

import pytest

from messages.trading_msgs import CheckExits, PositionOpened
from tests.kit.trading import order

pytestmark = pytest.mark.redis


# ---------------------------------------------------------------- case 1 through the trading actor


def test_case1_the_trading_actor_marks_positions_on_open_and_at_every_exit_check(harness):
    h = harness
    h.set_price("BTC", "100000")
    opened = h.one(h.send(order()), PositionOpened)
    marks = h.rclient.hgetall(h.steps.keys.marks(h.agent))
    assert int(marks[b"open"]) == 1 and int(marks[b"at_ms"]) == h.clock.now_ms()
    h.clock.advance(15_000)
    h.set_price("BTC", "99000")  # 1 % down, above the stop: the position stays open
    h.send(CheckExits())
    entry = Decimal(opened.entry_price)
    expected = int((Decimal(opened.notional) * (Decimal("99000") - entry) / entry).to_integral_value(
        rounding="ROUND_FLOOR"))
    books = h.ledger()
    assert books["unrealized"] == expected < 0
    assert int(h.rclient.hget(h.steps.keys.marks(h.agent), "at_ms")) == h.clock.now_ms()
    assert books["bucket"] == books["available"] + books["margin"] + expected
