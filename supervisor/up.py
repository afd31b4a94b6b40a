"""`treasury up`: run a deployment — Redis, the venue (sandbox in paper mode) and the workers.

Without `--redis-url` or REDIS_URL (either may name a Redis Cluster: `redis+cluster://host:port`)
it starts an embedded redis-server with AOF on in `<data-dir>/redis`; in paper mode it starts
the sandbox with its state in `<data-dir>/sandbox.sqlite3`. Both survive a restart, so a second
`treasury up` on the same data dir resumes where the first stopped: the ledger, the journal,
pending commands and the sandbox's accounts are all still there.

Before anything starts the whole configuration is checked (roles, counts, the agents file); a bad
value is one line and exit 2. The data directory has one owner at a time (`supervisor.ownership`):
a second `up` there stops with "already running here (pid N)"; one started after its owner was
killed stops the redis-server and sandbox that owner left, and removes its stale redis.url.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.text import Text

from messages.errors import ConfigError
from runtime.bus import command_client
from runtime.keys import DEFAULT_SHARDS, Keys
from runtime.redis_client import CLUSTER_SCHEMES, plain_url
from runtime.signals import stop_on_signals
from supervisor.cli_common import non_negative_int, positive_float, positive_int
from supervisor.deployment import (
    DATA_DIR_ENV,
    DEFAULT_DATA_DIR,
    REAL_VENUES,
    ensure_keys,
    live_venues,
    record_deployment,
    redis_url_file,
)
from supervisor.logs import configure_logging
from supervisor.ownership import ChildLock, OwnerLock
from supervisor.processes import readline_with_timeout, redis_for_run
from supervisor.roles import ROLE_MODULES, available_roles
from supervisor.supervise import Supervisor, SupervisorConfig
from supervisor.worker import HEARTBEAT_MS

MIN_STALE_MS = 2 * HEARTBEAT_MS
"""A worker beats every `HEARTBEAT_MS`; a staleness limit shorter than two beats kills healthy workers."""


def add_up_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", default=None, metavar="DIR",
                   help=f"where Redis's AOF, the sandbox state, keys and the owner lock live "
                        f"(default ${DATA_DIR_ENV}, else .treasury)")
    p.add_argument("--redis-url", default=None, metavar="URL",
                   help="an external Redis instead of the embedded one (default $REDIS_URL, else embedded): "
                        "redis://host:port/db, or redis+cluster://host:port for a Redis Cluster (any one node)")
    p.add_argument("--workers", type=positive_int, default=1, metavar="N",
                   help="worker processes per role, at least 1 (default 1)")
    p.add_argument("--roles", default=None, metavar="LIST",
                   help=f"comma-separated roles (default: every installed role; known: {', '.join(ROLE_MODULES)})")
    p.add_argument("--live", action="store_true", help="use the real Purple Flea services instead of the sandbox")
    p.add_argument("--venues-from", default=None, metavar="URL",
                   help="a sandbox already running at URL (e.g. http://sandbox:8800): services at URL/<name>")
    p.add_argument("--seed", type=int, default=0, help="sandbox seed, an integer (paper mode; default 0)")
    p.add_argument("--prefix", default="tr", help="key prefix of the deployment in Redis (default tr)")
    p.add_argument("--shard-count", type=positive_int, default=DEFAULT_SHARDS, metavar="N",
                   help=f"shards, at least 1, fixed when the deployment is created (default {DEFAULT_SHARDS})")
    p.add_argument("--max-restarts", type=non_negative_int, default=5, metavar="N",
                   help="restarts of one worker within --restart-window before every treasury is halted (default 5)")
    p.add_argument("--restart-window", type=positive_float, default=60.0, metavar="SECONDS",
                   help="seconds (default 60)")
    p.add_argument("--stale-ms", type=positive_int, default=5000, metavar="MS",
                   help=f"milliseconds: a worker whose heartbeat is older is restarted (at least {MIN_STALE_MS}, "
                        f"default 5000)")
    p.add_argument("--agents", default=None, metavar="FILE",
                   help='agents to serve, onboarded at start if new: {"agents": [{"name": ..., "capital": ...}]} '
                        "(JSON or TOML; capital in USD)")


@dataclass
class UpPlan:
    """Everything `up` will do, checked before anything starts."""

    data_dir: Path
    roles: list[str]
    agents: list[tuple[str, int]]


def check_up_args(args: argparse.Namespace) -> UpPlan:
    """The whole configuration, checked; `ConfigError` (one line) on the first bad value. Starts nothing."""
    installed = available_roles()
    if args.roles is not None:
        roles = [r.strip() for r in args.roles.split(",")]
        unknown = [r for r in roles if r not in ROLE_MODULES]
        if unknown or not all(roles):
            raise ConfigError(f"--roles: unknown role {ascii(unknown[0] if unknown else '')}; "
                              f"known: {', '.join(ROLE_MODULES)}")
        missing = [r for r in roles if r not in installed]
        if missing:
            raise ConfigError(f"--roles: role {missing[0]} is not installed here")
        if len(set(roles)) != len(roles):
            raise ConfigError(f"--roles: {args.roles} names a role twice")
    else:
        roles = installed
    if args.stale_ms < MIN_STALE_MS:
        raise ConfigError(f"--stale-ms {args.stale_ms}: must be at least {MIN_STALE_MS} ms (workers beat every "
                          f"{HEARTBEAT_MS} ms)")
    if getattr(args, "redis_url", None) is not None:
        check_redis_url(args.redis_url)
    if args.live and args.venues_from:
        raise ConfigError("--live and --venues-from are exclusive: real services or a sandbox, not both")
    if args.venues_from and not args.venues_from.startswith(("http://", "https://")):
        raise ConfigError(f"--venues-from {ascii(args.venues_from)}: expected an http:// or https:// URL")
    agents: list[tuple[str, int]] = []
    if args.agents:
        from supervisor.agents_cli import read_agents_file

        agents = read_agents_file(args.agents)
    d = Path(args.data_dir or os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR)
    if d.exists() and not d.is_dir():
        raise ConfigError(f"--data-dir {d} is a file, not a directory")
    if getattr(args, "redis_url", None) is not None:  # last, once everything that needs no network is right
        check_redis_reachable(args.redis_url)
    return UpPlan(d, roles, agents)


def check_redis_reachable(url: str) -> None:
    """`ConfigError` naming `--redis-url` when no Redis answers there: found before the sandbox and
    the data directory's files, not as "lost the connection" after they were started."""
    from supervisor.status import RedisUnreachable, open_client

    try:
        open_client(url).close()
    except RedisUnreachable as exc:
        raise ConfigError(f"--redis-url: {exc}") from None


