from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.casino_odds import true_odds
from actors.kelly import KellyInputError, kelly_stake
from messages.schema import CoinFlip, Dice, Multiplier


def test_full_half_quarter():
    full = kelly_stake("0.55", "1", 100_000_000, "full", cap=1)
    half = kelly_stake("0.55", "1", 100_000_000, "half", cap=1)
    quarter = kelly_stake("0.55", "1", 100_000_000, "quarter", cap=1)
    assert full.full_fraction == Fraction(1, 10)
    assert (full.stake, half.stake, quarter.stake) == (10_000_000, 5_000_000, 2_500_000)


def test_hard_cap_of_two_percent():
    result = kelly_stake("0.9", "1", 100_000_000, "full")
    assert result.stake == 2_000_000 and result.capped and "capped at 2.00%" in result.reason


def test_negative_ev_is_refused_with_its_reason():
    result = kelly_stake(0.5, 0.99, 150_000_000, "full")
    assert result.stake == 0 and result.refused
    assert "no edge" in result.reason and "-0.5000%" in result.reason


@pytest.mark.parametrize(
    "game",
    [CoinFlip(), Dice(direction="over", threshold=50), Dice(direction="under", threshold=30), Multiplier(target=10.0)],
)
def test_every_real_game_has_a_house_edge_so_kelly_says_zero(game):
    p, payout = true_odds(game)
    assert kelly_stake(p, payout - 1, 10**9, "full").stake == 0


@pytest.mark.parametrize("args, words", [(("1.5", "1", 1), "win-prob"), (("-0.1", "1", 1), "win-prob"),
                                         (("0.5", "0", 1), "net-odds"), (("0.5", "-1", 1), "net-odds"),
                                         (("nan", "1", 1), "win-prob"), (("0.5", "inf", 1), "net-odds"),
                                         (("0.5", "1", -1), "bankroll"), (("0.5", "1", 1.5), "bankroll")])
def test_bad_inputs_name_the_bad_value(args, words):
    with pytest.raises(KellyInputError, match=words):
        kelly_stake(*args)


def test_bad_fraction():
    with pytest.raises(KellyInputError, match="fraction"):
        kelly_stake("0.6", "1", 100, "double")


@given(p=st.fractions(min_value=0, max_value=1), b=st.fractions(min_value=Fraction(1, 100), max_value=100),
       bankroll=st.integers(min_value=0, max_value=10**12), fraction=st.sampled_from(["full", "half", "quarter"]))
def test_stake_never_exceeds_the_cap_or_kelly_and_is_whole_cents(p, b, bankroll, fraction):
    r = kelly_stake(p, b, bankroll, fraction)
    assert 0 <= r.stake <= bankroll * 2 // 100
    assert r.stake % 10_000 == 0
    if r.full_fraction <= 0:
        assert r.stake == 0
    else:
        assert r.stake <= bankroll * r.applied_fraction


def _oracle_stake(p: Fraction, b: Fraction, bankroll: int, multiplier: Fraction, cap: Fraction) -> int:
    """Kelly from its definition, in whole cents: min(⌊bankroll·max(f*, 0)·m⌋, ⌊bankroll·cap⌋)."""
    def cents(x: Fraction) -> int:
        return (x.numerator // x.denominator) // 10_000 * 10_000

    f_star = p - (1 - p) / b
    return min(cents(bankroll * max(f_star, Fraction(0)) * multiplier), cents(bankroll * cap))


_MULTIPLIERS = {"full": Fraction(1), "half": Fraction(1, 2), "quarter": Fraction(1, 4)}


@given(st.lists(st.tuples(
    st.sampled_from([0.6, "0.55", 0.5, "0.497", 0.99, 0]),
    st.sampled_from([Fraction(99, 100), Fraction(1), Fraction(199, 100), 2.0, "0.5"]),
    st.integers(min_value=0, max_value=10**12),
    st.sampled_from(["full", "half", "quarter"]),
    st.fractions(min_value=Fraction(1, 10_000), max_value=1)), min_size=1, max_size=30))
def test_a_stream_of_bets_sizes_each_as_the_definition_says(bets):
    """Bets repeat their game, probability and fraction (what sizing remembers) while the bankroll
    and cap change: each stake is the definition's, whatever came before it."""
    for win_prob, net_odds, bankroll, fraction, cap in bets:
        r = kelly_stake(win_prob, net_odds, bankroll, fraction, cap=cap)
        p, b = Fraction(str(win_prob)), Fraction(str(net_odds))
        assert r.stake == _oracle_stake(p, b, bankroll, _MULTIPLIERS[fraction], cap)
        assert (r.win_prob, r.net_odds, r.bankroll) == (p, b, bankroll)
