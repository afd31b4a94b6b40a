"""Referral income: weekly sweeps, quarterly (or threshold) reinvestment, the exact 70/30 split."""

from hypothesis import given, settings
from hypothesis import strategies as st

from actors.policy.buckets import DAY_MS
from actors.policy.drift import Move
from actors.policy.referral import plan_reinvest, reinvest_due, split_reinvest, sweep_due, sweepable
from messages.money import MAX_MICROS, MICRO

POLICY = settings.get_profile("policy")
USD = MICRO
NOW = 1_700_000_000_000


def test_sweep_is_due_after_exactly_seven_days():
    assert sweep_due(None, NOW)
    assert sweep_due(NOW - 7 * DAY_MS, NOW)
    assert not sweep_due(NOW - 7 * DAY_MS + 1, NOW)


def test_only_wallet_and_trading_commissions_of_a_dollar_or_more_are_swept():
    assert sweepable({"wallet": USD, "trading": USD - 1, "casino": 50 * USD}) == {"wallet": USD}


def test_reinvest_is_due_quarterly():
    assert reinvest_due(NOW - 90 * DAY_MS, NOW, 5 * USD)
    assert not reinvest_due(NOW - 90 * DAY_MS + 1, NOW, 5 * USD)
    assert reinvest_due(None, NOW, 5 * USD)


def test_reinvest_is_due_above_100_dollars_not_at_it():
    assert not reinvest_due(NOW, NOW, 100 * USD)
    assert reinvest_due(NOW, NOW, 100 * USD + 1)


def test_nothing_to_reinvest_is_never_due():
    assert not reinvest_due(None, NOW, 0)


def test_split_is_70_30_with_the_remainder_to_reserve():
    assert split_reinvest(100 * USD) == {"reserve": 70 * USD, "trading": 30 * USD}
    assert split_reinvest(7) == {"reserve": 5, "trading": 2}


@POLICY
@given(st.integers(0, MAX_MICROS))
def test_split_always_sums_to_the_amount(amount):
    parts = split_reinvest(amount)
    assert parts["reserve"] + parts["trading"] == amount and parts["reserve"] >= parts["trading"] * 7 // 3


def test_reinvest_moves_skip_parts_under_10_dollars():
    assert plan_reinvest(100 * USD) == (Move("referral", "reserve", 70 * USD, "referral reinvest"),
                                        Move("referral", "trading", 30 * USD, "referral reinvest"))
    assert plan_reinvest(20 * USD) == (Move("referral", "reserve", 20 * USD, "referral reinvest"),)
    assert plan_reinvest(10 * USD - 1) == ()
