"""Start the sandbox: every service on one uvicorn server, each mounted at its own root.

A service is a module exposing `create_app(ctx: SandboxContext) -> Starlette`; adding one is one
line in `SERVICE_FACTORIES`. Modules that do not exist yet are skipped, so the registry can name
services before they are written.

The server listens on 127.0.0.1 (an ephemeral port unless told otherwise) in a daemon thread, so
tests and the supervisor can start a sandbox in-process; `main()` is the `treasury sandbox` CLI,
which prints one JSON line of base URLs and serves until SIGTERM/SIGINT.

The toolkit every service uses to answer like the real APIs lives in `sandbox.http`, the
context in `sandbox.context`, the casino accounts shared with escrow and faucet in
`sandbox.accounts`, and the `/_sandbox` side door in `sandbox.admin`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from email.utils import formatdate
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount

from runtime.signals import stop_on_signals
from sandbox.admin import IdempotencyLog, IdempotencyRecorder, create_admin_app
from sandbox.clock import Clock, SystemClock
from sandbox.context import SandboxContext
from sandbox.faults import FaultConfig, FaultInjector, FaultMiddleware
from sandbox.http import not_found_handlers
from sandbox.store import Store

log = logging.getLogger(__name__)

HOST = "127.0.0.1"


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
    idem_log = IdempotencyLog(ctx.store, ctx.clock)
    routes = [Mount(f"/{name}", app=app) for name, app in apps.items()]
    routes.append(Mount("/_sandbox", app=create_admin_app(ctx, sorted(apps), idem_log)))
    root = Starlette(routes=routes, exception_handlers=not_found_handlers())
    assert ctx.injector is not None
    return FaultMiddleware(DateHeader(IdempotencyRecorder(root, idem_log), ctx.clock), ctx.injector)


class DateHeader:
    """Every answer carries `Date` from the sandbox clock, as a real server's Date comes from the
    clock that also stamps its rows (clients compare it with their own to trust time windows)."""

    def __init__(self, app: Any, clock: Clock) -> None:
        self.app = app
        self.clock = clock

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_dated(message: Any) -> None:
            if message["type"] == "http.response.start":
                date = formatdate(self.clock.now_ms() / 1000, usegmt=True).encode()
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"date"]
                message = {**message, "headers": [*headers, (b"date", date)]}
            await send(message)

        await self.app(scope, receive, send_dated)


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
                            access_log=False, timeout_graceful_shutdown=1, timeout_keep_alive=5, date_header=False)
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
