"""Bet commands per second through the full path, against bare redis-py on the same Redis.

    python bench/bench_bets.py [--bets 4000] [--agents 16] [--batch 64] [--runs 3]

Full path: signed PlaceBet commands on the casino command streams -> bus (XREADGROUP) -> command
gate (signatures; the batch's nonces claimed together) -> casino actors (as the worker runs them:
`ACTORS_PER_ROLE`, a batch handed over in waves of different agents; `--actors` to change) ->
fence (reserve.lua) -> an instant in-process venue -> settle (commit.lua: ledger, journal,
RiskGuard poke, ack). Baseline, same run, same
Redis, same payloads: bare redis-py XREADGROUP, then per entry XACK and XADD of the payload to an
events stream. Both start from a pre-filled stream; medians of `--runs`.
Also: the first bet of an agent against later bets over real HTTP (the sandbox casino), with the
shared connection pool (venue/client/pool.py).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import redis  # noqa: E402
from common import machine, own_redis  # noqa: E402

from actors.bootstrap import open_treasury  # noqa: E402
from actors.casino import CasinoBucket  # noqa: E402
from actors.pool import ActorPool  # noqa: E402
from messages.codec import FIELD, encode  # noqa: E402
from messages.envelope import seeded_ids, wrap  # noqa: E402
from messages.schema import Multiplier, PlaceBet  # noqa: E402
from runtime.atomic import AtomicSteps, reserved_at_many  # noqa: E402
from runtime.bus import StreamBus, command_client  # noqa: E402
from runtime.clock import SystemClock  # noqa: E402
from runtime.command_gate import CommandGate  # noqa: E402
from runtime.keyring import Keyring, generate_key  # noqa: E402
from runtime.keys import Keys  # noqa: E402
from runtime.nonces import RedisNonceStore  # noqa: E402
from runtime.signing import sign  # noqa: E402
from supervisor.worker import ACTORS_PER_ROLE  # noqa: E402
from venue.client.types import BetResult  # noqa: E402

BET = PlaceBet(game=Multiplier(target=2.0), win_prob=0.6, kelly="quarter")


class InstantCasino:
    """An in-process venue: every bet answered at once, alternately won and lost."""

    def __init__(self):
        self.n = 0

    def place_bet_once(self, game, amount, params, *, client_seed, idempotency_key, attempts=3, since_ms=None):
        self.n += 1
        won = self.n % 2 == 0
        return BetResult(bet_id=f"b{self.n}", game=game, amount_bet=amount, amount_won=amount * 2 if won else 0,
                         won=won, payout_multiplier="2", roll="1.00", new_balance=0, client_seed=client_seed)

    def find_bet(self, client_seed):
        return None

    def max_stake(self, game, params):
        return None  # no venue-side Kelly limit: the treasury's own cap applies

    def ledger(self):
        return []  # nothing paid in from elsewhere (the settle commit asks for a ScanIncoming now and then)


def payloads(keys: Keys, agents: list[str], n: int, key) -> list[tuple[str, bytes]]:
    ids = seeded_ids(5)
    now = SystemClock().now_ms()
    out = []
    for i in range(n):
        agent = agents[i % len(agents)]
        env = sign(wrap(BET, agent=agent, now_ms=now, new_id=ids), key, now_ms=now, ttl_ms=300_000)
        out.append((keys.agent_commands(agent, "casino"), encode(env)))
    return out


def fill(client, items) -> None:
    pipe = client.pipeline(transaction=False)
    for i, (stream, data) in enumerate(items):
        pipe.xadd(stream, {FIELD: data})
        if i % 1000 == 999:
            pipe.execute()
    pipe.execute()


def redis_cpu_s(client) -> float:
    """The server's own CPU so far (user + system, every thread), in seconds."""
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