REDIS_SCHEMES = ("redis", "rediss", "unix", *CLUSTER_SCHEMES)


def check_redis_url(url: str) -> str:
    """`url` if it is a Redis URL `up` can use (`REDIS_SCHEMES`; a cluster's only database is 0),
    else `ConfigError` naming the flag."""
    scheme = url.partition("://")[0] if "://" in url else ""
    if scheme not in REDIS_SCHEMES:
        raise ConfigError(f"--redis-url {ascii(url)}: expected a URL starting with "
                          f"{', '.join(s + '://' for s in REDIS_SCHEMES)}")
    try:
        plain_url(url)
    except ConfigError as exc:
        raise ConfigError(f"--redis-url: {exc}") from None
    return url


def start_sandbox_process(seed: int, state: Path,
                          lock_fd: int | None = None) -> tuple[subprocess.Popen, dict[str, str]]:
    """Start the sandbox on `state` (holding `lock_fd` while it lives); (process, venue URLs)."""
    argv = [sys.executable, "-m", "supervisor.cli", "sandbox", "--seed", str(seed), "--state", str(state)]
    proc = subprocess.Popen(argv,
                            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, start_new_session=True,
                            pass_fds=(lock_fd,) if lock_fd is not None else ())
    line = readline_with_timeout(proc, 30)
    try:
        return proc, json.loads(line)
    except json.JSONDecodeError:
        proc.kill()
        raise ConfigError(f"the sandbox did not start: {line!r}") from None


