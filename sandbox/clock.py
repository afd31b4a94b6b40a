"""Time for the sandbox services: the treasury's clocks (`runtime.clock`), injected so tests can
move them, and the venues' timestamp format.

Escrow timeouts, bet timestamps and ledger rows all read the clock through `Clock` (a
`runtime.clock.MovableClock`: `now_ms()` and `advance(ms)`); no service calls `time.time()`
itself, so a test can advance 25 hours in a microsecond.
"""

from __future__ import annotations

from datetime import UTC, datetime

from runtime.clock import ManualClock, SystemClock
from runtime.clock import MovableClock as Clock


def iso(ms: int) -> str:
    """`1767225600000` → `"2026-01-01T00:00:00.000Z"`, the venues' timestamp format."""
    stamp = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


__all__ = ["Clock", "ManualClock", "SystemClock", "iso"]
