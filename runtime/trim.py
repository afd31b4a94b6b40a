"""Trimming command streams once every consumer group has acknowledged their entries.

A command stream is a queue, not a record: the journal (events stream) keeps what happened.
Once every group reading a stream has acknowledged an entry, nothing can deliver it again, so
it is removed (XTRIM MINID at the lowest position any group still needs; runtime/lua/trim.lua).
Pending entries and entries not yet delivered are always kept, so a crashed consumer's work is
never lost to a trim.
"""

from __future__ import annotations

from importlib import resources
from typing import Iterable

import redis

from runtime.redis_client import is_cluster


def _script() -> str:
    return resources.files("runtime").joinpath("lua", "trim.lua").read_text()


class StreamTrimmer:
    """Trims acknowledged entries off command streams; one script call per stream, pipelined."""

    def __init__(self, client: redis.Redis):
        self.client = client
        self._trim = client.register_script(_script())
        self.removed = 0

    def trim(self, streams: Iterable[str]) -> int:
        """Trim each stream to what its groups still need; returns how many entries were removed.

        Errors: redis.RedisError from the server (the caller retries at its next trim).
        """
        streams = list(streams)
        if not streams:
            return 0
        if len(streams) == 1 or is_cluster(self.client):
            # a cluster pipeline cannot load a script a node lacks: one call each (once a second)
            removed = sum(int(self._trim(keys=[stream])) for stream in streams)
        else:
            pipe = self.client.pipeline(transaction=False)
            for stream in streams:
                self._trim(keys=[stream], client=pipe)
            removed = sum(int(n) for n in pipe.execute())
        self.removed += removed
        return removed
