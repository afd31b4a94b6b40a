"""Kelly bet sizing, in exact rational arithmetic.

The same function serves the `treasury kelly` calculator and the casino and trading actors, so a
user can ask "what would it bet?" and get the number the actors would use. Probabilities and odds
are not money and may come in as floats or strings; they are turned into `Fraction`s so the
result is exact and identical on every machine. The stake is integer micro-USD, floored to the
cent (the venues' smallest step).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from fractions import Fraction

from messages.errors import TreasuryError
from messages.money import MAX_MICROS, floor_to_cent

NAMED_FRACTIONS = {"full": Fraction(1), "half": Fraction(1, 2), "quarter": Fraction(1, 4)}
DEFAULT_CAP = Fraction(2, 100)
"""Hard cap: never more than 2 % of the bankroll on one bet."""


class KellyInputError(TreasuryError, ValueError):
    """A probability, odds, bankroll or fraction that Kelly cannot use."""


@dataclass(frozen=True)
class KellyResult:
    """What the policy would stake, and why."""

    win_prob: Fraction
    net_odds: Fraction
    full_fraction: Fraction
    """f* = p − (1 − p)/b, before the fractional multiplier; ≤ 0 means no edge."""
    applied_fraction: Fraction
    """max(f*, 0) × the chosen fraction (full / half / quarter / F), before the cap."""
    bankroll: int
    cap: int
    stake: int
    capped: bool
    reason: str

    @property
    def refused(self) -> bool:
        return self.stake == 0


MAX_NET_ODDS = Fraction(1_000_000)
MIN_NET_ODDS = Fraction(1, 1_000_000)
"""Net odds outside [1e-6, 1e6] describe no game anyone offers; refused rather than computed."""

_MAX_BITS = 256
"""An input whose exact fraction needs more bits than this (`1e-400`, 300 digits) is refused."""


def _exact(value: object, name: str) -> Fraction:
    """`value` as an exact `Fraction`, or `KellyInputError` naming `name`. Floats and strings are
    remembered (`_exact_cached`): a worker sizes bets on the same few odds and fractions all day."""
    if type(value) in (float, str):
        return _exact_cached(value, name)
    return _exact_uncached(value, name)


@functools.lru_cache(maxsize=4096, typed=True)
def _exact_cached(value: float | str, name: str) -> Fraction:
    return _exact_uncached(value, name)


def _exact_uncached(value: object, name: str) -> Fraction:
    if isinstance(value, bool):
        raise KellyInputError(f"{name}: {value!r} is not a number")
    if isinstance(value, str) and len(value) > 40:
        raise KellyInputError(f"{name}: {value[:20]!r}... is too long for a number (40 characters at most)")
    try:
        result = Fraction(str(value)) if not isinstance(value, Fraction) else value
    except (ValueError, ZeroDivisionError, OverflowError):
        raise KellyInputError(f"{name}: {value!r} is not a finite number") from None
    if abs(result.numerator).bit_length() > _MAX_BITS or result.denominator.bit_length() > _MAX_BITS:
        raise KellyInputError(f"{name}: {value!r} is too large or too precise to size a bet with")
    return result


def exact_input(value: object, name: str) -> Fraction:
    """`value` (a number or its text) as the exact fraction sizing uses; `KellyInputError` (naming
    `name`) for what no bet can be sized with: not a finite number, or over 256 bits (`1e-320`)."""
    return _exact(value, name)


def parse_fraction(value: object) -> Fraction:
    """'full' | 'half' | 'quarter' | a number in (0, 1]: the one syntax of `treasury kelly
    --fraction` and `treasury cmd bet --kelly`."""
    if isinstance(value, str) and value.lower() in NAMED_FRACTIONS:
        return NAMED_FRACTIONS[value.lower()]
    fraction = _exact(value, "fraction")
    if not 0 < fraction <= 1:
        raise KellyInputError(f"fraction: {value!r} must be full, half, quarter or a number in (0, 1]")
    return fraction


_Edge = tuple[Fraction, Fraction, Fraction, Fraction, Fraction]
_CACHEABLE = (float, str, int, Fraction)


def _edge(win_prob: object, net_odds: object, fraction: object) -> _Edge:
    """(p, b, f*, multiplier, max(f*, 0) × multiplier) of one bet's inputs, checked; remembered for
    the inputs a bet stream repeats (the same game, probability and fraction, bet after bet)."""
    if type(win_prob) in _CACHEABLE and type(net_odds) in _CACHEABLE and type(fraction) in _CACHEABLE:
        return _edge_cached(win_prob, net_odds, fraction)
    return _edge_uncached(win_prob, net_odds, fraction)


@functools.lru_cache(maxsize=4096, typed=True)
def _edge_cached(win_prob: object, net_odds: object, fraction: object) -> _Edge:
    return _edge_uncached(win_prob, net_odds, fraction)


def _edge_uncached(win_prob: object, net_odds: object, fraction: object) -> _Edge:
    p = _exact(win_prob, "win-prob")
    if not 0 <= p <= 1:
        raise KellyInputError(f"win-prob: {win_prob!r} is outside [0, 1]")
    b = _exact(net_odds, "net-odds")
    if b <= 0:
        raise KellyInputError(f"net-odds: {net_odds!r} must be greater than 0")
    if not MIN_NET_ODDS <= b <= MAX_NET_ODDS:
        raise KellyInputError(f"net-odds: {net_odds!r} is outside [0.000001, 1000000]")
    multiplier = parse_fraction(fraction)
    full = p - (1 - p) / b
    return p, b, full, multiplier, max(full, Fraction(0)) * multiplier


def kelly_stake(
    win_prob: object,
    net_odds: object,
    bankroll: int,
    fraction: object = "half",
    cap: object = DEFAULT_CAP,
) -> KellyResult:
    """Size one bet.

    `win_prob` is p in [0, 1]; `net_odds` is b > 0 (a 1.99× gross payout has b = 0.99);
    `bankroll` is micro-USD; `cap` is the largest share of the bankroll one bet may take.
    A bet without an edge (f* ≤ 0) gets stake 0 and a reason saying so.
    """
    p, b, full, multiplier, applied = _edge(win_prob, net_odds, fraction)
    if isinstance(bankroll, bool) or not isinstance(bankroll, int) or not 0 <= bankroll <= MAX_MICROS:
        raise KellyInputError(f"bankroll: {bankroll!r} must be a non-negative integer of micro-USD")
    cap_share = _exact(cap, "cap")
    if not 0 < cap_share <= 1:
        raise KellyInputError(f"cap: {cap!r} must be in (0, 1]")

    # bankroll ≥ 0 and both shares > 0: the integer floor is int() of the exact product
    cap_micros = floor_to_cent(bankroll * cap_share.numerator // cap_share.denominator)
    if full <= 0:
        edge = p * (b + 1) - 1
        return KellyResult(
            p,
            b,
            full,
            Fraction(0),
            bankroll,
            cap_micros,
            0,
            False,
            f"no edge: expected return {float(edge):+.4%} per unit staked "
            f"(p={float(p):.4f}, b={float(b):.4f}), Kelly says 0",
        )
    raw = floor_to_cent(bankroll * applied.numerator // applied.denominator)
    stake = min(raw, cap_micros)
    capped = raw > cap_micros
    if stake == 0:
        return KellyResult(p, b, full, applied, bankroll, cap_micros, 0, capped,
                           "stake rounds to less than one cent of this bankroll")
    if capped:
        reason = f"Kelly {float(applied):.2%} of bankroll capped at {float(cap_share):.2%}"
    else:
        reason = f"Kelly {float(full):.2%} × {multiplier} = {float(applied):.2%} of bankroll"
    return KellyResult(p, b, full, applied, bankroll, cap_micros, stake, capped, reason)
