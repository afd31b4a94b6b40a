"""Issue 9, case 6: the control fan-out (how a worker hears PAUSED / HALTED) survives Redis being
away, also when the worker starts during the outage."""

from __future__ import annotations

import threading
import time

import redis

from messages.codec import FIELD, encode
from messages.envelope import seeded_ids, wrap
from messages.schema import RiskControl
from runtime.control import ControlListener
from runtime.keys import Keys


def test_a_listener_started_while_redis_is_down_hears_broadcasts_once_it_is_back(own_redis):
    keys = Keys("ctl", 4)
    own_redis.kill()
    heard: list[tuple[str, str]] = []
    listener = ControlListener(own_redis.url, keys, range(keys.shards), lambda a, c: heard.append((a, c.state)),
                               block_ms=100)
    stop = threading.Event()
    thread = threading.Thread(target=listener.run, args=(stop,), daemon=True)
    thread.start()
    try:
        time.sleep(1.0)  # a worker restarted in the outage: its listener meets a refused connection
        assert thread.is_alive()
        own_redis.restart()
        deadline = time.monotonic() + 10  # it reconnects on its own (its retry waits 0.5 s), however loaded the machine
        while any(p == "$" for p in listener.positions.values()) and time.monotonic() < deadline:
            time.sleep(0.05)
        client = redis.Redis.from_url(own_redis.url)
        env = wrap(RiskControl(state="HALTED", reason="drawdown"), agent="a1", now_ms=1, new_id=seeded_ids(1))
        client.xadd(keys.control(keys.shard("a1")), {FIELD: encode(env)})
        deadline = time.monotonic() + 10
        while not heard and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(5)
    assert heard == [("a1", "HALTED")]
