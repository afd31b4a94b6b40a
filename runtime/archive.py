"""Archiving an agent's journal to files, explicitly, and reading it back with the live part.

The journal (the agent's events stream) is the audit trail: nothing trims it silently. An
operator moves old entries out of Redis with `treasury journal archive` (or `archive_journal`):

- entries older than a cutoff are appended to one file per agent and UTC day,
  `<dir>/<agent, %-quoted>/<YYYY-MM-DD>.journal`, then fsynced;
- only then is the archived position recorded in Redis (`<prefix>:{S}:archived:<agent>`: the
  directory and the last archived entry id) and the stream trimmed up to it (XTRIM MINID);
- readers (`read_journal`, `replay_journal`) read the files first, then the stream, so a reader
  never sees a gap; a recorded archive whose directory is missing is an error, never a silent
  shorter journal.

File format: records of `<4-byte big-endian length><msgpack [entry_id, payload]>`, payload being
the stream entry's encoded envelope, unchanged. A crash between writing a file and recording the
position leaves records that the next run appends again: readers skip ids they have already
passed (entry ids only grow), so the journal they see is the same.
"""

from __future__ import annotations

import datetime as dt
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, cast
from urllib.parse import quote

import msgspec
import redis

from messages.codec import FIELD
from messages.errors import ConfigError
from runtime.keys import Keys

PAGE = 10_000
_LEN = struct.Struct(">I")


def archive_key(keys: Keys, agent: str) -> str:
    return keys.archived(agent)


def agent_dir(directory: str | Path, agent: str) -> Path:
    return Path(directory) / quote(agent, safe="")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _ms(entry_id: bytes | str) -> int:
    return int(_text(entry_id).partition("-")[0])


def _after(entry_id: str) -> str:
    ms, _, seq = entry_id.partition("-")
    return f"{ms}-{int(seq or 0) + 1}"


def _day(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc).strftime("%Y-%m-%d")


@dataclass(frozen=True)
class ArchiveResult:
    agent: str
    archived: int
    files: tuple[str, ...]
    last_id: str


def archive_journal(client: redis.Redis, keys: Keys, agent: str, directory: str | Path, before_ms: int,
                    page: int = PAGE) -> ArchiveResult:
    """Move the agent's journal entries older than `before_ms` (Redis entry time) to day files.

    Returns what was archived. Errors: ConfigError if the agent's journal is already archived
    to another directory; OSError from the file system (nothing is trimmed then).
    """
    record = _record(client, keys, agent)
    root = agent_dir(directory, agent)
    if record and Path(record[0]) != Path(directory):
        raise ConfigError(f"agent {agent}: its journal is archived in {record[0]}, not {directory}")
    stream = keys.events(agent)
    start = _after(record[1]) if record else "-"
    end = f"{before_ms - 1}-18446744073709551615"
    last_id, count, files = record[1] if record else "", 0, set()
    open_files: dict[str, object] = {}
    try:
        while True:
            entries: Any = client.xrange(stream, min=start, max=end, count=page)
            if not entries:
                break
            for entry_id, fields in entries:
                eid = _text(entry_id)
                day = _day(_ms(eid))
                f = open_files.get(day)
                if f is None:
                    root.mkdir(parents=True, exist_ok=True)
                    f = open_files[day] = open(root / f"{day}.journal", "ab")
                    files.add(str(root / f"{day}.journal"))
                blob = msgspec.msgpack.encode([eid, fields[FIELD]])
                f.write(_LEN.pack(len(blob)) + blob)  # type: ignore[attr-defined]
                last_id, count = eid, count + 1
            start = _after(_text(entries[-1][0]))
        for f in open_files.values():
            f.flush()  # type: ignore[attr-defined]
            os.fsync(f.fileno())  # type: ignore[attr-defined]
    finally:
        for f in open_files.values():
            f.close()  # type: ignore[attr-defined]
    if count:
        pipe = client.pipeline(transaction=True)
        pipe.hset(archive_key(keys, agent), mapping={"dir": str(directory), "last_id": last_id})
        pipe.xtrim(stream, minid=_after(last_id), approximate=False)
        pipe.execute()
    return ArchiveResult(agent, count, tuple(sorted(files)), last_id)


def _record(client: redis.Redis, keys: Keys, agent: str) -> tuple[str, str] | None:
    raw: Any = client.hmget(archive_key(keys, agent), "dir", "last_id")
    if raw[0] is None:
        return None
    return _text(raw[0]), _text(raw[1])


