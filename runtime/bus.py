"""The Redis-streams bus: feeds stream entries to a handler (a pykka actor) with at-least-once
delivery made exactly-once in effect.

What it guarantees, and how:
- consumer groups are created idempotently (XGROUP CREATE ... MKSTREAM, BUSYGROUP ignored);
- reads are batched XREADGROUP calls that really block on the server (own connection, its
  socket timeout longer than the block), so an idle bus costs nothing; on a Redis Cluster
  (`redis+cluster://`), where one read may not span slots, one read per shard stream, pipelined
  per node, with a short growing wait between empty rounds (`CLUSTER_IDLE_MS`);
- an entry is acknowledged only by the handler's own atomic commit (effects + journal + XACK in
  one Lua step), so a crash before the commit leaves it pending, never lost;
- a restarted consumer drains its own pending entries first; entries left pending by a dead
  consumer for longer than `claim_idle_ms` are taken over with XAUTOCLAIM;
- an entry that does not decode (whatever the decoder raises), or whose handler fails
  `max_deliveries` times, goes to the dead stream with the error text (and, when the agent is
  known, a `CommandRefused` in its journal);
- a redelivered entry is marked in flight while it is handled; one that was in flight when its
  worker died `max_crashes` times is dead-lettered instead of killing the next worker too;
- Redis faults are classified (`runtime.redis_faults`): transient ones are ridden out with
  backoff, a deleted stream or group is created again, only configuration errors end the loop;
- a duplicate (same message id) is applied once: the commit script remembers applied ids;
- a stream keeps only what its groups still need: every `trim_every_ms` the streams that had
  traffic are trimmed to the lowest position any group still needs (runtime/trim.py), so an
  idle deployment's command streams stay empty, however long it runs.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, NamedTuple

import redis

from messages.codec import FIELD, decode_entry, encode
from messages.envelope import Envelope, IdFactory, random_ids, wrap
from messages.errors import TreasuryError, one_line
from messages.schema import CommandRefused, RetrySpend
from runtime.clock import Clock, SystemClock
from runtime.keys import Keys
from runtime.redis_client import is_cluster, make_client, slot_of
from runtime.redis_faults import Backoff, Fault, classify, is_transient
from runtime.trim import StreamTrimmer

if TYPE_CHECKING:
    from runtime.command_gate import CommandGate

log = logging.getLogger(__name__)

DEAD_MAXLEN = 100_000

CLUSTER_IDLE_MS = 50
"""On a Redis Cluster, the longest an idle bus waits between two rounds of reads (`StreamBus._read_each_slot`)."""

SPEND_COMMANDS = frozenset({"PlaceBet", "OpenPosition", "CreateEscrow"})
"""Commands that may move money out to a venue. Whatever goes wrong with one, it is never
dead-lettered by a count (of deliveries, failures or worker deaths) before its handler has looked
it up at the venue: it is parked instead (see `StreamBus._park`). Only the handler's own
`HandlerRejected` — a decision made knowing the venue's answer — sets it aside."""


@dataclass(frozen=True)
class Delivery:
    """One stream entry handed to a handler, with what it needs to acknowledge it."""

    stream: str
    group: str
    entry_id: str
    envelope: Envelope
    deliveries: int
    authority: str | None = None
    """Who the command speaks for, as the gate found it: the signing key's scope (`agent`,
    `operator`), `internal` for an unsigned internal poke, None where the bus runs without a gate
    (every writer trusted). RiskGuard checks state changes against it (`actors/policy/authority.py`)."""


class HandlerRejected(TreasuryError):
    """Raised by a handler for a message that can never succeed: dead-lettered at once."""


class UnknownAgent(HandlerRejected):
    """A message for an agent this deployment does not serve: dead-lettered at once, and nothing is
    written under the unknown name (no journal event)."""


class OutcomeUnknown(TreasuryError):
    """Raised by a handler when the venue cannot yet tell whether a spend happened (a look-up
    that does not reach back far enough, say): never guessed, the spend is retried and parked."""


Handler = Callable[[Delivery], None]


class _Prepared(NamedTuple):
    """A stream entry decoded, and judged by the gate, ahead of its turn (`StreamBus._prepare`)."""

    envelope: Envelope | None
    """The decoded envelope; None if it did not decode (`error` says why)."""
    error: Exception | None
    checked: Any
    """The gate's outcome (`command_gate.Checked`: who signed, None, or the refusal), or
    `_UNCHECKED` when nothing was asked of the gate."""


