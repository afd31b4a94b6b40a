"""Memory of per-agent venue clients: one shared pool per venue (now) against one httpx client
and SSL context per agent (the baseline, built in the same run by giving each client its own
transport). Python heap per agent by tracemalloc, and process RSS per agent.

    python bench/bench_clients.py [--agents 1000]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tracemalloc

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import httpx  # noqa: E402
from common import machine, rss_kb  # noqa: E402

from venue.client.casino import CasinoClient  # noqa: E402


def measure(n: int, own: bool) -> tuple[float, float]:
    gc.collect()
    rss0 = rss_kb(os.getpid())
    tracemalloc.start()
    clients = [CasinoClient("https://casino.example", f"sk_live_{i:06d}",
                            transport=httpx.HTTPTransport() if own else None) for i in range(n)]
    heap = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    rss = rss_kb(os.getpid()) - rss0
    for c in clients:
        c.close()
    del clients
    gc.collect()
    return heap / n / 1024, rss / n


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--agents", type=int, default=1000)
    args = p.parse_args()
    shared = measure(args.agents, own=False)
    own = measure(args.agents, own=True)
    print(machine())
    print(f"{args.agents} per-agent casino clients")
    print(f"{'clients':<40}{'heap KB/agent':>15}{'RSS KB/agent':>15}")
    print(f"{'baseline: own httpx client + SSL context':<40}{own[0]:>15.1f}{own[1]:>15.1f}")
    print(f"{'shared pool per venue':<40}{shared[0]:>15.1f}{shared[1]:>15.1f}")
    print(json.dumps({"bench": "clients", "agents": args.agents, "baseline_heap_kb_per_agent": round(own[0], 1),
                      "baseline_rss_kb_per_agent": round(own[1], 1), "shared_heap_kb_per_agent": round(shared[0], 1),
                      "shared_rss_kb_per_agent": round(shared[1], 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
