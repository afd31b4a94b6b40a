"""The Redis-streams bus: feeds stream entries to a handler (a pykka actor) with at-least-once
delivery made exactly-once in effect.

What it guarantees, and how:
- consumer groups are created idempotently (XGROUP CREATE ... MKSTREAM, BUSYGROUP ignored);
- reads are batched XREADGROUP calls that really block on the server (own connection, its
  socket timeout longer than the block), so an idle bus costs nothing;
- an entry is acknowledged only by the handler's own atomic commit (effects + journal + XACK in
  one Lua step), so a crash before the commit leaves it pending, never lost;
- a restarted consumer drains its own pending entries first; entries left pending by a dead
  consumer for longer than `claim_idle_ms` are taken over with XAUTOCLAIM;
- an entry that does not decode, or whose handler fails `max_deliveries` times, goes to the dead
  stream with the error text (and, when the agent is known, a `CommandRefused` in its journal);
- a duplicate (same message id) is applied once: the commit script remembers applied ids;
- a stream keeps only what its groups still need: every `trim_every_ms` the streams that had
  traffic are trimmed to the lowest position any group still needs (runtime/trim.py), so an
  idle deployment's command streams stay empty, however long it runs.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable

import redis

from messages.codec import FIELD, decode_entry, encode
from messages.envelope import Envelope, IdFactory, random_ids, wrap
from messages.errors import MessageDecodeError, TreasuryError, one_line
from messages.schema import CommandRefused
from runtime.clock import Clock, SystemClock
from runtime.keys import Keys
from runtime.signing import CommandAuthError
from runtime.trim import StreamTrimmer

if TYPE_CHECKING:
    from runtime.command_gate import CommandGate

log = logging.getLogger(__name__)

DEAD_MAXLEN = 100_000


@dataclass(frozen=True)
class Delivery:
    """One stream entry handed to a handler, with what it needs to acknowledge it."""

    stream: str
    group: str
    entry_id: str
    envelope: Envelope
    deliveries: int


class HandlerRejected(TreasuryError):
    """Raised by a handler for a message that can never succeed: dead-lettered at once."""


Handler = Callable[[Delivery], None]


def blocking_client(url: str, block_ms: int) -> redis.Redis:
    """A connection for blocking reads: its socket timeout outlasts the longest block."""
    return redis.Redis.from_url(url, socket_timeout=block_ms / 1000 + 10, socket_connect_timeout=5,
                                health_check_interval=30)


def command_client(url: str) -> redis.Redis:
    """A client for short commands (10 s socket timeout): commits, the fence, reads."""
    return redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5, health_check_interval=30)


def default_consumer_name(role: str) -> str:
    """`<role>-<host>-<pid>`: unique per worker process."""
    return f"{role}-{socket.gethostname()}-{os.getpid()}"


def entry_id_tuple(entry_id: str) -> tuple[int, int]:
    """A stream entry id `"<ms>-<seq>"` as `(ms, seq)`, for ordering."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class StreamBus:
    """Consumes one role's command streams for a set of shards and hands each entry to `handler`.

    `url` is the Redis URL (two connections: commands, and a blocking reader); `role` picks the
    streams `<prefix>:{S}:cmd:<role>` of `shards` and the group `g:<role>`; `handler(delivery)`
    applies one entry and acknowledges it in its own commit, or raises: `HandlerRejected` (or a
    `TreasuryError`/`CommandAuthError`) dead-letters at once, anything else is retried after
    `retry_backoff_ms` × 2^(failures-1) ms, up to `max_deliveries`. `gate` checks signatures,
    scope and nonces before the handler (None where every writer is trusted). Times are ms.
    Run it with `run(stop)` (its own thread) or step it with `poll_once()` in tests.
    """

    def __init__(
        self,
        url: str,
        keys: Keys,
        role: str,
        shards: Iterable[int],
        handler: Handler,
        *,
        consumer: str | None = None,
        batch: int = 64,
        block_ms: int = 1000,
        claim_idle_ms: int = 30_000,
        claim_every_ms: int = 30_000,
        trim_every_ms: int = 1_000,
        max_deliveries: int = 5,
        retry_backoff_ms: int = 200,
        clock: Clock | None = None,
        new_id: IdFactory | None = None,
        clients: tuple[redis.Redis, redis.Redis] | None = None,
        gate: CommandGate | None = None,
    ):
        self.keys = keys
        self.role = role
        self.group = f"g:{role}"
        self.consumer = consumer or default_consumer_name(role)
        self.handler = handler
        self.batch = batch
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.claim_every_ms = claim_every_ms
        self.trim_every_ms = trim_every_ms
        self.max_deliveries = max_deliveries
        self.retry_backoff_ms = retry_backoff_ms
        self.clock = clock or SystemClock()
        self.new_id = new_id or random_ids()
        self.streams = {keys.commands(s, role): s for s in shards}
        # (command client, blocking reader): injected in unit tests (fakeredis), else made from url
        self.client, self.reader = clients or (command_client(url), blocking_client(url, block_ms))
        self.gate = gate  # CommandGate, or None where every writer is trusted (unit tests)
        self.trimmer = StreamTrimmer(self.client)
        self._dirty: set[str] = set()  # streams with entries handled since the last trim
        self._wanted_shards: set[int] | None = None
        self.last_loop = time.monotonic()  # liveness: a loop stuck longer than a handler timeout is hung
        self._shard_lock = threading.Lock()
        self._retry_at: float | None = None
        self.processed = 0
        self.dead_lettered = 0

    # ------------------------------------------------------------------ set-up

    def ensure_groups(self) -> None:
        """Create the consumer group on every stream; an existing group is fine."""
        for stream in self.streams:
            try:
                self.client.xgroup_create(stream, self.group, id="0", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    # ------------------------------------------------------------------ shard leases

    def request_shards(self, shards: Iterable[int]) -> None:
        """Ask the bus (from another thread) to serve exactly these shards from its next poll."""
        with self._shard_lock:
            self._wanted_shards = set(shards)

    def _apply_requested_shards(self) -> None:
        with self._shard_lock:
            wanted, self._wanted_shards = self._wanted_shards, None
        if wanted is None:
            return
        current = set(self.streams.values())
        gained = wanted - current
        self.streams = {self.keys.commands(s, self.role): s for s in sorted(wanted)}
        if gained:
            adopted = [self.keys.commands(s, self.role) for s in gained]
            self.ensure_groups()
            # The shard's previous worker is gone (lease expired) or let it go between batches:
            # whatever it left pending is ours now, at once, in order.
            self.claim_stale(streams=adopted, min_idle_ms=0)

    # ------------------------------------------------------------------ main loop

    def run(self, stop: threading.Event) -> None:
        """Serve until `stop` is set; the batch in hand is finished first (graceful drain)."""
        self.ensure_groups()
        self.drain_own_pending()
        next_claim = time.monotonic() + self.claim_every_ms / 1000  # drained just above
        next_trim = 0.0
        while not stop.is_set():
            self.last_loop = time.monotonic()
            try:
                self._apply_requested_shards()
                if not self.streams:
                    stop.wait(self.block_ms / 1000)
                    continue
                now = time.monotonic()
                if now >= next_claim:
                    self.claim_stale()
                    next_claim = now + self.claim_every_ms / 1000
                if self._retry_at is not None and now >= self._retry_at:
                    self.drain_own_pending()
                self.poll_once()
                if self._dirty and time.monotonic() >= next_trim:
                    self.trim_acknowledged()
                    next_trim = time.monotonic() + self.trim_every_ms / 1000
            except redis.ConnectionError as exc:
                log.warning("bus %s: Redis unreachable (%s); retrying", self.role, exc)
                stop.wait(0.5)
            except redis.ResponseError as exc:
                if "NOGROUP" in str(exc):
                    self.ensure_groups()
                else:
                    raise

    def poll_once(self, block_ms: int | None = None, *, wait: bool = True) -> int:
        """One XREADGROUP for new entries, blocking up to `block_ms` (default: the bus's) unless
        `wait` is false (then it returns at once: how a deterministic in-process run drains);
        returns how many entries were handled."""
        block = (self.block_ms if block_ms is None else block_ms) if wait else None
        reply = self.reader.xreadgroup(self.group, self.consumer, {s: ">" for s in self.streams},
                                       count=self.batch, block=block)
        handled = 0
        for stream, entries in _iter_reply(reply):
            for entry_id, fields in entries:
                self._process(stream, entry_id, fields, deliveries=1)
                handled += 1
        return handled

    def trim_acknowledged(self) -> int:
        """Trim the streams handled since the last call to what their groups still need."""
        dirty, self._dirty = self._dirty, set()
        try:
            return self.trimmer.trim(sorted(dirty))
        except redis.RedisError:
            self._dirty |= dirty  # tried again at the next trim
            raise

    # ------------------------------------------------------------------ recovery

    def drain_own_pending(self) -> int:
        """Re-handle every entry this consumer was given but never acknowledged."""
        self._retry_at = None
        handled = 0
        for stream in self.streams:
            start = "0"
            while True:
                reply = self.client.xreadgroup(self.group, self.consumer, {stream: start}, count=self.batch)
                entries = [e for _, es in _iter_reply(reply) for e in es]
                if not entries:
                    break
                counts = self._delivery_counts(stream, entries[0][0], entries[-1][0], self.consumer)
                for entry_id, fields in entries:
                    self._process(stream, entry_id, fields, deliveries=counts.get(entry_id, 1))
                    handled += 1
                start = entries[-1][0]
        return handled

    def claim_stale(self, streams: Iterable[str] | None = None, min_idle_ms: int | None = None) -> int:
        """Take over entries a dead consumer left pending longer than `claim_idle_ms`."""
        handled = 0
        idle = self.claim_idle_ms if min_idle_ms is None else min_idle_ms
        for stream in list(self.streams if streams is None else streams):
            start = "0-0"
            for _ in range(100):  # bounded: at most 100 batches per call
                next_start, entries, deleted = _autoclaim(self.client, stream, self.group, self.consumer,
                                                          idle, start, self.batch)
                for entry_id in deleted:
                    log.warning("bus %s: pending entry %s was deleted from %s", self.role, entry_id, stream)
                if entries:
                    counts = self._delivery_counts(stream, entries[0][0], entries[-1][0], self.consumer)
                    for entry_id, fields in entries:
                        if fields is None:
                            continue
                        self._process(stream, entry_id, fields, deliveries=counts.get(entry_id, 1))
                        handled += 1
                if next_start in ("0-0", b"0-0"):
                    break
                start = next_start
        return handled

    def _delivery_counts(self, stream: str, first: str, last: str, consumer: str) -> dict[str, int]:
        rows: Any = self.client.xpending_range(stream, self.group, min=first, max=last, count=self.batch * 2,
                                          consumername=consumer)
        return {_s(r["message_id"]): int(r["times_delivered"]) for r in rows}

    # ------------------------------------------------------------------ one entry

    def _process(self, stream: str, entry_id: str | bytes, fields: dict[Any, Any] | None, deliveries: int) -> None:
        self.last_loop = time.monotonic()
        entry_id = _s(entry_id)
        stream = _s(stream)
        self._dirty.add(stream)
        if not fields:
            self.client.xack(stream, self.group, entry_id)  # trimmed or deleted: nothing to apply
            return
        try:
            envelope = decode_entry(fields)
        except MessageDecodeError as exc:
            self.dead_letter(stream, entry_id, fields, str(exc), deliveries, None)
            return
        if deliveries > self.max_deliveries:
            self.dead_letter(stream, entry_id, fields,
                             f"delivered {deliveries} times without success (limit {self.max_deliveries})",
                             deliveries, envelope)
            return
        if self.gate is not None:
            try:
                self.gate.check(envelope, entry_id)
            except CommandAuthError as exc:
                self.dead_letter(stream, entry_id, fields, str(exc), deliveries, envelope)
                return
        delivery = Delivery(stream, self.group, entry_id, envelope, deliveries)
        try:
            self.handler(delivery)
            self.processed += 1
        except HandlerRejected as exc:
            self.dead_letter(stream, entry_id, fields, str(exc), deliveries, envelope)
        except Exception as exc:  # noqa: BLE001 - any failure is counted, retried, then dead-lettered
            failures = self.client.hincrby(self._failures_key(stream), entry_id, 1)
            log.warning("bus %s: %s %s failed (%d/%d): %s", self.role, envelope.type, envelope.id,
                        failures, self.max_deliveries, exc)
            if failures >= self.max_deliveries:
                self.dead_letter(stream, entry_id, fields, f"{type(exc).__name__}: {exc}", deliveries, envelope)
            else:
                self._retry_at = time.monotonic() + self.retry_backoff_ms * (2 ** (failures - 1)) / 1000

    def _failures_key(self, stream: str) -> str:
        return self.keys.failures(self.streams[stream], self.role)

    def dead_letter(self, stream: str, entry_id: str, fields: dict[Any, Any], error: str, deliveries: int,
                    envelope: Envelope | None) -> None:
        """Move an entry to the dead stream with its error, acknowledge it, and journal the refusal."""
        error = one_line(error)
        shard = self.streams[stream]
        raw = fields.get(FIELD) or fields.get(FIELD.decode()) or b""
        now = self.clock.now_ms()
        pipe = self.client.pipeline(transaction=True)
        pipe.xadd(self.keys.dead(shard), {
            "stream": stream, "entry_id": entry_id, "role": self.role, "error": error,
            "deliveries": deliveries, "at_ms": now, "raw": raw,
            "agent": envelope.agent if envelope else "", "msg_id": envelope.id if envelope else "",
        }, maxlen=DEAD_MAXLEN, approximate=True)
        if envelope is not None and envelope.agent:
            rejected = wrap(CommandRefused(command=envelope.type, reason=error), agent=envelope.agent,
                            now_ms=now, new_id=self.new_id, cause=envelope)
            pipe.xadd(self.keys.events(envelope.agent), {FIELD: encode(rejected)})
        pipe.xack(stream, self.group, entry_id)
        pipe.hdel(self._failures_key(stream), entry_id)
        pipe.execute()
        self.dead_lettered += 1
        log.warning("bus %s: dead-lettered %s from %s: %s", self.role, entry_id, stream, error)

    def close(self) -> None:
        """Close both Redis connections."""
        self.client.close()
        self.reader.close()


def _s(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _iter_reply(reply: Any) -> list[tuple[str, list[Any]]]:
    if not reply:
        return []
    if isinstance(reply, dict):  # RESP3
        return [(k, v[0] if v and isinstance(v[0], list) else v) for k, v in reply.items()]
    return [(stream, entries) for stream, entries in reply]


def _autoclaim(client: redis.Redis, stream: str, group: str, consumer: str, min_idle_ms: int,
               start: str, count: int) -> tuple[str, list[Any], list[str]]:
    command: Any = client.execute_command  # untyped in redis-py
    reply: Any = command("XAUTOCLAIM", stream, group, consumer, min_idle_ms, start, "COUNT", count)
    next_start = _s(reply[0])
    raw_entries = reply[1] or []
    entries: list[tuple[str, dict[Any, Any] | None]] = []
    for item in raw_entries:
        if item is None:
            continue
        entry_id, flat = item[0], item[1]
        if flat is None:
            entries.append((_s(entry_id), None))
            continue
        fields = {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)} if isinstance(flat, list) else flat
        entries.append((_s(entry_id), fields))
    deleted = [_s(x) for x in reply[2]] if len(reply) > 2 and reply[2] else []
    return next_start, entries, deleted
