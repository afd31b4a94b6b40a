"""Money as integer micro-USD.

Floats never carry money inside the treasury. Amounts come in from people as decimal strings
("12.34") and from the venues as JSON floats; both are turned into an `int` of micro-USD here,
exactly or not at all. User input with more than six decimals is refused (it cannot be held
exactly); venue amounts, which are floats already, are rounded half-even to the micro.
"""

from __future__ import annotations

import math
import re
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Annotated

import msgspec

from messages.errors import MoneyError

MICRO = 1_000_000
"""Micro-USD in one USD."""

CENT = 10_000
"""Micro-USD in one cent: the venues' smallest stake step."""

MAX_MICROS = 10**15
"""A billion dollars. Anything larger is a bug or an attack, not a treasury balance."""

Micros = Annotated[int, msgspec.Meta(ge=0, le=MAX_MICROS)]
"""A non-negative amount of micro-USD, validated by msgspec when a message is decoded."""

SignedMicros = Annotated[int, msgspec.Meta(ge=-MAX_MICROS, le=MAX_MICROS)]
"""A P&L or a delta: may be negative, still bounded."""

_SIX_PLACES = Decimal("0.000001")

_PLAIN_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?|-?\.[0-9]+", re.ASCII)
"""What a person may type as an amount: ASCII digits with one optional point (no `_`, no
exponent, no other scripts' digits)."""


def _as_decimal(value: object, field: str) -> Decimal:
    if isinstance(value, bool):
        raise MoneyError(f"{field}: expected an amount, got a boolean")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise MoneyError(f"{field}: {value!r} is not a finite amount")
        return Decimal(repr(value))
    if isinstance(value, Decimal):
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("$"):
            text = text[1:]
        if _PLAIN_DECIMAL.fullmatch(text):
            return Decimal(text)
        try:
            special = Decimal(text)
        except (InvalidOperation, ValueError):
            special = None
        if special is not None and not special.is_finite():
            raise MoneyError(f"{field}: {special} is not a finite amount")
        raise MoneyError(f"{field}: {ascii(value)[:80]} is not a number: write ASCII digits with an optional "
                         f"decimal point, e.g. 12.50")
    kinds = {type(None): "no value (null)", list: "a list", tuple: "a list", dict: "an object"}
    raise MoneyError(f"{field}: expected an amount, got {kinds.get(type(value), type(value).__name__)}")


def _checked(amount: Decimal, field: str, allow_negative: bool) -> Decimal:
    if not amount.is_finite():
        raise MoneyError(f"{field}: {amount} is not a finite amount")
    if amount < 0 and not allow_negative:
        raise MoneyError(f"{field}: {amount} is negative; it must be positive")
    return amount


def parse_usd(value: object, *, field: str = "amount", allow_negative: bool = False) -> int:
    """Parse a USD amount given by a person ("12.34", 12, Decimal) into micro-USD, exactly.

    Strings must be plain ASCII decimals (`12`, `12.5`, `$12.50`); `1_000`, `1e3`, digits of
    other scripts and spaces around the number (`" 10"`, a paste slip) are refused. Refuses NaN,
    infinities, booleans, negatives (unless
    `allow_negative`), more than six decimals and magnitudes above `MAX_MICROS` (`MoneyError`).
    """
    if isinstance(value, str) and value != value.strip():
        raise MoneyError(f"{field}: {ascii(value)[:80]} has spaces around the number; write just the number, "
                         f"e.g. 12.50")
    amount = _checked(_as_decimal(value, field), field, allow_negative)
    micros = amount * MICRO
    if micros != micros.to_integral_value():
        raise MoneyError(f"{field}: {value!r} has more than 6 decimals")
    return _bounded(int(micros), field)


def usd_from_venue(value: object, *, field: str = "amount", allow_negative: bool = False) -> int:
    """Turn a venue's float/str USD amount into micro-USD, rounding half-even to the micro.

    The venues serialise money as JSON floats (e.g. 2.9850000000000003), so exactness is not on
    offer; NaN, infinities, `None` and negatives still raise.
    """
    if value is None:
        raise MoneyError(f"{field}: missing amount")
    amount = _checked(_as_decimal(value, field), field, allow_negative)
    micros = (amount * MICRO).quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
    return _bounded(int(micros), field)


def _bounded(micros: int, field: str) -> int:
    if abs(micros) > MAX_MICROS:
        raise MoneyError(f"{field}: {format_usd(micros)} is beyond the {format_usd(MAX_MICROS)} limit")
    return micros


def to_decimal(micros: int) -> Decimal:
    """Micro-USD as an exact Decimal of dollars (for venue request bodies and display)."""
    return (Decimal(micros) / MICRO).quantize(_SIX_PLACES)


def floor_to_cent(micros: int) -> int:
    """Round a stake down to whole cents, the smallest amount the venues accept exactly."""
    return (micros // CENT) * CENT


def format_usd(micros: int) -> str:
    """`1234560000` → `"$1,234.56"`: for people; rounds to the cent for display only."""
    dollars = (Decimal(micros) / MICRO).quantize(
        Decimal("0.01"), rounding=ROUND_FLOOR if micros >= 0 else ROUND_HALF_EVEN
    )
    sign = "-" if dollars < 0 else ""
    return f"{sign}${abs(dollars):,.2f}"


def format_usd_exact(micros: int) -> str:
    """Dollars for a reason sentence, exact: `format_usd` when the figure is whole cents
    (`1001070000` → `"$1,001.07"`), else every micro that matters (`1001075800` → `"$1,001.0758"`,
    `-5` → `"-$0.000005"`), so a limit missed by one micro-USD still shows. Same shape as
    `format_usd`: sign before `$`, thousands separated."""
    if micros % CENT == 0:
        return format_usd(micros)
    dollars = (Decimal(abs(micros)) / MICRO).quantize(_SIX_PLACES)
    integral, _, decimals = f"{dollars:f}".partition(".")
    sign = "-" if micros < 0 else ""
    return f"{sign}${int(integral):,}.{decimals.rstrip('0').ljust(2, '0')}"


def fraction_of(micros: int, numerator: int, denominator: int) -> int:
    """`micros × numerator / denominator`, floored: percentages of balances without floats."""
    if denominator <= 0:
        raise MoneyError("denominator must be positive")
    return (micros * numerator) // denominator


def parse_positive_usd(value: object, *, field: str = "amount") -> int:
    """`parse_usd`, and more than zero (`0`, `-0`, `0.000` refused with `MoneyError`: "must be more
    than 0"; `-5`: "is negative; it must be positive")."""
    micros = parse_usd(value, field=field)
    if micros <= 0:
        raise MoneyError(f"{field}: {ascii(value)[:80]} must be more than 0")
    return micros
