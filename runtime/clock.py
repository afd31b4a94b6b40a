"""Injected time: the one clock of the treasury and of the sandbox.

Nothing reads the wall clock directly (timeouts measured with `time.monotonic` aside), so tests
and the demo can run a day in a second and replay gives the same answers. Every clock answers
`now_ms()`, milliseconds since the Unix epoch; the movable ones also `advance(ms)` (forward only).

- `SystemClock`: the wall clock, plus an offset that `advance` grows (a running sandbox can be
  pushed forward);
- `ManualClock`: moves only when told to (tests, the sandbox under test);
- `RedisClock`: a simulated `now` kept in a Redis key, shared by several processes (the demo).
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from redis import Redis

DAY_MS = 24 * 3600 * 1000


class Clock(Protocol):
    """Anything that tells the time."""

    def now_ms(self) -> int:
        """Milliseconds since the Unix epoch."""
        ...


@runtime_checkable
class MovableClock(Clock, Protocol):
    """A clock that can be pushed forward (the sandbox's admin route does)."""

    def advance(self, ms: int) -> int:
        """Move time forward by `ms` (raises `ValueError` if negative); returns the new `now_ms()`."""
        ...


class SystemClock:
    """Wall-clock time, plus an offset that `advance` grows (thread-safe)."""

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


class ManualClock:
    """A clock that moves only when told to (thread-safe); `advance` only goes forward.
    The sandbox's services use it too (`sandbox/clock.py`)."""

    def __init__(self, start_ms: int = 1_767_225_600_000):  # 2026-01-01T00:00:00Z
        self._now = start_ms
        self._lock = threading.Lock()

    def now_ms(self) -> int:
        with self._lock:
            return self._now

    def advance(self, ms: int) -> int:
        if ms < 0:
            raise ValueError("time only moves forward")
        with self._lock:
            self._now += ms
            return self._now

    def set(self, ms: int) -> None:
        with self._lock:
            self._now = ms


class RedisClock:
    """Time as seen by a shared Redis key: lets several processes share one simulated clock.

    The demo and tests run workers in other processes; they all read the same `now` so a
    "24 h pause" can be crossed by one write.
    """

    def __init__(self, client: Redis, key: str):
        self.client = client
        self.key = key

    def now_ms(self) -> int:
        value = self.client.get(self.key)
        if value is None:
            raise RuntimeError(f"simulated clock key {self.key} is not set")
        return int(value)

    def set(self, ms: int) -> None:
        self.client.set(self.key, ms)

    def advance(self, ms: int) -> int:
        return int(self.client.incrby(self.key, ms))
