"""An idle deployment idles: Redis memory per idle agent over accelerated days, and idle CPU.

    python bench/bench_idle.py [--agents 20] [--days 3] [--cpu-seconds 20] [--baseline-code DIR]

Part 1, memory: agents onboarded on the sandbox, then every role's actor fed by its bus in this
process while a manual clock runs the scheduler's ticks for `--days` days (15 s steps). Prints
Redis memory per agent (MEMORY USAGE of every key of the deployment) after onboarding (day 0,
the baseline of this run) and at the end of each day; the goal is <= 20 KB, flat.
Part 2, CPU: a supervisor with one worker per role and no agents, idle for `--cpu-seconds`;
CPU of the supervisor, its workers and redis-server, in % of one core (goal < 2 %), and Redis
commands/s by kind (INFO commandstats over the idle window; usec: the server's time in them).
With `--baseline-code DIR` (a checkout of an earlier version, e.g. main), both parts run again
with that code in a child process, and its figures are printed beside these: the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))


def _setup_path(code: str) -> None:
    sys.path.insert(0, code)
    sys.path.insert(0, HERE)


def memory_run(url: str, agents: int, days: int, step_ms: int) -> dict:
    import redis
    from common import prefix_memory

    from actors.onboarding import onboard_agent
    from messages.envelope import seeded_ids
    from runtime.atomic import AtomicSteps
    from runtime.bus import StreamBus
    from runtime.clock import ManualClock
    from runtime.keys import Keys
    from sandbox.runner import start_sandbox
    from supervisor.roles import available_roles, build_actor
    from supervisor.scheduler import Scheduler

    client = redis.Redis.from_url(url)
    keys = Keys(f"idle{uuid.uuid4().hex[:6]}", 16)
    clock = ManualClock()
    steps = AtomicSteps(client, keys)
    ids = seeded_ids(1)
    roles = available_roles()
    out: dict = {"agents": agents, "roles": roles, "days": []}
    with start_sandbox(seed=3) as sandbox:
        venues = dict(sandbox.urls)
        actors = {r: build_actor(r, steps, clock, seeded_ids(7), venues) for r in roles}
        buses = {r: StreamBus(url, keys, r, range(keys.shards), (lambda d, a=actors[r]: a.ask(d, timeout=120)),
                              block_ms=1) for r in roles}
        for bus in buses.values():
            bus.ensure_groups()
            bus.block_ms = None  # no BLOCK: the server's timer would round a 1 ms block up to 100 ms
        empty, _ = prefix_memory(client, keys.prefix)  # the deployment with no agent: streams and groups
        out["empty_deployment_bytes"] = empty
        t0 = time.perf_counter()
        names = [f"idle-{i}" for i in range(agents)]
        for name in names:
            onboard_agent(steps, name, 1_000_000_000, venues=venues, now_ms=clock.now_ms(), new_id=ids)
            client.sadd(keys.agents(), name)
        out["onboard_s"] = round(time.perf_counter() - t0, 2)
        sched = Scheduler(client, keys, clock, roles)

        def drain() -> int:
            n = 0
            while True:
                got = sum(bus.poll_once() for bus in buses.values())
                n += got
                if not got:
                    break
            for bus in buses.values():
                trim = getattr(bus, "trim_acknowledged", None)
                if trim is not None:
                    trim()
            return n

        drain()
        mem, nkeys = prefix_memory(client, keys.prefix)
        out["days"].append({"day": 0, "bytes_per_agent": (mem - empty) // agents, "keys": nkeys, "messages": 0,
                            "wall_s": 0})
        for day in range(1, days + 1):
            t = time.perf_counter()
            handled = 0
            for _ in range(24 * 3600 * 1000 // step_ms):
                clock.advance(step_ms)
                sched.run_once()
                handled += drain()
            mem, nkeys = prefix_memory(client, keys.prefix)
            out["days"].append({"day": day, "bytes_per_agent": (mem - empty) // agents, "keys": nkeys,
                                "messages": handled,
                                "wall_s": round(time.perf_counter() - t, 1)})
        for a in actors.values():
            a.stop()
    return out


def cpu_run(url: str, seconds: float) -> dict:
    import redis
    from common import cpu_seconds, descendants

    from runtime.keyring import generate_key
    from runtime.keys import Keys
    from supervisor.roles import available_roles
    from supervisor.supervise import Supervisor, SupervisorConfig

    client = redis.Redis.from_url(url)
    keys = Keys(f"cpu{uuid.uuid4().hex[:6]}", 64)
    key = generate_key("bench", "operator")
    roles = available_roles()
    venues = {r: "http://127.0.0.1:9" for r in ("casino", "escrow", "faucet", "trading", "wallet")}
    sup = Supervisor(url, keys, roles, venues, env={"TREASURY_KEYS": key.env_entry()}, config=SupervisorConfig())
    import threading

    stop = threading.Event()
    thread = threading.Thread(target=sup.run, args=(stop,), daemon=True)
    thread.start()
    # every worker started and beating (the supervisor starts them one after the other, each in a
    # second or more on a loaded machine: a fixed wait counted late starters' start-up, or missed
    # them), then a few seconds for groups, control positions and leases to settle
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        beats = client.hgetall(keys.workers())
        if all(slot.process is not None and slot.consumer.encode() in beats for slot in sup.slots):
            break
        time.sleep(0.2)
    time.sleep(5)
    redis_pid = int(client.info("server")["process_id"])
    # own_redis's server is a child of this process too: counted once
    pids = sorted(set(descendants(os.getpid())) | {redis_pid})
    client.config_resetstat()  # commandstats over the idle window only (it zeroes the command count too)
    cmds0 = client.info("stats")["total_commands_processed"]
    per0 = {p: cpu_seconds(p) for p in pids}
    c0, w0 = sum(per0.values()), time.monotonic()
    time.sleep(seconds)
    per1 = {p: cpu_seconds(p) for p in pids}
    c1, w1 = sum(per1.values()), time.monotonic()

    def name(pid: int) -> str:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            return "?"
        text = [a.decode(errors="replace") for a in args]
        if "--role" in text:
            return "worker " + text[text.index("--role") + 1]
        if pid == redis_pid:
            return "redis-server"
        return "supervisor (bench process)" if pid == os.getpid() else os.path.basename(text[0])

    by_process = {}
    for pid in pids:
        key = name(pid)
        by_process[key] = round(by_process.get(key, 0) + 100 * (per1[pid] - per0[pid]) / (w1 - w0), 2)
    cmds1 = client.info("stats")["total_commands_processed"]
    by_command = {name.removeprefix("cmdstat_"): {"per_s": round(stat["calls"] / (w1 - w0), 2),
                                                   "usec_per_s": round(stat["usec"] / (w1 - w0))}
                  for name, stat in client.info("commandstats").items() if name != "cmdstat_config|resetstat"}
    redis_cpu = cpu_seconds(redis_pid)
    stop.set()
    thread.join(60)
    return {"workers": len(roles), "cpu_pct": round(100 * (c1 - c0) / (w1 - w0), 2),
            "redis_cmds_per_s": round((cmds1 - cmds0) / (w1 - w0), 1), "redis_cpu_s_total": redis_cpu,
            "cpu_pct_by_process": by_process, "redis_commands": by_command}


def child(args) -> dict:
    from common import own_redis

    result = {}
    with own_redis() as (url, _):
        result["memory"] = memory_run(url, args.agents, args.days, args.step_ms)
    with own_redis() as (url, _):
        result["cpu"] = cpu_run(url, args.cpu_seconds)
    return result


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--agents", type=int, default=20)
    p.add_argument("--days", type=int, default=3)
    p.add_argument("--step-ms", type=int, default=15_000)
    p.add_argument("--cpu-seconds", type=float, default=20)
    p.add_argument("--baseline-code", default=None, help="a checkout of an earlier version to measure beside this")
    p.add_argument("--baseline-days", type=int, default=1)
    p.add_argument("--code", default=os.path.dirname(HERE))
    p.add_argument("--child", action="store_true")
    args = p.parse_args()
    _setup_path(args.code)
    if args.child:
        print(json.dumps(child(args)))
        return 0
    from common import machine

    runs = {"this": child(args)}
    if args.baseline_code:
        cmd = [sys.executable, os.path.abspath(__file__), "--child", "--code", os.path.abspath(args.baseline_code),
               "--agents", str(args.agents), "--days", str(args.baseline_days), "--step-ms", str(args.step_ms),
               "--cpu-seconds", str(args.cpu_seconds)]
        env = {**os.environ, "PYTHONPATH": os.path.abspath(args.baseline_code)}
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=os.path.abspath(args.baseline_code))
        if out.returncode != 0:
            print(out.stderr[-3000:], file=sys.stderr)
            return 1
        runs["baseline"] = json.loads(out.stdout.strip().splitlines()[-1])
    print(machine())
    print(f"{'code':<10}{'day':>5}{'bytes/agent':>14}{'keys':>8}{'messages':>10}{'wall s':>8}")
    for name, run in runs.items():
        for d in run["memory"]["days"]:
            print(f"{name:<10}{d['day']:>5}{d['bytes_per_agent']:>14}{d['keys']:>8}{d['messages']:>10}{d['wall_s']:>8}")
    print(f"{'code':<10}{'idle CPU % (0 agents)':>24}{'Redis cmds/s':>14}")
    for name, run in runs.items():
        print(f"{name:<10}{run['cpu']['cpu_pct']:>24}{run['cpu']['redis_cmds_per_s']:>14}")
    for name, run in runs.items():
        print(f"{name:<10}CPU % by process: " + ", ".join(f"{k} {v}" for k, v in
                                                        sorted(run["cpu"]["cpu_pct_by_process"].items())))
    for name, run in runs.items():
        commands = sorted(run["cpu"].get("redis_commands", {}).items(), key=lambda kv: -kv[1]["per_s"])
        if commands:
            print(f"{name:<10}Redis commands/s (server usec/s): " + ", ".join(
                f"{k} {v['per_s']} ({v['usec_per_s']})" for k, v in commands))
    summary = {"bench": "idle", "agents": args.agents}
    for name, run in runs.items():
        days = run["memory"]["days"]
        summary[name] = {"bytes_per_agent_day0": days[0]["bytes_per_agent"],
                         "bytes_per_agent_last": days[-1]["bytes_per_agent"],
                         "growth_per_agent_last_day": days[-1]["bytes_per_agent"] - days[-2]["bytes_per_agent"],
                         "idle_cpu_pct_0_agents": run["cpu"]["cpu_pct"],
                         "redis_cmds_per_s_0_agents": run["cpu"]["redis_cmds_per_s"]}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
