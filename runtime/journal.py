"""Reading an agent's journal (the events stream): for the demo, status views, replay and tests."""

from __future__ import annotations

import functools
import time
import typing
from typing import Annotated, Any, Iterable, Iterator, Union

import msgspec
import redis

from messages.base import Message
from messages.codec import FIELD, MAX_ENTRY_BYTES, decode
from messages.envelope import Envelope
from messages.errors import MessageDecodeError
from messages.schema import AnyMessage
from runtime.keys import Keys


def read_journal(client: redis.Redis, keys: Keys, agent: str) -> list[Envelope]:
    """The agent's whole journal, oldest first: archived files (runtime/archive.py), then the stream.

    Errors: ConfigError if the journal was archived to a directory that is missing.
    """
    return list(replay_journal(client, keys, agent))


def replay_journal(client: redis.Redis, keys: Keys, agent: str, page: int = 10_000) -> Iterator[Envelope]:
    """The agent's journal as a stream of envelopes, read in pages (archive files, then XRANGE
    pages of `page`). Errors: MessageDecodeError for an entry that does not decode; ConfigError
    as `read_journal`."""
    from runtime.archive import journal_pages

    for payloads in journal_pages(client, keys, agent, page):
        for payload in payloads:
            yield decode(payload)


_Id = Annotated[str, msgspec.Meta(max_length=80)]


class JournalEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One event as `replay_events` gives it: the envelope's fields (`Envelope` has the meaning of
    each) with a body of one of the asked types. The ids are bounded in length but not matched
    against the id pattern again: they were checked when the event was committed."""

    id: _Id
    agent: _Id
    created_ms: int
    body: Any
    causation: _Id | None = None
    correlation: _Id | None = None
    signature: str | None = None


@functools.lru_cache(maxsize=32)
def _event_decoder(wanted: frozenset[type]) -> msgspec.msgpack.Decoder[Any]:
    """A decoder of envelopes whose body is one of `wanted` (decoded and validated) or another
    message type, read as an empty stand-in of that type: its fields are skipped, not decoded."""
    others = []
    for message_type in typing.get_args(AnyMessage):
        if message_type not in wanted:
            tag = message_type.__struct_config__.tag
            others.append(msgspec.defstruct(f"Skipped{tag}", [], tag=tag, tag_field="type", frozen=True))
    event = msgspec.defstruct("JournalEvent", [("body", Union[tuple(sorted(wanted, key=str)) + tuple(others)])],
                              bases=(JournalEvent,), frozen=True, kw_only=True)
    return msgspec.msgpack.Decoder(event)


def replay_events(client: redis.Redis, keys: Keys, agent: str, types: Iterable[type[Message]],
                  page: int = 10_000) -> Iterator[JournalEvent]:
    """The agent's events whose body is one of `types`, oldest first: what a projection folds.
    Bodies of other types are skipped, not decoded; bodies of `types` are validated by their type
    as `decode` does, and every event must name `agent`.

    Errors: MessageDecodeError for an entry that does not decode, names another agent or has a
    body that fails its type; ConfigError as `read_journal`.
    """
    from runtime.archive import journal_pages

    wanted = frozenset(types)
    unknown = [t for t in wanted if t not in typing.get_args(AnyMessage)]
    if unknown:
        raise ValueError(f"not message types: {unknown}")
    if not wanted:
        return
    event_decode = _event_decoder(wanted).decode
    for payloads in journal_pages(client, keys, agent, page):
        if max(map(len, payloads)) > MAX_ENTRY_BYTES:
            raise MessageDecodeError(f"journal of {agent}: an event exceeds the limit of {MAX_ENTRY_BYTES} bytes")
        for payload in payloads:
            try:
                event = event_decode(payload)
            except Exception as exc:  # noqa: BLE001 - one error for whatever bad bytes raise
                raise MessageDecodeError(
                    f"journal of {agent}: undecodable event: {type(exc).__name__}: {exc}") from None
            if type(event.body) in wanted:
                if event.agent != agent:
                    raise MessageDecodeError(f"journal of {agent}: event {event.id} names agent {event.agent!r}")
                yield event


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
