"""A casino venue that answers from a script, for the casino actor's tests: the outcomes the real
sandbox cannot be made to produce on demand (a big win, a lost answer, an unreachable venue)."""

from __future__ import annotations

from venue.client.lookup import Lookup, Presence
from venue.client.types import BetResult
from venue.errors import VenueRejected, VenueUnavailable


class ScriptedCasino:
    """Answers bets from a script: ("win", multiplier) | ("lose",) | ("reject", code) | ("lost",)."""

    def __init__(self):
        self.script: list[tuple] = []
        self.placed: dict[str, BetResult] = {}
        self.calls = 0

    def _result(self, seed, game, amount, won, multiplier):
        amount_won = amount * multiplier if won else 0
        return BetResult(bet_id=f"bet-{len(self.placed)}", game=game, amount_bet=amount, amount_won=amount_won,
                         won=won, payout_multiplier=str(multiplier), roll="1.00", new_balance=0, client_seed=seed)

    venue_cap: int | None = None
    """What the venue's own Kelly check allows now (GET /kelly/limits); None: no line for the game."""
    unknown = False
    """Look-ups answer UNKNOWN (the venue's list no longer reaches back to the bet)."""

    def max_stake(self, game, params):
        return self.venue_cap

    def place_bet_once(self, game, amount, params, *, client_seed, idempotency_key, attempts=3, since_ms=None):
        self.calls += 1
        step = self.script.pop(0)
        if step[0] == "reject":
            raise VenueRejected("casino", "refused", code=step[1], status=400)
        won = step[0] == "win"
        result = self._result(client_seed, game, amount, won, step[1] if won else 0)
        self.placed[client_seed] = result
        if step[0] == "lost":  # the venue took the bet, the answer never came back
            raise VenueUnavailable("casino", "timed out", code="outcome_unknown", status=0)
        return result

    scans = 0
    """How often the casino ledger was read (`ScanIncoming`)."""

    def ledger(self):
        self.scans += 1
        return []

    down = False

    def lookup_bet(self, client_seed, *, since_ms):
        if self.down:
            raise VenueUnavailable("casino", "unreachable", code="outcome_unknown", status=0)
        if self.unknown:
            return Lookup(Presence.UNKNOWN, since_ms, reason="the export does not reach back")
        found = self.placed.get(client_seed)
        return Lookup(Presence.FOUND if found else Presence.ABSENT, since_ms, found)
