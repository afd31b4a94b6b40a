"""Start the sandbox: every service on one uvicorn server, each mounted at its own root.

A service is a module exposing `create_app(ctx: SandboxContext) -> Starlette`; adding one is one
line in `SERVICE_FACTORIES`. Modules that do not exist yet are skipped, so the registry can name
services before they are written.

The server listens on 127.0.0.1 (an ephemeral port unless told otherwise) in a daemon thread, so
tests and the supervisor can start a sandbox in-process; `main()` is the `treasury sandbox` CLI,
which prints one JSON line of base URLs and serves until SIGTERM/SIGINT.

It also holds the small toolkit every service module uses to answer like the real APIs:
`ApiError` and `reply` (error JSON, the `_info` field, JSON.stringify's null for NaN/Infinity),
`read_json` (strict or lenient bodies), `bearer`, and money on the wire (`wire`, `wire_cents`,
`amount_from_wire`).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import importlib
import json
import logging
import math
import os
import random
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount

from messages.errors import MoneyError
from messages.money import CENT, usd_from_venue
from runtime.signals import stop_on_signals
from sandbox.clock import Clock, SystemClock
from sandbox.faults import FaultConfig, FaultInjector, FaultMiddleware
from sandbox.store import Store
from venue.wire import to_venue_amount

log = logging.getLogger(__name__)

HOST = "127.0.0.1"


@dataclass
class SandboxContext:
    """What every service gets: the seed, the shared store, the clock and the fault settings.

    `urls` is filled in once the port is known (service name → base URL), so a service could call
    another over HTTP; the ones here share the store instead, as the real escrow and faucet share
    the casino's database.
    """

    seed: int
    store: Store
    clock: Clock
    faults: FaultConfig
    urls: dict[str, str] = field(default_factory=dict)
    injector: FaultInjector | None = field(default=None, repr=False)
    _rngs: dict[str, random.Random] = field(default_factory=dict, init=False, repr=False)

    def rng_for(self, name: str) -> random.Random:
        """A random stream of its own per name, derived from the seed (the same object each call)."""
        if name not in self._rngs:
            self._rngs[name] = random.Random(f"{self.seed}:{name}")
        return self._rngs[name]

    def derive_hex(self, label: str, nbytes: int) -> str:
        """`nbytes` of hex that depend only on the seed and `label`: reproducible secrets and ids."""
        key = f"purple-flea-sandbox:{self.seed}".encode()
        out = b""
        block = 0
        while len(out) < nbytes:
            out += hmac.new(key, f"{label}#{block}".encode(), hashlib.sha256).digest()
            block += 1
        return out[:nbytes].hex()

    def new_id(self, kind: str, nbytes: int) -> str:
        """Fresh hex for the next `kind` (agent, key, escrow…); counters persist, so no id repeats
        after a restart on the same state file."""
        return self.derive_hex(f"{kind}:{self.store.next_seq(kind)}", nbytes)

    def set_faults(self, config: FaultConfig) -> None:
        self.faults = config
        if self.injector is not None:
            self.injector.configure(config)


# ── Service toolkit: how every sandbox service speaks like the real APIs ─────────────────────


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


def not_found_handlers(service: str = "sandbox") -> dict[Any, Callable[..., Any]]:
    """Unknown routes (and wrong methods) answer 404 `not_found` in JSON, as Hono does."""

    async def not_found(request: Request, exc: Exception) -> Response:
        return reply({"error": "not_found", "message": f"{request.method} {request.url.path} not found"}, 404,
                     service=service)

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return reply(exc.body(), exc.status, service=service)

    async def internal(request: Request, exc: Exception) -> Response:
        return reply({"error": "internal_error", "message": type(exc).__name__}, 500, service=service)

    return {HTTPException: not_found, ApiError: api_error, Exception: internal}


def make_service_app(name: str, routes: list[BaseRoute]) -> Starlette:
    """A service's Starlette app with the real APIs' error conventions wired in."""
    return Starlette(routes=routes, exception_handlers=not_found_handlers(name))


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


ServiceFactory = Callable[[SandboxContext], Starlette]


def _lazy(module: str) -> ServiceFactory:
    def factory(ctx: SandboxContext) -> Starlette:
        return importlib.import_module(module).create_app(ctx)

    factory.module = module  # type: ignore[attr-defined]
    return factory


SERVICE_FACTORIES: dict[str, ServiceFactory] = {
    "casino": _lazy("sandbox.casino"),
    "escrow": _lazy("sandbox.escrow"),
    "faucet": _lazy("sandbox.faucet"),
    "trading": _lazy("sandbox.trading"),
    "wallet": _lazy("sandbox.wallet"),
}


def build_services(ctx: SandboxContext) -> dict[str, Starlette]:
    """Instantiate every registered service whose module exists."""
    apps: dict[str, Starlette] = {}
    for name, factory in SERVICE_FACTORIES.items():
        module = getattr(factory, "module", None)
        try:
            apps[name] = factory(ctx)
        except ModuleNotFoundError as exc:
            if module is not None and exc.name == module:
                log.debug("sandbox service %s not available (%s missing)", name, module)
                continue
            raise
    return apps


def build_app(ctx: SandboxContext, apps: dict[str, Starlette]) -> Any:
    """The ASGI app of the whole sandbox: services, admin routes, Idempotency-Key log, faults."""
    from sandbox.admin import IdempotencyLog, IdempotencyRecorder, create_admin_app

    idem_log = IdempotencyLog(ctx.store, ctx.clock)
    routes = [Mount(f"/{name}", app=app) for name, app in apps.items()]
    routes.append(Mount("/_sandbox", app=create_admin_app(ctx, sorted(apps), idem_log)))
    root = Starlette(routes=routes, exception_handlers=not_found_handlers())
    assert ctx.injector is not None
    return FaultMiddleware(IdempotencyRecorder(root, idem_log), ctx.injector)


class _QuietDropFilter(logging.Filter):
    """Injected drops make uvicorn log an error per request; they are on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "returned without completing response" not in record.getMessage()


