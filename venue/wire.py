"""The one place a micro-USD amount becomes a JSON float: the venues' wire format.

The Purple Flea services read and write USD as JSON numbers (doubles). Inside the treasury money
is integer micro-USD; this conversion happens only in request bodies sent to a venue (and in the
sandbox's answers), on amounts already rounded to what the venue accepts.
"""

from __future__ import annotations

from messages.money import to_decimal


def to_venue_amount(micros: int) -> float:
    """The JSON number a venue expects for `micros`."""
    return float(to_decimal(micros))
