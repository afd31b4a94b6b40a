"""Halt fan-out: from the HALTED commit to every worker process's spending view, p50/p99,
against a bare redis-py fan-out (XADD -> blocking XREAD in as many processes), same run.

    python bench/bench_halt.py [--procs 6] [--halts 200] [--rounds 3] [--shards 64]

Treasury path: the parent commits HALTED / ACTIVE as the supervisor's halt does (commit.lua:
risk hash, journal, control-stream XADD); each child runs the worker's ControlListener over every
shard's control stream, and the time counted is when the broadcast is in the child's ControlView
(what a spending actor reads before each spend). Bare path: the parent XADDs the same payload;
each child runs a plain XREAD BLOCK over the same streams. Rounds alternate the two.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import redis  # noqa: E402
from common import machine, own_redis  # noqa: E402

from messages.codec import FIELD, encode  # noqa: E402
from messages.envelope import seeded_ids, wrap  # noqa: E402
from messages.schema import RiskControl  # noqa: E402
from runtime.keys import Keys  # noqa: E402

AGENT = "halt-agent"


def child(url: str, prefix: str, shards: int, mode: str, expect: int) -> None:
    keys = Keys(prefix, shards)
    seen: list[tuple[str, int]] = []
    done = threading.Event()
    if mode == "treasury":
        from runtime.control import ControlListener, ControlView

        view = ControlView()

        def on(agent, control):
            view.update(agent, control)
            seen.append((control.reason, time.time_ns()))
            if len(seen) >= expect:
                done.set()

        listener = ControlListener(url, keys, range(shards), on)  # the worker's block
        stop = threading.Event()
        threading.Thread(target=listener.run, args=(stop,), daemon=True).start()
        print("ready", flush=True)
        done.wait(120)
        stop.set()
    else:
        client = redis.Redis.from_url(url, socket_timeout=15)
        positions = {keys.control(s): "$" for s in range(shards)}
        for stream in positions:
            positions[stream] = (client.xinfo_stream(stream) if client.exists(stream) else {}).get(
                "last-generated-id", b"0-0") or b"0-0"
        print("ready", flush=True)
        from messages.codec import decode

        while len(seen) < expect:
            for stream, entries in client.xread(positions, block=1000, count=256) or []:
                for entry_id, fields in entries:
                    positions[stream.decode()] = entry_id
                    seen.append((decode(fields[FIELD]).body.reason, time.time_ns()))
    print(json.dumps(seen), flush=True)


def run_round(url: str, keys: Keys, mode: str, procs: int, halts: int) -> list[float]:
    from runtime.atomic import AtomicSteps

    client = redis.Redis.from_url(url)
    steps = AtomicSteps(client, keys)
    ids = seeded_ids(uuid.uuid4().int % 1000)
    children = [subprocess.Popen([sys.executable, __file__, "--child", mode, "--url", url, "--prefix", keys.prefix,
                                  "--shards", str(keys.shards), "--halts", str(halts)],
                                 stdout=subprocess.PIPE, text=True) for _ in range(procs)]
    for c in children:
        assert c.stdout.readline().strip() == "ready"
    time.sleep(0.3)
    sent: dict[str, int] = {}
    shard = keys.shard(AGENT)
    for i in range(halts):
        state = "HALTED" if i % 2 == 0 else "ACTIVE"
        reason = f"{mode}-{i}"
        env = wrap(RiskControl(state=state, reason=reason), agent=AGENT, now_ms=i, new_id=ids)
        if mode == "treasury":
            commit = steps.new_commit(AGENT)
            commit.next_seq(keys.risk(AGENT)).hset(keys.risk(AGENT), "state", state).hset(keys.risk(AGENT), "reason",
                                                                                          reason)
            commit.emit(keys.events(AGENT), env)
            commit.emit(keys.control(shard), env, maxlen=10_000)
            sent[reason] = time.time_ns()
            steps.commit(commit, f"halt:{reason}", i)
        else:
            sent[reason] = time.time_ns()
            client.xadd(keys.control(shard), {FIELD: encode(env)}, maxlen=10_000, approximate=True)
        time.sleep(0.01)
    latencies = []
    for c in children:
        out, _ = c.communicate(timeout=120)
        for reason, t in json.loads(out.strip().splitlines()[-1]):
            latencies.append((t - sent[reason]) / 1e6)
    return latencies


def p(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--procs", type=int, default=6)
    ap.add_argument("--halts", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--shards", type=int, default=64)
    ap.add_argument("--child", default=None)
    ap.add_argument("--url")
    ap.add_argument("--prefix")
    args = ap.parse_args()
    if args.child:
        child(args.url, args.prefix, args.shards, args.child, args.halts)
        return 0
    results: dict[str, list[tuple[float, float]]] = {"bare": [], "treasury": []}
    with own_redis() as (url, _):
        for _ in range(args.rounds):
            for mode in ("bare", "treasury"):
                keys = Keys(f"halt{uuid.uuid4().hex[:6]}", args.shards)
                lat = run_round(url, keys, mode, args.procs, args.halts)
                results[mode].append((p(lat, 0.5), p(lat, 0.99)))
    med = {m: (statistics.median(x[0] for x in v), statistics.median(x[1] for x in v)) for m, v in results.items()}
    ratio = med["treasury"][1] / med["bare"][1]
    print(machine())
    print(f"{args.procs} processes, {args.halts} broadcasts per round, {args.shards} control streams each, "
          f"median of {args.rounds} rounds")
    print(f"{'fan-out':<40}{'p50 ms':>10}{'p99 ms':>10}")
    print(f"{'baseline: bare XADD -> XREAD BLOCK':<40}{med['bare'][0]:>10.2f}{med['bare'][1]:>10.2f}")
    print(f"{'treasury: HALTED commit -> ControlView':<40}{med['treasury'][0]:>10.2f}{med['treasury'][1]:>10.2f}")
    print(f"{'ratio p99 treasury / bare':<40}{'':>10}{ratio:>10.2f}")
    print(json.dumps({"bench": "halt", "procs": args.procs, "bare_p50_ms": round(med["bare"][0], 3),
                      "bare_p99_ms": round(med["bare"][1], 3), "treasury_p50_ms": round(med["treasury"][0], 3),
                      "treasury_p99_ms": round(med["treasury"][1], 3), "p99_ratio": round(ratio, 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
