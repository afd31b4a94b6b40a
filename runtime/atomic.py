"""The treasury's atomic steps on Redis: commit (effects + journal + ack, exactly once) and the fence.

Both are Lua scripts, so each step is all-or-nothing and serialised with every other step on the
same keys. All keys one step touches belong to one agent's shard (one cluster slot).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from importlib import resources
from typing import Any, Sequence

import msgspec
import redis

from messages.codec import FIELD, encode
from messages.envelope import Envelope
from messages.money import format_usd
from runtime.keys import Keys

APPLIED_RETENTION_MS = 3_600_000
"""How long a message id is remembered for de-duplication: as long as a duplicate can still come.

Bounded by what redelivery can still bring, not by days. The stream entry itself can never come
back once committed (commit.lua acknowledges it in the same step that records its id, and the
bus then trims it). A duplicate is therefore a new entry carrying the same id: a signed command
sent again (its nonce is claimed, and refused once expired: at most MAX_TTL_MS + grace, 5.5 min),
or a tick published twice by two schedulers in the same instant (ids name the period). One hour
covers both with a wide margin for clocks; memory per agent is its commands of the last hour."""

MARK_MAX_AGE_MS = 60_000
"""The fence's limit on the age of open positions' mark (as `actors.trading.marks.MARK_MAX_AGE_MS`;
runtime may not import actors)."""

JOURNAL_MAXLEN = 0
"""The journal is the audit trail: never trimmed by default."""


def _script(name: str) -> str:
    return resources.files("runtime").joinpath("lua", name).read_text()


@dataclass
class Commit:
    """A list of effects to apply atomically for one message, built in Python, run by commit.lua.

    Build it with `AtomicSteps.new_commit(agent)`; every key must be in that agent's shard. The
    builder methods return the commit, so calls chain. Money deltas are integer micro-USD. Nothing
    happens until `AtomicSteps.commit` runs it: then all of it, or (a failed `require`/minimum)
    none of it.
    """

    applied_key: str
    agent: str = ""
    """Whose commit this is; a commit that touches this agent's ledger adds a value-series point."""
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
        """XACK the stream entry that carried the message, in the same step as its effects."""
        self.ops.append(["xack", self._index(stream), group, entry_id])
        return self

    def require(self, key: str, fld: str, minimum: int) -> "Commit":
        """Refuse the whole commit unless hash field `fld` of `key` is at least `minimum` (a token the
        decision relied on has not moved)."""
        self.ops.append(["check", self._index(key), fld, str(minimum)])
        return self

    def incr(self, key: str, fld: str, delta: int, minimum: int = 0) -> "Commit":
        """HINCRBY `delta` (micro-USD for money); the commit is refused if the result would fall
        below `minimum` (0 by default: no balance goes negative)."""
        self.ops.append(["hincrby", self._index(key), fld, str(delta), str(minimum)])
        return self

    def hset(self, key: str, fld: str, value: str | int) -> "Commit":
        """HSET one field."""
        self.ops.append(["hset", self._index(key), fld, str(value)])
        return self

    def hdel(self, key: str, fld: str) -> "Commit":
        """HDEL one field (a settled reservation, a finished plan)."""
        self.ops.append(["hdel", self._index(key), fld])
        return self

    def next_seq(self, key: str, fld: str = "fence_seq") -> "Commit":
        """Take the next fence sequence number; every later `emit` in this commit carries it."""
        self.ops.append(["seq", self._index(key), fld])
        return self

    def emit(self, stream: str, envelope: Envelope, maxlen: int = JOURNAL_MAXLEN) -> "Commit":
        """XADD the encoded envelope (field `m`) to `stream`: the journal, another role's command
        stream, the control stream. `maxlen` 0 keeps every entry."""
        self.payloads.append(encode(envelope))
        argv_index = 4 + len(self.payloads)  # ARGV[1..4] are fixed; payloads follow
        self.ops.append(["xadd", self._index(stream), maxlen, FIELD.decode(), argv_index])
        return self


@dataclass(frozen=True)
class CommitResult:
    """What `AtomicSteps.commit` did: `ok` (applied; `seq` is the fence sequence taken by a
    `next_seq`, else 0), `duplicate` (this message id was applied before: nothing changed) or
    `refused` (a `require` or a minimum failed: nothing changed; `reason` says which)."""

    status: str  # "ok" | "duplicate" | "refused"
    seq: int = 0
    reason: str = ""

    @property
    def applied(self) -> bool:
        """True when this call changed something."""
        return self.status == "ok"


