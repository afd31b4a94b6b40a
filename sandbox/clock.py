"""Time for the sandbox services, injected so tests can move it.

Escrow timeouts, bet timestamps and ledger rows all read the clock through this protocol; no
service calls `time.time()` itself, so a test can advance 25 hours in a microsecond.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from runtime.clock import ManualClock


@runtime_checkable
class Clock(Protocol):
    def now_ms(self) -> int:
        """Milliseconds since the Unix epoch."""
        ...

    def advance(self, ms: int) -> int:
        """Move time forward by `ms`; returns the new `now_ms()`."""
        ...


class SystemClock:
    """Wall-clock time, plus an offset so a running sandbox can still be pushed forward."""

    def __init__(self) -> None:
        self._offset_ms = 0
        self._lock = threading.Lock()

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000 + self._offset_ms

    def advance(self, ms: int) -> int:
        if ms < 0:
            raise ValueError("time only moves forward")
        with self._lock:
            self._offset_ms += ms
        return self.now_ms()


def iso(ms: int) -> str:
    """`1767225600000` → `"2026-01-01T00:00:00.000Z"`, the venues' timestamp format."""
    stamp = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


__all__ = ["Clock", "ManualClock", "SystemClock", "iso"]  # ManualClock: the treasury's deterministic clock, shared