_UNCHECKED = object()


class _Admitted(NamedTuple):
    """An entry that passed `StreamBus._admit` and goes to its handler."""

    delivery: Delivery
    fields: dict[Any, Any]
    spend: bool
    suspect: bool
    """Redelivered (marked in flight while handled)."""


Submit = Callable[[Delivery], Any]
"""Hands a delivery to its handler without waiting; returns a future whose `get(timeout=s)`
returns once the handler is done, or raises what it raised (a pykka `ActorRef.ask(..., block=False)`)."""

SubmitWave = Callable[[list[Delivery]], list[Any]]
"""Hands deliveries of different agents to their handlers together without waiting (so a handler
may share Redis round trips across them); returns one future per delivery, in order, as `Submit`."""


def blocking_client(url: str, block_ms: int) -> redis.Redis:
    """A connection for blocking reads: its socket timeout outlasts the longest block. A
    `redis+cluster://` URL gives a cluster client (`runtime.redis_client.make_client`)."""
    client: redis.Redis = make_client(url, socket_timeout=block_ms / 1000 + 10, socket_connect_timeout=5,
                                      health_check_interval=30)
    return client


def command_client(url: str) -> redis.Redis:
    """A client for short commands (10 s socket timeout): commits, the fence, reads. A
    `redis+cluster://` URL gives a cluster client (`runtime.redis_client.make_client`)."""
    client: redis.Redis = make_client(url, socket_timeout=10, socket_connect_timeout=5, health_check_interval=30)
    return client


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
    applies one entry and acknowledges it in its own commit, or raises: `HandlerRejected`
    dead-letters at once, anything else is retried after `retry_backoff_ms` × 2^(failures-1) ms,
    up to `max_deliveries` (a spend is then parked, never dead-lettered by a count). `gate` checks signatures,
    scope and nonces before the handler (None where every writer is trusted). `submit` (optional) hands a
    delivery over without waiting (`Submit`): new entries of different agents are then handled side by
    side, a wave at a time, each agent's in order (`_process_in_waves`); `submit_wave` (optional,
    used when `submit` is not given) hands each such wave over whole (`SubmitWave`), so the handler
    may share round trips across it; `handler_timeout_s` bounds the wait for each. Times are ms.
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
        max_crashes: int = 2,
        park_retry_ms: int = 10_000,
        park_alert_ms: int = 600_000,
        retry_backoff_ms: int = 200,
        clock: Clock | None = None,
        new_id: IdFactory | None = None,
        clients: tuple[redis.Redis, redis.Redis] | None = None,
        gate: CommandGate | None = None,
        submit: Submit | None = None,
        submit_wave: SubmitWave | None = None,
        handler_timeout_s: float = 120.0,
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
        self.max_crashes = max_crashes
        self.park_retry_ms = park_retry_ms
        self.park_alert_ms = park_alert_ms
        self.retry_backoff_ms = retry_backoff_ms
        self.clock = clock or SystemClock()
        self.new_id = new_id or random_ids()
        self.streams = {keys.commands(s, role): s for s in shards}
        # (command client, blocking reader): injected in unit tests (fakeredis), else made from url
        self.client, self.reader = clients or (command_client(url), blocking_client(url, block_ms))
        self.gate = gate  # CommandGate, or None where every writer is trusted (unit tests)
        self.submit = submit  # new entries handled in waves across agents (`_process_in_waves`) when given
        self.submit_wave = submit_wave  # else a whole wave handed over at once, when given
        self.handler_timeout_s = handler_timeout_s
        self.trimmer = StreamTrimmer(self.client)
        self._cluster = is_cluster(self.reader)  # one read per slot there (`_read_each_slot`)
        self._idle_s = 0.0
        self._dirty: set[str] = set()  # streams with entries handled since the last trim
        self._wanted_shards: set[int] | None = None
        self.last_loop = time.monotonic()  # liveness: a loop stuck longer than a handler timeout is hung
        self._waiting_s = 0.0  # the block of the blocking read under way (0: none): not a stall (`stalled_s`)
        self._reader_id: int | None = None  # the reader's connection id on the server, for `wake`
        self._reading = False  # a blocking read is under way on it
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
        """Ask the bus (from another thread) to serve exactly these shards from its next poll,
        ending the blocking read under way (`wake`) so that is now."""
        with self._shard_lock:
            self._wanted_shards = set(shards)
        self.wake()

    def wake(self) -> None:
        """End the loop's blocking read now (from another thread): a stop or new shards are
        acted on at once, not when an idle read would time out. Best effort: if it cannot, the
        read ends by itself within `block_ms`."""
        reader_id = self._reader_id
        try:
            for _ in range(3):
                if reader_id is None or not self._reading:
                    return
                if self.client.client_unblock(reader_id):
                    return
                time.sleep(0.01)  # the read may be on its way to the server: once more
        except redis.RedisError as exc:
            log.debug("bus %s: could not wake the reader: %s", self.role, exc)
            return
        if self._reading:
            self._reader_id = None  # another connection than we thought: asked again at the next read

    def stalled_s(self) -> float:
        """How long the loop has gone without a turn (seconds), not counting the wait of a blocking
        read within its block: an idle bus is not a stuck one, however long it blocks."""
        return max(0.0, time.monotonic() - self.last_loop - self._waiting_s)

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
        """Serve until `stop` is set; the batch in hand is finished first (graceful drain).

        Transient Redis trouble (see `redis_faults.classify`) is ridden out with backoff and
        repaired where it can be (a deleted stream or group is created again); only an error
        that retrying cannot cure (wrong password, missing permission, wrong key type) ends it.
        """
        recovering = True  # own pending entries first: at start, and after every outage
        next_claim = 0.0
        next_trim = 0.0
        backoff = Backoff()
        while not stop.is_set():
            self.last_loop = time.monotonic()
            try:
                if recovering:
                    self.ensure_groups()
                    self.drain_own_pending()
                    recovering = False
                    next_claim = time.monotonic() + self.claim_every_ms / 1000  # drained just above
                self._apply_requested_shards()
                if not self.streams:  # no shard leased yet: look again for new ones every second at most
                    self._waiting_s = min(self.block_ms, 1000) / 1000
                    stop.wait(self._waiting_s)
                    self.last_loop = time.monotonic()
                    self._waiting_s = 0.0
                    continue
                now = time.monotonic()
                if now >= next_claim:
                    self.claim_stale()
                    next_claim = now + self.claim_every_ms / 1000
                if self._retry_at is not None and now >= self._retry_at:
                    self.drain_own_pending()
                # an idle read waits up to `block_ms`, but never past the loop's own next chore
                due = min(next_claim, self._retry_at or next_claim, next_trim if self._dirty else next_claim)
                self.poll_once(max(1, min(self.block_ms, int((due - time.monotonic()) * 1000) + 1)))
                if self._dirty and time.monotonic() >= next_trim:
                    self.trim_acknowledged()
                    next_trim = time.monotonic() + self.trim_every_ms / 1000
                backoff.reset()
            except redis.RedisError as exc:
                fault = classify(exc)
                if fault is Fault.FATAL:
                    log.error("bus %s: Redis refused us for good: %s", self.role, exc)
                    raise
                recovering = True
                if fault is Fault.REPAIR:
                    log.warning("bus %s: %s; creating the stream and group again", self.role, exc)
                    continue
                delay = backoff.next()
                log.warning("bus %s: Redis %s (%s); retrying in %.2f s", self.role, fault.value, exc, delay)
                stop.wait(delay)

    def poll_once(self, block_ms: int | None = None, *, wait: bool = True) -> int:
        """One XREADGROUP for new entries, blocking up to `block_ms` (default: the bus's) unless
        `wait` is false (then it returns at once: how a deterministic in-process run drains);
        returns how many entries were handled."""
        block = (self.block_ms if block_ms is None else block_ms) if wait else None
        reply: Any
        if self._cluster and len(self.streams) > 1:
            reply = self._read_each_slot(block)
        else:
            if block and self._reader_id is None and not self._cluster:
                self._reader_id = int(self.reader.client_id())  # the connection the read below blocks on
            self._waiting_s = (block or 0) / 1000
            self._reading = bool(block)
            try:
                reply = self.reader.xreadgroup(self.group, self.consumer, {s: ">" for s in self.streams},
                                               count=self.batch, block=block)
            except redis.RedisError:
                self._reader_id = None  # a new connection may serve the next read
                raise
            finally:
                self._reading = False
                self.last_loop = time.monotonic()
                self._waiting_s = 0.0
        items = [(stream, entry_id, fields) for stream, entries in _iter_reply(reply) for entry_id, fields in entries]
        prepared = self._prepare(items)
        if self.submit is not None or self.submit_wave is not None:
            self._process_in_waves(items, prepared)
            return len(items)
        for (stream, entry_id, fields), ready in zip(items, prepared, strict=True):
            self._process(stream, entry_id, fields, deliveries=1, prepared=ready)
        return len(items)

    def _prepare(self, items: list[tuple[Any, Any, Any]]) -> list[_Prepared | None]:
        """Decode a batch of first deliveries and pass them through the gate together: every
        signed command's nonce is claimed in one round trip (`CommandGate.check_many`) instead of
        one per entry. Each entry is still applied on its own, in order, by its own commit; a
        claim names its entry, so one left pending (a crash, a Redis fault) passes again when it is
        redelivered. None for an entry with no fields (acknowledged as it comes)."""
        out: list[_Prepared | None] = []
        for _, _, fields in items:
            if not fields:
                out.append(None)
                continue
            try:
                out.append(_Prepared(decode_entry(fields), None, _UNCHECKED))
            except Exception as exc:  # noqa: BLE001 - dead-lettered in its turn, as in `_process`
                out.append(_Prepared(None, exc, _UNCHECKED))
        if self.gate is None:
            return out
        gated = [(i, ready) for i, ready in enumerate(out) if ready is not None and ready.envelope is not None]
        if gated:
            checked = self.gate.check_many([(ready.envelope, _s(items[i][1])) for i, ready in gated
                                            if ready.envelope is not None])
            for (i, ready), outcome in zip(gated, checked, strict=True):
                out[i] = ready._replace(checked=outcome)
        return out

    def _read_each_slot(self, block: int | None) -> list[tuple[str, list[Any]]]:
        """On a Redis Cluster every shard's stream is in its own slot, and one XREADGROUP may not
        span slots: one non-blocking XREADGROUP per stream, pipelined (one round trip per node,
        all nodes written before any is read). When every stream is empty it waits before
        answering, 1 ms after the first empty round, doubling up to `CLUSTER_IDLE_MS` (never
        beyond `block`): an idle bus costs a few cheap rounds a second, a busy one never waits."""
        reader: Any = self.reader  # a RedisCluster (its pipeline's execute_command is untyped)
        pipe = reader.pipeline(transaction=False)
        for stream in self.streams:
            # the node named from the local slot map: else redis-py asks COMMAND GETKEYS every time
            pipe.execute_command("XREADGROUP", "GROUP", self.group, self.consumer, "COUNT", self.batch,
                                 "STREAMS", stream, ">", target_nodes=reader.get_node_from_key(stream))
        replies = pipe.execute()
        out = [pair for reply in replies for pair in _iter_reply(reply)]
        if any(entries for _, entries in out):
            self._idle_s = 0.0
        elif block:
            self._idle_s = min(max(self._idle_s * 2, 0.001), CLUSTER_IDLE_MS / 1000, block / 1000)
            time.sleep(self._idle_s)
        return out

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
                    self._process(stream, entry_id, fields, deliveries=counts.get(_s(entry_id), 1))
                    handled += 1
                start = entries[-1][0]
        return handled

    def claim_stale(self, streams: Iterable[str] | None = None, min_idle_ms: int | None = None) -> int:
        """Take over entries a dead consumer left pending longer than `claim_idle_ms`."""
        handled = 0
        idle = self.claim_idle_ms if min_idle_ms is None else min_idle_ms
        for stream in self._with_pending(list(self.streams if streams is None else streams)):
            start = "0-0"
            for _ in range(100):  # bounded: at most 100 batches per call
                next_start, entries, deleted = _autoclaim(self.client, stream, self.group, self.consumer,
                                                          idle, start, self.batch)
                for entry_id in deleted:
                    log.warning("bus %s: pending entry %s was deleted from %s", self.role, entry_id, stream)
                if any(fields is None for _, fields in entries):
                    self._ack_deleted(stream, start, {e for e, f in entries if f is not None})
                entries = [(e, f) for e, f in entries if f is not None]
                if entries:
                    counts = self._delivery_counts(stream, entries[0][0], entries[-1][0], self.consumer)
                    for entry_id, fields in entries:
                        self._process(stream, entry_id, fields, deliveries=counts.get(_s(entry_id), 1))
                        handled += 1
                if next_start in ("0-0", b"0-0"):
                    break
                start = next_start
        return handled

    def _with_pending(self, streams: list[str]) -> list[str]:
        """The streams whose group has pending entries at all, asked of all in one round trip (an
        idle bus looks at its 64 streams every `claim_every_ms`: one call, not 64)."""
        if len(streams) < 2:
            return streams
        pipe = self.client.pipeline(transaction=False)
        for stream in streams:
            pipe.xpending(stream, self.group)
        return [stream for stream, summary in zip(streams, pipe.execute(), strict=True) if summary["pending"]]

    def _ack_deleted(self, stream: str, start: str, present: set[str]) -> None:
        """Acknowledge claimed entries that were deleted while pending.

        Redis 7 drops them from the pending list itself and names them; Redis 6.2 answers a nil in
        their place (no id) and keeps them pending forever. Their ids come from a JUSTID claim of
        the same range (they are ours now, so nothing is taken from anyone)."""
        claimed = self.client.xautoclaim(stream, self.group, self.consumer, 0, start, count=self.batch, justid=True)
        for raw_id in claimed:
            entry_id = _s(raw_id)
            if entry_id not in present and not self.client.xrange(stream, entry_id, entry_id):
                log.warning("bus %s: pending entry %s was deleted from %s", self.role, entry_id, stream)
                self.client.xack(stream, self.group, entry_id)

    def _delivery_counts(self, stream: str, first: str, last: str, consumer: str) -> dict[str, int]:
        rows: Any = self.client.xpending_range(stream, self.group, min=first, max=last, count=self.batch * 2,
                                          consumername=consumer)
        return {_s(r["message_id"]): int(r["times_delivered"]) for r in rows}

    # ------------------------------------------------------------------ one entry

    def _process(self, stream: str, entry_id: str | bytes, fields: dict[Any, Any] | None, deliveries: int,
                 prepared: _Prepared | None = None) -> None:
        admitted = self._admit(stream, entry_id, fields, deliveries, prepared)
        if admitted is None:
            return
        error: Exception | None = None
        try:
            self.handler(admitted.delivery)
        except Exception as exc:  # noqa: BLE001 - judged by `_conclude`
            error = exc
        except BaseException:
            if admitted.suspect:
                self._clear_in_flight(admitted.delivery.stream, admitted.delivery.entry_id, False)
            raise
        self._conclude(admitted, error)

    def _admit(self, stream: str | bytes, entry_id: str | bytes, fields: dict[Any, Any] | None, deliveries: int,
               prepared: _Prepared | None = None) -> _Admitted | None:
        """Everything before the handler: decode, the delivery limit, the gate, the crash trace.
        None when the entry was dealt with here (acknowledged empty, or dead-lettered)."""
        self.last_loop = time.monotonic()
        entry_id = _s(entry_id)
        stream = _s(stream)
        self._dirty.add(stream)
        if not fields:
            self.client.xack(stream, self.group, entry_id)  # trimmed or deleted: nothing to apply
            return None
        if prepared is None:
            try:
                prepared = _Prepared(decode_entry(fields), None, _UNCHECKED)
            except Exception as exc:  # noqa: BLE001 - any entry, however malformed, is set aside
                prepared = _Prepared(None, exc, _UNCHECKED)
        envelope = prepared.envelope
        if envelope is None:
            self.dead_letter(stream, entry_id, fields, _error_text(prepared.error or ValueError()), deliveries, None)
            return None
        spend = self._is_spend(envelope)
        if deliveries > self.max_deliveries and not spend:
            # a spend is never set aside by count: its handler must first look it up at the venue
            self.dead_letter(stream, entry_id, fields,
                             f"delivered {deliveries} times without success (limit {self.max_deliveries})",
                             deliveries, envelope)
            return None
        authority = None
        if self.gate is not None:
            try:
                verified = self.gate.check(envelope, entry_id) if prepared.checked is _UNCHECKED else prepared.checked
                if isinstance(verified, Exception):
                    raise verified
            except Exception as exc:  # noqa: BLE001 - a command the gate cannot judge is refused
                if is_transient(exc):
                    raise
                self.dead_letter(stream, entry_id, fields, _error_text(exc), deliveries, envelope)
                return None
            authority = verified.scope if verified is not None else "internal"
        delivery = Delivery(stream, self.group, entry_id, envelope, deliveries, authority)
        suspect = deliveries > 1  # redelivered: it may be what killed the last worker
        if suspect:
            crashes = self._mark_in_flight(stream, entry_id)
            if crashes >= self.max_crashes:
                error = f"the worker died {crashes} times while handling this entry"
                if not spend:
                    self._clear_in_flight(stream, entry_id)
                    self.dead_letter(stream, entry_id, fields, error, deliveries, envelope)
                    return None
                self._park(stream, entry_id, envelope, error)  # and try it once more: it may hold money
        return _Admitted(delivery, fields, spend, suspect)

    def _conclude(self, admitted: _Admitted, error: Exception | None) -> None:
        """Everything after the handler: count it, or dead-letter, retry or park it by `error`; a
        transient Redis error is raised (the loop backs off; the entry stays pending)."""
        delivery, fields = admitted.delivery, admitted.fields
        stream, entry_id, envelope = delivery.stream, delivery.entry_id, delivery.envelope
        deliveries = delivery.deliveries
        resolved = False
        try:
            if error is None:
                self.processed += 1
                resolved = True
            elif isinstance(error, UnknownAgent):
                self.dead_letter(stream, entry_id, fields, str(error), deliveries, envelope, journal=False)
                resolved = True
            elif isinstance(error, HandlerRejected):
                self.dead_letter(stream, entry_id, fields, str(error), deliveries, envelope)
                resolved = True
            elif is_transient(error):
                raise error  # Redis's fault, not the entry's: the loop backs off and it is handled again later
            else:  # any failure is counted, retried, then dead-lettered
                self._failed(stream, entry_id, fields, deliveries, envelope, error, admitted.spend)
        finally:
            if admitted.suspect:
                self._clear_in_flight(stream, entry_id, resolved)

    def _process_in_waves(self, items: list[tuple[Any, Any, Any]], prepared: list[_Prepared | None]) -> None:
        """Hand a batch to `submit` (or `submit_wave`) a wave at a time: a wave holds entries of
        different agents, all handed over before any is waited for, so their handlers may run side
        by side (on actors that serve disjoint agents). The k-th wave of a run of the batch holds
        the k-th entry of each agent in it (`_waves`), so an agent's entries are handled one after
        the other, in stream order, exactly as without waves; an entry that names no agent is
        handled alone, after everything before it. Each entry is still acknowledged only by its
        handler's own commit; a wave's outcomes are concluded in order."""
        wave: list[tuple[_Admitted, Any]] = []
        try:
            for entries in _waves(items, prepared):
                self._conclude_wave(wave)
                wave = []
                for stream, entry_id, fields, ready in entries:
                    admitted = self._admit(stream, entry_id, fields, 1, ready)
                    if admitted is None:
                        continue
                    # with `submit_wave` the wave is handed over whole when it is complete (`_conclude_wave`)
                    wave.append((admitted, None if self.submit is None else self.submit(admitted.delivery)))
        finally:
            self._conclude_wave(wave)

    def _conclude_wave(self, wave: list[tuple[_Admitted, Any]]) -> None:
        """Hand the wave over whole if it was not yet (`submit_wave`), wait for every handler of it
        and conclude each, in order; the first error a conclusion raises (a transient Redis
        fault) is raised once all are concluded."""
        raised: Exception | None = None
        if self.submit_wave is not None and wave and wave[0][1] is None:
            futures = self.submit_wave([admitted.delivery for admitted, _ in wave])
            wave[:] = [(admitted, future) for (admitted, _), future in zip(wave, futures, strict=True)]
        for admitted, future in wave:
            error: Exception | None = None
            try:
                future.get(timeout=self.handler_timeout_s)
            except Exception as exc:  # noqa: BLE001 - judged by `_conclude`
                error = exc
            try:
                self._conclude(admitted, error)
            except Exception as exc:  # noqa: BLE001 - raised after the rest of the wave is concluded
                raised = raised or exc
        wave.clear()
        if raised is not None:
            raise raised

    def _failed(self, stream: str, entry_id: str, fields: dict[Any, Any], deliveries: int, envelope: Envelope,
                exc: Exception, spend: bool) -> None:
        """Count a handler failure; retry with backoff; past `max_deliveries` dead-letter it — or,
        for a spend, park it (still pending, retried every `park_retry_ms`, alerted past
        `park_alert_ms`), because its money may be at the venue or reserved."""
        error = f"{type(exc).__name__}: {exc}"
        pipe = self.client.pipeline(transaction=False)
        pipe.hincrby(self._failures_key(stream), entry_id, 1)
        pipe.hset(self._failures_key(stream), self._error_field(entry_id), one_line(error)[:500])
        failures = int(pipe.execute()[0])
        log.warning("bus %s: %s %s failed (%d/%d%s): %s", self.role, envelope.type, envelope.id,
                    failures, self.max_deliveries, ", parked" if spend and failures >= self.max_deliveries else "",
                    exc)
        if failures >= self.max_deliveries and not spend:
            self.dead_letter(stream, entry_id, fields, error, deliveries, envelope)
            return
        delay_ms = self.retry_backoff_ms * (2 ** min(failures - 1, 20))
        if spend and failures >= self.max_deliveries:
            self._park(stream, entry_id, envelope, error)
            delay_ms = min(delay_ms, self.park_retry_ms)
        self._retry_at = time.monotonic() + delay_ms / 1000

    # ------------------------------------------------------------------ spends whose outcome is unknown

    def _is_spend(self, envelope: Envelope) -> bool:
        return envelope.type in SPEND_COMMANDS or isinstance(envelope.body, RetrySpend)

    def _park(self, stream: str, entry_id: str, envelope: Envelope, error: str) -> None:
        """Keep a spend that keeps failing pending (never dead-lettered with its money in limbo),
        record it in `<shard>:parked:<role>` for `treasury status`, and raise one alert once it has
        been unresolved for `park_alert_ms`."""
        key = self.keys.parked(self.streams[stream], self.role)
        now = self.clock.now_ms()
        raw = self.client.hget(key, entry_id)
        record: dict[str, Any] = json.loads(raw) if raw else {"msg_id": envelope.id, "agent": envelope.agent,
                                               "type": envelope.type, "since_ms": now, "alerted": False}
        record["error"] = error[:500]
        if not record["alerted"] and now - int(record["since_ms"]) >= self.park_alert_ms:
            record["alerted"] = True
            alert = {"at_ms": now, "role": self.role, "worker": self.consumer, "halted": [],
                     "reason": f"{envelope.type} {envelope.id} of {envelope.agent}: outcome still unknown after "
                               f"{(now - int(record['since_ms'])) // 1000} s ({error[:200]}); its funds stay "
                               f"reserved and it is retried every {self.park_retry_ms // 1000} s"}
            self.client.xadd(self.keys.alerts(), {"alert": json.dumps(alert)}, maxlen=10_000,
                             approximate=True)
            log.error("ALERT %s", alert["reason"])
        self.client.hset(key, entry_id, json.dumps(record))

    # ------------------------------------------------------------------ crash tracing

    def _error_field(self, entry_id: str) -> str:
        return f"{entry_id}:error"

    def _crash_field(self, entry_id: str) -> str:
        return f"crash:{entry_id}"

    def _mark_in_flight(self, stream: str, entry_id: str) -> int:
        """Record that a redelivered entry is being handled; returns how many earlier attempts never
        finished (each one a worker that died holding it). Also names the entry under this consumer
        in `<prefix>:suspects`, so the supervisor can trace a crash loop to it."""
        pipe = self.client.pipeline(transaction=False)  # two slots in a Cluster: not one transaction
        pipe.hincrby(self._failures_key(stream), self._crash_field(entry_id), 1)
        pipe.hset(self.keys.suspects(), self.consumer, f"{stream} {entry_id}")
        attempts, _ = pipe.execute()
        return int(attempts) - 1

    def _clear_in_flight(self, stream: str, entry_id: str, resolved: bool = True) -> None:
        """The attempt finished (in any way but the process dying): it is no crash. `resolved`: the
        entry is done with (applied or set aside), so it is no longer parked either."""
        pipe = self.client.pipeline(transaction=False)
        if resolved:  # done with: nothing of it is kept (its failure count, last error, crash mark)
            pipe.hdel(self._failures_key(stream), entry_id, self._error_field(entry_id), self._crash_field(entry_id))
            pipe.hdel(self.keys.parked(self.streams[stream], self.role), entry_id)
        else:
            pipe.hincrby(self._failures_key(stream), self._crash_field(entry_id), -1)
        pipe.hdel(self.keys.suspects(), self.consumer)
        try:
            pipe.execute()
        except redis.RedisError as exc:
            log.warning("bus %s: could not clear the in-flight mark of %s: %s", self.role, entry_id, exc)

    def _failures_key(self, stream: str) -> str:
        return self.keys.failures(self.streams[stream], self.role)

    def dead_letter(self, stream: str, entry_id: str, fields: dict[Any, Any], error: str, deliveries: int,
                    envelope: Envelope | None, journal: bool = True) -> None:
        """Move an entry to the dead stream with its error, acknowledge it, and journal the refusal
        (unless `journal` is False: an unknown agent gets nothing written under its name).

        The dead entry, the acknowledgement and the clean-up are one MULTI in the stream's shard.
        The journal note joins it when the envelope's agent lives in that shard; an entry naming
        an agent of another shard (another slot on a Redis Cluster, where one MULTI may not span
        slots) gets its note written just after, so dead-lettering never fails for it: the dead
        entry (which holds the raw envelope and the error) is written first, and a note that
        cannot be written is logged, not retried into a second dead entry."""
        error = one_line(error)
        earlier = _s(self.client.hget(self._failures_key(stream), self._error_field(entry_id)) or b"")
        if earlier and earlier not in error:  # e.g. a signature that expired while a failing spend was retried
            error = f"{error} (after it failed: {earlier})"
        shard = self.streams[stream]
        raw = fields.get(FIELD) or fields.get(FIELD.decode()) or b""
        now = self.clock.now_ms()
        note: tuple[str, Envelope] | None = None
        if journal and envelope is not None and envelope.agent:
            rejected = wrap(CommandRefused(command=envelope.type, reason=error), agent=envelope.agent,
                            now_ms=now, new_id=self.new_id, cause=envelope)
            note = (self.keys.events(envelope.agent), rejected)
        pipe = self.client.pipeline(transaction=True)
        pipe.xadd(self.keys.dead(shard), {
            "stream": stream, "entry_id": entry_id, "role": self.role, "error": error,
            "deliveries": deliveries, "at_ms": now, "raw": raw,
            "agent": envelope.agent if envelope else "", "msg_id": envelope.id if envelope else "",
        }, maxlen=DEAD_MAXLEN, approximate=True)
        same_slot = note is not None and slot_of(note[0]) == slot_of(self.keys.dead(shard))
        if note is not None and same_slot:
            pipe.xadd(note[0], {FIELD: encode(note[1])})
        pipe.xack(stream, self.group, entry_id)
        pipe.hdel(self._failures_key(stream), entry_id, self._crash_field(entry_id), self._error_field(entry_id))
        pipe.hdel(self.keys.parked(shard, self.role), entry_id)
        pipe.execute()
        if note is not None and not same_slot:
            try:
                self.client.xadd(note[0], {FIELD: encode(note[1])})
            except redis.RedisError as exc:
                log.warning("bus %s: dead-lettered %s but could not journal the refusal for %s: %s",
                            self.role, entry_id, ascii(envelope.agent if envelope else ""), exc)
        self.dead_lettered += 1
        log.warning("bus %s: dead-lettered %s from %s: %s", self.role, entry_id, stream, error)

    def close(self) -> None:
        """Close both Redis connections."""
        self.client.close()
        self.reader.close()