class FenceStatus(StrEnum):
    """What the fence (reserve.lua) answered. A `StrEnum`: each member equals its wire text."""

    OK = "ok"
    """Reserved now; `seq` is the fence sequence number taken."""
    ALREADY_RESERVED = "already_reserved"
    """Reserved by an earlier delivery of the same message (a redelivery): `record` says what."""
    DUPLICATE = "duplicate"
    """The message was applied already (its commit ran): nothing to do but ack."""
    UNKNOWN_AGENT = "unknown_agent"
    """No risk state for the agent: refused (fail closed)."""
    HALTED = "halted"
    """The treasury is HALTED; `detail` is the reason recorded with the state."""
    PAUSED = "paused"
    """The treasury is PAUSED (and the pause has not ended); `detail` is the reason."""
    UNKNOWN_STATE = "unknown_state"
    """The risk state is none of ACTIVE/PAUSED/HALTED; `detail` is what was read."""
    BUCKET_HALTED = "bucket_halted"
    """This bucket's spending is halted (`halt:<bucket>`); `detail` is the reason."""
    MARKS_STALE = "marks_stale"
    """Positions are open and their mark is older than `MARK_MAX_AGE_MS`: their value is unknown, so
    no new spend (fail closed); `detail` says how old."""
    UNKNOWN_BUCKET = "unknown_bucket"
    """The ledger has no such bucket for the agent: refused (fail closed)."""
    INVALID_AMOUNT = "invalid_amount"
    """The amount was not positive; `detail` is the amount."""
    OVER_CAP = "over_cap"
    """The amount is above the cap passed in; `detail` is the cap in micro-USD."""
    INSUFFICIENT = "insufficient"
    """The amount is above the bucket's available balance; `detail` is that balance in micro-USD."""


@dataclass(frozen=True)
class ReservationRecord:
    """One entry of the reservations hash (`<prefix>:{S}:resv:<agent>`, field = message id), stored
    by reserve.lua as `bucket|amount|seq|at_ms`: micro-USD held out of `bucket` since `at_ms`."""

    bucket: str
    amount: int
    seq: int
    at_ms: int

    @classmethod
    def parse(cls, text: str) -> ReservationRecord:
        """Read `bucket|amount|seq|at_ms`; raises `ValueError` on anything else."""
        bucket, amount, seq, at_ms = text.split("|")
        return cls(bucket, int(amount), int(seq), int(at_ms))


@dataclass(frozen=True)
class Reservation:
    """The fence's answer to `AtomicSteps.reserve`.

    `status` says what happened; `seq` is the fence sequence number (0 when refused); `detail`
    is the fence's raw detail text (see `FenceStatus`); `record` is the stored reservation, parsed
    once, when the status is `ALREADY_RESERVED`.
    """

    status: FenceStatus
    seq: int
    detail: str
    record: ReservationRecord | None = None

    @property
    def granted(self) -> bool:
        """True when the funds are held for this message (now or by an earlier delivery)."""
        return self.status in (FenceStatus.OK, FenceStatus.ALREADY_RESERVED)

    def denial(self, bucket: str, amount: int, *, what: str = "the spend", cap_name: str = "cap",
               fail_closed: str = "refusing (fail closed)") -> str:
        """One sentence saying why the fence refused `amount` micro-USD out of `bucket`, quoting what
        the fence read: `what` names the spend ("the stake", "the move"), `cap_name` the cap it
        was held to ("2 % bet cap"). Money is shown in dollars (`$1.50`)."""
        status, detail = self.status, self.detail
        if status in (FenceStatus.PAUSED, FenceStatus.HALTED):
            return f"treasury is {status.value.upper()}: {detail}"
        if status == FenceStatus.BUCKET_HALTED:
            return f"{bucket} spending halted: {detail}"
        if status == FenceStatus.MARKS_STALE:
            return detail
        if status == FenceStatus.OVER_CAP and detail.lstrip("-").isdigit():
            return f"{what} {format_usd(amount)} exceeds the {cap_name} of {format_usd(int(detail))}"
        if status == FenceStatus.INSUFFICIENT and detail.lstrip("-").isdigit():
            return f"{bucket} has {format_usd(int(detail))} available, {what} needs {format_usd(amount)}"
        if status == FenceStatus.INVALID_AMOUNT:
            return f"{what} of {detail} micro-USD is not a positive amount"
        if status == FenceStatus.UNKNOWN_AGENT:
            return f"no risk state for this agent: {fail_closed}"
        if status == FenceStatus.UNKNOWN_BUCKET:
            return f"no {bucket} bucket for this agent: {fail_closed}"
        if status == FenceStatus.UNKNOWN_STATE:
            return f"unreadable risk state {detail!r}: {fail_closed}"
        return f"{status.value}: {detail}"