class SandboxHandle:
    """A running sandbox. Use as a context manager, or call `stop()`."""

    def __init__(self, ctx: SandboxContext, server: uvicorn.Server, thread: threading.Thread,
                 port: int, services: list[str], tmpdir: str | None) -> None:
        self.ctx = ctx
        self.port = port
        self.root_url = f"http://{HOST}:{port}"
        self.urls: dict[str, str] = {name: f"{self.root_url}/{name}" for name in services}
        self._server = server
        self._thread = thread
        self._tmpdir = tmpdir
        self._stopped = False

    @property
    def state_path(self) -> str:
        return self.ctx.store.path

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self.ctx.store.close()
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)

    def __enter__(self) -> SandboxHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"SandboxHandle(root_url={self.root_url!r}, services={sorted(self.urls)})"


def start_sandbox(
    seed: int = 0,
    state_path: str | None = None,
    faults: FaultConfig | None = None,
    port: int = 0,
    clock: Clock | None = None,
    host: str = HOST,
) -> SandboxHandle:
    """Start every available service on one server and return once it accepts connections."""
    tmpdir = None
    if state_path is None:
        tmpdir = tempfile.mkdtemp(prefix="pf-sandbox-")
        state_path = os.path.join(tmpdir, "state.sqlite")
    store = Store(state_path)
    injector = FaultInjector(faults)
    ctx = SandboxContext(seed=seed, store=store, clock=clock or SystemClock(), faults=injector.config,
                         injector=injector)
    try:
        apps = build_services(ctx)
        app = build_app(ctx, apps)
        # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on sockets that say so, and without
        # it every response waits ~40 ms for a delayed ACK.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except BaseException:
        store.close()
        if tmpdir:
            shutil.rmtree(tmpdir, ignore_errors=True)
        raise
    bound_port = sock.getsockname()[1]
    uvicorn_log = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietDropFilter) for f in uvicorn_log.filters):
        uvicorn_log.addFilter(_QuietDropFilter())
    config = uvicorn.Config(app, http="h11", lifespan="off", log_config=None, log_level="warning",
                            access_log=False, timeout_graceful_shutdown=1, timeout_keep_alive=5)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"sandbox:{bound_port}",
                              daemon=True)
    handle = SandboxHandle(ctx, server, thread, bound_port, list(apps), tmpdir)
    ctx.urls.update(handle.urls)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            handle.stop()
            raise RuntimeError("the sandbox server did not start")
        time.sleep(0.01)
    return handle


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="treasury sandbox",
                                description="Run the local Purple Flea sandbox (paper mode).")
    p.add_argument("--seed", type=int, default=0, help="seed for ids, server seeds and faults")
    p.add_argument("--state", default=None, help="SQLite state file (default: a temporary file)")
    p.add_argument("--port", type=int, default=0, help="port (default: ephemeral)")
    p.add_argument("--host", default=HOST, help="address to listen on (default 127.0.0.1; 0.0.0.0 in a container)")
    p.add_argument("--error-rate", type=float, default=0.0, help="share of requests answered 500")
    p.add_argument("--latency-ms", type=int, default=0, help="latency added to every response")
    p.add_argument("--drop-rate", type=float, default=0.0, help="share of connections dropped")
    p.add_argument("--garbage-rate", type=float, default=0.0, help="share of 200s with a non-JSON body")
    p.add_argument("--fault-after-ratio", type=float, default=0.5,
                   help="share of faults that strike after the handler ran (default 0.5)")
    return p


def main(argv: list[str] | None = None) -> int:
    """`treasury sandbox`: print one JSON line of service URLs, serve until SIGTERM/SIGINT."""
    args = _parser().parse_args(argv)
    try:
        faults = FaultConfig(error_rate=args.error_rate, latency_ms=args.latency_ms, drop_rate=args.drop_rate,
                             garbage_rate=args.garbage_rate, seed=args.seed, after_ratio=args.fault_after_ratio)
    except ValueError as exc:
        print(f"treasury sandbox: {exc}", file=sys.stderr)
        return 2
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    stop = threading.Event()
    previous = stop_on_signals(stop)  # via a thread: set() from a handler can deadlock on the wait below
    try:
        with start_sandbox(seed=args.seed, state_path=args.state, faults=faults, port=args.port,
                           host=args.host) as handle:
            sys.stdout.write(json.dumps(handle.urls) + "\n")
            sys.stdout.flush()
            while not stop.wait(0.5):
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
