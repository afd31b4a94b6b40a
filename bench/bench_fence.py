"""Latency of the treasury's atomic steps on a real Redis, against a plain baseline.

    python bench/bench_fence.py [--redis-url URL] [--n 5000]

Prints median and p99 (µs) of: a plain HINCRBY (the floor: one round trip), the fence
(reserve.lua), and a settle commit (commit.lua: ledger, journal event, risk notification, ack),
with each one's ratio to the baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


from actors.bootstrap import open_treasury  # noqa: E402
from messages.envelope import seeded_ids, wrap  # noqa: E402
from messages.schema import BalancesChanged, BetSettled  # noqa: E402
from runtime.atomic import AtomicSteps  # noqa: E402
from runtime.keys import Keys  # noqa: E402
from supervisor.status import RedisUnreachable, open_client  # noqa: E402


def timed(fn, n: int) -> list[float]:
    samples = []
    for i in range(n):
        t0 = time.perf_counter_ns()
        fn(i)
        samples.append((time.perf_counter_ns() - t0) / 1000)
    return samples


def summary(name: str, samples: list[float], baseline: float | None) -> str:
    samples = sorted(samples)
    median = statistics.median(samples)
    p99 = samples[int(len(samples) * 0.99) - 1]
    ratio = f"{median / baseline:5.2f}x" if baseline else "  1.00x"
    return f"{name:<34} median {median:8.1f} µs   p99 {p99:8.1f} µs   {ratio} baseline"


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15"))
    p.add_argument("--n", type=int, default=5000)
    args = p.parse_args()
    try:
        client = open_client(args.redis_url)
    except RedisUnreachable as exc:
        print(f"bench_fence: error: {exc} "
              "(start one: redis-server --port N --save '' --appendonly no; then --redis-url)",
              file=sys.stderr)
        return 2
    keys = Keys(f"bench{uuid.uuid4().hex[:6]}", 64)
    steps = AtomicSteps(client, keys)
    agent = "bench-agent"
    ids = seeded_ids(1)
    open_treasury(steps, agent, 10**13, now_ms=0, new_id=ids, buckets={"casino": 10**13})
    stream = keys.agent_commands(agent, "casino")
    client.xgroup_create(stream, "g:casino", id="0", mkstream=True)
    try:
        base = timed(lambda i: client.hincrby(keys.ledger(agent), "baseline", 1), args.n)
        baseline = statistics.median(base)
        fence = timed(lambda i: steps.reserve(agent, f"r{i}", "casino", 10_000, 10**12, 0), args.n)

        entry_ids = [client.xadd(stream, {"m": b"x"}).decode() for _ in range(args.n)]
        client.xreadgroup("g:casino", "bench", {stream: ">"}, count=args.n)

        def settle(i: int) -> None:
            cause = wrap(BalancesChanged(cause="bench"), agent=agent, now_ms=i, new_id=ids)
            c = steps.new_commit(agent)
            c.incr(keys.ledger(agent), "casino:reserved", -10_000).incr(keys.ledger(agent), "casino", 19_900)
            c.hdel(keys.reservations(agent), f"r{i}")
            c.emit(keys.events(agent), wrap(BetSettled(bet_id=f"b{i}", game="coin_flip", stake=10_000, payout=19_900,
                                                       pnl=9_900, won=True, roll="12.34", bucket_after=1),
                                            agent=agent, now_ms=i, new_id=ids, cause=cause))
            c.emit(keys.agent_commands(agent, "risk"), cause)
            c.ack(stream, "g:casino", entry_ids[i])
            steps.commit(c, f"s{i}", i)

        commits = timed(settle, args.n)
        print(f"Redis {client.info('server')['redis_version']}, n={args.n} each")
        print(summary("baseline: HINCRBY", base, None))
        print(summary("fence: reserve.lua", fence, baseline))
        print(summary("settle: commit.lua (5 ops + ack)", commits, baseline))
    finally:
        for k in client.scan_iter(match=f"{keys.prefix}:*", count=1000):
            client.delete(k)
    return 0


if __name__ == "__main__":
    sys.exit(main())
