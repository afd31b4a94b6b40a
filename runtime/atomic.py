"""The treasury's atomic steps on Redis: commit (effects + journal + ack, exactly once) and the fence.

Both are Lua scripts, so each step is all-or-nothing and serialised with every other step on the
same keys. All keys one step touches belong to one agent's shard (one cluster slot).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import msgspec
import redis

from messages.codec import FIELD, encode
from messages.envelope import Envelope
from runtime.keys import Keys

APPLIED_RETENTION_MS = 3_600_000
"""How long a message id is remembered for de-duplication: as long as a duplicate can still come.

Bounded by what redelivery can still bring, not by days. The stream entry itself can never come
back once committed (commit.lua acknowledges it in the same step that records its id, and the
bus then trims it). A duplicate is therefore a new entry carrying the same id: a signed command
sent again (its nonce is claimed, and refused once expired: at most MAX_TTL_MS + grace, 5.5 min),
or a tick published twice by two schedulers in the same instant (ids name the period). One hour
covers both with a wide margin for clocks; memory per agent is its commands of the last hour."""

JOURNAL_MAXLEN = 0
"""The journal is the audit trail: never trimmed by default."""


def _script(name: str) -> str:
    return resources.files("runtime").joinpath("lua", name).read_text()


@dataclass
class Commit:
    """A list of effects to apply atomically for one message, built in Python, run by commit.lua."""

    applied_key: str
    keys: list[str] = field(default_factory=list)
    ops: list[list[Any]] = field(default_factory=list)
    payloads: list[bytes] = field(default_factory=list)

    def _index(self, key: str) -> int:
        if key not in self.keys:
            self.keys.append(key)
        return self.keys.index(key) + 2  # KEYS[1] is the applied set; Lua is 1-based

    def clear(self) -> "Commit":
        """Drop every effect added so far (a decision that turned out to change nothing)."""
        self.keys.clear()
        self.ops.clear()
        self.payloads.clear()
        return self

    def ack(self, stream: str, group: str, entry_id: str) -> "Commit":
        self.ops.append(["xack", self._index(stream), group, entry_id])
        return self

    def require(self, key: str, fld: str, minimum: int) -> "Commit":
        self.ops.append(["check", self._index(key), fld, str(minimum)])
        return self

    def incr(self, key: str, fld: str, delta: int, minimum: int = 0) -> "Commit":
        self.ops.append(["hincrby", self._index(key), fld, str(delta), str(minimum)])
        return self

    def hset(self, key: str, fld: str, value: str | int) -> "Commit":
        self.ops.append(["hset", self._index(key), fld, str(value)])
        return self

    def hdel(self, key: str, fld: str) -> "Commit":
        self.ops.append(["hdel", self._index(key), fld])
        return self

    def next_seq(self, key: str, fld: str = "fence_seq") -> "Commit":
        """Take the next fence sequence number; every later `emit` in this commit carries it."""
        self.ops.append(["seq", self._index(key), fld])
        return self

    def emit(self, stream: str, envelope: Envelope, maxlen: int = JOURNAL_MAXLEN) -> "Commit":
        self.payloads.append(encode(envelope))
        argv_index = 4 + len(self.payloads)  # ARGV[1..4] are fixed; payloads follow
        self.ops.append(["xadd", self._index(stream), maxlen, FIELD.decode(), argv_index])
        return self


@dataclass(frozen=True)
class CommitResult:
    status: str  # "ok" | "duplicate" | "refused"
    seq: int = 0
    reason: str = ""

    @property
    def applied(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class Reservation:
    status: str
    seq: int
    detail: str

    @property
    def granted(self) -> bool:
        return self.status in ("ok", "already_reserved")


class AtomicSteps:
    """Loads the scripts once per client and runs them."""

    def __init__(self, client: redis.Redis, keys: Keys):
        self.client = client
        self.keys = keys
        self._commit = client.register_script(_script("commit.lua"))
        self._reserve = client.register_script(_script("reserve.lua"))

    def new_commit(self, agent: str) -> Commit:
        return Commit(applied_key=self.keys.applied(agent))

    def commit(self, commit: Commit, msg_id: str, now_ms: int) -> CommitResult:
        """Apply `commit` once for `msg_id`; returns ok (with the fence seq taken), duplicate or refused.

        A commit that only acknowledges (a tick that found nothing to do, a duplicate) writes
        nothing else: its entry is acknowledged and the id is not remembered, since doing nothing
        again is harmless. So an idle agent's ticks leave no trace in Redis.
        """
        if commit.ops and all(op[0] == "xack" for op in commit.ops) and not commit.payloads:
            pipe = self.client.pipeline(transaction=False)
            for _, index, group, entry_id in commit.ops:
                pipe.xack(commit.keys[index - 2], group, entry_id)
            pipe.execute()
            return CommitResult("ok", 0)
        ops = msgspec.msgpack.encode(commit.ops)
        result = self._commit(keys=[commit.applied_key, *commit.keys], args=[msg_id, now_ms, ops, APPLIED_RETENTION_MS, *commit.payloads])
        status = _text(result[0])
        if status == "refused":
            return CommitResult("refused", 0, _text(result[1]))
        return CommitResult(status, int(result[1]))

    def reserve(self, agent: str, msg_id: str, bucket: str, amount: int, cap: int, now_ms: int) -> Reservation:
        k = self.keys
        result = self._reserve(
            keys=[k.risk(agent), k.ledger(agent), k.reservations(agent), k.applied(agent)],
            args=[msg_id, bucket, amount, cap, now_ms],
        )
        return Reservation(_text(result[0]), int(result[1]), _text(result[2]))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
