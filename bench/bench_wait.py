"""How long `treasury cmd --wait` takes to report a command's outcome, against publishing alone.

    python bench/bench_wait.py [--redis-url URL] [--n 10]

Starts `treasury up` (casino, risk, rebalancer and reserve workers, the sandbox) on its own data
directory and key prefix, onboards one agent, sets `max_bet_bp=100`, then times, in this process
(interpreter start excluded), `n` rounds of: a `rebalance` with `--wait` (ends on RebalanceSkipped
or on the RebalanceCompleted its last leg causes, exit 0), a $2.50 bet over the 1 % cap with
`--wait` (BetRefused, exit 1), and the same bet published without `--wait` (the baseline: signing
and XADD only). Prints the medians and the maxima in milliseconds.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import redis  # noqa: E402

from supervisor.commands import add_cmd_arguments, cmd_main  # noqa: E402

ROLES = "casino,risk,rebalancer,reserve"


def timed(argv: list[str]) -> tuple[float, int]:
    parser = argparse.ArgumentParser()
    add_cmd_arguments(parser)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        code = cmd_main(args)
    return time.perf_counter() - started, code


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15"))
    p.add_argument("--n", type=int, default=10)
    args = p.parse_args()
    client = redis.Redis.from_url(args.redis_url)
    prefix = f"benchwait{uuid.uuid4().hex[:6]}"
    data = tempfile.mkdtemp(prefix="bench-wait-")
    os.environ.update(REDIS_URL=args.redis_url, TREASURY_DATA_DIR=data)
    os.environ.pop("TREASURY_KEYS", None), os.environ.pop("TREASURY_KEYS_FILE", None)
    up = subprocess.Popen([sys.executable, "-m", "supervisor.cli", "up", "--data-dir", data, "--roles", ROLES,
                           "--prefix", prefix, "--shard-count", "8"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while client.hlen(f"{prefix}:workers") < len(ROLES.split(",")):
            if up.poll() is not None or time.monotonic() > deadline:
                print("treasury up did not start its workers", file=sys.stderr)
                return 1
            time.sleep(0.1)
        subprocess.run([sys.executable, "-m", "supervisor.cli", "agent", "add", "alice", "--capital", "1000",
                        "--prefix", prefix], check=True, capture_output=True)
        base = ["--prefix", prefix]
        timed([*base, "--wait", "set-policy", "alice", "max_bet_bp=100"])
        rows = {"publish only (baseline)": ([*base, "bet", "alice", "--fixed-stake", "2.50"], 0),
                "--wait rebalance": ([*base, "--wait", "rebalance", "alice", "--reason", "bench"], 0),
                "--wait refused bet": ([*base, "--wait", "bet", "alice", "--fixed-stake", "2.50"], 1)}
        for name, (argv, expected) in rows.items():
            times = []
            for _ in range(args.n):
                seconds, code = timed(argv)
                if code != expected:
                    print(f"{name}: exit {code}, expected {expected}", file=sys.stderr)
                    return 1
                times.append(seconds * 1000)
            print(f"{name:26s} exit {expected}  median {statistics.median(times):7.1f} ms  max {max(times):7.1f} ms"
                  f"  (n={args.n})")
        return 0
    finally:
        up.send_signal(signal.SIGTERM)
        try:
            up.wait(30)
        except subprocess.TimeoutExpired:
            up.kill()
        stale = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if stale:
            client.delete(*stale)


if __name__ == "__main__":
    sys.exit(main())
