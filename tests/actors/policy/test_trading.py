"""Trading rules: stops, order checks on both sides of each cap, Kelly sizing, the trailing stop."""

from decimal import Decimal as D
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.policy.buckets import DEFAULT_POLICY, Policy, PolicyError, share_floor
from actors.policy.trading_rules import TrailingStop, size_trade, stop_prices, validate_order
from messages.money import MICRO

POLICY = settings.get_profile("policy")
USD = MICRO
BUCKET = 350 * USD


def order(**changes):
    fields = dict(side="long", entry=D("100"), size_usd=100 * USD, leverage=5, stop_loss=D("98"),
                  take_profit=D("104"), trading_balance=BUCKET, venue_max_leverage=10)
    fields.update(changes)
    return validate_order(**fields)


def test_stop_prices_long_and_short():
    assert stop_prices(D("100"), "long", D("2"), 2) == (D("98"), D("104"))
    assert stop_prices("2500.5", "short", "1.5", 3) == (D("2538.0075"), D("2387.9775"))


def test_stop_prices_refuse_impossible_stops():
    for args in [(D("100"), "long", D("100")), (D("100"), "flat", D("2")), (D("100"), "short", D("40"), 3),
                 (D("NaN"), "long", D("2")), (100.0, "long", D("2"))]:
        with pytest.raises(PolicyError):
            stop_prices(*args)


def test_a_well_formed_order_passes():
    check = order()
    assert check.ok and check.codes == () and check.margin == 20 * USD and check.leverage_cap == 5


def test_an_order_must_carry_a_stop_loss_on_the_losing_side():
    assert order(stop_loss=None).codes == ("missing_stop_loss",)
    assert "stop_on_wrong_side" in order(stop_loss=D("101")).codes
    assert "stop_on_wrong_side" in order(side="short", take_profit=D("96")).codes


def test_take_profit_at_exactly_twice_the_stop_distance_passes_a_hair_less_fails():
    assert order(take_profit=D("104")).ok
    assert order(take_profit=D("103.9999")).codes == ("reward_risk_too_low",)
    assert order(side="short", stop_loss=D("102"), take_profit=D("96")).ok
    assert order(side="short", stop_loss=D("102"), take_profit=D("96.0001")).codes == ("reward_risk_too_low",)
    assert order(take_profit=None).codes == ("missing_take_profit",)


def test_leverage_is_capped_by_the_policy_and_by_the_venue():
    assert order(leverage=5, size_usd=100 * USD).ok
    assert order(leverage=6).codes == ("leverage_above_cap",)
    assert order(leverage=4, venue_max_leverage=3).codes == ("leverage_above_cap",)
    assert order(leverage=3, venue_max_leverage=3).leverage_cap == 3
    assert order(leverage=0).codes == ("invalid_leverage",)
    assert order(leverage=D("2.5")).codes == ("invalid_leverage",)


def test_margin_of_exactly_10_percent_of_the_bucket_passes_one_micro_more_fails():
    assert order(size_usd=5 * 35 * USD).ok                                   # margin $35 = 10 % of $350
    assert order(size_usd=5 * 35 * USD + 1).codes == ("margin_above_cap",)


def test_a_stop_beyond_the_liquidation_distance_is_refused():
    check = order(stop_loss=D("80"), take_profit=D("140"), size_usd=10 * USD)   # 20 % away at 5×
    assert check.codes == ("stop_beyond_liquidation",)


def test_bad_entries_and_sizes_are_listed_not_raised():
    assert set(order(entry=D("-1"), size_usd=0).codes) == {"invalid_entry", "invalid_size"}
    assert order(side="up").codes[0] == "invalid_side"
    with pytest.raises(PolicyError):
        order(trading_balance=350.0)


def test_kelly_sizing_risks_the_kelly_stake_capped_at_2_percent():
    sized = size_trade("0.55", "2", BUCKET, D("2"), 5)
    assert sized.kelly.stake == 7 * USD and sized.kelly.capped          # 2 % of $350
    assert sized.margin == 35 * USD and sized.margin_capped              # then the 10 % margin cap binds
    assert sized.notional == 175 * USD and sized.risk == 3_500_000
    stop, take_profit = stop_prices(D("100"), "long", D("2"))
    assert validate_order(side="long", entry=D("100"), size_usd=sized.notional, leverage=5, stop_loss=stop,
                          take_profit=take_profit, trading_balance=BUCKET, venue_max_leverage=10).ok


def test_kelly_sizing_without_an_edge_trades_nothing():
    sized = size_trade("0.4", "1", BUCKET, D("2"), 3)
    assert (sized.risk, sized.notional, sized.margin) == (0, 0, 0)


def test_kelly_sizing_refuses_leverage_above_the_policy():
    with pytest.raises(PolicyError):
        size_trade("0.6", "1", BUCKET, D("2"), 6)
    assert size_trade("0.6", "1", BUCKET, D("2"), 6, Policy(max_leverage=10)).leverage == 6


@POLICY
@given(st.fractions(0, 1), st.fractions(Fraction(1, 100), 100), st.integers(0, 10**13),
       st.decimals(D("0.1"), D("20"), places=2), st.integers(1, 5))
def test_kelly_stake_never_above_2_percent_and_margin_never_above_10_percent(p, b, bucket, stop_pct, leverage):
    sized = size_trade(p, b, bucket, stop_pct, leverage)
    assert sized.kelly.stake <= share_floor(bucket, DEFAULT_POLICY.max_bet_bp)
    assert 0 <= sized.risk <= sized.kelly.stake
    assert sized.margin <= share_floor(bucket, DEFAULT_POLICY.max_trade_margin_bp)
    assert sized.notional % 10_000 == 0


def test_trailing_stop_long_ratchets_up_and_triggers_at_the_stop():
    stop = TrailingStop.start("long", D("100"), 150)
    assert stop.stop_price == D("98.5")
    stop, hit = stop.update(D("110"))
    assert (stop.best_price, stop.stop_price, hit) == (D("110"), D("108.35"), False)
    stop, hit = stop.update(D("109"))
    assert stop.stop_price == D("108.35") and not hit
    assert stop.update(D("108.35"))[1]


def test_trailing_stop_short_ratchets_down_and_triggers_at_the_stop():
    stop = TrailingStop.start("short", D("100"), 200)
    stop, hit = stop.update(D("90"))
    assert (stop.best_price, stop.stop_price, hit) == (D("90"), D("91.8"), False)
    stop, hit = stop.update(D("91.7999"))
    assert not hit and stop.stop_price == D("91.8")
    assert stop.update(D("91.8"))[1]


def test_trailing_stop_refuses_bad_state():
    with pytest.raises(PolicyError):
        TrailingStop("long", 0, D("1"), D("1"))
    with pytest.raises(PolicyError):
        TrailingStop.start("sideways", D("1"), 100)


prices = st.decimals(D("0.0001"), D("1000000"), places=4)


@POLICY
@given(st.sampled_from(["long", "short"]), prices, st.integers(1, 9999), st.lists(prices, max_size=40))
def test_trailing_stops_only_ratchet_one_way(side, entry, trail_bp, path):
    state = TrailingStop.start(side, entry, trail_bp)
    for price in path:
        new, hit = state.update(price)
        if side == "long":
            assert new.stop_price >= state.stop_price and new.best_price >= state.best_price
            assert hit == (price <= new.stop_price)
        else:
            assert new.stop_price <= state.stop_price and new.best_price <= state.best_price
            assert hit == (price >= new.stop_price)
        state = new
