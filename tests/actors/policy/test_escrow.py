"""Escrow rules: the fee rounds up, timeouts beyond 72 h are refused, refunds come back less the fee."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.policy.buckets import Policy, PolicyError
from actors.policy.escrow_rules import (
    ESCROW_MIN,
    REFUND_LAG_MS,
    check_escrow,
    escrow_fee,
    net_to_counterparty,
    refund_due_ms,
    returned_to_reserve,
    timeout_problem,
)
from messages.money import MAX_MICROS, MICRO

POLICY = settings.get_profile("policy")
USD = MICRO


def test_fee_is_1_percent_rounded_up():
    assert escrow_fee(100 * USD) == 1 * USD
    assert escrow_fee(100) == 1 and escrow_fee(101) == 2 and escrow_fee(1) == 1 and escrow_fee(0) == 0


@POLICY
@given(st.integers(0, MAX_MICROS))
def test_fee_is_never_under_counted(amount):
    fee = escrow_fee(amount)
    assert fee * 100 >= amount > (fee - 1) * 100


def test_a_timeout_refund_returns_the_amount_minus_the_fee():
    assert returned_to_reserve(100 * USD, "refunded") == 99 * USD
    assert returned_to_reserve(100 * USD, "released") == 0
    assert returned_to_reserve(100 * USD, "disputed") == 0
    assert net_to_counterparty(100 * USD) == 99 * USD
    with pytest.raises(PolicyError):
        returned_to_reserve(100 * USD, "cancelled")


def test_timeout_of_72_hours_is_allowed_73_is_refused():
    assert timeout_problem(72) is None and timeout_problem(1) is None
    assert "1–72 h" in timeout_problem(73)
    assert timeout_problem(0) is not None and timeout_problem("24") is not None and timeout_problem(True) is not None
    assert timeout_problem(100, Policy(escrow_max_timeout_hours=120)) is None


def test_refund_lands_within_five_minutes_of_the_deadline():
    assert refund_due_ms(0, 24) == (24 * 3_600_000, 24 * 3_600_000 + REFUND_LAG_MS)


def test_check_escrow_at_30_percent_of_reserve_passes_beyond_fails():
    ok = check_escrow(118_811_881, 24, 0, 400 * USD)
    assert ok.ok and ok.fee == 1_188_119 and ok.locked_after == 120 * USD and ok.breaker is None
    refused = check_escrow(118_811_882, 24, 0, 400 * USD)
    assert refused.codes == ("escrow_lock",) and refused.breaker.action == "reject"


def test_check_escrow_lists_every_problem():
    check = check_escrow(ESCROW_MIN - 1, 96, 0, 400 * USD)
    assert check.codes == ("below_minimum", "invalid_timeout")
    assert check_escrow(ESCROW_MIN, 72, 0, 400 * USD).ok
