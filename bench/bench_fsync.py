"""What `appendfsync always` costs the money path, against the same server with no AOF and with
`everysec`, all measured in this run on private redis-servers (the embedded 6.2 build by default).

    python bench/bench_fsync.py [--n 2000] [--clients 8] [--binary PATH] [--dir DIR]

For each setting it starts its own redis-server (AOF in a temporary directory, or `--dir` to put
it on the disk you care about), then measures a bet's two Redis steps — the fence (reserve.lua)
and the settle commit (commit.lua: ledger, journal event, risk notification, XACK) — one client
at a time (latency: median and p99 per bet, µs) and with `--clients` threads at once (bets per
second; Redis batches the fsync of concurrent writes, so the cost shrinks with concurrency).
Ratios are to the no-AOF baseline of the same run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import redis  # noqa: E402

from actors.bootstrap import open_treasury  # noqa: E402
from messages.envelope import seeded_ids, wrap  # noqa: E402
from messages.schema import BalancesChanged, BetSettled  # noqa: E402
from runtime.atomic import AtomicSteps  # noqa: E402
from runtime.keys import Keys  # noqa: E402
from supervisor.embedded_redis import EmbeddedRedis  # noqa: E402

SETTINGS = [("no AOF (baseline)", False, "everysec"), ("AOF everysec", True, "everysec"),
            ("AOF always (default)", True, "always")]


class BetPath:
    """One agent's fence + settle, on its own keys, so threads do not contend on one hash."""

    def __init__(self, client: redis.Redis, keys: Keys, agent: str):
        self.client, self.keys, self.agent = client, keys, agent
        self.steps = AtomicSteps(client, keys)
        self.ids = seeded_ids(1, agent)
        open_treasury(self.steps, agent, 10**13, now_ms=0, new_id=self.ids, buckets={"casino": 10**13})
        self.stream = keys.agent_commands(agent, "casino")
        client.xgroup_create(self.stream, "g:casino", id="0", mkstream=True)

    def prepare(self, n: int) -> None:
        for _ in range(n):
            self.client.xadd(self.stream, {"m": b"x"})
        reply = self.client.xreadgroup("g:casino", "bench", {self.stream: ">"}, count=n)
        self.entry_ids = [e[0].decode() for e in reply[0][1]]

    def bet(self, i: int) -> None:
        k, agent, msg = self.keys, self.agent, f"{self.agent}-{i}"
        self.steps.reserve(agent, msg, "casino", 10_000, 10**12, i)
        cause = wrap(BalancesChanged(cause="bench"), agent=agent, now_ms=i, new_id=self.ids)
        c = self.steps.new_commit(agent)
        c.incr(k.ledger(agent), "casino:reserved", -10_000).incr(k.ledger(agent), "casino", 19_900)
        c.hdel(k.reservations(agent), msg)
        c.emit(k.events(agent), wrap(BetSettled(bet_id=f"b{i}", game="coin_flip", stake=10_000, payout=19_900,
                                                pnl=9_900, won=True, roll="12.34", bucket_after=1),
                                     agent=agent, now_ms=i, new_id=self.ids, cause=cause))
        c.emit(k.agent_commands(agent, "risk"), cause)
        c.ack(self.stream, "g:casino", self.entry_ids[i])
        self.steps.commit(c, msg, i)


def measure(url: str, n: int, clients: int) -> tuple[list[float], float]:
    keys = Keys("bench", 64)
    single = BetPath(redis.Redis.from_url(url), keys, "solo")
    single.prepare(n)
    samples = []
    for i in range(n):
        t0 = time.perf_counter_ns()
        single.bet(i)
        samples.append((time.perf_counter_ns() - t0) / 1000)
    paths = [BetPath(redis.Redis.from_url(url), keys, f"agent{c}") for c in range(clients)]
    per = max(1, n // clients)
    for p in paths:
        p.prepare(per)
    threads = [threading.Thread(target=lambda p=p: [p.bet(i) for i in range(per)]) for p in paths]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return samples, per * clients / (time.perf_counter() - t0)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--binary", default=None, help="redis-server to run (default: the embedded build)")
    p.add_argument("--dir", default=None, help="where the AOF goes (default: a temporary directory)")
    args = p.parse_args()
    rows = []
    for name, aof, fsync in SETTINGS:
        with tempfile.TemporaryDirectory(dir=args.dir) as d:
            server = EmbeddedRedis(data_dir=d, appendonly=aof, appendfsync=fsync, binary=args.binary)
            url = server.start()
            try:
                version = redis.Redis.from_url(url).info("server")["redis_version"]
                samples, rate = measure(url, args.n, args.clients)
            finally:
                server.stop()
        samples.sort()
        rows.append((name, statistics.median(samples), samples[int(len(samples) * 0.99) - 1], rate))
    base_median, base_rate = rows[0][1], rows[0][3]
    print(f"redis-server {version}; one bet = fence + settle commit; n={args.n}, {args.clients} clients for the rate")
    for name, median, p99, rate in rows:
        print(f"{name:<22} median {median:8.1f} µs ({median / base_median:5.2f}x)   p99 {p99:8.1f} µs   "
              f"{rate:8.0f} bets/s with {args.clients} clients ({rate / base_rate:5.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
