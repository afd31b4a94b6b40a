"""Buckets: exact allocation, share arithmetic, and the operator's Policy with its validation."""

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.policy.buckets import (
    DEFAULT_POLICY,
    RESERVE_FLOOR_BP,
    TARGETS_BP,
    Policy,
    PolicyConfigError,
    PolicyError,
    allocate,
    below_share,
    exceeds_share,
    percent,
    share_ceil,
    share_floor,
    usd,
)
from messages.errors import ConfigError
from messages.money import MAX_MICROS, MICRO

POLICY = settings.get_profile("policy")


def test_the_products_numbers():
    assert TARGETS_BP == {"reserve": 4000, "trading": 3500, "casino": 1500, "referral": 1000}
    assert RESERVE_FLOOR_BP == 2000
    assert DEFAULT_POLICY.targets_bp == TARGETS_BP
    assert DEFAULT_POLICY.reserve_floor_bp == 2000


def test_allocate_thousand_dollars():
    assert allocate(1000 * MICRO) == {"reserve": 400 * MICRO, "trading": 350 * MICRO,
                                      "casino": 150 * MICRO, "referral": 100 * MICRO}


def test_allocate_gives_the_rounding_remainder_to_the_reserve():
    parts = allocate(1_000_000_007)
    assert parts == {"reserve": 400_000_004, "trading": 350_000_002, "casino": 150_000_001, "referral": 100_000_000}
    assert allocate(2) == {"reserve": 2, "trading": 0, "casino": 0, "referral": 0}


@POLICY
@given(st.integers(0, MAX_MICROS))
def test_allocation_always_sums_to_capital(capital):
    parts = allocate(capital)
    assert sum(parts.values()) == capital
    assert all(part >= 0 for part in parts.values())
    assert parts["reserve"] >= share_floor(capital, 4000)


@pytest.mark.parametrize("bad", [-1, 1.5, True, "100", MAX_MICROS + 1])
def test_allocate_refuses_what_is_not_micro_usd(bad):
    with pytest.raises(PolicyError):
        allocate(bad)


def test_share_helpers_round_the_safe_way():
    assert share_floor(199, 100) == 1 and share_ceil(199, 100) == 2 and share_ceil(200, 100) == 2
    assert not exceeds_share(5, 100, 500) and exceeds_share(5 * MICRO + 1, 100 * MICRO, 500)
    assert not below_share(20, 100, 2000) and below_share(20 * MICRO - 1, 100 * MICRO, 2000)


def test_figures_for_people_show_every_micro():
    assert usd(5 * MICRO) == "$5.00" and usd(5 * MICRO + 1) == "$5.000001"
    assert percent(5, 100) == "5.00 %" and percent(5_000_001, 100_000_000) == "5.000001 %"


def test_policy_loads_from_an_operators_mapping():
    policy = Policy.load({"daily_loss_bp": 300, "max_leverage": 3, "kelly_fraction": "quarter"})
    assert (policy.daily_loss_bp, policy.max_leverage, policy.kelly_fraction) == (300, 3, "quarter")
    assert policy.trading_drawdown_bp == 2000


@pytest.mark.parametrize("changes", [
    {"reserve_target_bp": 5000},                       # targets no longer sum to 100 %
    {"reserve_floor_bp": 4500},                        # floor above the target
    {"daily_loss_bp": 0},
    {"daily_loss_bp": 10_001},
    {"max_leverage": 0},
    {"max_leverage": 51},
    {"escrow_max_timeout_hours": 721},
    {"min_move": -1},
    {"kelly_fraction": "double"},
    {"min_reward_risk": 0},
    {"swap_slippage_bp": 10_000},
])
def test_policy_refuses_bad_settings(changes):
    with pytest.raises(PolicyConfigError):
        Policy(**changes)
    with pytest.raises(ConfigError):
        Policy.load(changes)


def test_every_integer_setting_has_a_checked_range():
    from actors.policy.buckets import _RANGES

    assert set(_RANGES) | {"kelly_fraction"} == set(Policy.__struct_fields__)


def test_policy_refuses_floats_bools_and_unknown_keys():
    with pytest.raises(PolicyConfigError):
        Policy(max_bet_bp=2.5)
    with pytest.raises(PolicyConfigError):
        Policy(max_leverage=True)
    with pytest.raises(PolicyConfigError, match="unknown"):
        Policy.load({"max_bet_pct": 2})


def test_policy_is_frozen_and_replace_revalidates():
    with pytest.raises(AttributeError):
        DEFAULT_POLICY.max_bet_bp = 300
    assert msgspec.structs.replace(DEFAULT_POLICY, max_bet_bp=300).max_bet_bp == 300
    with pytest.raises(PolicyConfigError):
        msgspec.structs.replace(DEFAULT_POLICY, casino_target_bp=2000)


def test_policy_round_trips_through_json():
    policy = Policy(drift_bp=400)
    assert Policy.load(msgspec.json.decode(msgspec.json.encode(policy))) == policy
