"""Command packing without redis-py's per-argument encoder.

redis-py encodes every argument in Python (`Encoder.encode`: a chain of `isinstance` checks per
argument) before handing the tuple to hiredis, which can take `bytes`, `str`, `int` and `float`
itself. A bet's fence and settle scripts carry some 45 arguments, so that loop was a fifth of the
casino worker's CPU (`bench/profile_bets.py`). `FastPacker` hands the arguments to
`hiredis.pack_command` as they are and falls back to redis-py's own packer for anything hiredis
refuses (a `bool`, `None`, a `memoryview`: redis-py then raises its usual `DataError`) and for a
command name with a space in it (`"CLIENT SETNAME"`), which redis-py splits.

The bytes sent are the same: hiredis writes `str` as UTF-8 (the clients' encoding), `int` in
decimal and `float` as `repr` does, as redis-py's encoder does.
"""

from __future__ import annotations

from typing import Any

import hiredis
import redis


class FastPacker:
    """A redis-py command packer (`Connection._command_packer`): `pack(*args) -> [bytes]`."""

    __slots__ = ("_fallback",)

    def __init__(self, fallback: Any):
        self._fallback = fallback

    def pack(self, *args: Any) -> list[Any]:
        first = args[0]
        if (type(first) is str and " " in first) or (type(first) is bytes and b" " in first):
            return self._fallback.pack(*args)  # type: ignore[no-any-return]
        try:
            return [hiredis.pack_command(args)]
        except TypeError:
            return self._fallback.pack(*args)  # type: ignore[no-any-return]


class _FastPacking:
    def _construct_command_packer(self, packer: Any) -> Any:
        own = super()._construct_command_packer(packer)  # type: ignore[misc]
        return own if packer is not None else FastPacker(own)


class FastConnection(_FastPacking, redis.Connection):
    """`redis.Connection` packing with `FastPacker`."""


class FastSSLConnection(_FastPacking, redis.SSLConnection):
    """`redis.SSLConnection` packing with `FastPacker`."""


class FastUnixConnection(_FastPacking, redis.UnixDomainSocketConnection):
    """`redis.UnixDomainSocketConnection` packing with `FastPacker`."""


CONNECTION_FOR_SCHEME = {"redis": FastConnection, "rediss": FastSSLConnection, "unix": FastUnixConnection}
"""The connection class for a URL scheme (`redis+cluster` maps to its node scheme first)."""