class AtomicSteps:
    """The two atomic steps, commit and fence, on one Redis client (scripts loaded once).

    `client` is a redis-py client (bytes replies); `keys` names the deployment's keys. Redis
    errors (connection, script) propagate: the bus then retries the delivery.
    """

    def __init__(self, client: redis.Redis, keys: Keys):
        self.client = client
        self.keys = keys
        self._commit = client.register_script(_script("commit.lua"))
        self._reserve = client.register_script(_script("reserve.lua"))

    def new_commit(self, agent: str) -> Commit:
        """An empty commit for one of `agent`'s messages (de-duplicated in its applied set)."""
        return Commit(applied_key=self.keys.applied(agent), agent=agent)

    def commit_many(self, items: Sequence[tuple[Commit, str, int]]) -> list[CommitResult | Exception]:
        """`commit` of each `(commit, msg_id, now_ms)`, sent in one pipelined round trip (not a
        transaction): each commit stays its own atomic step (commit.lua), applied or not on its
        own, exactly as if sent alone; the answer is each one's `CommitResult`, or the Redis error
        that one call raised. A connection error raises (which of the calls ran is then unknown,
        as with one lost reply: each is applied at most once, and an entry is acknowledged only by
        its own commit)."""
        calls: list[tuple[Any, ...]] = []
        shapes: list[int] = []  # per item: how many pipeline replies it takes (XACKs), or -1 for a script call
        for commit, msg_id, now_ms in items:
            call = self._commit_call(commit, msg_id, now_ms)
            if call is None:
                for _, index, group, entry_id in commit.ops:
                    calls.append(("XACK", commit.keys[index - 2], group, entry_id))
                shapes.append(len(commit.ops))
            else:
                calls.append(("EVALSHA", self._commit.sha, *call))
                shapes.append(-1)
        replies = self._run(calls, self._commit)
        out: list[CommitResult | Exception] = []
        at = 0
        for shape in shapes:
            if shape < 0:
                reply = replies[at]
                at += 1
                out.append(reply if isinstance(reply, Exception) else _commit_result(reply))
                continue
            errors = [r for r in replies[at:at + shape] if isinstance(r, Exception)]
            at += shape
            out.append(errors[0] if errors else CommitResult("ok", 0))
        return out

    def reserve_many(self, requests: Sequence[tuple[str, str, str, int, int, int]]) -> list[Reservation | Exception]:
        """`reserve` of each `(agent, msg_id, bucket, amount, cap, now_ms)`, in one pipelined round
        trip (not a transaction): each call is the fence on its own, atomic on its own agent's
        keys; the answer is each one's `Reservation`, or the Redis error that call raised. A
        connection error raises (some of the calls may have run: a reservation then found by a
        redelivery proves nothing was placed, as with one lost reply)."""
        calls = [("EVALSHA", self._reserve.sha, 5, *self._reserve_keys(agent), msg_id, bucket, amount, cap, now_ms,
                  MARK_MAX_AGE_MS) for agent, msg_id, bucket, amount, cap, now_ms in requests]
        return [r if isinstance(r, Exception) else _reservation(r) for r in self._run(calls, self._reserve)]

    def _run(self, calls: list[tuple[Any, ...]], script: Any) -> list[Any]:
        """Send `calls` (commands, among them EVALSHA calls of `script`) in one pipeline (not a
        transaction), their replies in order, an error in place of a reply; a NOSCRIPT (the
        script cache was flushed, or a cluster node has not seen it yet) is answered by loading
        the script and sending the calls that got it once more (a call refused with NOSCRIPT did
        not run). A connection error or timeout raises."""
        pipe: Any = self.client.pipeline(transaction=False)  # its execute_command is untyped in redis-py
        for call in calls:
            pipe.execute_command(*call)
        replies = list(pipe.execute(raise_on_error=False))
        missing = [i for i, r in enumerate(replies) if isinstance(r, redis.exceptions.NoScriptError)]
        if missing:
            self.client.script_load(script.script)
            again: Any = self.client.pipeline(transaction=False)
            for i in missing:
                again.execute_command(*calls[i])
            for i, reply in zip(missing, again.execute(raise_on_error=False), strict=True):
                replies[i] = reply
        for reply in replies:
            if isinstance(reply, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)):
                raise reply
        return replies

    def _commit_call(self, commit: Commit, msg_id: str, now_ms: int) -> list[Any] | None:
        """EVALSHA's arguments after the sha for `commit`, or None for a commit that only acknowledges."""
        if commit.ops and all(op[0] == "xack" for op in commit.ops) and not commit.payloads:
            return None
        if commit.agent and self.keys.ledger(commit.agent) in commit.keys \
                and not any(op[0] == "vpoint" for op in commit.ops):
            k = self.keys  # a commit that touches the ledger adds a point to the value series (`Keys.values`)
            commit.ops.append(["vpoint", commit._index(k.ledger(commit.agent)), commit._index(k.flows(commit.agent)),
                               commit._index(k.values(commit.agent))])
        ops = msgspec.msgpack.encode(commit.ops)
        return [1 + len(commit.keys), commit.applied_key, *commit.keys,
                msg_id, now_ms, ops, APPLIED_RETENTION_MS, *commit.payloads]

    def _reserve_keys(self, agent: str) -> list[str]:
        k = self.keys
        return [k.risk(agent), k.ledger(agent), k.reservations(agent), k.applied(agent), k.marks(agent)]

    def commit(self, commit: Commit, msg_id: str, now_ms: int) -> CommitResult:
        """Apply `commit` for message `msg_id` at most once (commit.lua): every effect, event and ack,
        or none. `now_ms` (epoch ms) stamps the applied record, kept `APPLIED_RETENTION_MS`.

        A commit that only acknowledges (a tick that found nothing to do, a duplicate) writes
        nothing else: its entry is acknowledged and the id is not remembered, since doing nothing
        again is harmless. So an idle agent's ticks leave no trace in Redis.
        """
        call = self._commit_call(commit, msg_id, now_ms)
        if call is None:
            pipe = self.client.pipeline(transaction=False)
            for _, index, group, entry_id in commit.ops:
                pipe.xack(commit.keys[index - 2], group, entry_id)
            pipe.execute()
            return CommitResult("ok", 0)
        result = self._commit(keys=call[1:1 + call[0]], args=call[1 + call[0]:])
        return _commit_result(result)

    def reserve(self, agent: str, msg_id: str, bucket: str, amount: int, cap: int, now_ms: int) -> Reservation:
        """The fence: hold `amount` micro-USD of `bucket` for message `msg_id`, or say why not.

        Atomic with every other step on the agent's keys (reserve.lua): refused once PAUSED or
        HALTED is committed, when the bucket's spending is halted, while positions are open and
        their mark is older than `MARK_MAX_AGE_MS` (`marks_stale`: their value is unknown), above
        `cap` (micro-USD), or above the bucket's available balance; the same message id is reserved
        at most once. Fails closed for an agent with no risk state or no such bucket. Raises only on
        Redis errors.
        """
        k = self.keys
        result = self._reserve(
            keys=[k.risk(agent), k.ledger(agent), k.reservations(agent), k.applied(agent), k.marks(agent)],
            args=[msg_id, bucket, amount, cap, now_ms, MARK_MAX_AGE_MS],
        )
        return _reservation(result)


