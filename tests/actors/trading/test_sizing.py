"""The trading bucket's pure parts: sizing and checking an order, the bookings' arithmetic, the
fee estimate for lost answers, and which booked positions the exchange still holds."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.trading.book import OrderPlan, PositionRecord, Trail, book_open, fee_allowance, settled_amount
from actors.trading.sizing import Refusal, SizedOrder, VenueFacts, plan_order
from actors.trading.venue import estimated_fee, exchange_holds
from messages.money import MICRO
from messages.trading_msgs import OpenPosition
from sandbox.trading import fee_split
from venue.client.trading_types import Position

USD = MICRO
BUCKET = 10_000 * USD
FACTS = VenueFacts(price=Decimal("100000"), max_leverage=10, max_position=10_000 * USD)


def cmd(**changes) -> OpenPosition:
    fields = dict(coin="BTC", side="long", win_rate="0.55", win_loss_ratio="2", stop_distance="0.02", leverage=5)
    fields.update(changes)
    return OpenPosition(**fields)


def test_a_kelly_sized_order_is_held_to_ten_percent_of_the_bucket_as_margin():
    sized = plan_order(cmd(), BUCKET, FACTS)
    assert isinstance(sized, SizedOrder)
    assert (sized.notional, sized.margin, sized.leverage) == (5_000 * USD, 1_000 * USD, 5)
    assert sized.held == 1_000 * USD + 5 * USD == sized.margin + fee_allowance(sized.notional)
    assert sized.cap == 1_000 * USD + 5 * USD
    assert (sized.stop_loss, sized.take_profit) == (Decimal("98000"), Decimal("104000"))
    assert sized.sizing.margin_capped and sized.sizing.risk == 100 * USD


def test_an_order_under_the_margin_cap_keeps_its_kelly_size():
    sized = plan_order(cmd(win_rate="0.51", win_loss_ratio="1", leverage=1, stop_distance="0.05"), BUCKET, FACTS)
    # f* = 0.02, half = 1 % of the bucket = $100 at a 5 % stop: $2,000 notional; at 1× its margin is
    # over $1,000 and the trade shrinks, at 3× it fits
    assert isinstance(sized, SizedOrder)
    assert (sized.notional, sized.margin, sized.sizing.margin_capped) == (1_000 * USD, 1_000 * USD, True)
    small = plan_order(cmd(win_rate="0.51", win_loss_ratio="1", leverage=3, stop_distance="0.05"), BUCKET, FACTS)
    assert isinstance(small, SizedOrder)
    assert (small.notional, small.margin, small.sizing.margin_capped) == (2_000 * USD, 666_666_667, False)
    assert small.sizing.risk == 100 * USD


@pytest.mark.parametrize("changes, facts, code", [
    ({"leverage": 6}, FACTS, "leverage_above_cap"),
    ({"leverage": 4}, VenueFacts(Decimal("100000"), 3, 10_000 * USD), "leverage_above_cap"),
    ({"win_rate": "0.3", "win_loss_ratio": "1"}, FACTS, "no_edge"),
    ({"win_rate": "1.5"}, FACTS, "invalid_input"),
    ({"win_loss_ratio": "0"}, FACTS, "invalid_input"),
    ({"stop_distance": "0"}, FACTS, "missing_stop_loss"),
    ({"stop_distance": "1"}, FACTS, "invalid_stop_loss"),
    ({"take_profit_multiple": "1.99"}, FACTS, "reward_risk_too_low"),
    ({"take_profit_multiple": "0"}, FACTS, "invalid_take_profit"),
    ({"side": "short", "stop_distance": "0.1", "take_profit_multiple": "10"}, FACTS, "invalid_take_profit"),
    ({"notional": 5_000 * USD + 1}, FACTS, "margin_above_cap"),
    ({"notional": 11_000 * USD, "leverage": 2}, FACTS, "position_too_large"),
    ({"notional": 9_990_000}, FACTS, "too_small"),
    ({"stop_distance": "0.25"}, FACTS, "stop_beyond_liquidation"),
])
def test_refusals(changes, facts, code):
    result = plan_order(cmd(**changes), BUCKET, facts)
    assert isinstance(result, Refusal) and result.code == code, result


def test_margin_exactly_at_ten_percent_passes():
    assert isinstance(plan_order(cmd(notional=5_000 * USD), BUCKET, FACTS), SizedOrder)


def test_the_venue_maximum_position_shrinks_a_kelly_size_but_refuses_an_explicit_one():
    facts = VenueFacts(Decimal("100000"), 10, 3_000 * USD)
    sized = plan_order(cmd(), BUCKET, facts)
    assert isinstance(sized, SizedOrder) and sized.notional == 3_000 * USD and "maximum position" in sized.sizing.reason
    assert plan_order(cmd(notional=3_000 * USD + 1), BUCKET, facts).code == "position_too_large"


@given(held=st.integers(0, 10**12), margin=st.integers(-10, 10**12), fee=st.integers(-10, 10**10))
def test_an_open_booking_always_adds_up_to_the_reservation(held, margin, fee):
    b = book_open(held, margin, fee)
    assert b.margin + b.fee + b.back == held and min(b.margin, b.fee, b.back) >= 0
    if 0 <= margin and 0 <= fee and margin + fee <= held:
        assert (b.margin, b.fee) == (margin, fee)


def test_a_loss_beyond_the_margin_is_capped_at_the_margin():
    assert settled_amount(1_000, 50, 3) == 1_047
    assert settled_amount(1_000, -997, 3) == 0
    assert settled_amount(1_000, -5_000, 3) == 0


@pytest.mark.parametrize("tier", ["free", "pro", "whale"])
@pytest.mark.parametrize("notional", [10 * USD, 5_000 * USD, 4_998_620_000, 123_456_789])
def test_the_fee_estimate_is_the_venue_fee(notional, tier):
    assert estimated_fee(notional, tier) == sum(fee_split(notional, tier))


def _row(pid, coin="BTC"):
    return Position(position_id=pid, coin=coin, side="long", size_usd=1, entry_price=Decimal(1), current_price=None,
                    leverage=Decimal(1), margin_used=None, liquidation_price=None, unrealized_pnl=0, status="open",
                    opened_at_s=None, closed_at_s=None)


def _record(pid, coin="BTC"):
    return PositionRecord(position_id=pid, coin=coin, side="long", entry_price="1", notional=1, margin=1, leverage=1,
                          fee_open=0, stop_loss="0.9", take_profit="1.2", opened_by="m", opened_ms=0,
                          trail=Trail(100, "1", "0.99"))


def test_only_positions_the_exchange_names_or_cannot_name_count_as_held():
    records = [_record("a"), _record("b"), _record("c", "ETH")]
    assert exchange_holds([_row("a")], records) == {"a"}
    assert exchange_holds([_row("a"), _row(None, "ETH")], records) == {"a", "c"}


def test_records_and_plans_round_trip_as_json():
    record = _record("pos_1")
    assert PositionRecord.decode(record.encode()) == record
    plan = OrderPlan(coin="BTC", side="long", notional=5, leverage=2, stop_pct="2", take_profit_multiple="2", held=9,
                     cap=10, trail_bp=None, before=["x"], created_ms=1)
    assert OrderPlan.decode(plan.encode()) == plan
