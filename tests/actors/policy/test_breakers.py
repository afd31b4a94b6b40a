"""The seven breakers, each with the guide's numbers on both sides of its boundary.

The rule everywhere: at the limit is allowed, one micro-USD beyond it fires.
"""

import pytest

from actors.policy.breakers import (
    SEVERITY,
    BreakerResult,
    RiskMarks,
    TotalsSnapshot,
    bet_size,
    casino_session,
    daily_loss,
    escrow_lock,
    evaluate_totals,
    reserve_floor,
    trading_drawdown,
    treasury_drawdown,
    utc_day,
)
from actors.policy.buckets import DAY_MS, Policy, PolicyError
from actors.policy.escrow_rules import escrow_fee
from messages.money import MICRO

NOW = 1_700_000_000_000
USD = MICRO


def test_1_daily_loss_of_exactly_5_percent_does_not_pause():
    assert daily_loss(1000 * USD, 950 * USD, NOW) is None


def test_1_daily_loss_beyond_5_percent_pauses_everything_for_24h():
    result = daily_loss(1000 * USD, 950 * USD - 1, NOW)
    assert result == BreakerResult("daily_loss", "pause", result.reason, NOW + 24 * 3_600_000, "treasury")
    assert "$50.000001" in result.reason and "5.00 %" in result.reason


def test_1_daily_gain_or_empty_day_start_never_pauses():
    assert daily_loss(1000 * USD, 2000 * USD, NOW) is None
    assert daily_loss(0, 0, NOW) is None


def test_2_casino_session_at_minus_50_percent_continues():
    assert casino_session(100 * USD, 50 * USD) is None


def test_2_casino_session_beyond_minus_50_percent_stops_and_sends_the_rest_to_reserve():
    result = casino_session(100 * USD, 50 * USD - 1)
    assert (result.breaker, result.action, result.scope, result.until_ms) == (
        "casino_session",
        "stop_session",
        "casino",
        None,
    )
    assert "reserve" in result.reason and "$49.999999" in result.reason


def test_3_trading_at_20_percent_below_peak_keeps_trading():
    assert trading_drawdown(350 * USD, 280 * USD) is None


def test_3_trading_beyond_20_percent_below_peak_halts_trading_until_an_operator_resumes():
    result = trading_drawdown(350 * USD, 280 * USD - 1)
    assert (result.breaker, result.action, result.scope, result.until_ms) == (
        "trading_drawdown",
        "halt_trading",
        "trading",
        None,
    )
    assert "closing all positions" in result.reason


def test_4_treasury_at_20_percent_below_peak_runs_on():
    assert treasury_drawdown(1000 * USD, 800 * USD) is None


def test_4_treasury_beyond_20_percent_below_peak_halts_all_manual_resume():
    result = treasury_drawdown(1000 * USD, 800 * USD - 1)
    assert (result.breaker, result.action, result.scope, result.until_ms) == (
        "treasury_drawdown",
        "halt",
        "treasury",
        None,
    )


def test_5_reserve_at_its_floor_is_fine():
    assert reserve_floor(200 * USD, 1000 * USD) is None


def test_5_reserve_under_its_floor_triggers_an_emergency_rebalance():
    result = reserve_floor(200 * USD - 1, 1000 * USD)
    assert (result.breaker, result.action, result.scope) == ("reserve_floor", "emergency_rebalance", "treasury")
    assert reserve_floor(0, 0) is None


def test_6_bet_of_exactly_2_percent_is_allowed():
    assert bet_size(3 * USD, 150 * USD) is None


def test_6_bet_above_2_percent_of_its_bucket_is_rejected():
    result = bet_size(3 * USD + 1, 150 * USD)
    assert (result.breaker, result.action, result.scope) == ("bet_size", "reject", "bet")
    assert bet_size(1, 0) is not None and bet_size(0, 0) is None


def test_7_escrow_reaching_exactly_30_percent_of_reserve_is_allowed():
    amount = 118_811_881                     # + its 1 % fee (rounded up) = $120.00 = 30 % of $400
    assert amount + escrow_fee(amount) == 120 * USD
    assert escrow_lock(0, amount, escrow_fee(amount), 400 * USD) is None


