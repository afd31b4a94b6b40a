"""What a Redis error means for a long-running loop: ride it out, repair, or stop.

`classify(exc)` sorts every `redis.RedisError` into one of three kinds:

- `Fault.TRANSIENT`: the server is away or busy for a while — connection refused or reset,
  socket timeout (a stall longer than the socket timeout: failover, slow disk), `LOADING` after a
  restart, `READONLY` during a failover, `BUSY` (a long script), `MASTERDOWN`, `TRYAGAIN`,
  `CLUSTERDOWN`, `NOREPLICAS`, out of memory, too many clients. Retry with `Backoff`.
- `Fault.REPAIR`: something the loop created is gone — `NOGROUP` (stream or group deleted), or on
  Redis 7 `UNBLOCKED the stream key no longer exists` (deleted under a blocked read). Create the
  stream and group again (XGROUP CREATE ... MKSTREAM) and carry on.
- `Fault.FATAL`: retrying cannot help — wrong password or user, missing ACL permission, a key of
  the wrong type, an unknown command. The caller exits so an operator sees it.

Any other server error is taken as transient (logged): a worker that keeps its heartbeat and
retries is easier to watch than one that dies and is restarted in a loop.
"""

from __future__ import annotations

import enum
import random

import redis
from redis import exceptions as rex


class Fault(enum.Enum):
    TRANSIENT = "unavailable"
    REPAIR = "lost a stream or group"
    FATAL = "configuration error"


_FATAL_TYPES = (rex.AuthenticationError, rex.AuthorizationError, rex.NoPermissionError)
_FATAL_PREFIXES = ("NOAUTH", "WRONGPASS", "NOPERM", "WRONGTYPE", "ERR unknown command", "ERR unknown subcommand",
                   "ERR AUTH", "ERR Client sent AUTH")
_REPAIR_PREFIXES = ("NOGROUP", "UNBLOCKED")


def classify(exc: BaseException) -> Fault:
    """Sort a Redis error (see the module text). A non-Redis exception is FATAL: not ours to hide."""
    if not isinstance(exc, redis.RedisError):
        return Fault.FATAL
    if isinstance(exc, _FATAL_TYPES):
        return Fault.FATAL
    text = str(exc)
    if text.startswith(_FATAL_PREFIXES):
        return Fault.FATAL
    if text.startswith(_REPAIR_PREFIXES):
        return Fault.REPAIR
    return Fault.TRANSIENT


def is_transient(exc: BaseException) -> bool:
    """A Redis error worth retrying later (TRANSIENT or REPAIR), as opposed to a bad entry or config.

    Only connection-level errors and the server's known busy/away replies count: a script error or
    any other reply to one entry's commit is that entry's failure, not Redis's.
    """
    if not isinstance(exc, redis.RedisError) or classify(exc) is Fault.FATAL:
        return False
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError, rex.ReadOnlyError, rex.BusyLoadingError,
                        rex.ClusterDownError, rex.TryAgainError, rex.MasterDownError, rex.OutOfMemoryError)):
        return True
    text = str(exc)
    return text.startswith(_REPAIR_PREFIXES + ("BUSY", "LOADING", "READONLY", "MASTERDOWN", "TRYAGAIN",
                                               "CLUSTERDOWN", "NOREPLICAS", "OOM"))


class Backoff:
    """Exponential backoff with jitter: `first_s`, doubling up to `max_s`; `reset()` after a success.

    The jitter (±20 %) keeps many workers from hammering a Redis that just came back in lockstep;
    pass `rng` (a seeded `random.Random`) for reproducible delays.
    """

    def __init__(self, first_s: float = 0.1, max_s: float = 5.0, rng: random.Random | None = None):
        self.first_s, self.max_s = first_s, max_s
        self.rng = rng or random.Random()
        self.attempts = 0

    def next(self) -> float:
        delay = min(self.max_s, self.first_s * 2 ** self.attempts)
        self.attempts += 1
        return float(delay * self.rng.uniform(0.8, 1.2))

    def reset(self) -> None:
        self.attempts = 0
