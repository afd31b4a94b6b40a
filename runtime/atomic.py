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

APPLIED_RETENTION_MS = 7 * 24 * 3600 * 1000
"""How long a message id is remembered for de-duplication (longer than any redelivery)."""

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
        ops = msgspec.msgpack.encode(commit.ops)
        result = self._commit(
            keys=[commit.applied_key, *commit.keys], args=[msg_id, now_ms, ops, APPLIED_RETENTION_MS, *commit.payloads]
        )
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
