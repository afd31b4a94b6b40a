"""Bets per second against worker processes and Redis Cluster nodes (the scaling curve).

    python bench/bench_cluster.py [--bets 3000] [--agents 64] [--shards 16] [--workers 1,2,4]
                                  [--nodes 1,3] [--runs 1]

The workload of bench_bets.py's full path (signed PlaceBet -> bus -> gate -> casino actor ->
fence -> an instant in-process venue -> settle), served by `--workers` worker processes that
share the shards by lease (runtime/leases.py), against: a plain redis-server (the baseline, same
run), and a Redis Cluster of `--nodes` masters on loopback started here from the same
redis-server binary (`supervisor.embedded_cluster`). The command streams are filled first; the
clock runs from the moment the workers, each holding its fair share of leases, are told to go,
until every bet is settled. Medians of `--runs`.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import threading
import time
import uuid
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from bench_bets import InstantCasino, fill, payloads  # noqa: E402
from common import cpu_seconds, machine, own_redis, redis_server_binary  # noqa: E402

from actors.bootstrap import open_treasury  # noqa: E402
from messages.envelope import seeded_ids  # noqa: E402
from runtime.atomic import AtomicSteps  # noqa: E402
from runtime.clock import SystemClock  # noqa: E402
from runtime.keyring import SigningKey, generate_key  # noqa: E402
from runtime.keys import Keys  # noqa: E402
from runtime.leases import lease_holders  # noqa: E402
from runtime.redis_client import is_cluster, make_client  # noqa: E402
from supervisor.embedded_cluster import LocalCluster  # noqa: E402

LEASE_MS = 5_000


class Venue(InstantCasino):
    """bench_bets' instant casino, with what the casino actor asks of a venue today."""

    def max_stake(self, game: Any, params: Any) -> None:
        return None

    def place_bet_once(self, game, amount, params, *, client_seed, idempotency_key, attempts=3, since_ms=None):
        return super().place_bet_once(game, amount, params, client_seed=client_seed, idempotency_key=idempotency_key)


def worker_main(url: str, prefix: str, shards: int, key: SigningKey, name: str, go: Any, stop: Any,
                progress: Any, index: int) -> None:
    """One worker process: leases its fair share, waits for `go`, serves until `stop`."""
    from actors.casino import CasinoBucket
    from runtime.bus import StreamBus, command_client
    from runtime.command_gate import CommandGate
    from runtime.keyring import Keyring
    from runtime.leases import ShardLeases
    from runtime.nonces import RedisNonceStore

    keys = Keys(prefix, shards)
    client = command_client(url)
    clock = SystemClock()
    venue = Venue()
    actor = CasinoBucket.start(AtomicSteps(client, keys), clock, seeded_ids(100 + index), lambda agent: venue)
    gate = CommandGate(Keyring([key]), RedisNonceStore(client, prefix, shards=shards), clock)
    bus = StreamBus(url, keys, "casino", [], lambda d: actor.ask(d), consumer=name, gate=gate, block_ms=100)
    leases = ShardLeases(client, prefix, "casino", shards, name, LEASE_MS)
    while not go.is_set():
        leases.refresh()
        go.wait(0.1)
    bus.streams = {keys.commands(s, "casino"): s for s in sorted(leases.owned)}
    halt = threading.Event()

    def heartbeat() -> None:
        beats = 0
        while not halt.wait(0.05):
            progress[index] = bus.processed + bus.dead_lettered
            beats += 1
            if beats % 10 == 0:  # every 0.5 s
                gained, lost = leases.refresh()
                if gained or lost:
                    bus.request_shards(leases.owned)

    beat = threading.Thread(target=heartbeat, daemon=True)
    beat.start()
    watcher = threading.Thread(target=lambda: (stop.wait(), halt.set()), daemon=True)
    watcher.start()
    bus.run(halt)
    progress[index] = bus.processed + bus.dead_lettered
    actor.stop()
    leases.release_all()
    bus.close()


