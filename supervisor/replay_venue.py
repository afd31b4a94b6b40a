"""Venue answers for replay: a transport that records every HTTP exchange, and one that plays them back.

Both plug into `venue.client.base.routed_through`, so the actors' own venue clients are used
unchanged. A failed exchange (a transport error rather than an answer) is recorded with status 0
and the error's class name as its body, and played back as the same error.
"""

from __future__ import annotations

import threading
from collections import defaultdict, deque
from typing import Callable

import httpx

from supervisor.replay_format import VenueExchange, b64

_ERRORS: dict[str, type[httpx.TransportError]] = {
    "ConnectError": httpx.ConnectError, "ReadTimeout": httpx.ReadTimeout, "ConnectTimeout": httpx.ConnectTimeout,
    "WriteTimeout": httpx.WriteTimeout, "PoolTimeout": httpx.PoolTimeout, "ReadError": httpx.ReadError,
    "RemoteProtocolError": httpx.RemoteProtocolError,
}


class RecordingTransport(httpx.BaseTransport):
    """Sends through a real transport and hands each exchange to `sink` as it completes."""

    def __init__(self, sink: Callable[[VenueExchange], None], inner: httpx.BaseTransport | None = None) -> None:
        self.inner = inner or httpx.HTTPTransport()
        self.sink = sink

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        try:
            response = self.inner.handle_request(request)
            content = response.read()
        except httpx.TransportError as exc:
            self._add(VenueExchange(request.method, str(request.url), b64(body), 0, b64(type(exc).__name__.encode())))
            raise
        self._add(VenueExchange(request.method, str(request.url), b64(body), response.status_code, b64(content),
                                response.headers.get("content-type", "application/json")))
        return httpx.Response(response.status_code, headers=response.headers, content=content, request=request)

    def _add(self, exchange: VenueExchange) -> None:
        self.sink(exchange)

    def close(self) -> None:
        self.inner.close()


class Divergence(str):
    """One way the replayed run asked the venues something the recorded run did not."""


class PlaybackTransport(httpx.BaseTransport):
    """Answers each request with the next recorded answer to the same method and URL.

    A request with no recorded answer left gets a 599 answer and is noted in `divergences`, as is
    a request whose body differs from the recorded one (it still gets the recorded answer).
    """

    def __init__(self, exchanges: list[VenueExchange]) -> None:
        self._queues: dict[tuple[str, str], deque[VenueExchange]] = defaultdict(deque)
        for ex in exchanges:
            self._queues[(ex.method, ex.url)].append(ex)
        self.divergences: list[Divergence] = []
        self.served = 0
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        key = (request.method, str(request.url))
        with self._lock:
            queue = self._queues.get(key)
            ex = queue.popleft() if queue else None
            if ex is None:
                self.divergences.append(Divergence(f"{request.method} {request.url}: not in the record"))
                return httpx.Response(599, json={"error": "replay_diverged"}, request=request)
            self.served += 1
            if ex.request != body:
                self.divergences.append(Divergence(f"{request.method} {request.url}: request body differs "
                                                   f"(recorded {ex.request[:80]!r}, replayed {body[:80]!r})"))
        if ex.status == 0:
            raise _ERRORS.get(ex.body.decode(), httpx.ConnectError)(f"recorded {ex.body.decode()}", request=request)
        return httpx.Response(ex.status, content=ex.body, request=request,
                              headers={"content-type": ex.content_type})

    def unused(self) -> int:
        return sum(len(q) for q in self._queues.values())
