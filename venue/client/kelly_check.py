"""The casino's own Kelly check, reproduced so a stake can be sized under it before betting.

The real casino refuses a bet above `max_bet` with 400 `kelly_limit_exceeded`. At bet time it
computes, with the game's true (p, payout) and b = payout − 1, f* = (p·b − (1 − p)) / b, and:

- f* ≤ 0 (every game the treasury plays: p × payout = 0.995): max_bet = round2(bankroll × rf × p)
- f* > 0: max_bet = bankroll × f* × rf

`bankroll` is the whole casino balance and `rf` the account's risk factor, both read from
`GET /kelly/limits`. The per-game lines of that endpoint use advertised 1.96-style payouts and
do not list multiplier targets, so the cap is recomputed here from the true odds
(docs: ../shared/purple-flea-api.md, "Kelly").
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any

from messages.money import MICRO

_CENT = Decimal("0.01")


def _number(params: dict[str, Any], name: str, default: Any) -> Decimal | None:
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = Decimal(str(value))
    except ArithmeticError:
        return None
    return number if number.is_finite() else None


def win_odds(game: str, params: dict[str, Any]) -> tuple[Decimal, Decimal] | None:
    """(p, gross payout) the casino's Kelly check uses for this bet, or None for a game it is not
    known for. `game` is the batch id (`coin_flip`, `dice`, `multiplier`, `custom`)."""
    if game == "coin_flip":
        return Decimal("0.5"), Decimal("1.99")
    if game == "dice":
        threshold = _number(params, "threshold", 50)
        if threshold is None or not 1 <= threshold <= 99:
            return None
        p = (100 - threshold) / 100 if params.get("direction", "over") == "over" else threshold / 100
        return p, (Decimal("0.995") / p).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)
    if game == "multiplier":
        target = _number(params, "target_multiplier", 2)
        if target is None or target <= 1:
            return None
        return Decimal("0.995") / target, target
    if game == "custom":
        pct = _number(params, "win_probability", 50)
        if pct is None or not 1 <= pct <= 99:
            return None
        return pct / 100, (Decimal("99.5") / pct).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)
    return None


def venue_max_stake(bankroll_micros: int, risk_factor: float, odds: tuple[Decimal, Decimal]) -> int:
    """The casino's `max_bet` for these odds, in micro-USD, floored to the cent (never above what
    the venue would accept)."""
    p, payout = odds
    bankroll = Decimal(bankroll_micros) / MICRO
    rf = Decimal(repr(float(risk_factor)))
    b = payout - 1
    full = (p * b - (1 - p)) / b if b > 0 else Decimal(-1)
    if full <= 0:
        cap = (bankroll * rf * p).quantize(_CENT, rounding=ROUND_HALF_UP)
    else:
        cap = bankroll * full * rf
    cap = cap.quantize(_CENT, rounding=ROUND_FLOOR)
    return max(0, int(cap * MICRO))
