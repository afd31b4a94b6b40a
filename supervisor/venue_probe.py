"""Can the deployment reach its venues? One short HTTP GET per service, in parallel.

Any HTTP answer (even 404) means the service is reachable; a connection error or a timeout means
it is not. Used by `treasury status` and `watch` (per deployment: venue reachability).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx

PROBE_TIMEOUT_S = 1.5


def probe_one(name: str, url: str, timeout_s: float = PROBE_TIMEOUT_S) -> dict:
    """`{"service", "url", "reachable", "http_status", "latency_ms", "error"}` for one service."""
    started = time.monotonic()
    try:
        response = httpx.get(url.rstrip("/") + "/", timeout=timeout_s, follow_redirects=False)
        return {"service": name, "url": url, "reachable": True, "http_status": response.status_code,
                "latency_ms": int((time.monotonic() - started) * 1000), "error": ""}
    except (httpx.HTTPError, OSError, ValueError) as exc:
        return {"service": name, "url": url, "reachable": False, "http_status": None,
                "latency_ms": int((time.monotonic() - started) * 1000),
                "error": " ".join(str(exc).split())[:120] or type(exc).__name__}


def probe_venues(venues: dict[str, str], timeout_s: float = PROBE_TIMEOUT_S) -> list[dict]:
    """Every service of `venues` probed at once; sorted by service name."""
    if not venues:
        return []
    with ThreadPoolExecutor(max_workers=min(8, len(venues))) as pool:
        rows = list(pool.map(lambda kv: probe_one(kv[0], kv[1], timeout_s), sorted(venues.items())))
    return rows
