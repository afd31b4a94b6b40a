"""Single-use nonces, so a signed command is applied at most once however often it is re-sent.

A signature is valid until its expiry; within that window anyone who saw the command on the
bus could publish it again. The verifier therefore claims the signature's nonce, atomically, as
its last check: the first claim wins, every later one is a replay. A nonce only needs to be
remembered until its command has expired (after that the expiry check refuses it anyway), so
every record carries a time to live and the store stays bounded by traffic times the longest
allowed signature lifetime.

`grace_ms` is added to that lifetime to cover clocks: the verifiers decide expiry with their own
clocks, which may lag each other, so a nonce is kept a little longer than its command lives.
The Redis store sets a relative TTL (PX), never an absolute time, so a Redis host whose clock
is ahead of the verifiers' cannot expire a nonce early.
"""

from __future__ import annotations

import heapq
import threading
from typing import TYPE_CHECKING, NamedTuple, Protocol, Sequence, runtime_checkable

from runtime.keys import DEFAULT_SHARDS, Keys

if TYPE_CHECKING:
    from redis import Redis

DEFAULT_GRACE_MS = 30_000


@runtime_checkable
class NonceStore(Protocol):
    def claim(self, key_id: str, nonce: str, expires_ms: int, now_ms: int, *, agent: str | None = None,
              holder: str | None = None) -> bool:
        """Record the nonce until `expires_ms` (plus grace); True the first time only, atomically.

        `holder` names the delivery that claims it (the stream entry id): the same holder claiming
        again is a redelivery of the same entry after a crash, not a replay, and is let through.

        `agent` is the command's agent: stores that partition by agent (Redis Cluster) use it to
        place the record; a replay always names the same agent, since the agent is signed.
        """
        ...


class NonceClaim(NamedTuple):
    """The arguments of one `NonceStore.claim`, for `claim_many`."""

    key_id: str
    nonce: str
    expires_ms: int
    now_ms: int
    agent: str | None = None
    holder: str | None = None


def claim_many(store: NonceStore, claims: Sequence[NonceClaim]) -> list[bool]:
    """`store.claim` for each of `claims`, in order (as if one after the other: of two claims of
    the same nonce by different holders only the first wins), in one round trip where the store
    can (`RedisNonceStore.claim_many`)."""
    many = getattr(store, "claim_many", None)
    if many is not None:
        return [bool(won) for won in many(claims)]
    return [store.claim(c.key_id, c.nonce, c.expires_ms, c.now_ms, agent=c.agent, holder=c.holder) for c in claims]


def _ttl_ms(expires_ms: int, now_ms: int, grace_ms: int) -> int:
    return max(expires_ms - now_ms, 0) + grace_ms + 1


class MemoryNonceStore:
    """Nonces in a dict, for unit tests and single-process tools. Thread-safe.

    Time is whatever `now_ms` the caller passes, so tests stay deterministic; expired records
    are dropped as later claims move time forward.
    """

    def __init__(self, *, grace_ms: int = DEFAULT_GRACE_MS) -> None:
        if grace_ms < 0:
            raise ValueError("grace_ms must not be negative")
        self._grace_ms = grace_ms
        self._until: dict[tuple[str, str], int] = {}
        self._holders: dict[tuple[str, str], str | None] = {}
        self._expiry_heap: list[tuple[int, tuple[str, str]]] = []
        self._lock = threading.Lock()

    def claim(self, key_id: str, nonce: str, expires_ms: int, now_ms: int, *, agent: str | None = None,
              holder: str | None = None) -> bool:
        entry = (key_id, nonce)
        with self._lock:
            self._forget_expired(now_ms)
            if entry in self._until:
                return holder is not None and self._holders.get(entry) == holder
            self._holders[entry] = holder
            until = now_ms + _ttl_ms(expires_ms, now_ms, self._grace_ms)
            self._until[entry] = until
            heapq.heappush(self._expiry_heap, (until, entry))
            return True

    def _forget_expired(self, now_ms: int) -> None:
        heap = self._expiry_heap
        while heap and heap[0][0] <= now_ms:
            until, entry = heapq.heappop(heap)
            if self._until.get(entry) == until:
                del self._until[entry]
                self._holders.pop(entry, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._until)


class RedisNonceStore:
    """Nonces in Redis: one key per nonce, `SET key 1 NX PX ttl`, which is atomic on its own.

    The key is `<prefix>:{S}:nonce:<key_id>:<nonce>`, where `S` is the shard of the command's
    agent, so the record lives in the same Redis Cluster slot as the agent's other keys and a
    future Lua step may claim the nonce together with the change it guards. Without an agent the
    key is `<prefix>:nonce:<key_id>:<nonce>`.
    """

    def __init__(
        self,
        redis: Redis,
        prefix: str = "tr",
        *,
        shards: int = DEFAULT_SHARDS,
        grace_ms: int = DEFAULT_GRACE_MS,
    ) -> None:
        if grace_ms < 0:
            raise ValueError("grace_ms must not be negative")
        if shards <= 0:
            raise ValueError("shard count must be positive")
        self._redis = redis
        self._prefix = prefix
        self._shards = shards
        self._grace_ms = grace_ms

    def key(self, key_id: str, nonce: str, agent: str | None = None) -> str:
        """The Redis key that records this nonce."""
        return Keys(self._prefix, self._shards).nonce(key_id, nonce, agent)

    def claim(self, key_id: str, nonce: str, expires_ms: int, now_ms: int, *, agent: str | None = None,
              holder: str | None = None) -> bool:
        """Redis errors propagate: an unreachable store must not count as a fresh nonce."""
        ttl = _ttl_ms(expires_ms, now_ms, self._grace_ms)
        key = self.key(key_id, nonce, agent)
        value = (holder or "1").encode()
        if self._redis.set(key, value, nx=True, px=ttl):
            return True
        return holder is not None and self._redis.get(key) == value

    def claim_many(self, claims: Sequence[NonceClaim]) -> list[bool]:
        """`claim` for each, in order, in one pipelined round trip (plus one more only when some
        nonce was taken already, to compare its holder). Each SET NX is atomic on its own and
        Redis runs them in order, so a nonce claimed twice in one batch goes to the first claim."""
        if not claims:
            return []
        pipe = self._redis.pipeline(transaction=False)
        values = []
        for c in claims:
            values.append((c.holder or "1").encode())
            pipe.set(self.key(c.key_id, c.nonce, c.agent), values[-1], nx=True,
                     px=_ttl_ms(c.expires_ms, c.now_ms, self._grace_ms))
        won = [bool(r) for r in pipe.execute()]
        taken = [i for i, ok in enumerate(won) if not ok and claims[i].holder is not None]
        if taken:
            pipe = self._redis.pipeline(transaction=False)
            for i in taken:
                pipe.get(self.key(claims[i].key_id, claims[i].nonce, claims[i].agent))
            for i, held in zip(taken, pipe.execute(), strict=True):
                won[i] = held == values[i]
        return won
