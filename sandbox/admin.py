"""`/_sandbox/*`: the harness's side door into the sandbox. NOT part of any real Purple Flea API.

Tests and paper mode need to do what the real world does off-API (a deposit lands, a day
passes, the network turns bad) and to see what no real API shows (how many times a spend with
the same Idempotency-Key reached a handler). These routes are never faulted.

The Idempotency-Key log is an observation, not a protection: like the real services, the sandbox
executes every POST it receives. It records the key, path and answer of each POST that reached
a handler, so a test can count spends that happened twice.
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandbox.accounts import credit_deposit
from sandbox.clock import Clock, iso
from sandbox.context import SandboxContext
from sandbox.escrow import run_timeouts
from sandbox.faults import FaultConfig, is_admin_path
from sandbox.http import ApiError, amount_from_wire, not_found_handlers, read_json
from sandbox.store import Store

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sandbox_idempotency (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    service TEXT NOT NULL,
    path TEXT NOT NULL,
    key TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    status INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_sandbox_idempotency_key ON sandbox_idempotency(key);
"""


class IdempotencyLog:
    """Every POST that carried an `Idempotency-Key` and reached a handler, with its status."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        store.ensure_schema("sandbox_idempotency", _SCHEMA)

    def record(self, service: str, path: str, key: str, status: int) -> None:
        self.store.execute(
            "INSERT INTO sandbox_idempotency(service, path, key, at_ms, status) VALUES (?, ?, ?, ?, ?)",
            (service, path, key, self.clock.now_ms(), status),
        )

    def lookup(self, key: str) -> dict[str, Any]:
        rows = self.store.all("SELECT * FROM sandbox_idempotency WHERE key = ? ORDER BY id", (key,))
        entries = [{"service": r["service"], "path": r["path"], "status": r["status"], "at": iso(r["at_ms"])}
                   for r in rows]
        return {"key": key, "count": len(entries), "successes": sum(1 for e in entries if 200 <= e["status"] < 300),
                "entries": entries}

    def summary(self) -> dict[str, Any]:
        rows = self.store.all(
            "SELECT key, COUNT(*) AS n, SUM(CASE WHEN status BETWEEN 200 AND 299 THEN 1 ELSE 0 END) AS ok "
            "FROM sandbox_idempotency GROUP BY key"
        )
        return {
            "requests": sum(r["n"] for r in rows),
            "keys": len(rows),
            "keys_seen_more_than_once": sum(1 for r in rows if r["n"] > 1),
            "keys_succeeded_more_than_once": sorted(r["key"] for r in rows if r["ok"] > 1),
            "successes": sum(r["ok"] for r in rows),
        }


class IdempotencyRecorder:
    """ASGI middleware: records keyed POSTs after their handler answered (never deduplicates)."""

    def __init__(self, app: ASGIApp, log: IdempotencyLog) -> None:
        self.app = app
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or is_admin_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        key = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"idempotency-key"), None)
        if key is None:
            await self.app(scope, receive, send)
            return
        status = 500

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            service, _, rest = scope["path"].lstrip("/").partition("/")
            self.log.record(service, "/" + rest, key, status)


def create_admin_app(ctx: SandboxContext, services: list[str], idem: IdempotencyLog) -> Starlette:
    """The `/_sandbox` routes for one running sandbox."""

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True, "services": services, "now": iso(ctx.clock.now_ms()),
                             "now_ms": ctx.clock.now_ms(), "seed": ctx.seed})

    async def get_faults(request: Request) -> JSONResponse:
        assert ctx.injector is not None
        return JSONResponse(ctx.injector.snapshot())

    async def set_faults(request: Request) -> JSONResponse:
        body = await read_json(request, strict=True)
        try:
            config = FaultConfig.from_dict(body)
        except (TypeError, ValueError) as exc:
            raise ApiError(400, "invalid_faults", str(exc)) from None
        ctx.set_faults(config)
        return await get_faults(request)

    async def get_clock(request: Request) -> JSONResponse:
        return JSONResponse({"now_ms": ctx.clock.now_ms(), "now": iso(ctx.clock.now_ms())})

    async def advance_clock(request: Request) -> JSONResponse:
        body = await read_json(request, strict=True)
        ms, hours = body.get("ms", 0), body.get("hours", 0)
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (ms, hours))
        total = round(ms + hours * 3_600_000) if numbers else -1
        if total < 0:
            raise ApiError(400, "invalid_ms", "give ms and/or hours as non-negative numbers")
        ctx.clock.advance(total)
        if "escrow" in services:
            run_timeouts(ctx)
        return await get_clock(request)

    async def idempotency(request: Request) -> JSONResponse:
        key = request.query_params.get("key")
        if not key:
            return JSONResponse(idem.summary())
        return JSONResponse(idem.lookup(key))

    async def idempotency_summary(request: Request) -> JSONResponse:
        return JSONResponse(idem.summary())

    async def casino_credit(request: Request) -> JSONResponse:
        if "casino" not in services:
            raise ApiError(404, "not_found", "casino is not running")
        body = await read_json(request, strict=True)
        amount = amount_from_wire(body.get("amount"), allow_string=True)
        agent_id = body.get("agent_id")
        if not isinstance(agent_id, str) or amount is None or amount <= 0:
            raise ApiError(400, "invalid_request", "agent_id and a positive amount are required")
        chain = body.get("chain", "base")
        result = credit_deposit(ctx, agent_id, amount, chain=str(chain))
        return JSONResponse(result)

    async def set_chain(request: Request) -> JSONResponse:
        body = await read_json(request, strict=True)
        up = body.get("up")
        if not isinstance(up, bool):
            raise ApiError(400, "invalid_request", "give up: true or false")
        ctx.chain_up = up
        return JSONResponse({"chain_up": ctx.chain_up})

    async def escrow_timeouts(request: Request) -> JSONResponse:
        if "escrow" not in services:
            raise ApiError(404, "not_found", "escrow is not running")
        return JSONResponse({"refunded": run_timeouts(ctx)})

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/faults", get_faults, methods=["GET"]),
        Route("/faults", set_faults, methods=["POST"]),
        Route("/chain", set_chain, methods=["POST"]),
        Route("/clock", get_clock, methods=["GET"]),
        Route("/clock/advance", advance_clock, methods=["POST"]),
        Route("/idempotency", idempotency, methods=["GET"]),
        Route("/idempotency/summary", idempotency_summary, methods=["GET"]),
        Route("/casino/credit", casino_credit, methods=["POST"]),
        Route("/escrow/run-timeouts", escrow_timeouts, methods=["POST"]),
    ]
    return Starlette(routes=routes, exception_handlers=not_found_handlers("admin"))
