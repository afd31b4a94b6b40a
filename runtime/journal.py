"""Reading an agent's journal (the events stream): for the demo, status views, replay and tests."""

from __future__ import annotations

import time
from typing import Any, Iterable, Iterator

import redis

from messages.codec import FIELD, decode
from messages.envelope import Envelope
from runtime.keys import Keys


def read_journal(client: redis.Redis, keys: Keys, agent: str) -> list[Envelope]:
    """The agent's whole journal, oldest first: archived files (runtime/archive.py), then the stream.

    Errors: ConfigError if the journal was archived to a directory that is missing.
    """
    return list(replay_journal(client, keys, agent))


def replay_journal(client: redis.Redis, keys: Keys, agent: str, page: int = 10_000) -> Iterator[Envelope]:
    """The agent's journal as a stream of envelopes, read in pages (for projection rebuilds)."""
    from runtime.archive import journal_payloads

    for payload in journal_payloads(client, keys, agent, page):
        yield decode(payload)


class JournalFollower:
    """Follows one agent's journal from where it was created, remembering what it has seen."""

    def __init__(self, client: redis.Redis, keys: Keys, agent: str):
        self.client = client
        self.stream = keys.events(agent)
        self.last_id: bytes = b"0-0"
        self.seen: list[Envelope] = []

    def poll(self, block_ms: int = 100) -> list[Envelope]:
        reply: Any = self.client.xread({self.stream: self.last_id}, block=block_ms, count=500)
        new = []
        for _, entries in reply or []:
            for entry_id, fields in entries:
                self.last_id = entry_id
                new.append(decode(fields[FIELD]))
        self.seen.extend(new)
        return new

    def wait_for(self, causation: str, types: Iterable[type], timeout_s: float = 30.0) -> Envelope:
        """The first event caused by message `causation` whose body is one of `types`."""
        wanted = tuple(types)
        for env in self.seen:
            if env.causation == causation and isinstance(env.body, wanted):
                return env
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for env in self.poll():
                if env.causation == causation and isinstance(env.body, wanted):
                    return env
        raise TimeoutError(f"no {[t.__name__ for t in wanted]} for message {causation} within {timeout_s}s")


def group_caught_up(client: redis.Redis, stream: str, group: str) -> bool:
    """True when `group` has been delivered every entry of `stream` and acknowledged them all."""
    try:
        groups = client.xinfo_groups(stream)
        info = client.xinfo_stream(stream)
    except redis.ResponseError:
        return True  # no stream yet: nothing to catch up on
    last = info["last-generated-id"]
    for g in groups:
        name = g["name"].decode() if isinstance(g["name"], bytes) else g["name"]
        if name == group:
            return bool(g["pending"] == 0 and g["last-delivered-id"] == last)
    return False


def wait_caught_up(client: redis.Redis, stream: str, group: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    delay = 0.001
    while not group_caught_up(client, stream, group):
        if time.monotonic() > deadline:
            raise TimeoutError(f"group {group} did not catch up on {stream} within {timeout_s}s")
        time.sleep(delay)
        delay = min(delay * 2, 0.02)