def _commit_result(result: Any) -> CommitResult:
    status = _text(result[0])
    if status == "refused":
        return CommitResult("refused", 0, _text(result[1]))
    return CommitResult(status, int(result[1]))


def _reservation(result: Any) -> Reservation:
    status, detail = FenceStatus(_text(result[0])), _text(result[2])
    record = ReservationRecord.parse(detail) if status == FenceStatus.ALREADY_RESERVED else None
    return Reservation(status, int(result[1]), detail, record)


def reserved_at(client: redis.Redis, keys: Keys, agent: str, msg_id: str) -> int | None:
    """When the fence reserved funds for this message (clock ms), or None if nothing is reserved.

    A reservation is only ever made for a command the gate accepted, so this is also proof that
    the command was verified, and when: the gate judges a redelivered spend as of that time.
    """
    return _reserved_time(client.hget(keys.reservations(agent), msg_id))


def reserved_at_many(client: redis.Redis, keys: Keys, commands: Sequence[Envelope]) -> list[int | None]:
    """`reserved_at` of each command (its `agent` and `id`), in one pipelined round trip."""
    pipe = client.pipeline(transaction=False)
    for env in commands:
        pipe.hget(keys.reservations(env.agent), env.id)
    return [_reserved_time(held) for held in pipe.execute()]


def _reserved_time(held: bytes | str | None) -> int | None:
    if held is None:
        return None
    parts = _text(held).split("|")
    try:
        return int(parts[3])
    except (IndexError, ValueError):
        return None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