_RECORD = msgspec.msgpack.Decoder(tuple[str, bytes])


def _read_file(path: Path) -> Iterator[tuple[str, bytes]]:
    data = path.read_bytes()
    at, unpack, decode = 0, _LEN.unpack_from, _RECORD.decode
    view = memoryview(data)
    while at + 4 <= len(data):
        (n,) = unpack(data, at)
        if at + 4 + n > len(data):
            break  # a record cut short by a crash while writing: written again by the next run
        yield decode(view[at + 4:at + 4 + n])
        at += 4 + n


def _key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _file_pages(path: Path, last: list[str], page: int) -> Iterator[list[bytes]]:
    """The payloads, in lists of up to `page`, of one archive file whose entry id comes after
    `last[0]` (an entry id, "" for none), which is moved on to the last one taken. Two ids whose
    parts have the same widths compare as text the way they compare as numbers (digits without
    leading zeros), so only a change of width parses them."""
    out: list[bytes] = []
    append = out.append
    last_text = last[0]
    last_dash = last_text.find("-")
    for eid, payload in _read_file(path):
        dash = eid.find("-")
        if dash == last_dash and len(eid) == len(last_text):
            if eid <= last_text:
                continue
        elif last_text and _key(eid) <= _key(last_text):
            continue
        last_text, last_dash = eid, dash
        append(payload)
        if len(out) >= page:
            last[0] = last_text
            yield out
            out = []
            append = out.append
    last[0] = last_text
    if out:
        yield out


def _payload(fields: Any) -> bytes:
    """The encoded envelope of a raw stream entry's field list ([name, value, ...])."""
    if fields[0] == FIELD:
        return cast(bytes, fields[1])
    return cast(bytes, dict(zip(fields[::2], fields[1::2], strict=True))[FIELD])


def _stream_pages(client: redis.Redis, stream: str, start: str, page: int) -> Iterator[list[bytes]]:
    """The stream from `start` on, in pages of `page` payloads. On a plain client the next page is
    asked for (on a connection of its own, raw replies) before the current one is handed out, so
    Redis prepares it while the caller decodes; other clients read page after page."""
    pool = getattr(client, "connection_pool", None)
    if pool is None or not isinstance(client, redis.Redis):
        while True:
            entries: Any = client.xrange(stream, min=start, count=page)
            if entries:
                yield [f[FIELD] for _, f in entries]
            if len(entries) < page:
                return
            start = _after(_text(entries[-1][0]))
    try:
        conn = pool.get_connection()
    except TypeError:  # redis-py before 5.3 names the command
        conn = pool.get_connection("XRANGE")
    in_flight = False
    try:
        conn.send_command("XRANGE", stream, start, "+", "COUNT", page)
        in_flight = True
        while True:
            reply = conn.read_response()
            in_flight = False
            if len(reply) >= page:
                conn.send_command("XRANGE", stream, _after(_text(reply[-1][0])), "+", "COUNT", page)
                in_flight = True
            if reply:
                yield [f[1] if f[0] == FIELD else _payload(f) for _, f in reply]
            if not in_flight:
                return
    finally:
        if in_flight:
            conn.disconnect()  # a reply left unread: the connection cannot be reused as it is
        pool.release(conn)


def journal_pages(client: redis.Redis, keys: Keys, agent: str, page: int = PAGE) -> Iterator[list[bytes]]:
    """The agent's journal, oldest first, as lists of up to `page` encoded envelopes: the archive
    files, then the stream (XRANGE COUNT `page`, never one unbounded call).

    Errors: ConfigError if an archive is recorded but its directory is missing.
    """
    record = _record(client, keys, agent)
    last = [""]
    if record is not None:
        root = agent_dir(record[0], agent)
        if not root.is_dir():
            raise ConfigError(f"agent {agent}: its journal up to {record[1]} is archived in {root}, which is missing")
        for path in sorted(root.glob("*.journal")):
            yield from _file_pages(path, last, page)
    yield from _stream_pages(client, keys.events(agent), _after(last[0]) if last[0] else "-", page)


def journal_payloads(client: redis.Redis, keys: Keys, agent: str, page: int = PAGE) -> Iterator[bytes]:
    """Every encoded envelope of the agent's journal, oldest first: the archive, then the stream
    (`journal_pages`, flattened). Errors: ConfigError if an archive is recorded but its directory
    is missing."""
    for payloads in journal_pages(client, keys, agent, page):
        yield from payloads
