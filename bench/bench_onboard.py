"""Onboarding rate on the sandbox: agents/s one at a time (baseline, same run) and in parallel.

    python bench/bench_onboard.py [--agents 200] [--parallel 16]

Each agent is registered at casino, wallet and trading, gets its wallet and its treasury opened
and the sandbox silos funded (`treasury agent add` does the same). Own Redis, own sandbox.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from common import machine, own_redis  # noqa: E402

from messages.money import parse_usd  # noqa: E402
from runtime.bus import command_client  # noqa: E402
from runtime.keys import Keys  # noqa: E402
from supervisor.onboard_many import onboard_many  # noqa: E402
from supervisor.up import start_sandbox_process  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--agents", type=int, default=200)
    p.add_argument("--baseline-agents", type=int, default=40)
    p.add_argument("--parallel", type=int, default=16)
    args = p.parse_args()
    rows = {}
    import tempfile
    from pathlib import Path

    state = Path(tempfile.mkdtemp(prefix="bench-onboard-")) / "sandbox.sqlite3"
    sandbox, venues = start_sandbox_process(12, state)  # its own process, as `treasury up` runs it
    with own_redis() as (url, _):
        client = command_client(url)
        for name, count, parallel in (("one at a time", args.baseline_agents, 1),
                                      (f"{args.parallel} in parallel", args.agents, args.parallel)):
            keys = Keys(f"onb{uuid.uuid4().hex[:6]}", 64)
            agents = [(f"{keys.prefix}-{i}", parse_usd("100")) for i in range(count)]
            t0 = time.perf_counter()
            report = onboard_many(client, keys, venues, "paper", agents, parallel=parallel)
            elapsed = time.perf_counter() - t0
            if report.failed:
                print(f"{len(report.failed)} failed, e.g. {next(iter(report.failed.items()))}", file=sys.stderr)
                return 1
            rows[name] = (count, count / elapsed)
    sandbox.terminate()
    sandbox.wait(10)
    print(machine())
    print(f"{'onboarding':<24}{'agents':>8}{'agents/s':>10}")
    for name, (count, rate) in rows.items():
        print(f"{name:<24}{count:>8}{rate:>10.1f}")
    (b_n, b), (f_n, f) = rows.values()
    print(json.dumps({"bench": "onboard", "baseline_agents_per_s": round(b, 1), "parallel": args.parallel,
                      "parallel_agents_per_s": round(f, 1), "speedup": round(f / b, 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