def up_main(args: argparse.Namespace) -> int:
    """Check the configuration, take the data directory's owner lock, stop what a dead owner left,
    then start Redis, the venue and the workers and supervise them until SIGTERM/SIGINT."""
    console = Console(stderr=True, soft_wrap=True)
    plan = check_up_args(args)
    d = plan.data_dir
    with OwnerLock(d) as owner:
        def say(line: str) -> None:
            console.print(Text(f"owner     {line}", style="yellow"))

        d = d.resolve()
        configure_logging("supervisor")
        stale = redis_url_file(d)
        if stale.exists():
            gone = owner.previous.get("pid")
            say(f"removed the stale {stale.name} left by a previous run (pid {gone if gone else '?'}, not running)")
            stale.unlink()
        keyfile = ensure_keys(d)
        stop = threading.Event()
        stop_on_signals(stop)
        return _run(args, plan, d, keyfile, console, say, stop)


def _run(args, plan: UpPlan, d: Path, keyfile: Path, console: Console, say, stop: threading.Event) -> int:
    roles = plan.roles
    sandbox = None
    sandbox_lock = ChildLock(d / "sandbox.lock", "sandbox")
    with redis_for_run(str(d / "redis"), say=say, url=getattr(args, "redis_url", None)) as (url, embedded):
        where = f"embedded, AOF on (appendfsync {embedded.appendfsync}), in {d / 'redis'}" if embedded else url
        console.print(f"redis     {where}")
        redis_url_file(d).write_text(url)
        try:
            if args.live:
                venues, mode = live_venues(), "live"
            elif args.venues_from:
                root = args.venues_from.rstrip("/")
                venues, mode = {name: f"{root}/{name}" for name in REAL_VENUES}, "paper"
                console.print(f"sandbox   paper mode, at {root}")
            else:
                lock_fd = sandbox_lock.take(say)
                sandbox, venues = start_sandbox_process(args.seed, d / "sandbox.sqlite3", lock_fd)
                sandbox_lock.record(sandbox.pid)
                mode = "paper"
                console.print(f"sandbox   paper mode, state in {d / 'sandbox.sqlite3'}")
            keys = Keys(args.prefix, args.shard_count)
            client = command_client(url)
            record_deployment(client, keys, venues, mode)
            if plan.agents:
                from supervisor.onboard_many import onboard_with_bar

                report = onboard_with_bar(client, keys, venues, mode, plan.agents, console=console)
                if report.failed:
                    console.print(f"agents    {len(report.done)} of {len(plan.agents)} onboarded; "
                                  "run again to finish the rest")
            config = SupervisorConfig(workers_per_role=args.workers, heartbeat_stale_ms=args.stale_ms,
                                      max_restarts=args.max_restarts, restart_window_s=args.restart_window)
            supervisor = Supervisor(url, keys, roles, venues, env={"TREASURY_KEYS_FILE": str(keyfile)}, config=config,
                                    redis_server=embedded)
            console.print(f"workers   {args.workers} per role: {', '.join(roles)}; keys in {keyfile}")
            from supervisor.progress import progress

            def running() -> None:
                console.print(f"running   owner pid {os.getpid()}; `treasury status --data-dir {d}` to look, "
                              "Ctrl-C to stop")

            bar = contextlib.ExitStack()  # the bar lives while the workers start, not while they run
            step = bar.enter_context(progress(console, "starting workers", len(supervisor.slots), prefix="worker    "))

            def spawned(slot) -> None:
                pid = slot.process.pid if slot.process is not None else None
                step(f"{slot.consumer} pid {pid}" if pid else f"{slot.consumer} failed to start: {slot.last_exit}")
                if slot is supervisor.slots[-1]:
                    bar.close()
                    running()

            try:
                supervisor.run(stop, on_spawn=spawned)
            finally:
                bar.close()
            console.print("stopped   every worker drained its batch and exited")
        finally:
            if sandbox is not None:
                sandbox.terminate()
                try:
                    sandbox.wait(10)
                except subprocess.TimeoutExpired:
                    sandbox.kill()
                    sandbox.wait(5)
            sandbox_lock.close()
            redis_url_file(d).unlink(missing_ok=True)
    return 0