def test_7_escrow_beyond_30_percent_of_reserve_is_rejected():
    amount = 118_811_882
    result = escrow_lock(0, amount, escrow_fee(amount), 400 * USD)
    assert (result.breaker, result.action, result.scope) == ("escrow_lock", "reject", "escrow")
    assert escrow_lock(100 * USD, 19 * USD, 190_000, 400 * USD) is None          # 119.19 locked in all
    assert escrow_lock(100 * USD, 20 * USD, 200_000, 400 * USD) is not None      # 120.20


def test_limits_come_from_the_policy_when_given():
    assert daily_loss(1000 * USD, 970 * USD - 1, NOW, limit_bp=300, pause_ms=DAY_MS // 2).until_ms == NOW + DAY_MS // 2


@pytest.mark.parametrize("call", [
    lambda: daily_loss(1000.0, 900 * USD, NOW),
    lambda: treasury_drawdown(1000 * USD, True),
    lambda: bet_size(-1, 100),
    lambda: escrow_lock(0, 10, -1, 100),
])
def test_breakers_refuse_non_integer_money(call):
    with pytest.raises(PolicyError):
        call()


def test_evaluate_totals_returns_every_breaker_that_fired_most_severe_first():
    snapshot = TotalsSnapshot(total=700 * USD, peak=1000 * USD, day_start=1000 * USD,
                              reserve=100 * USD, trading=200 * USD, trading_peak=300 * USD)
    fired = evaluate_totals(snapshot, NOW)
    assert [r.breaker for r in fired] == ["treasury_drawdown", "daily_loss", "trading_drawdown", "reserve_floor"]
    assert [SEVERITY.index(r.action) for r in fired] == sorted(SEVERITY.index(r.action) for r in fired)


def test_evaluate_totals_on_a_healthy_treasury_is_empty_and_uses_the_policy():
    snapshot = TotalsSnapshot(total=960 * USD, peak=1000 * USD, day_start=1000 * USD,
                              reserve=400 * USD, trading=350 * USD, trading_peak=350 * USD)
    assert evaluate_totals(snapshot, NOW) == []
    assert [r.breaker for r in evaluate_totals(snapshot, NOW, Policy(daily_loss_bp=300))] == ["daily_loss"]


def test_marks_peak_only_rises():
    marks = RiskMarks.first(1000 * USD, NOW)
    marks = marks.observe(1200 * USD, NOW + 1).observe(900 * USD, NOW + 2)
    assert marks.peak == 1200 * USD and marks.day_start == 1000 * USD


def test_marks_day_start_resets_at_utc_midnight():
    midnight = utc_day(NOW) * DAY_MS + DAY_MS
    marks = RiskMarks.first(1000 * USD, NOW).observe(900 * USD, midnight - 1)
    assert marks.day_start == 1000 * USD and marks.day_start_day == utc_day(NOW)
    marks = marks.observe(880 * USD, midnight)
    assert (marks.day_start, marks.day_start_day, marks.peak) == (880 * USD, utc_day(NOW) + 1, 1000 * USD)


def test_marks_ignore_a_clock_stepping_back_a_day():
    marks = RiskMarks.first(1000 * USD, NOW).observe(900 * USD, NOW - DAY_MS)
    assert marks.day_start == 1000 * USD and marks.day_start_day == utc_day(NOW)


def test_marks_shift_with_transfers_so_moving_money_is_not_a_loss():
    marks = RiskMarks.first(350 * USD, NOW).shifted(-100 * USD)
    assert (marks.peak, marks.day_start) == (250 * USD, 250 * USD)
    assert trading_drawdown(marks.peak, 250 * USD) is None


def test_a_value_point_records_the_trading_bucket_and_older_points_still_parse():
    from actors.policy.breakers import ValuePoint, judge_trading

    old = ValuePoint.parse(b"1767258000000|000000000007|1000000000|1000000000|0")
    assert old.trading is None and old.trading_performance is None
    point = ValuePoint.parse("1767258000000|000000000008|1000000000|1000000000|0|299410000|299410000")
    assert (point.trading, point.trading_base, point.trading_performance) == (299_410_000, 299_410_000, 0)
    # $200.59 moved out of a $500 trading bucket: the base fell with the value, nothing was lost
    assert judge_trading(0, point) == (0, None)
    lost = ValuePoint(1, 9, 0, 0, 0, 239_528_000, 299_410_000)  # then a real loss of exactly 20 %
    assert judge_trading(0, lost) == (0, None)  # the peak level stays; the value is $59.882 under it
    assert judge_trading(0, ValuePoint(1, 10, 0, 0, 0, 239_527_999, 299_410_000))[1] is not None
