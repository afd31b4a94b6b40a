from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from messages.errors import MoneyError
from messages.money import MAX_MICROS, floor_to_cent, format_usd, parse_usd, to_decimal, usd_from_venue


@pytest.mark.parametrize(
    "text, micros",
    [
        ("12.34", 12_340_000),
        ("0.000001", 1),
        ("$1,000"[0:2] + "5", 15_000_000),
        (Decimal("2.5"), 2_500_000),
        (3, 3_000_000),
    ],
)
def test_parse_usd_is_exact(text, micros):
    assert parse_usd(text) == micros


@pytest.mark.parametrize(
    "bad, words",
    [
        ("nan", "finite"),
        ("inf", "finite"),
        ("-1", "negative"),
        ("1.0000001", "6 decimals"),
        ("abc", "not a number"),
        (True, "boolean"),
        (float("nan"), "finite"),
        (None, "expected an amount, got no value"),  # an agents file's `null`, not Python's NoneType
        ([1], "expected an amount, got a list"),
        ({"usd": 1}, "expected an amount, got an object"),
        ("1e20", "not a number"),
        (str(10**10), "beyond"),
        ("1_000", "not a number"),
        ("\u0661\u0660", "not a number"),
        ("1e3", "not a number"),
        ("", "not a number"),
        ("1.", "not a number"),
        (" 7 ", "spaces around the number"),
        ("7\n", "spaces around the number"),
        ("\t7", "spaces around the number"),
    ],
)
def test_parse_usd_refuses_bad_input_with_a_clear_message(bad, words):
    with pytest.raises(MoneyError, match=words):
        parse_usd(bad, field="stake")


@pytest.mark.parametrize("zero", ["0", "-0", "0.000", "$0"])
def test_positive_amounts_refuse_zero(zero):
    from messages.money import parse_positive_usd

    with pytest.raises(MoneyError, match="must be more than 0"):
        parse_positive_usd(zero, field="capital")
    assert parse_positive_usd("0.01", field="capital") == 10_000


def test_negative_allowed_only_when_asked():
    assert parse_usd("-2.5", allow_negative=True) == -2_500_000


def test_venue_floats_round_half_even_to_the_micro():
    assert usd_from_venue(2.9850000000000003) == 2_985_000
    assert usd_from_venue("0.0000005") == 0  # half to even
    assert usd_from_venue("0.0000015") == 2
    with pytest.raises(MoneyError):
        usd_from_venue(None)
    with pytest.raises(MoneyError):
        usd_from_venue(float("inf"))


@given(st.integers(min_value=0, max_value=MAX_MICROS))
def test_round_trip_through_decimal_text(micros):
    assert parse_usd(str(to_decimal(micros))) == micros


@given(st.integers(min_value=0, max_value=MAX_MICROS))
def test_floor_to_cent_never_rounds_up(micros):
    floored = floor_to_cent(micros)
    assert floored <= micros < floored + 10_000 and floored % 10_000 == 0


def test_format_usd():
    assert format_usd(1_234_560_000) == "$1,234.56"
    assert format_usd(-5_000_000) == "-$5.00"
