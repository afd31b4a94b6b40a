"""Where a bet's time goes: cProfile of the bus loop with the casino actor called in the bus thread.

    python bench/profile_bets.py [--bets 2000] [--agents 16] [--top 30] [--one-by-one] [--no-profile]

The same signed PlaceBet commands as `bench_bets.py`, through the gate, the bus and the casino
actor, but with the actor called directly (no pykka thread), so the profiler sees all of it: a
wave of different agents' bets at a time (`handle_wave`, as one actor of the pool), or each bet on
its own with `--one-by-one`. Prints wall and CPU per bet, Redis commands per bet (INFO commandstats, scripts' own
calls included), round trips per bet (socket sends), Python CPU by package, and the top functions.
On its own redis-server; no baseline (a profile, not a benchmark).
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import os
import pstats
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from bench_bets import InstantCasino, fill, payloads  # noqa: E402
from common import machine, own_redis  # noqa: E402

from actors.bootstrap import open_treasury  # noqa: E402
from actors.casino import CasinoBucket  # noqa: E402
from actors.pool import ActorPool  # noqa: E402
from messages.envelope import seeded_ids  # noqa: E402
from runtime.atomic import AtomicSteps  # noqa: E402
from runtime.bus import StreamBus, command_client  # noqa: E402
from runtime.clock import SystemClock  # noqa: E402
from runtime.command_gate import CommandGate  # noqa: E402
from runtime.keyring import Keyring, generate_key  # noqa: E402
from runtime.keys import Keys  # noqa: E402
from runtime.nonces import RedisNonceStore  # noqa: E402


class _Done:
    """A handled delivery's outcome, as the bus waits for it (`runtime.bus.SubmitWave`)."""

    def __init__(self, error):
        self.error = error

    def get(self, timeout=None):
        if self.error is not None:
            raise self.error


def group(file: str, name: str) -> str:
    if "site-packages/" in file:
        return file.split("site-packages/")[1].split("/")[0]
    if name in ("<method 'sendall' of '_socket.socket' objects>", "<method 'recv_into' of '_socket.socket' objects>"):
        return "socket (waiting for Redis)"
    root = os.path.dirname(HERE) + "/"
    if file.startswith(root):
        return file[len(root):]
    return "stdlib/builtins"


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--bets", type=int, default=2000)
    p.add_argument("--agents", type=int, default=16)
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--one-by-one", action="store_true",
                   help="each bet on its own (no waves: the bus calls the actor per entry)")
    p.add_argument("--no-profile", action="store_true", help="only wall and CPU per bet, without the profiler")
    p.add_argument("--pool", type=int, default=0,
                   help="hand the waves to a pool of this many started actors (as the worker does) instead of "
                        "calling one in this thread; implies --no-profile (the profiler sees one thread)")
    args = p.parse_args()
    args.no_profile = args.no_profile or args.pool > 0
    key = generate_key("bench", "operator")
    with own_redis() as (url, _):
        client = command_client(url)  # as the worker makes it (supervisor/worker.py)
        keys = Keys("prof", 4)
        steps = AtomicSteps(client, keys)
        clock, ids = SystemClock(), seeded_ids(6)
        names = [f"a{i}" for i in range(args.agents)]
        for name in names:
            open_treasury(steps, name, 10**12, now_ms=clock.now_ms(), new_id=ids)
        venue = InstantCasino()
        actor = CasinoBucket(steps, clock, ids, lambda agent: venue)  # not started: called in this thread
        gate = CommandGate(Keyring([key]), RedisNonceStore(client, keys.prefix, shards=keys.shards), clock)
        def submit_wave(deliveries):  # the wave handled here and now, as one actor of the pool would
            return [_Done(error) for error in actor.handle_wave(deliveries)]

        pool = None
        if args.pool:
            pool = ActorPool.start(lambda: CasinoBucket.start(steps, clock, ids, lambda agent: venue), args.pool)
            submit_wave = pool.submit_wave

        bus = StreamBus(url, keys, "casino", range(keys.shards), actor.on_receive, batch=64, gate=gate, block_ms=10,
                        submit_wave=None if args.one_by_one else submit_wave)
        bus.ensure_groups()
        fill(client, payloads(keys, names, args.bets, key))
        client.config_resetstat()
        profile = cProfile.Profile()
        t0, c0 = time.perf_counter(), time.process_time()
        if not args.no_profile:
            profile.enable()
        while bus.processed + bus.dead_lettered < args.bets:
            bus.poll_once()
        if not args.no_profile:
            profile.disable()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        stats = client.info("commandstats")
        if pool is not None:
            pool.stop()
    n = args.bets
    if args.no_profile:
        print(machine())
        print(f"{n} bets over {args.agents} agents; dead-lettered {bus.dead_lettered}; "
              + (f"a pool of {args.pool} actors" if args.pool else "one actor called in the bus thread"))
        print(f"wall {wall / n * 1e3:.3f} ms/bet, CPU {cpu / n * 1e3:.3f} ms/bet (no profiler)")
        return 0
    ps = pstats.Stats(profile)
    raw = ps.stats  # type: ignore[attr-defined]
    sends = sum(v[1] for k, v in raw.items() if k[2] == "<method 'sendall' of '_socket.socket' objects>")
    calls = sum(v[1] for v in raw.values())
    print(machine())
    print(f"{n} bets over {args.agents} agents; dead-lettered {bus.dead_lettered}")
    print(f"wall {wall / n * 1e3:.3f} ms/bet, CPU {cpu / n * 1e3:.3f} ms/bet (under the profiler)")
    print(f"round trips (socket sends) per bet {sends / n:.2f}; Python function calls per bet {calls / n:.0f}")
    print(f"Redis commands per bet {sum(v['calls'] for v in stats.values()) / n:.1f}:")
    for name, v in sorted(stats.items(), key=lambda kv: -kv[1]["calls"])[:12]:
        print(f"  {name.removeprefix('cmdstat_'):<20}{v['calls'] / n:6.2f}/bet {v['usec_per_call']:8.1f} µs")
    by = collections.Counter()
    for (file, _line, name), (_cc, _nc, tt, _ct, _callers) in raw.items():
        by[group(file, name)] += tt
    total = sum(by.values())
    print("time by package (own time, profiler on):")
    for name, t in by.most_common(15):
        print(f"  {t / total * 100:5.1f} %  {name}")
    ps.sort_stats("tottime").print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
