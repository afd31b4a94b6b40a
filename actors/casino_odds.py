"""The casino games' true odds, as the real engine computes them (see docs/venue.md).

The treasury sizes bets against these: a bet whose only edge is the house's gets Kelly 0.
"""

from __future__ import annotations

import functools
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

from messages.schema import AnyGame, CoinFlip, Dice, Multiplier


def _round4(value: Fraction) -> Fraction:
    return Fraction(Decimal(value.numerator / value.denominator).quantize(Decimal("0.0001"), ROUND_HALF_UP))


@functools.lru_cache(maxsize=1024)  # games are frozen structs; a bet stream repeats a few of them
def true_odds(game: AnyGame) -> tuple[Fraction, Fraction]:
    """(probability of a paying result, gross payout multiple) for one bet on `game`."""
    if isinstance(game, CoinFlip):
        return Fraction(1, 2), Fraction("1.99")
    if isinstance(game, Dice):
        if game.direction == "over":
            p = Fraction(100 - game.threshold, 100)
            return p, _round4(Fraction(995, 1000) / p)
        # "under t" pays as if p were t/100, but wins only on t-1 of 100 values
        return Fraction(game.threshold - 1, 100), _round4(Fraction(995, 1000) / Fraction(game.threshold, 100))
    if isinstance(game, Multiplier):
        target = Fraction(str(game.target))
        return Fraction(995, 1000) / target, target
    raise TypeError(f"no odds for {type(game).__name__}")


def venue_params(game: AnyGame) -> dict:
    """The game's fields as the venue's bet endpoint names them."""
    if isinstance(game, CoinFlip):
        return {"side": game.side}
    if isinstance(game, Dice):
        return {"direction": game.direction, "threshold": game.threshold}
    if isinstance(game, Multiplier):
        return {"target_multiplier": game.target}
    raise TypeError(f"no parameters for {type(game).__name__}")


def game_id(game: AnyGame) -> str:
    return type(game).__struct_config__.tag
