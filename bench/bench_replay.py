"""Replay of an agent's journal into a projection: events/s, against XRANGE alone and decode alone.

    python bench/bench_replay.py [--events 200000] [--page 10000] [--archive-share 0.5]

Fills one agent's journal with BetSettled events, archives the older `--archive-share` of them
to day files (`treasury journal archive`), then times, in the same run:
- baseline 1: XRANGE alone over the live part (pages of `--page`, `client.xrange`, no decoding),
  and the same with raw replies on one connection (no redis-py field dicts): the Redis ceiling;
- baseline 2: msgpack decode alone of every payload (already in memory) to envelopes;
- baseline 3: the previous reader (record by record from the files, `client.xrange` pages, every
  payload decoded to an envelope), kept here as it was;
- `replay_journal`: archive files, then the stream in pages, decoded to envelopes;
- `replay_events`: the projection path, (head, body) of the folded types only;
each folded into a projection (stake and payout sums). Replays are timed per source: the
archive files and the Redis stream separately, and overall.
Reports which Redis reply parser redis-py uses (hiredis when installed).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import struct
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import msgspec  # noqa: E402
import redis  # noqa: E402
from common import machine, own_redis  # noqa: E402

from messages.codec import FIELD, decode, encode  # noqa: E402
from messages.envelope import seeded_ids, wrap  # noqa: E402
from messages.schema import BetSettled  # noqa: E402
from runtime.archive import _record, agent_dir, archive_journal  # noqa: E402
from runtime.journal import replay_events, replay_journal  # noqa: E402
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


def previous_replay(client, keys: Keys, agent: str, page: int):
    """The reader as it was before the paged, pipelined one: for the same-run baseline."""
    record = _record(client, keys, agent)
    last = (0, -1)
    if record is not None:
        decoder = msgspec.msgpack.Decoder(tuple[str, bytes])
        for path in sorted(agent_dir(record[0], agent).glob("*.journal")):
            data, at = path.read_bytes(), 0
            while at + 4 <= len(data):
                (n,) = struct.unpack_from(">I", data, at)
                eid, payload = decoder.decode(data[at + 4:at + 4 + n])
                at += 4 + n
                ms, _, seq = eid.partition("-")
                key = (int(ms), int(seq))
                if key <= last:
                    continue
                last = key
                yield decode(payload)
    start = f"{last[0]}-{last[1] + 1}" if last[1] >= 0 else "-"
    while True:
        entries = client.xrange(keys.events(agent), min=start, count=page)
        if not entries:
            return
        for _, fields in entries:
            yield decode(fields[FIELD])
        if len(entries) < page:
            return
        ms, _, seq = entries[-1][0].decode().partition("-")
        start = f"{ms}-{int(seq) + 1}"


def fold(events, archived: int, body=lambda e: e.body) -> tuple[float, float, int, int]:
    """(archive seconds, Redis seconds, events, stake sum) of folding `events`; the first
    `archived` of them come from the archive files."""
    stakes = payouts = n = 0
    t0 = t1 = time.perf_counter()
    for e in events:
        if n == archived:
            t1 = time.perf_counter()
        b = body(e)
        stakes += b.stake
        payouts += b.payout
        n += 1
    t2 = time.perf_counter()
    if n <= archived:
        t1 = t2
    return t1 - t0, t2 - t1, n, stakes


def raw_xrange(client, stream: str, page: int) -> int:
    conn = client.connection_pool.get_connection()
    try:
        n, start = 0, "-"
        while True:
            conn.send_command("XRANGE", stream, start, "+", "COUNT", page)
            reply = conn.read_response()
            n += len(reply)
            if len(reply) < page:
                return n
            ms, _, seq = reply[-1][0].decode().partition("-")
            start = f"{ms}-{int(seq) + 1}"
    finally:
        client.connection_pool.release(conn)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--page", type=int, default=10_000)
    p.add_argument("--archive-share", type=float, default=0.5)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    if args.events <= 0 or args.page <= 0 or not 0 <= args.archive_share <= 1 or args.runs <= 0:
        print("--events, --page and --runs must be positive, --archive-share between 0 and 1", file=sys.stderr)
        return 2
    with own_redis() as (url, _):
        client = redis.Redis.from_url(url)
        parser = type(client.connection_pool.get_connection()._parser).__name__
        keys = Keys(f"rp{uuid.uuid4().hex[:6]}", 4)
        fill(client, keys, args.events)
        archived = archive_journal(client, keys, AGENT, tempfile.mkdtemp(prefix="bench-replay-"),
                                   before_ms=T0 + int(args.events * args.archive_share) * 1000).archived
        live = client.xlen(keys.events(AGENT))
        stream = keys.events(AGENT)
        rows: dict[str, list[tuple[float, float, float]]] = {}

        def note(name: str, a_s: float, r_s: float) -> None:
            rows.setdefault(name, []).append((archived / a_s if archived and a_s > 0 else 0.0,
                                              live / r_s if live and r_s else 0.0,
                                              args.events / (a_s + r_s)))

        for _ in range(args.runs):
            t = time.perf_counter()
            payloads, start = [], "-"
            while True:
                page = client.xrange(stream, min=start, count=args.page)
                payloads.extend(f[FIELD] for _, f in page)
                if len(page) < args.page:
                    break
                ms, _, seq = page[-1][0].decode().partition("-")
                start = f"{ms}-{int(seq) + 1}"
            note("baseline: XRANGE alone (client.xrange)", 0.0, time.perf_counter() - t)
            t = time.perf_counter()
            assert raw_xrange(client, stream, args.page) == live
            note("baseline: XRANGE alone (raw replies)", 0.0, time.perf_counter() - t)
            t = time.perf_counter()
            for data in payloads:
                decode(data)
            note("baseline: msgpack decode alone (envelopes)", 0.0, time.perf_counter() - t)
            for name, events, body in (
                ("baseline: previous reader + envelopes", previous_replay(client, keys, AGENT, args.page),
                 lambda e: e.body),
                ("replay_journal: envelopes", replay_journal(client, keys, AGENT, page=args.page), lambda e: e.body),
                ("replay_events: folded types only", replay_events(client, keys, AGENT, (BetSettled,),
                                                                   page=args.page), lambda e: e.body),
            ):
                a_s, r_s, n, stakes = fold(events, archived, body)
                assert n == args.events and stakes == args.events * 1_000_000, (name, n, stakes)
                note(name, a_s, r_s)
    med = {name: tuple(statistics.median(v[i] for v in vals) for i in range(3)) for name, vals in rows.items()}
    print(machine())
    print(f"{args.events} events ({archived} archived to files, {live} in Redis), pages of {args.page}, "
          f"redis-py parser {parser}, median of {args.runs}; events/s")
    print(f"{'step':<46}{'archive':>10}{'Redis':>10}{'overall':>10}")
    for name, (a, r, o) in med.items():
        overall = f"{o:>10.0f}" if not name.startswith("baseline: XRANGE") and not name.startswith(
            "baseline: msgpack") else f"{'':>10}"
        print(f"{name:<46}{a:>10.0f}{r:>10.0f}{overall}" if a else f"{name:<46}{'':>10}{r:>10.0f}{overall}")
    out = {"bench": "replay", "events": args.events, "archived": archived, "parser": parser,
           "xrange_per_s": round(med["baseline: XRANGE alone (client.xrange)"][1]),
           "xrange_raw_per_s": round(med["baseline: XRANGE alone (raw replies)"][1]),
           "decode_per_s": round(med["baseline: msgpack decode alone (envelopes)"][1])}
    for key, name in (("previous", "baseline: previous reader + envelopes"),
                      ("replay_journal", "replay_journal: envelopes"),
                      ("replay_events", "replay_events: folded types only")):
        a, r, o = med[name]
        out.update({f"{key}_archive_per_s": round(a), f"{key}_redis_per_s": round(r), f"{key}_per_s": round(o)})
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
