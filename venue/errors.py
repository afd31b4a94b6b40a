"""What can go wrong when the treasury talks to a venue, sorted by what it means for money.

A caller holding a reservation must know one thing after a failed spend: did the venue do it?
The three families answer that question and nothing else:

- `VenueRejected`: the venue answered with a definite "no" (a 4xx with an error code). Nothing
  happened; the reservation can be released.
- `VenueRateLimited`: a 429. Also nothing happened, but the same call may succeed later.
- `VenueUnavailable`: timeout, connection error, 5xx, or a body that is not the expected JSON.
  For a spend the outcome is UNKNOWN: it may have happened. Look it up before retrying.

Messages never carry the API key or the request body (which can hold a private key).
"""

from __future__ import annotations

from typing import Any

from messages.errors import TreasuryError


class VenueError(TreasuryError):
    """A failed venue call. `code` is the venue's `error` field when it sent one."""

    def __init__(
        self,
        service: str,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        self.service = service
        self.code = code
        self.status = status
        self.message = message
        self.details: dict[str, Any] = dict(details or {})
        super().__init__(self._text())

    def _text(self) -> str:
        parts = [self.service]
        if self.status is not None:
            parts.append(str(self.status))
        if self.code:
            parts.append(self.code)
        return f"{' '.join(parts)}: {self.message}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(service={self.service!r}, code={self.code!r}, "
            f"status={self.status!r}, message={self.message!r})"
        )


class VenueRejected(VenueError):
    """A definitive refusal (4xx with an error code): the request changed nothing."""


class VenueNotApplied(VenueRejected):
    """The venue could not be reached, and a lookup afterwards proved the spend did not happen.

    It is a `VenueRejected` because what the caller must do is the same: nothing was spent, the
    reservation can be released. `details["last_error"]` names the transport failure.
    """


class VenueRateLimited(VenueError):
    """429: the venue refused to look at the request now. Nothing happened; back off."""


class VenueUnavailable(VenueError):
    """No usable answer (timeout, connection error, 5xx, garbage): a spend's outcome is unknown."""
