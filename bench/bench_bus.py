"""Throughput of the bus on a real Redis: entries applied per second, against a raw baseline.

    python bench/bench_bus.py [--redis-url URL] [--n 20000] [--batch 64]

Baseline: XREADGROUP + XACK of the same entries with no decoding and no effects (the floor the
bus cannot beat). Bus: decode, dispatch, one commit.lua per entry (effect + applied-id + ack).
Both are measured in the same run on the same Redis; the ratio is what exactly-once costs.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


from messages.codec import FIELD, encode  # noqa: E402
from messages.envelope import seeded_ids, wrap  # noqa: E402
from messages.schema import BalancesChanged  # noqa: E402
from runtime.atomic import AtomicSteps  # noqa: E402
from runtime.bus import StreamBus  # noqa: E402
from runtime.keys import Keys  # noqa: E402
from supervisor.status import RedisUnreachable, open_client  # noqa: E402

AGENT = "bench-agent"


def fill(client, stream: str, n: int) -> None:
    ids = seeded_ids(3)
    pipe = client.pipeline(transaction=False)
    for i in range(n):
        env = wrap(BalancesChanged(cause=f"c{i}"), agent=AGENT, now_ms=i, new_id=ids)
        pipe.xadd(stream, {FIELD: encode(env)})
        if i % 1000 == 999:
            pipe.execute()
    pipe.execute()


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15"))
    p.add_argument("--n", type=int, default=20_000)
    p.add_argument("--batch", type=int, default=64)
    args = p.parse_args()
    try:
        client = open_client(args.redis_url)
    except RedisUnreachable as exc:
        print(f"bench_bus: error: {exc} "
              "(start one: redis-server --port N --save '' --appendonly no; then --redis-url)",
              file=sys.stderr)
        return 2
    keys = Keys(f"benchbus{uuid.uuid4().hex[:6]}", 4)
    stream = keys.agent_commands(AGENT, "casino")
    try:
        fill(client, stream, args.n)
        client.xgroup_create(stream, "raw", id="0")
        t0 = time.perf_counter()
        done = 0
        while done < args.n:
            reply = client.xreadgroup("raw", "raw-1", {stream: ">"}, count=args.batch)
            entries = reply[0][1]
            client.xack(stream, "raw", *[e[0] for e in entries])
            done += len(entries)
        raw_rate = args.n / (time.perf_counter() - t0)

        steps = AtomicSteps(client, keys)

        def apply(delivery):
            c = steps.new_commit(delivery.envelope.agent)
            c.incr(keys.ledger(AGENT), "applied", 1)
            c.ack(delivery.stream, delivery.group, delivery.entry_id)
            steps.commit(c, delivery.envelope.id, 0)

        bus = StreamBus(args.redis_url, keys, "casino", [keys.shard(AGENT)], apply, batch=args.batch, block_ms=10)
        bus.ensure_groups()
        t0 = time.perf_counter()
        while bus.processed < args.n:
            bus.poll_once()
        bus_rate = args.n / (time.perf_counter() - t0)
        assert int(client.hget(keys.ledger(AGENT), "applied")) == args.n
        print(f"Redis {client.info('server')['redis_version']}, {args.n} entries, batch {args.batch}")
        print(f"baseline XREADGROUP+XACK   {raw_rate:10.0f} entries/s")
        print(f"bus (decode+commit.lua)    {bus_rate:10.0f} entries/s   {bus_rate / raw_rate:.3f}x baseline")
    finally:
        for k in client.scan_iter(match=f"{keys.prefix}:*", count=1000):
            client.delete(k)
    return 0


if __name__ == "__main__":
    sys.exit(main())
