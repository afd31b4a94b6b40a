"""A supervisor as its own process, for trials that SIGKILL it: `python -m tests.kit.run_supervisor
URL PREFIX CASINO_URL STALE_MS` (command keys from TREASURY_KEYS). It does not own Redis or the venue."""

from __future__ import annotations

import sys
import threading

from runtime.keys import Keys
from runtime.signals import stop_on_signals
from supervisor.supervise import Supervisor, SupervisorConfig


def main() -> None:
    url, prefix, casino_url, stale_ms = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    import os

    stop = threading.Event()
    stop_on_signals(stop)
    Supervisor(url, Keys(prefix, 8), ["casino", "risk"], {"casino": casino_url},
               env={"TREASURY_KEYS": os.environ["TREASURY_KEYS"]},
               config=SupervisorConfig(heartbeat_stale_ms=stale_ms, base_backoff_s=0.2, ticks=False)).run(stop)


if __name__ == "__main__":
    main()
