"""`treasury watch`: the status screen, refreshed in place every few seconds until Ctrl-C.

It reuses the one-shot view's snapshot and drawing, so `watch` and `status` never disagree.
Redis going away while watching is shown on screen and retried on the next refresh; only a
Redis that cannot be reached at start is an error (exit 2), so a typo in the URL fails fast.
"""

from __future__ import annotations

import argparse
import json
import signal
import time
from typing import Callable

import redis
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.text import Text

from messages.errors import TreasuryError
from runtime.clock import Clock, SystemClock
from supervisor.status_json import with_units
from supervisor.status_view import (
    add_connection_arguments,
    agents_summary,
    deployment_parts,
    fail,
    positive_int,
    prepare,
    printable,
    snapshot,
    status_renderable,
    utc,
)

MAX_INTERVAL_S = 86_400.0
"""The longest pause between refreshes `--interval` takes (a day)."""


def _interval_seconds(text: str) -> float:
    """argparse type of `--interval`: seconds, above 0 and at most a day (`inf` cannot be slept)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= MAX_INTERVAL_S:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number of seconds up to {MAX_INTERVAL_S:g}")
    return value


def add_watch_arguments(parser: argparse.ArgumentParser) -> None:
    add_connection_arguments(parser)
    parser.add_argument("--interval", type=_interval_seconds, default=2.0, help="seconds between refreshes (default 2)")
    parser.add_argument("--iterations", type=positive_int, default=None,
                        help="stop after this many refreshes (default: until Ctrl-C)")
    parser.add_argument("--json", action="store_true",
                        help="one JSON snapshot per line (money in *_micros, times in *_ms) instead of a screen")


def frame(client: redis.Redis, args: argparse.Namespace, now_ms: int, console: Console | None = None) -> RenderableType:
    """One screen: a header, then the status, or the Redis error when a refresh failed.

    On a terminal the deployment section is never cut: when the agents' details do not fit above
    it, they are summarised one row per agent, and the rows that still do not fit are counted
    ("… N more agents") instead of drawn."""
    header = Text(f"treasury watch — {utc(now_ms)} — every {args.interval:g} s — Ctrl-C to stop", style="dim")
    try:
        status = printable(snapshot(client, args, now_ms))
    except redis.RedisError as exc:
        return Group(header, Text(f"Redis unavailable: {' '.join(str(exc).split())} — retrying", style="bold red"))
    if console is None or not console.is_terminal:
        return Group(header, status_renderable(status))
    return Group(header, fitted(status, console, console.size.height - 1))


def _height(console: Console, renderable: RenderableType) -> int:
    return len(console.render_lines(renderable, console.options, pad=False))


def fitted(status: dict, console: Console, height: int) -> RenderableType:
    """The status in at most `height` lines, the deployment section whole (see `frame`)."""
    whole = status_renderable(status)
    if _height(console, whole) <= height:
        return whole
    deployment = Group(*deployment_parts(status))
    room = height - _height(console, deployment)
    agents = status["agents"]
    for shown in range(len(agents), -1, -1):
        summary: list[RenderableType] = [agents_summary(agents[:shown], status["now_ms"])] if shown else []
        rest = status["agents_total"] - shown
        if rest > 0:
            summary.append(Text(f"… {rest} more agents: `treasury status --offset {status['page']['offset'] + shown}`"
                                f" pages them, --agent ID shows one", style="dim"))
        part = Group(*summary)
        if _height(console, part) <= room or shown == 0:
            return Group(part, deployment)
    return Group(deployment)


def watch_main(args: argparse.Namespace, *, clock: Clock | None = None, console: Console | None = None,
               sleep: Callable[[float], None] = time.sleep) -> int:
    """Refresh every `args.interval` s; stop after `args.iterations` refreshes or on Ctrl-C (exit 0)."""
    interval = getattr(args, "interval", 2.0) or 2.0
    iterations = getattr(args, "iterations", None)
    if interval <= 0:
        return fail("watch", f"--interval must be positive, got {interval}")
    args.interval = interval
    try:
        client = prepare("watch", args)
    except TreasuryError as exc:
        return fail("watch", exc)
    clock = clock or SystemClock()
    done = 0
    previous = _stop_on_sigterm()
    try:
        if getattr(args, "json", False):
            while iterations is None or done < iterations:
                try:
                    print(json.dumps(with_units(snapshot(client, args, clock.now_ms()))), flush=True)
                except redis.RedisError as exc:
                    print(json.dumps({"error": " ".join(str(exc).split()), "now_ms": clock.now_ms()}), flush=True)
                done += 1
                if iterations is None or done < iterations:
                    sleep(interval)
            return 0
        console = console or Console()
        if not console.is_terminal:
            return _print_frames(client, args, clock, console, iterations, interval, sleep)
        with Live(Text("reading…", style="dim"), console=console, auto_refresh=False) as live:
            while iterations is None or done < iterations:
                live.update(frame(client, args, clock.now_ms(), console), refresh=True)
                done += 1
                if iterations is None or done < iterations:
                    sleep(interval)
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        client.close()


def _stop_on_sigterm():
    """SIGTERM stops `watch` as Ctrl-C does: the loop ends, what was printed is flushed, exit 0.
    Returns the previous handler (None when not in the main thread, where no handler can be set)."""
    def handler(signum, frame):
        raise KeyboardInterrupt

    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:
        return None


def _print_frames(client, args, clock: Clock, console: Console, iterations: int | None, interval: float,
                  sleep: Callable[[float], None]) -> int:
    """Not a terminal (a pipe, a file): each refresh is printed after the last one and flushed, so
    a reader (`| head`, a log file) sees every frame as it comes; no cursor movement."""
    done = 0
    while iterations is None or done < iterations:
        console.print(frame(client, args, clock.now_ms(), console))
        console.file.flush()
        done += 1
        if iterations is None or done < iterations:
            sleep(interval)
    return 0
