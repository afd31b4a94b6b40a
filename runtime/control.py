"""Fan-out of the control stream (ACTIVE / PAUSED / HALTED) to the spending actors of a worker.

A plain XREAD (no group): every worker sees every broadcast of its shards. It is the fast path
that stops loops and sessions; the fence stays the authority on whether a spend may start.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Iterable

from redis.typing import KeyT, StreamIdT

from messages.codec import decode_entry
from messages.errors import MessageDecodeError
from messages.schema import RiskControl
from runtime.bus import blocking_client
from runtime.keys import Keys

log = logging.getLogger(__name__)

Listener = Callable[[str, RiskControl], None]


class ControlListener:
    def __init__(self, url: str, keys: Keys, shards: Iterable[int], listener: Listener, block_ms: int = 1000):
        self.client = blocking_client(url, block_ms)
        self.block_ms = block_ms
        self.listener = listener
        self.positions: dict[KeyT, StreamIdT] = {keys.control(s): "$" for s in shards}
        self.received = 0

    def run(self, stop: threading.Event) -> None:
        # Resolve "$" to concrete ids once, so broadcasts between two reads are not skipped.
        for stream in self.positions:
            info = self.client.xinfo_stream(stream) if self.client.exists(stream) else None
            self.positions[stream] = (info or {}).get("last-generated-id", b"0-0") or b"0-0"
        while not stop.is_set():
            try:
                reply: Any = self.client.xread(self.positions, block=self.block_ms, count=256)
            except Exception as exc:  # noqa: BLE001 - keep listening through Redis restarts
                log.warning("control listener: %s", exc)
                stop.wait(0.5)
                continue
            for stream, entries in reply or []:
                for entry_id, fields in entries:
                    self.positions[stream.decode() if isinstance(stream, bytes) else stream] = entry_id
                    try:
                        env = decode_entry(fields)
                    except MessageDecodeError as exc:
                        log.warning("control listener: undecodable broadcast %s: %s", entry_id, exc)
                        continue
                    if isinstance(env.body, RiskControl):
                        self.received += 1
                        self.listener(env.agent, env.body)
