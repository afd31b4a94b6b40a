"""`treasury up`: run a deployment — Redis, the venue (sandbox in paper mode) and the workers.

Without REDIS_URL it starts an embedded redis-server with AOF on in `<data-dir>/redis`; in
paper mode it starts the sandbox with its state in `<data-dir>/sandbox.sqlite3`. Both survive a
restart, so a second `treasury up` on the same data dir resumes where the first stopped: the
ledger, the journal, pending commands and the sandbox's accounts are all still there.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
from pathlib import Path

from rich.console import Console

from messages.errors import ConfigError
from runtime.bus import command_client
from runtime.keys import DEFAULT_SHARDS, Keys
from runtime.signals import stop_on_signals
from supervisor.deployment import REAL_VENUES, data_dir, ensure_keys, live_venues, record_deployment, redis_url_file
from supervisor.logs import configure_logging
from supervisor.processes import readline_with_timeout, redis_for_run
from supervisor.roles import available_roles
from supervisor.supervise import Supervisor, SupervisorConfig


def add_up_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", default=None, help="where Redis's AOF, the sandbox state and keys live (.treasury)")
    p.add_argument("--workers", type=int, default=1, help="worker processes per role (default 1)")
    p.add_argument("--roles", default=None, help="comma-separated roles (default: every installed role)")
    p.add_argument("--live", action="store_true", help="use the real Purple Flea services instead of the sandbox")
    p.add_argument("--venues-from", default=None, metavar="URL",
                   help="a sandbox already running at URL (e.g. http://sandbox:8800): services at URL/<name>")
    p.add_argument("--seed", type=int, default=0, help="sandbox seed (paper mode)")
    p.add_argument("--prefix", default="tr")
    p.add_argument("--shard-count", type=int, default=DEFAULT_SHARDS)
    p.add_argument("--max-restarts", type=int, default=5, help="restarts of one worker within --restart-window")
    p.add_argument("--restart-window", type=float, default=60.0, help="seconds")
    p.add_argument("--stale-ms", type=int, default=5000, help="a worker whose heartbeat is older is restarted")
    p.add_argument("--agents", default=None, metavar="FILE",
                   help='agents to serve, onboarded at start if new: {"agents": [{"name": ..., "capital": ...}]} '
                        "(JSON or TOML)")


def start_sandbox_process(seed: int, state: Path) -> tuple[subprocess.Popen, dict[str, str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "supervisor.cli", "sandbox", "--seed", str(seed), "--state", str(state)],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    line = readline_with_timeout(proc, 30)
    try:
        return proc, json.loads(line)
    except json.JSONDecodeError:
        proc.kill()
        raise ConfigError(f"the sandbox did not start: {line!r}") from None


def up_main(args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    configure_logging("supervisor")
    d = data_dir(args.data_dir)
    keyfile = ensure_keys(d)
    roles = args.roles.split(",") if args.roles else available_roles()
    stop = threading.Event()
    stop_on_signals(stop)
    sandbox = None
    with redis_for_run(str(d / "redis")) as (url, embedded):
        console.print(f"redis     {'embedded, AOF on, in ' + str(d / 'redis') if embedded else url}")
        redis_url_file(d).write_text(url)
        try:
            if args.live:
                venues, mode = live_venues(), "live"
            elif args.venues_from:
                root = args.venues_from.rstrip("/")
                venues, mode = {name: f"{root}/{name}" for name in REAL_VENUES}, "paper"
                console.print(f"sandbox   paper mode, at {root}")
            else:
                sandbox, venues = start_sandbox_process(args.seed, d / "sandbox.sqlite3")
                mode = "paper"
                console.print(f"sandbox   paper mode, state in {d / 'sandbox.sqlite3'}")
            keys = Keys(args.prefix, args.shard_count)
            client = command_client(url)
            record_deployment(client, keys, venues, mode)
            if args.agents:
                from supervisor.agents_cli import add_agent, read_agents_file

                for name, capital in read_agents_file(args.agents):
                    console.print(f"agent     {add_agent(client, keys, venues, mode, name, capital)}")
            config = SupervisorConfig(workers_per_role=args.workers, heartbeat_stale_ms=args.stale_ms,
                                      max_restarts=args.max_restarts, restart_window_s=args.restart_window)
            supervisor = Supervisor(url, keys, roles, venues, env={"TREASURY_KEYS_FILE": str(keyfile)}, config=config)
            console.print(f"workers   {args.workers} per role: {', '.join(roles)}; keys in {keyfile}")
            console.print("running   `treasury status` to look, Ctrl-C to stop")
            supervisor.run(stop)
            console.print("stopped   every worker drained its batch and exited")
        finally:
            if sandbox is not None:
                sandbox.terminate()
                sandbox.wait(10)
            redis_url_file(d).unlink(missing_ok=True)
    return 0
