"""Chains: what the wallet API reads, the 5-minute balance cache, exact valuation and swap minimums."""

from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.policy.buckets import PolicyError
from actors.policy.chains import CHAINS, BalanceCache, chain, swap_min_out, total_usd

POLICY = settings.get_profile("policy")
NOW = 1_700_000_000_000


def test_eight_chains_and_what_the_wallet_can_read():
    assert list(CHAINS) == ["base", "ethereum", "arbitrum", "bsc", "solana", "tron", "bitcoin", "monero"]
    assert {c.name for c in CHAINS.values() if not c.reads_native} == {"arbitrum", "bsc"}
    assert {c.name for c in CHAINS.values() if not c.reads_usdc} == {"bitcoin", "monero"}
    assert not chain("bitcoin").can_send and chain("monero").can_send
    with pytest.raises(PolicyError):
        chain("dogecoin")


def test_cache_is_fresh_for_just_under_five_minutes():
    cache = BalanceCache().put("base", D("1.5"), NOW)
    assert cache.get("base", NOW + 299_999) == D("1.5")
    assert cache.get("base", NOW + 300_000) is None
    assert cache.get("base", NOW - 1) is None                       # a clock that went back: read again
    assert cache.stale(["base", "solana"], NOW + 1) == ("solana",)


def test_cache_is_immutable():
    empty = BalanceCache()
    full = empty.put(("tron", "T123"), D("7"), NOW)
    assert empty.get(("tron", "T123"), NOW) is None and full.get(("tron", "T123"), NOW) == D("7")


def test_total_usd_is_exact_and_floored_to_the_micro():
    held = {
        "base": {"ETH": D("0.5"), "USDC": D("120.25")},
        "solana": {"SOL": D("3")},
        "bitcoin": {"BTC": D("0.00000001")},
    }
    prices = {"ETH": D("3000"), "SOL": D("150.333333"), "BTC": D("60000")}
    assert total_usd(held, prices) == 1_500_000_000 + 120_250_000 + 450_999_999 + 600


def test_total_usd_refuses_missing_prices_floats_and_unknown_chains():
    with pytest.raises(PolicyError, match="no price"):
        total_usd({"base": {"ETH": D("1")}}, {})
    with pytest.raises(PolicyError):
        total_usd({"base": {"USDC": 1.5}}, {})
    with pytest.raises(PolicyError):
        total_usd({"polygon": {"USDC": D("1")}}, {})
    assert total_usd({"base": {"ETH": D("0")}}, {}) == 0


def test_swap_min_out_takes_the_fee_and_the_slippage_cap_off():
    assert swap_min_out(D("1"), D("3000"), 50) == 2_970_075_000          # 3000 × 0.995 × 0.995
    assert swap_min_out(D("1"), D("3000"), 0, fee_bp=0) == 3_000_000_000
    with pytest.raises(PolicyError):
        swap_min_out(D("1"), D("3000"), 10_000)


@POLICY
@given(st.decimals(D("0"), D("1000"), places=8), st.decimals(D("0"), D("100000"), places=6), st.integers(0, 9999))
def test_swap_min_out_never_exceeds_the_expected_output(amount, price, slippage_bp):
    expected = int(amount * price * 1_000_000)
    assert 0 <= swap_min_out(amount, price, slippage_bp) <= expected
