"""`treasury watch`: the status screen, refreshed in place every few seconds until Ctrl-C.

It reuses the one-shot view's snapshot and drawing, so `watch` and `status` never disagree.
Redis going away while watching is shown on screen and retried on the next refresh; only a
Redis that cannot be reached at start is an error (exit 2), so a typo in the URL fails fast.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Callable

import redis
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.text import Text

from runtime.clock import Clock, SystemClock
from supervisor.status import RedisUnreachable, open_client
from supervisor.status_view import add_connection_arguments, fail, positive_int, snapshot, status_renderable, utc


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number of seconds")
    return value


def add_watch_arguments(parser: argparse.ArgumentParser) -> None:
    add_connection_arguments(parser)
    parser.add_argument("--interval", type=_positive_float, default=2.0, help="seconds between refreshes (default 2)")
    parser.add_argument("--iterations", type=positive_int, default=None,
                        help="stop after this many refreshes (default: until Ctrl-C)")
    parser.add_argument("--json", action="store_true", help="print one JSON snapshot per line instead of a screen")


def frame(client: redis.Redis, args: argparse.Namespace, now_ms: int) -> RenderableType:
    """One screen: a header, then the status, or the Redis error when a refresh failed."""
    header = Text(f"treasury watch — {utc(now_ms)} — every {args.interval:g} s — Ctrl-C to stop", style="dim")
    try:
        return Group(header, status_renderable(snapshot(client, args, now_ms)))
    except redis.RedisError as exc:
        return Group(header, Text(f"Redis unavailable: {' '.join(str(exc).split())} — retrying", style="bold red"))


def watch_main(args: argparse.Namespace, *, clock: Clock | None = None, console: Console | None = None,
               sleep: Callable[[float], None] = time.sleep) -> int:
    """Refresh every `args.interval` s; stop after `args.iterations` refreshes or on Ctrl-C (exit 0)."""
    interval = getattr(args, "interval", 2.0) or 2.0
    iterations = getattr(args, "iterations", None)
    if args.shard_count <= 0:
        return fail("watch", f"--shard-count must be positive, got {args.shard_count}")
    if interval <= 0:
        return fail("watch", f"--interval must be positive, got {interval}")
    args.interval = interval
    try:
        client = open_client(args.redis_url)
    except RedisUnreachable as exc:
        return fail("watch", exc)
    clock = clock or SystemClock()
    done = 0
    try:
        if getattr(args, "json", False):
            while iterations is None or done < iterations:
                try:
                    print(json.dumps(snapshot(client, args, clock.now_ms())), flush=True)
                except redis.RedisError as exc:
                    print(json.dumps({"error": " ".join(str(exc).split()), "now_ms": clock.now_ms()}), flush=True)
                done += 1
                if iterations is None or done < iterations:
                    sleep(interval)
            return 0
        console = console or Console()
        with Live(Text("reading…", style="dim"), console=console, auto_refresh=False) as live:
            while iterations is None or done < iterations:
                live.update(frame(client, args, clock.now_ms()), refresh=True)
                done += 1
                if iterations is None or done < iterations:
                    sleep(interval)
        if not console.is_terminal:
            console.line()  # piped: Live leaves the last frame without its final newline
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        client.close()
