"""One shared HTTP connection pool (httpx.Client, one SSL context) per venue base URL.

Clients are per agent (each holds its own API key), but connections and the SSL context are
not: every agent's client of a venue borrows the same `httpx.Client` for each request. So an
agent's first call reuses warm connections (no new SSL context, no new handshake), and memory
does not grow with the number of agents. A pool idle for `idle_s` (no request in flight, none
for that long) is closed at the next borrow of any pool and made again when next needed.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx

IDLE_S = 300.0
HEADERS = {"user-agent": "agent-treasury", "accept": "application/json"}


@dataclass
class _Entry:
    http: httpx.Client
    users: int = 0
    last_used: float = 0.0


class HttpPool:
    """Shared `httpx.Client`s by (base URL, timeout); thread-safe."""

    def __init__(self, idle_s: float = IDLE_S, clock=time.monotonic) -> None:
        self.idle_s = idle_s
        self._clock = clock
        self._entries: dict[tuple[str, float], _Entry] = {}
        self._lock = threading.Lock()
        self.created = 0

    @contextlib.contextmanager
    def borrow(self, base_url: str, timeout_s: float) -> Iterator[httpx.Client]:
        """The shared client for `base_url`, held for one request."""
        key = (base_url, timeout_s)
        with self._lock:
            now = self._clock()
            self._evict_idle(now, keep=key)
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _Entry(httpx.Client(base_url=base_url, timeout=timeout_s,
                                                                 headers=HEADERS))
                self.created += 1
            entry.users += 1
        try:
            yield entry.http
        finally:
            with self._lock:
                entry.users -= 1
                entry.last_used = self._clock()

    def _evict_idle(self, now: float, keep: tuple[str, float]) -> None:
        for key, entry in list(self._entries.items()):
            if key != keep and entry.users == 0 and now - entry.last_used >= self.idle_s:
                del self._entries[key]
                entry.http.close()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def close(self) -> None:
        with self._lock:
            for entry in self._entries.values():
                entry.http.close()
            self._entries.clear()


SHARED = HttpPool()
"""The process's pool: every ServiceClient without its own transport borrows from it."""
