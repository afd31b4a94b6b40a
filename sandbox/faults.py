"""Seeded fault injection in front of every real sandbox route.

A client that survives only a perfect network will double-spend in production, so the sandbox
can misbehave on purpose, reproducibly (one RNG seeded per configuration):

- error: a 500 with an error JSON;
- drop: the connection closes before a complete response (the client sees a transport error);
- garbage: a 200 whose body is not JSON;
- latency: every response is held back by `latency_ms`.

Each error, drop or garbage fault strikes either BEFORE the handler (nothing happened) or AFTER
it (the handler ran, the spend is committed, only the answer is lost); `after_ratio` sets the
share of AFTER faults. The AFTER case is the one that turns a naive retry into a double spend.
Latency is added after the handler, so a request is settled by the time its client gives up;
a lookup made after a timeout therefore sees the final state.

`/_sandbox/*` is never faulted: the harness must always be able to talk to the sandbox.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
from collections import Counter
from dataclasses import asdict, dataclass, fields
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

ADMIN_PREFIX = "/_sandbox"


def is_admin_path(path: str) -> bool:
    """The sandbox's own routes, at the root (`/_sandbox/...`) or under a service (`/trading/_sandbox/...`)."""
    return path.startswith(ADMIN_PREFIX) or f"{ADMIN_PREFIX}/" in path
GARBAGE_BODY = b"<html><body>502 Bad Gateway</body></html>\x00\xff"


@dataclass
class FaultConfig:
    """Probabilities per request (they must add up to at most 1) and a fixed added latency."""

    error_rate: float = 0.0
    latency_ms: int = 0
    drop_rate: float = 0.0
    garbage_rate: float = 0.0
    seed: int = 0
    after_ratio: float = 0.5

    def __post_init__(self) -> None:
        for name in ("error_rate", "drop_rate", "garbage_rate", "after_ratio"):
            value = float(getattr(self, name))
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
            setattr(self, name, value)
        if self.error_rate + self.drop_rate + self.garbage_rate > 1.0:
            raise ValueError("error_rate + drop_rate + garbage_rate must not exceed 1")
        self.latency_ms = int(self.latency_ms)
        if self.latency_ms < 0:
            raise ValueError("latency_ms must not be negative")
        self.seed = int(self.seed)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaultConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault settings: {sorted(unknown)}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def active(self) -> bool:
        return bool(self.error_rate or self.drop_rate or self.garbage_rate or self.latency_ms)


class FaultInjector:
    """Holds the current configuration, its RNG, and counts of what was injected."""

    def __init__(self, config: FaultConfig | None = None) -> None:
        self._lock = threading.Lock()
        self.configure(config or FaultConfig())

    def configure(self, config: FaultConfig) -> None:
        with self._lock:
            self.config = config
            self._rng = random.Random(f"faults:{config.seed}")
            self.injected: Counter[str] = Counter()

    def draw(self) -> tuple[str | None, bool]:
        """Decide the fate of one request: (fault kind or None, strikes after the handler?)."""
        with self._lock:
            cfg = self.config
            roll, phase = self._rng.random(), self._rng.random()
            kind = None
            if roll < cfg.error_rate:
                kind = "error"
            elif roll < cfg.error_rate + cfg.drop_rate:
                kind = "drop"
            elif roll < cfg.error_rate + cfg.drop_rate + cfg.garbage_rate:
                kind = "garbage"
            after = phase < cfg.after_ratio
            if kind:
                self.injected[f"{kind}_{'after' if after else 'before'}"] += 1
            return kind, after

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"config": self.config.to_dict(), "injected": dict(self.injected)}


class FaultMiddleware:
    """ASGI middleware applying the injector's decisions to every non-admin HTTP request."""

    def __init__(self, app: ASGIApp, injector: FaultInjector) -> None:
        self.app = app
        self.injector = injector

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_admin_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        kind, after = self.injector.draw()
        latency_ms = self.injector.config.latency_ms
        if kind and not after:
            await _inject(kind, send)
            return
        if not kind and not latency_ms:
            await self.app(scope, receive, send)
            return
        held: list[Message] = []

        async def hold(message: Message) -> None:
            held.append(message)

        await self.app(scope, receive, hold)
        if latency_ms:
            await asyncio.sleep(latency_ms / 1000)
        if kind:
            await _inject(kind, send)
            return
        for message in held:
            await send(message)


async def _inject(kind: str, send: Send) -> None:
    if kind == "error":
        body = json.dumps({"error": "internal_error", "message": "Injected sandbox fault"}).encode()
        await send({"type": "http.response.start", "status": 500,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
    elif kind == "garbage":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(GARBAGE_BODY)).encode())]})
        await send({"type": "http.response.body", "body": GARBAGE_BODY})
    else:
        # Start a chunked response and return without finishing it: the server then closes the
        # socket mid-response, and the client's read fails with a transport error.
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
