"""Soak: many idle agents under a real deployment (supervisor, one worker process per role) while a
shared accelerated clock runs their ticks; Redis memory per agent and CPU at the start and the end.

    python bench/bench_soak.py [--agents 10000] [--speed 24] [--minutes 60] [--parallel 16]

Agents are onboarded on a sandbox process (`treasury agent add-many`'s path). The workers and the
scheduler read a Redis clock (`--clock redis:<key>`) that this script moves `--speed` times faster
than real time for `--minutes` of real time (`--speed 24`, 60 minutes: a day of ticks). CPU of the
supervisor, its workers and redis-server is measured over the first and the last minute (each
process once, by process; the sandbox, which plays the venues, apart); memory
per agent (MEMORY USAGE of every key of the deployment, less the deployment with no agent) at the
start and the end. The start is the baseline of this run: the goal is flat memory, idle CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import redis  # noqa: E402
from common import cpu_seconds, descendants, machine, own_redis, prefix_memory  # noqa: E402

from messages.money import parse_usd  # noqa: E402
from runtime.clock import RedisClock, SystemClock  # noqa: E402
from runtime.keyring import generate_key  # noqa: E402
from runtime.keys import Keys  # noqa: E402
from supervisor.deployment import record_deployment  # noqa: E402
from supervisor.onboard_many import onboard_many  # noqa: E402
from supervisor.roles import available_roles  # noqa: E402
from supervisor.scheduler import Scheduler  # noqa: E402
from supervisor.supervise import Supervisor, SupervisorConfig  # noqa: E402
from supervisor.up import start_sandbox_process  # noqa: E402


def cpu_pct(pids: list[int], seconds: float, sandbox_pid: int) -> tuple[float, float, dict[str, float]]:
    """(deployment CPU %, sandbox CPU %, deployment CPU % by process) over `seconds`; each pid once.
    The sandbox plays the venues (outside services in production): counted apart."""
    pids = sorted(set(pids))
    c0, t0 = {p: cpu_seconds(p) for p in pids}, time.monotonic()
    time.sleep(seconds)
    c1, dt = {p: cpu_seconds(p) for p in pids}, time.monotonic() - t0
    by: dict[str, float] = {}
    for p in pids:
        name = _name(p)
        by[name] = round(by.get(name, 0.0) + 100 * (c1[p] - c0[p]) / dt, 2)
    sandbox = round(sum(100 * (c1[p] - c0[p]) / dt for p in pids if p == sandbox_pid or _name(p) == "sandbox"), 2)
    total = round(sum(100 * (c1[p] - c0[p]) / dt for p in pids) - sandbox, 2)
    return total, sandbox, {k: v for k, v in by.items() if k != "sandbox"}


def _name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            text = [a.decode(errors="replace") for a in f.read().split(b"\0")]
    except OSError:
        return "?"
    if "--role" in text:
        return "worker " + text[text.index("--role") + 1]
    if pid == os.getpid():
        return "supervisor (bench process)"
    if any("redis-server" in a for a in text[:1]):
        return "redis-server"
    return "sandbox" if any("sandbox" in a for a in text) else os.path.basename(text[0])


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--agents", type=int, default=10_000)
    p.add_argument("--speed", type=float, default=24.0)
    p.add_argument("--minutes", type=float, default=60.0)
    p.add_argument("--window-s", type=float, default=60.0, help="CPU measuring window at the start and the end")
    p.add_argument("--parallel", type=int, default=16)
    p.add_argument("--shards", type=int, default=64)
    args = p.parse_args()
    state = Path(tempfile.mkdtemp(prefix="bench-soak-")) / "sandbox.sqlite3"
    sandbox, venues = start_sandbox_process(13, state)
    try:
        with own_redis() as (url, redis_proc):
            client = redis.Redis.from_url(url)
            keys = Keys(f"soak{uuid.uuid4().hex[:4]}", args.shards)
            record_deployment(client, keys, venues, "paper")
            clock_key = f"{keys.prefix}:clock"
            clock = RedisClock(client, clock_key)
            clock.set(SystemClock().now_ms())
            roles = available_roles()
            key = generate_key("soak", "operator")
            sup = Supervisor(url, keys, roles, venues, env={"TREASURY_KEYS": key.env_entry()},
                             clock_spec=f"redis:{clock_key}", config=SupervisorConfig())
            sup.scheduler = Scheduler(client, keys, clock, roles)  # ticks by the fast clock; heartbeats by the real one
            stop = threading.Event()
            runner = threading.Thread(target=sup.run, args=(stop,), daemon=True)
            runner.start()
            time.sleep(8)
            empty, _ = prefix_memory(client, keys.prefix)
            t = time.perf_counter()
            agents = [(f"s{i}", parse_usd("100")) for i in range(args.agents)]
            report = onboard_many(client, keys, venues, "paper", agents, parallel=args.parallel)
            onboard_s = time.perf_counter() - t
            if report.failed:
                print(f"{len(report.failed)} agents failed to onboard, e.g. {next(iter(report.failed.items()))}",
                      file=sys.stderr)
            n = len(report.done)
            ticking = threading.Event()

            def run_clock() -> None:
                last = time.monotonic()
                while not ticking.wait(0.2):
                    now = time.monotonic()
                    # the Redis clock is a stored time that moves only when moved: `speed` × real time
                    clock.advance(int((now - last) * 1000 * args.speed))
                    last = now

            threading.Thread(target=run_clock, daemon=True).start()
            redis_pid = redis_proc.pid
            pids = descendants(os.getpid()) + [redis_pid]
            mem_start = (prefix_memory(client, keys.prefix)[0] - empty) // max(n, 1)
            cpu_start, sandbox_start, by_start = cpu_pct(pids, args.window_s, sandbox.pid)
            sim_start = clock.now_ms()
            time.sleep(max(0.0, args.minutes * 60 - 2 * args.window_s))
            cpu_end, sandbox_end, by_end = cpu_pct(descendants(os.getpid()) + [redis_pid], args.window_s, sandbox.pid)
            sim_hours = (clock.now_ms() - sim_start) / 3_600_000
            mem_end = (prefix_memory(client, keys.prefix)[0] - empty) // max(n, 1)
            beats = client.hgetall(f"{keys.prefix}:workers").values()
            processed = sum(json.loads(v).get("processed", 0) for v in beats)
            dead = sum(client.xlen(keys.dead(s)) for s in range(keys.shards))
            ticking.set()
            stop.set()
            runner.join(60)
    finally:
        sandbox.terminate()
        sandbox.wait(10)
    print(machine())
    print(f"{n} agents onboarded in {onboard_s:.0f} s ({n / onboard_s:.1f}/s); {len(roles)} workers; "
          f"clock x{args.speed:g}: {sim_hours:.1f} simulated hours in {args.minutes:g} min; "
          f"{processed} messages handled, {dead} dead-lettered")
    print(f"{'':<8}{'Redis bytes/agent':>20}{'CPU % (deployment)':>20}{'CPU % (sandbox)':>17}")
    print(f"{'start':<8}{mem_start:>20}{cpu_start:>20}{sandbox_start:>17}")
    print(f"{'end':<8}{mem_end:>20}{cpu_end:>20}{sandbox_end:>17}")
    for label, by in (("start", by_start), ("end", by_end)):
        print(f"{label:<8}CPU % by process: " + ", ".join(f"{k} {v}" for k, v in sorted(by.items())))
    print(json.dumps({"bench": "soak", "agents": n, "speed": args.speed, "simulated_hours": round(sim_hours, 2),
                      "bytes_per_agent_start": mem_start, "bytes_per_agent_end": mem_end, "cpu_pct_start": cpu_start,
                      "cpu_pct_end": cpu_end, "sandbox_cpu_pct_start": sandbox_start,
                      "sandbox_cpu_pct_end": sandbox_end, "messages": processed, "dead_lettered": dead,
                      "onboard_per_s": round(n / onboard_s, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