class CpuMeter:
    """CPU spent by this process (every thread) and by the Redis server between `start` and
    `stop`, in microseconds per item: a cost that other jobs on the machine do not change."""

    def __init__(self, client):
        self.client = client

    def start(self) -> None:
        self.own, self.server = time.process_time(), redis_cpu_s(self.client)

    def stop(self, n: int) -> tuple[float, float]:
        own, server = time.process_time() - self.own, redis_cpu_s(self.client) - self.server
        return own / n * 1e6, server / n * 1e6


def bare(url: str, n: int, agents: int, batch: int, key) -> tuple[float, tuple[float, float]]:
    client = redis.Redis.from_url(url)
    meter = CpuMeter(client)
    keys = Keys(f"bare{uuid.uuid4().hex[:6]}", 4)
    names = [f"a{i}" for i in range(agents)]
    items = payloads(keys, names, n, key)
    streams = sorted({s for s, _ in items})
    for s in streams:
        client.xgroup_create(s, "g", id="0", mkstream=True)
    fill(client, items)
    meter.start()
    t0 = time.perf_counter()
    done = 0
    while done < n:
        reply = client.xreadgroup("g", "c", {s: ">" for s in streams}, count=batch)
        for stream, entries in reply:
            for entry_id, fields in entries:
                client.xack(stream, "g", entry_id)
                client.xadd(stream.decode().replace(":cmd:", ":events:"), {FIELD: fields[FIELD]})
                done += 1
    rate = n / (time.perf_counter() - t0)
    return rate, meter.stop(n)


def full(url: str, n: int, agents: int, batch: int, key, actors: int | None = None,
         wave: bool = True) -> tuple[float, tuple[float, float]]:
    client = command_client(url)  # as the worker makes it (supervisor/worker.py)
    keys = Keys(f"full{uuid.uuid4().hex[:6]}", 4)
    steps = AtomicSteps(client, keys)
    clock = SystemClock()
    names = [f"a{i}" for i in range(agents)]
    ids = seeded_ids(6)
    for name in names:
        open_treasury(steps, name, 10**12, now_ms=clock.now_ms(), new_id=ids)
    venue = InstantCasino()
    # as the worker runs the casino role (supervisor/worker.py): a pool of actors, waves across agents
    pool = ActorPool.start(lambda: CasinoBucket.start(steps, clock, ids, lambda agent: venue),
                           ACTORS_PER_ROLE["casino"] if actors is None else actors)
    gate = CommandGate(Keyring([key]), RedisNonceStore(client, keys.prefix, shards=keys.shards), clock,
                       accepted_at_many=lambda envs: reserved_at_many(client, keys, envs))
    bus = StreamBus(url, keys, "casino", range(keys.shards), pool.ask, batch=batch, gate=gate, block_ms=10,
                    submit_wave=pool.submit_wave if wave else None)
    bus.ensure_groups()
    fill(client, payloads(keys, names, n, key))
    meter = CpuMeter(client)
    meter.start()
    t0 = time.perf_counter()
    idle = 0
    while bus.processed + bus.dead_lettered < n:
        idle = 0 if bus.poll_once() else idle + 1
        if idle > 100:  # a second with nothing new: the handler is failing (retries wait for the run loop)
            raise SystemExit(f"only {bus.processed} of {n} bets handled: the full path is broken")
    rate = n / (time.perf_counter() - t0)
    cpu = meter.stop(n)
    pool.stop()
    if bus.dead_lettered:
        raise SystemExit(f"{bus.dead_lettered} bets dead-lettered: the full path is broken")
    return rate, cpu


