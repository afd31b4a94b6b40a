"""Stopping a process on SIGTERM / SIGINT without deadlocking it.

A signal handler runs in the main thread between two bytecodes. If the main thread is inside
`Event.wait()` at that moment it may hold the event's internal lock, and a handler that calls
`event.set()` then waits for that same lock forever: the process ignores every later signal.
So the handler only starts a thread that sets the event.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Iterable


def stop_on_signals(event: threading.Event,
                    signals: Iterable[int] = (signal.SIGTERM, signal.SIGINT)) -> dict[int, object]:
    """Install handlers that set `event`; returns the previous handlers (to restore them)."""
    def handler(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=event.set, name="stop-signal", daemon=True).start()

    return {sig: signal.signal(sig, handler) for sig in signals}
