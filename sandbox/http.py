"""How every sandbox service speaks like the real APIs over HTTP.

`ApiError` and `reply` (error JSON, the `_info` field, JSON.stringify's null for NaN/Infinity),
`not_found_handlers` and `make_service_app` (Hono's 404/500 conventions), `read_json` (strict or
lenient bodies), `bearer`, and money on the wire (`wire`, `wire_cents`, `amount_from_wire`).
Depends on nothing else in the sandbox.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from messages.errors import MoneyError
from messages.money import CENT, usd_from_venue
from venue.wire import to_venue_amount


class ApiError(Exception):
    """Raise from any handler to answer `{"error": code, "message"?, **extra}` with `status`."""

    def __init__(self, status: int, code: str, message: str | None = None, **extra: Any) -> None:
        super().__init__(f"{status} {code}")
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, Any]:
        data: dict[str, Any] = {"error": self.code}
        if self.message is not None:
            data["message"] = self.message
        data.update(self.extra)
        return data


def js_json(value: Any) -> Any:
    """What `JSON.stringify` would send: NaN and infinities become `null`."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: js_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [js_json(v) for v in value]
    return value


def reply(data: dict[str, Any], status: int = 200, *, service: str) -> JSONResponse:
    """A JSON object response with the `_info` field every real response carries."""
    body = js_json(dict(data))
    body["_info"] = {"service": f"sandbox-{service}", "sandbox": True}
    return JSONResponse(body, status_code=status)


def not_found_handlers(service: str = "sandbox", *, message: bool = True,
                       extra: dict[str, Any] | None = None) -> dict[Any, Callable[..., Any]]:
    """Unknown routes (and wrong methods) answer 404 `not_found` in JSON, as Hono does; the
    escrow's says nothing more (`message=False`)."""

    async def not_found(request: Request, exc: Exception) -> Response:
        body = {"error": "not_found"}
        if message:
            body["message"] = f"{request.method} {request.url.path} not found"
        return reply({**body, **(extra or {})}, 404, service=service)

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return reply(exc.body(), exc.status, service=service)

    async def internal(request: Request, exc: Exception) -> Response:
        return reply({"error": "internal_error", "message": type(exc).__name__}, 500, service=service)

    return {HTTPException: not_found, ApiError: api_error, Exception: internal}


def make_service_app(name: str, routes: list[BaseRoute], *, not_found_message: bool = True,
                     not_found_extra: dict[str, Any] | None = None) -> Starlette:
    """A service's Starlette app with the real APIs' error conventions wired in."""
    return Starlette(routes=routes, exception_handlers=not_found_handlers(name, message=not_found_message,
                                                                          extra=not_found_extra))


def _no_constants(token: str) -> Any:
    raise ValueError(f"{token} is not JSON")


async def read_json(request: Request, *, strict: bool) -> dict[str, Any]:
    """The request body as a dict. `strict`: bad JSON is 400 `invalid_json` (casino, trading,
    wallet); otherwise it reads as `{}` (escrow, faucet). A JSON non-object reads as `{}`."""
    raw = await request.body()
    try:
        data = json.loads(raw, parse_constant=_no_constants)
    except ValueError:
        if strict:
            raise ApiError(400, "invalid_json", "Request body must be valid JSON") from None
        return {}
    return data if isinstance(data, dict) else {}


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header[:7].lower() != "bearer ":
        return None
    token = header[7:].strip()
    return token or None


def amount_from_wire(value: Any, *, allow_string: bool = False) -> int | None:
    """A JSON amount in dollars → micro-USD (negative allowed, for the caller to refuse), or None
    when it is not a finite number (bools, null, NaN; strings unless `allow_string`)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str) and not allow_string:
        return None
    if not isinstance(value, (int, float, str)):
        return None
    try:
        return usd_from_venue(value, allow_negative=True)
    except MoneyError:
        return None


def wire(micros: int) -> float:
    """Micro-USD as the JSON float the real services send."""
    return to_venue_amount(micros) if micros >= 0 else -to_venue_amount(-micros)


def cents_half_up(micros: int) -> int:
    """Round to whole cents, halves upward, as JavaScript's `Math.round(x * 100) / 100` does."""
    return ((micros + CENT // 2) // CENT) * CENT


def wire_cents(micros: int) -> float:
    """Micro-USD rounded to the cent the way the real services round for display."""
    return wire(cents_half_up(micros))