def first_bet(url: str, bets: int = 10) -> dict:
    """Over real HTTP to the sandbox: an agent's first bet against its later ones (ms)."""
    from actors.casino import casino_client_factory
    from sandbox.runner import start_sandbox
    from supervisor.paper import open_paper_casino_agent

    client = redis.Redis.from_url(url)
    keys = Keys(f"http{uuid.uuid4().hex[:6]}", 4)
    steps = AtomicSteps(client, keys)
    clock = SystemClock()
    ids = seeded_ids(8)
    firsts, laters = [], []
    with start_sandbox(seed=4) as sandbox:
        base = sandbox.urls["casino"]
        warm = "warm-up"
        open_paper_casino_agent(steps, warm, 10**10, base, now_ms=clock.now_ms(), new_id=ids)
        casino_for = casino_client_factory(client, keys, base)
        actor = CasinoBucket.start(steps, clock, ids, casino_for)

        def bet(agent):
            env = wrap(BET, agent=agent, now_ms=clock.now_ms(), new_id=ids)
            from runtime.bus import Delivery

            stream = keys.agent_commands(agent, "casino")
            t = time.perf_counter()
            actor.ask(Delivery(stream, "g:casino", "0-1", env, 1))
            return (time.perf_counter() - t) * 1000

        bet(warm)
        for i in range(bets):
            agent = f"h{i}"
            open_paper_casino_agent(steps, agent, 10**10, base, now_ms=clock.now_ms(), new_id=ids)
            firsts.append(bet(agent))
            laters.extend(bet(agent) for _ in range(3))
        actor.stop()
    return {"first_ms": round(statistics.median(firsts), 2), "later_ms": round(statistics.median(laters), 2)}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--bets", type=int, default=4000)
    p.add_argument("--agents", type=int, default=16)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--actors", type=int, default=None,
                   help="casino actors side by side (default: as the worker, supervisor/worker.py ACTORS_PER_ROLE)")
    args = p.parse_args()
    key = generate_key("bench", "operator")
    with own_redis() as (url, _):
        client = redis.Redis.from_url(url)
        version = client.info("server")["redis_version"]
        bare_runs, full_runs = [], []
        for _ in range(args.runs):
            bare_runs.append(bare(url, args.bets, args.agents, args.batch, key))
            full_runs.append(full(url, args.bets, args.agents, args.batch, key, args.actors))
        http = first_bet(url)
    b, f = statistics.median(r for r, _ in bare_runs), statistics.median(r for r, _ in full_runs)
    b_own, b_server = (statistics.median(c[i] for _, c in bare_runs) for i in (0, 1))
    f_own, f_server = (statistics.median(c[i] for _, c in full_runs) for i in (0, 1))
    b_cpu, f_cpu = b_own + b_server, f_own + f_server
    print(machine())
    print(f"Redis {version}; {args.bets} bets over {args.agents} agents, batch {args.batch}, median of {args.runs}")
    print(f"{'path':<48}{'per s':>10}{'CPU µs/bet: client':>20}{'server':>8}{'both':>8}")
    print(f"{'baseline: bare XREADGROUP -> XACK -> XADD':<48}{b:>10.0f}{b_own:>20.0f}{b_server:>8.0f}{b_cpu:>8.0f}")
    print(f"{'full: gate -> bus -> casino -> fence -> settle':<48}{f:>10.0f}{f_own:>20.0f}{f_server:>8.0f}"
          f"{f_cpu:>8.0f}")
    print(f"{'ratio full / baseline':<48}{f / b:>10.2f}{'(CPU: baseline / full)':>28}{b_cpu / f_cpu:>8.2f}")
    print(f"first bet of an agent {http['first_ms']} ms, later bets {http['later_ms']} ms "
          f"(ratio {http['first_ms'] / http['later_ms']:.2f})")
    print(json.dumps({"bench": "bets", "bets": args.bets, "agents": args.agents, "baseline_per_s": round(b),
                      "full_per_s": round(f), "ratio": round(f / b, 3),
                      "baseline_cpu_us": round(b_cpu), "full_cpu_us": round(f_cpu),
                      "full_client_cpu_us": round(f_own), "full_server_cpu_us": round(f_server),
                      "cpu_ratio": round(b_cpu / f_cpu, 3), **http,
                      "first_over_later": round(http["first_ms"] / http["later_ms"], 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