def run_once(url: str, workers: int, bets: int, agents: int, shards: int, key: SigningKey,
             server_pids: list[int]) -> tuple[float, float]:
    """(bets per second, CPU use in % of the machine's cores by the workers and the Redis servers)
    of `workers` processes on a fresh prefix of `url`."""
    ctx = mp.get_context("spawn")
    prefix = f"cl{uuid.uuid4().hex[:6]}"
    keys = Keys(prefix, shards)
    client = make_client(url)
    steps = AtomicSteps(client, keys)
    ids = seeded_ids(7)
    names = [f"a{i}" for i in range(agents)]
    for name in names:
        open_treasury(steps, name, 10**12, now_ms=SystemClock().now_ms(), new_id=ids)
    for s in range(shards):
        client.xgroup_create(keys.commands(s, "casino"), "g:casino", id="0", mkstream=True)
    fill(client, payloads(keys, names, bets, key))
    go, stop = ctx.Event(), ctx.Event()
    progress = ctx.Array("q", workers)
    procs = [ctx.Process(target=worker_main, args=(url, prefix, shards, key, f"w{i}", go, stop, progress, i))
             for i in range(workers)]
    for p in procs:
        p.start()
    fair = -(-shards // workers)
    deadline = time.monotonic() + 60
    while True:  # every worker holds its fair share before the clock starts
        held = lease_holders(client, prefix, "casino")
        counts = [list(held.values()).count(f"w{i}") for i in range(workers)]
        if len(held) == shards and max(counts) <= fair and min(counts) >= shards // workers:
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"leases never settled: {counts}")
        time.sleep(0.05)
    pids = server_pids + [p.pid for p in procs if p.pid is not None]
    cpu0 = sum(cpu_seconds(pid) for pid in pids)
    t0 = time.perf_counter()
    go.set()
    while sum(progress[:]) < bets:
        if time.perf_counter() - t0 > 600 or not all(p.is_alive() for p in procs):
            stop.set()
            raise SystemExit(f"workers stopped at {sum(progress[:])} of {bets} bets")
        time.sleep(0.01)
    elapsed = time.perf_counter() - t0
    cpu = (sum(cpu_seconds(pid) for pid in pids) - cpu0) / elapsed / (os.cpu_count() or 1) * 100
    rate = bets / elapsed
    stop.set()
    for p in procs:
        p.join(30)
    dead = sum(int(client.xlen(keys.dead(s))) for s in range(shards))
    if dead:
        raise SystemExit(f"{dead} bets dead-lettered: the path is broken")
    client.close()
    return rate, cpu


def idle_cost(url: str, shards: int, seconds: float = 2.0) -> float:
    """Commands per second the Redis server(s) run for one bus with nothing to read (its reads only)."""
    from runtime.bus import StreamBus

    keys = Keys(f"idle{uuid.uuid4().hex[:6]}", shards)
    client = make_client(url)
    bus = StreamBus(url, keys, "casino", range(shards), lambda d: None, block_ms=1000)
    bus.ensure_groups()
    bus.poll_once(wait=False)

    def served() -> int:
        nodes = [client.get_redis_connection(n) for n in client.get_primaries()] if is_cluster(client) else [client]
        return sum(int(node.info("stats")["total_commands_processed"]) for node in nodes)

    before, t0 = served(), time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        bus.poll_once()
    rate = (served() - before - 1) / (time.perf_counter() - t0)
    bus.close()
    client.close()
    return rate


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bets", type=int, default=3000)
    p.add_argument("--agents", type=int, default=64)
    p.add_argument("--shards", type=int, default=16)
    p.add_argument("--workers", default="1,2,4", help="worker process counts, comma-separated")
    p.add_argument("--nodes", default="1,3", help="cluster node counts, comma-separated")
    p.add_argument("--runs", type=int, default=1)
    args = p.parse_args()
    try:
        workers = [int(w) for w in args.workers.split(",")]
        nodes = [int(n) for n in args.nodes.split(",")]
    except ValueError:
        print("bench_cluster: --workers and --nodes are comma-separated integers", file=sys.stderr)
        return 2
    if min(workers + nodes) < 1 or args.bets < 1 or args.agents < 1 or args.shards < 1:
        print("bench_cluster: every count must be at least 1", file=sys.stderr)
        return 2
    key = generate_key("bench", "operator")
    rows: list[dict[str, Any]] = []

    idle: dict[str, float] = {}

    def measure(label: str, n_nodes: int, url: str, server_pids: list[int]) -> None:
        idle[f"{label}-{n_nodes}"] = round(idle_cost(url, args.shards), 1)
        for w in workers:
            runs = sorted(run_once(url, w, args.bets, args.agents, args.shards, key, server_pids)
                          for _ in range(args.runs))
            rate, cpu = runs[len(runs) // 2]
            rows.append({"redis": label, "nodes": n_nodes, "workers": w, "agents": args.agents,
                         "bets_per_s": round(rate), "cpu_pct": round(cpu)})
            print(f"  {label:<8}{n_nodes:>6}{w:>9}{args.agents:>8}{round(rate):>10}{round(cpu):>8}", flush=True)

    binary = redis_server_binary()
    print(machine())
    print(f"redis-server {binary}; {args.bets} bets over {args.agents} agents, {args.shards} shards, "
          f"median of {args.runs}")
    print(f"  {'redis':<8}{'nodes':>6}{'workers':>9}{'agents':>8}{'bets/s':>10}{'cpu %':>8}")
    with own_redis() as (url, proc):
        measure("plain", 1, url, [proc.pid])
    for n in nodes:
        cluster = LocalCluster(n, binary=binary)
        with cluster as url:
            measure("cluster", n, url, [p.pid for p in cluster.procs])
    base = {r["workers"]: r["bets_per_s"] for r in rows if r["redis"] == "plain"}
    for r in rows:
        r["vs_plain"] = round(r["bets_per_s"] / base[r["workers"]], 2)
    print("cpu %: workers + Redis servers during the timed window, share of all cores (the parent not counted)")
    print("idle bus, Redis commands per second: " + ", ".join(f"{k} {v}" for k, v in idle.items()))
    print(json.dumps({"bench": "cluster", "bets": args.bets, "agents": args.agents, "shards": args.shards,
                      "cores": os.cpu_count(), "rows": rows, "idle_commands_per_s": idle}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
