"""How the bus reads a Redis error: ride it out, repair, or stop (issue 9, case 5)."""

from __future__ import annotations

import random

import pytest
import redis
from redis import exceptions as rex

from runtime.redis_faults import Backoff, Fault, classify, is_transient


@pytest.mark.parametrize("exc, fault", [
    (redis.TimeoutError("Timeout reading from socket"), Fault.TRANSIENT),
    (redis.ConnectionError("Connection reset by peer"), Fault.TRANSIENT),
    (rex.BusyLoadingError("LOADING Redis is loading the dataset in memory"), Fault.TRANSIENT),
    (rex.ReadOnlyError("You can't write against a read only replica."), Fault.TRANSIENT),
    (redis.ResponseError("BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."),
     Fault.TRANSIENT),
    (rex.MasterDownError("MASTERDOWN Link with MASTER is down"), Fault.TRANSIENT),
    (rex.OutOfMemoryError("OOM command not allowed when used memory > 'maxmemory'."), Fault.TRANSIENT),
    (redis.ResponseError("NOGROUP No such key 'x' or consumer group 'g' in XREADGROUP with GROUP option"),
     Fault.REPAIR),
    (redis.ResponseError("UNBLOCKED the stream key no longer exists"), Fault.REPAIR),
    (rex.AuthenticationError("invalid username-password pair or user is disabled."), Fault.FATAL),
    (rex.NoPermissionError("NOPERM this user has no permissions to run the 'xreadgroup' command"), Fault.FATAL),
    (redis.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"), Fault.FATAL),
    (redis.ResponseError("ERR unknown command 'XAUTOCLAIM'"), Fault.FATAL),
    (ValueError("not Redis"), Fault.FATAL),
])
def test_every_redis_error_has_one_reading(exc, fault):
    assert classify(exc) is fault


def test_a_script_error_is_the_entry_s_failure_not_redis_s():
    assert not is_transient(redis.ResponseError("ERR Error running script (call to f_x): @user_script:3: bad"))
    assert is_transient(redis.TimeoutError("x")) and is_transient(redis.ResponseError("NOGROUP x"))
    assert not is_transient(rex.AuthenticationError("WRONGPASS"))


def test_backoff_doubles_to_its_ceiling_with_bounded_jitter_and_resets():
    backoff = Backoff(first_s=0.1, max_s=1.0, rng=random.Random(3))
    delays = [backoff.next() for _ in range(6)]
    for delay, base in zip(delays, [0.1, 0.2, 0.4, 0.8, 1.0, 1.0], strict=True):
        assert 0.8 * base <= delay <= 1.2 * base
    backoff.reset()
    assert backoff.next() <= 0.12