def _waves(items: list[tuple[Any, Any, Any]], prepared: list[_Prepared | None]) -> list[list[tuple[Any, ...]]]:
    """A batch as waves of `(stream, entry_id, fields, prepared)`: cut at each entry that names no
    agent (not decoded, no fields: a wave of its own), each run between such cuts spread so that
    its k-th wave holds the k-th entry of every agent of the run, in stream order."""
    out: list[list[tuple[Any, ...]]] = []
    rounds: list[list[tuple[Any, ...]]] = []
    seen: dict[str, int] = {}
    for (stream, entry_id, fields), ready in zip(items, prepared, strict=True):
        agent = ready.envelope.agent if ready is not None and ready.envelope is not None else None
        if agent is None:
            out.extend(rounds)
            out.append([(stream, entry_id, fields, ready)])
            rounds, seen = [], {}
            continue
        k = seen.get(agent, 0)
        seen[agent] = k + 1
        if k == len(rounds):
            rounds.append([])
        rounds[k].append((stream, entry_id, fields, ready))
    out.extend(rounds)
    return out


def _error_text(exc: BaseException) -> str:
    text = str(exc) if isinstance(exc, TreasuryError) else f"{type(exc).__name__}: {exc}"
    return text[:1000]


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
        if item is None:  # an entry deleted while pending (Redis 6.2): no id in the reply
            entries.append(("", None))
            continue
        entry_id, flat = item[0], item[1]
        if flat is None:
            entries.append((_s(entry_id) if entry_id is not None else "", None))
            continue
        fields = {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)} if isinstance(flat, list) else flat
        entries.append((_s(entry_id), fields))
    deleted = [_s(x) for x in reply[2]] if len(reply) > 2 and reply[2] else []
    return next_start, entries, deleted
