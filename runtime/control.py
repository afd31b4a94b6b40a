"""Fan-out of the control stream (ACTIVE / PAUSED / HALTED) to the spending actors of a worker.

A plain XREAD (no group): every worker sees every broadcast of its shards. It is the fast path
that stops loops and refuses queued spends; the fence stays the authority on whether a spend may
start (a spend the broadcast has not reached yet is still refused by the fence).

A broadcast reaches an actor two ways. The listener's thread writes it at once into the actor's
`ControlView` (a small thread-safe map), which the actor reads before each spend: so a busy actor
refuses the spends queued behind its current one without waiting to finish its mailbox. And it
is told to the actor as a typed `ControlChanged` message, for reactions that take a commit
(`on_control`: close positions, stop a session).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from redis.typing import KeyT, StreamIdT

from messages.codec import decode_entry
from messages.errors import MessageDecodeError
from messages.schema import RiskControl
from runtime.bus import CLUSTER_IDLE_MS, blocking_client
from runtime.keys import Keys
from runtime.redis_client import is_cluster

log = logging.getLogger(__name__)

Listener = Callable[[str, RiskControl], None]


@dataclass(frozen=True)
class ControlChanged:
    """A broadcast, as told to an actor: the agent, and its new ACTIVE / PAUSED / HALTED control."""

    agent: str
    control: RiskControl


class ControlView:
    """The latest broadcast per agent, written by the listener thread, read by the actor's thread.

    Only agents whose last broadcast blocks spending are kept (ACTIVE removes the entry), so its
    size is the number of paused or halted agents, not the number of agents.
    """

    def __init__(self) -> None:
        self._blocked: dict[str, RiskControl] = {}
        self._lock = threading.Lock()
        self.updates = 0
        self.fed_directly = False
        """True once a listener thread writes into this view: the actor's mailbox copy is then stale."""

    def update(self, agent: str, control: RiskControl) -> None:
        with self._lock:
            self.updates += 1
            if control.state in ("PAUSED", "HALTED"):
                self._blocked[agent] = control
            else:
                self._blocked.pop(agent, None)

    def blocking(self, agent: str, now_ms: int) -> RiskControl | None:
        """The PAUSED / HALTED control that forbids `agent` to spend at `now_ms`, or None.

        A pause with an `until_ms` stops blocking once that time has come (as the fence does).
        """
        with self._lock:
            control = self._blocked.get(agent)
        if control is None:
            return None
        if control.state == "PAUSED" and control.until_ms and now_ms >= control.until_ms:
            return None
        return control

    def __len__(self) -> int:
        with self._lock:
            return len(self._blocked)


CONTROL_BLOCK_MS = 5000
"""How long one read of the control streams waits for a broadcast. A broadcast ends the wait at
once, so this is no latency: it is how often an idle listener asks again (each ask re-registers
the read on every shard's stream, in the server too)."""


class ControlListener:
    def __init__(self, url: str, keys: Keys, shards: Iterable[int], listener: Listener,
                 block_ms: int = CONTROL_BLOCK_MS):
        self.client = blocking_client(url, block_ms)
        self.block_ms = block_ms
        self.listener = listener
        self.positions: dict[KeyT, StreamIdT] = {keys.control(s): "$" for s in shards}
        self.received = 0

    def run(self, stop: threading.Event) -> None:
        """Listen until `stop` is set. Redis being away (at start too) is waited out, never fatal:
        a worker must not lose the thread that hears pause and halt broadcasts."""
        resolved = False
        while not stop.is_set():
            try:
                if not resolved:
                    self._resolve_positions()
                    resolved = True
                reply: Any = self._read()
            except Exception as exc:  # noqa: BLE001 - keep listening through Redis restarts
                log.warning("control listener: %s", exc)
                stop.wait(0.5)
                continue
            for stream, entries in reply or []:
                for entry_id, fields in entries:
                    self.positions[stream.decode() if isinstance(stream, bytes) else stream] = entry_id
                    self._deliver(entry_id, fields)

    def _read(self) -> Any:
        """One blocking XREAD over every control stream; on a Redis Cluster (one read may not span
        slots) one non-blocking XREAD per stream, pipelined per node, waiting `CLUSTER_IDLE_MS`
        after a round that found nothing."""
        if not is_cluster(self.client) or len(self.positions) < 2:
            return self.client.xread(self.positions, block=self.block_ms, count=256)
        client: Any = self.client  # a RedisCluster (its pipeline's execute_command is untyped)
        pipe = client.pipeline(transaction=False)
        for stream, position in self.positions.items():  # named nodes: no COMMAND GETKEYS per read
            pipe.execute_command("XREAD", "COUNT", 256, "STREAMS", stream, position,
                                 target_nodes=client.get_node_from_key(stream))
        reply = [pair for answer in pipe.execute() for pair in (answer or [])]
        if not reply:
            time.sleep(min(CLUSTER_IDLE_MS, self.block_ms) / 1000)
        return reply

    def _resolve_positions(self) -> None:
        """Resolve "$" to concrete ids once, so broadcasts between two reads are not skipped."""
        for stream, position in self.positions.items():
            if position != "$":
                continue
            info = self.client.xinfo_stream(stream) if self.client.exists(stream) else None
            self.positions[stream] = (info or {}).get("last-generated-id", b"0-0") or b"0-0"

    def _deliver(self, entry_id: Any, fields: dict[Any, Any]) -> None:
        try:
            env = decode_entry(fields)
        except MessageDecodeError as exc:
            log.warning("control listener: undecodable broadcast %s: %s", entry_id, exc)
            return
        if isinstance(env.body, RiskControl):
            self.received += 1
            try:
                self.listener(env.agent, env.body)
            except Exception:  # noqa: BLE001 - one bad listener call must not end the fan-out
                log.exception("control listener: delivering %s failed", entry_id)
