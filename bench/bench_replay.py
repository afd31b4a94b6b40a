"""Replay of an agent's journal into a projection: events/s, against XRANGE alone and decode alone.

    python bench/bench_replay.py [--events 200000] [--page 10000] [--archive-share 0.5]

Fills one agent's journal with BetSettled events, archives the older `--archive-share` of them
to day files (`treasury journal archive`), then times, in the same run:
- baseline 1: XRANGE alone over the live part (pages of `--page`, raw replies, no decoding);
- baseline 2: msgpack decode alone of every payload (already in memory);
- replay: `replay_journal` (archive files, then the stream in pages, decoded to envelopes) folded
  into a projection (stake and payout sums), the way a projection rebuild reads it.
Reports which Redis reply parser redis-py uses (hiredis when installed).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import redis  # noqa: E402
from common import machine, own_redis  # noqa: E402

from messages.codec import FIELD, decode, encode  # noqa: E402
from messages.envelope import seeded_ids, wrap  # noqa: E402
from messages.schema import BetSettled  # noqa: E402
from runtime.archive import archive_journal  # noqa: E402
from runtime.journal import replay_journal  # noqa: E402
from runtime.keys import Keys  # noqa: E402

AGENT = "replay-agent"
T0 = 1_767_225_600_000


def fill(client, keys: Keys, n: int) -> None:
    ids = seeded_ids(2)
    pipe = client.pipeline(transaction=False)
    for i in range(n):
        body = BetSettled(bet_id=f"b{i}", game="coin_flip", stake=1_000_000, payout=2_000_000 if i % 2 else 0,
                          pnl=1_000_000 if i % 2 else -1_000_000, won=bool(i % 2), roll="0.5", bucket_after=10**9)
        env = wrap(body, agent=AGENT, now_ms=T0 + i * 1000, new_id=ids)
        pipe.xadd(keys.events(AGENT), {FIELD: encode(env)}, id=f"{T0 + i * 1000}-0")
        if i % 5000 == 4999:
            pipe.execute()
    pipe.execute()


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--page", type=int, default=10_000)
    p.add_argument("--archive-share", type=float, default=0.5)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    with own_redis() as (url, _):
        client = redis.Redis.from_url(url)
        parser = type(client.connection_pool.get_connection()._parser).__name__
        keys = Keys(f"rp{uuid.uuid4().hex[:6]}", 4)
        fill(client, keys, args.events)
        archived = archive_journal(client, keys, AGENT, tempfile.mkdtemp(prefix="bench-replay-"),
                                   before_ms=T0 + int(args.events * args.archive_share) * 1000).archived
        live = client.xlen(keys.events(AGENT))
        xr, dec, rep = [], [], []
        for _ in range(args.runs):
            t = time.perf_counter()
            payloads, start = [], "-"
            while True:
                page = client.xrange(keys.events(AGENT), min=start, count=args.page)
                payloads.extend(f[FIELD] for _, f in page)
                if len(page) < args.page:
                    break
                ms, _, seq = page[-1][0].decode().partition("-")
                start = f"{ms}-{int(seq) + 1}"
            xr.append(live / (time.perf_counter() - t))
            t = time.perf_counter()
            for data in payloads:
                decode(data)
            dec.append(len(payloads) / (time.perf_counter() - t))
            t = time.perf_counter()
            stakes = payouts = n = 0
            for env in replay_journal(client, keys, AGENT, page=args.page):
                stakes += env.body.stake
                payouts += env.body.payout
                n += 1
            rep.append(n / (time.perf_counter() - t))
            assert n == args.events and stakes == args.events * 1_000_000
    x, d, r = statistics.median(xr), statistics.median(dec), statistics.median(rep)
    print(machine())
    print(f"{args.events} events ({archived} archived to files, {live} in Redis), pages of {args.page}, "
          f"redis-py parser {parser}, median of {args.runs}")
    print(f"{'step':<52}{'events/s':>12}")
    print(f"{'baseline: XRANGE alone (live part, raw)':<52}{x:>12.0f}")
    print(f"{'baseline: msgpack decode alone':<52}{d:>12.0f}")
    print(f"{'replay: archive + XRANGE pages + decode + projection':<52}{r:>12.0f}")
    print(json.dumps({"bench": "replay", "events": args.events, "archived": archived, "parser": parser,
                      "xrange_per_s": round(x), "decode_per_s": round(d), "replay_per_s": round(r)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
