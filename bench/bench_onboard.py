"""Onboarding rate on the sandbox: agents/s one at a time (baseline, same run) and in parallel.

    python bench/bench_onboard.py [--agents 200] [--parallel 16] [--baseline-code DIR]

Each agent is registered at casino, wallet and trading, gets its wallet and its treasury opened
and the sandbox silos funded (`treasury agent add` does the same). Own Redis, own sandbox.
With `--baseline-code DIR` (a `git archive` of an earlier commit unpacked there), that version's
own bench_onboard.py runs first in a child, same arguments, and its figures are shown beside.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
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
    p.add_argument("--baseline-code", default=None, help="a checkout of an earlier version to measure first")
    args = p.parse_args()
    if args.agents <= 0 or args.baseline_agents <= 0 or args.parallel <= 0:
        print("--agents, --baseline-agents and --parallel must be positive", file=sys.stderr)
        return 2
    rows = {}
    previous = None
    if args.baseline_code:
        code = os.path.abspath(args.baseline_code)
        script = os.path.join(code, "bench", "bench_onboard.py")
        if not os.path.exists(script):
            print(f"--baseline-code {code}: no bench/bench_onboard.py there", file=sys.stderr)
            return 2
        out = subprocess.run([sys.executable, script, "--agents", str(args.agents), "--baseline-agents",
                              str(args.baseline_agents), "--parallel", str(args.parallel)], capture_output=True,
                             text=True, cwd=code, env={**os.environ, "PYTHONPATH": code})
        if out.returncode != 0:
            print(f"the baseline code failed: {out.stderr.strip()[-400:]}", file=sys.stderr)
            return 1
        previous = json.loads(out.stdout.strip().splitlines()[-1])
        rows["previous code, one at a time"] = (args.baseline_agents, previous["baseline_agents_per_s"])
        rows[f"previous code, {args.parallel} in parallel"] = (args.agents, previous["parallel_agents_per_s"])
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
    print(f"{'onboarding':<32}{'agents':>8}{'agents/s':>10}")
    for name, (count, rate) in rows.items():
        print(f"{name:<32}{count:>8}{rate:>10.1f}")
    b = rows["one at a time"][1]
    f = rows[f"{args.parallel} in parallel"][1]
    result = {"bench": "onboard", "baseline_agents_per_s": round(b, 1), "parallel": args.parallel,
              "parallel_agents_per_s": round(f, 1), "speedup": round(f / b, 2)}
    if previous is not None:
        result.update({"previous_baseline_agents_per_s": previous["baseline_agents_per_s"],
                       "previous_parallel_agents_per_s": previous["parallel_agents_per_s"],
                       "parallel_vs_previous": round(f / previous["parallel_agents_per_s"], 2)})
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
