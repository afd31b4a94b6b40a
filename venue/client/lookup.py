"""The answer of every look-up that decides whether a lost spend may be sent again.

None of the Purple Flea services accepts idempotency keys, so after a lost answer the treasury
asks the venue whether the spend landed. The venue's lists are windows (newest first, pages of
50 or 200, an export of at most 10 000 rows), so "not in what I read" proves nothing unless what
was read reaches back before the spend was sent. Every look-up therefore answers one of three:

- `FOUND`: the spend is at the venue; `value` holds what it became.
- `ABSENT`: the rows read cover every moment from `since_ms` (when the spend may first have been
  sent, minus `SKEW_MS`) to now, or the whole history, and the spend is not among them. Only
  this answer allows sending the spend again.
- `UNKNOWN`: the read stopped before covering `since_ms` (the window slid past it, a page limit
  was hit, a row could not be read). Never re-spend on it: keep the money reserved and ask again
  later or let an operator decide.

`covered_from_ms` says how far back the read provably reached (epoch ms, `None` when the whole
history was read); `reason` is a one-line explanation for UNKNOWN.

    result = casino.lookup_bet(client_seed, since_ms=sent_at_ms)
    if result.presence is Presence.FOUND: settle(result.value)
    elif result.presence is Presence.ABSENT: send_again()
    else: keep_reserved(result.reason)
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

SKEW_MS = 60_000
"""Allowance for the venue's clock running behind ours and for its whole-second timestamps: a row
counts as covering `since_ms` only if it is older than `since_ms - SKEW_MS`."""


class Presence(enum.Enum):
    """Whether a spend is at the venue: FOUND, provably ABSENT, or UNKNOWN (never re-spend)."""

    FOUND = "found"
    ABSENT = "absent"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Lookup(Generic[T]):
    """One look-up's answer. `since_ms` is what was asked (epoch ms); `covered_from_ms` how far back
    the rows read reach (`None` = the whole history); `pages` how many list calls it took."""

    presence: Presence
    since_ms: int
    value: T | None = None
    covered_from_ms: int | None = None
    reason: str = ""
    pages: int = 0

    @property
    def found(self) -> bool:
        return self.presence is Presence.FOUND

    @property
    def absent(self) -> bool:
        return self.presence is Presence.ABSENT

    @property
    def unknown(self) -> bool:
        return self.presence is Presence.UNKNOWN

    def map(self, convert: Callable[[T], R]) -> Lookup[R]:
        """The same answer with `value` converted (only called when FOUND)."""
        value = convert(self.value) if self.presence is Presence.FOUND and self.value is not None else None
        return Lookup(self.presence, self.since_ms, value, self.covered_from_ms, self.reason, self.pages)


def covers(oldest_row_ms: int | None, since_ms: int, *, complete: bool) -> bool:
    """Do rows read newest-first down to `oldest_row_ms` cover everything since `since_ms`?

    `complete` means the list ended (no older rows exist). Otherwise the oldest row read must be
    strictly older than `since_ms - SKEW_MS`: rows share whole-second timestamps, so a row of the
    same second could still sit on the next page."""
    if complete:
        return True
    return oldest_row_ms is not None and oldest_row_ms < since_ms - SKEW_MS


def scan_pages(
    pages: Iterable[tuple[Sequence[R], bool]],
    *,
    match: Callable[[R], bool],
    time_ms: Callable[[R], int | None],
    since_ms: int,
    what: str,
    clocks_agree: bool = True,
) -> Lookup[R]:
    """Walk newest-first pages `(rows, is_last)` until a row matches (FOUND) or the rows read cover
    `since_ms` (ABSENT). Running out of pages before that, or a row without a time, is UNKNOWN.

    Rows are looked at in full on every page, whatever their order inside a page (the real casino
    lists rows of one second oldest first). A whole list read (`is_last`) proves absence whatever
    the clocks say; a time window only when `clocks_agree` (ours and the venue's)."""
    oldest: int | None = None
    count = 0
    for rows, is_last in pages:
        count += 1
        for row in rows:
            if match(row):
                return Lookup(Presence.FOUND, since_ms, row, oldest, pages=count)
        for row in rows:
            at = time_ms(row)
            if at is None:
                return Lookup(Presence.UNKNOWN, since_ms, None, oldest, f"{what}: a listed row has no time",
                              pages=count)
            oldest = at if oldest is None else min(oldest, at)
        if is_last:
            return Lookup(Presence.ABSENT, since_ms, None, None, pages=count)
        if covers(oldest, since_ms, complete=False):
            if not clocks_agree:
                return Lookup(Presence.UNKNOWN, since_ms, None, oldest,
                              f"{what}: our clock and the venue's disagree by more than {SKEW_MS // 2} ms, so a time "
                              f"window proves nothing", pages=count)
            return Lookup(Presence.ABSENT, since_ms, None, oldest, pages=count)
    return Lookup(Presence.UNKNOWN, since_ms, None, oldest,
                  f"{what}: the rows read reach back to {oldest} ms, not to {since_ms - SKEW_MS} ms", pages=count)


__all__ = ["SKEW_MS", "Lookup", "Presence", "covers", "scan_pages"]
