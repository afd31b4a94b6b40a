"""Soak: many idle agents under a real deployment (supervisor, one worker process per role) while a
shared accelerated clock runs their ticks; Redis memory per agent and CPU at the start and the end.

    python bench/bench_soak.py [--agents 10000] [--speed 24] [--minutes 60] [--parallel 16]

Agents are onboarded on a sandbox process (`treasury agent add-many`'s path). The workers and the
scheduler read a Redis clock (`--clock redis:<key>`) that this script moves `--speed` times faster
than real time for `--minutes` of real time (`--speed 24`, 60 minutes: a day of ticks). CPU of the
supervisor, its workers and redis-server is measured over the first and the last minute; memory
per agent (MEMORY USAGE of every key of the deployment, less the deployment with no agent) at the
start and the end, and the resident memory (RSS) of the supervisor's worker processes, less what
they held before any agent was onboarded. The start is the baseline of this run: the goal is
flat memory, idle CPU, and workers within 50 KB per agent.
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
from common import cpu_seconds, descendants, machine, memory_by_kind, own_redis, prefix_memory, rss_kb  # noqa: E402

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


def workers_rss(skip: set[int]) -> int:
    """RSS of every process below this one (the supervisor's workers), but those in `skip`."""
    return sum(rss_by_role(skip).values())


def name_of(pid: int, names: dict[int, str]) -> str:
    """A process's name for the tables: from `names`, else its worker `--role`, else its pid."""
    if pid in names:
        return names[pid]
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().decode(errors="replace").split("\0")
    except OSError:
        return f"pid {pid}"
    return argv[argv.index("--role") + 1] if "--role" in argv[:-1] else f"pid {pid}"


def rss_by_role(skip: set[int]) -> dict[str, int]:
    """RSS (bytes) of each worker process below this one, by its `--role`."""
    out: dict[str, int] = {}
    for pid in descendants(os.getpid()):
        if pid not in skip:
            role = name_of(pid, {})
            out[role] = out.get(role, 0) + rss_kb(pid) * 1024
    return out


def cpu_by_process(names: dict[int, str], seconds: float) -> dict[str, float]:
    """% of one core used over `seconds` by every process below this one (and this one), by name."""
    pids = descendants(os.getpid())
    c0, t0 = {p: cpu_seconds(p) for p in pids}, time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - t0
    out: dict[str, float] = {}
    for pid in pids:
        name = name_of(pid, names)
        out[name] = out.get(name, 0.0) + round(100 * (cpu_seconds(pid) - c0[pid]) / elapsed, 2)
    return out


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--agents", type=int, default=10_000)
    p.add_argument("--speed", type=float, default=24.0)
    p.add_argument("--minutes", type=float, default=60.0)
    p.add_argument("--window-s", type=float, default=60.0, help="CPU measuring window at the start and the end")
    p.add_argument("--parallel", type=int, default=16)
    p.add_argument("--shards", type=int, default=64)
    p.add_argument("--idle-hours", type=float, default=0.0,
                   help="move the clock this far right after onboarding: agents idle that long already "
                        "(their ledgers last changed at onboarding)")
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
            skip = {os.getpid(), sandbox.pid, redis_proc.pid}
            names = {os.getpid(): "supervisor+scheduler", sandbox.pid: "sandbox", redis_proc.pid: "redis-server"}
            rss_empty = workers_rss(skip)
            roles_empty = rss_by_role(skip)
            t = time.perf_counter()
            agents = [(f"s{i}", parse_usd("100")) for i in range(args.agents)]
            report = onboard_many(client, keys, venues, "paper", agents, parallel=args.parallel)
            onboard_s = time.perf_counter() - t
            if report.failed:
                print(f"{len(report.failed)} agents failed to onboard, e.g. {next(iter(report.failed.items()))}",
                      file=sys.stderr)
            n = len(report.done)
            ticking = threading.Event()

            clock.advance(int(args.idle_hours * 3_600_000))

            def run_clock() -> None:  # the clock key moves only when written: `--speed` ms per real ms
                last = time.monotonic()
                while not ticking.wait(0.2):
                    now = time.monotonic()
                    clock.advance(int((now - last) * 1000 * args.speed))
                    last = now

            threading.Thread(target=run_clock, daemon=True).start()
            mem_start = (prefix_memory(client, keys.prefix)[0] - empty) // max(n, 1)
            kinds_start = memory_by_kind(client, keys.prefix)
            cpu_start_by = cpu_by_process(names, args.window_s)
            cpu_start = round(sum(cpu_start_by.values()), 2)
            rss_start = workers_rss(skip)
            sim_start = clock.now_ms()
            time.sleep(max(0.0, args.minutes * 60 - 2 * args.window_s))
            cpu_end_by = cpu_by_process(names, args.window_s)
            cpu_end = round(sum(cpu_end_by.values()), 2)
            sim_hours = (clock.now_ms() - sim_start) / 3_600_000
            mem_end = (prefix_memory(client, keys.prefix)[0] - empty) // max(n, 1)
            rss_end = workers_rss(skip)
            roles_end = rss_by_role(skip)
            kinds_end = memory_by_kind(client, keys.prefix)
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
          f"idle {args.idle_hours:g} h before; clock x{args.speed:g}: {sim_hours:.1f} simulated hours "
          f"in {args.minutes:g} min; "
          f"{processed} messages handled, {dead} dead-lettered")
    before = {k: kinds_start.get(k, (0, 0))[0] // max(n, 1) for k in kinds_end}
    after = {k: size // max(n, 1) for k, (size, _) in kinds_end.items()}
    grew = sorted(kinds_end, key=lambda k: before[k] - after[k])[:5]
    print("grew most (bytes per agent, start -> end): "
          + ", ".join(f"{k} {before[k]} -> {after[k]}" for k in grew if after[k] > before[k]))
    print("CPU % at the end by process: " + ", ".join(f"{k} {v:.2f}" for k, v in sorted(cpu_end_by.items())))
    per = {when: (rss - rss_empty) // max(n, 1) for when, rss in (("start", rss_start), ("end", rss_end))}
    print(f"workers' RSS with no agent {rss_empty / 2**20:.0f} MiB; at the end {rss_end / 2**20:.0f} MiB; "
          "bytes per agent by role at the end: " + ", ".join(
              f"{role} {(rss - roles_empty.get(role, 0)) // max(n, 1)}" for role, rss in sorted(roles_end.items())))
    print(f"{'':<8}{'Redis bytes/agent':>20}{'CPU % (all processes)':>24}{'worker RSS bytes/agent':>25}")
    print(f"{'start':<8}{mem_start:>20}{cpu_start:>24}{per['start']:>25}")
    print(f"{'end':<8}{mem_end:>20}{cpu_end:>24}{per['end']:>25}")
    print(json.dumps({"bench": "soak", "agents": n, "speed": args.speed, "idle_hours": args.idle_hours,
                      "simulated_hours": round(sim_hours, 2),
                      "bytes_per_agent_start": mem_start, "bytes_per_agent_end": mem_end, "cpu_pct_start": cpu_start,
                      "cpu_pct_end": cpu_end,
                      "cpu_pct_end_without_sandbox": round(cpu_end - cpu_end_by.get("sandbox", 0.0), 2),
                      "messages": processed, "dead_lettered": dead,
                      "onboard_per_s": round(n / onboard_s, 1), "workers_rss_empty": rss_empty,
                      "worker_rss_bytes_per_agent_start": per["start"], "worker_rss_bytes_per_agent_end": per["end"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
