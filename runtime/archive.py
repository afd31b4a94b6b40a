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
from typing import Any, Iterator
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


def _read_file(path: Path) -> Iterator[tuple[str, bytes]]:
    data = path.read_bytes()
    at, decoder = 0, msgspec.msgpack.Decoder(tuple[str, bytes])
    while at + 4 <= len(data):
        (n,) = _LEN.unpack_from(data, at)
        if at + 4 + n > len(data):
            break  # a record cut short by a crash while writing: written again by the next run
        yield decoder.decode(data[at + 4:at + 4 + n])
        at += 4 + n


def journal_payloads(client: redis.Redis, keys: Keys, agent: str, page: int = PAGE) -> Iterator[bytes]:
    """Every encoded envelope of the agent's journal, oldest first: the archive, then the stream.

    Reads the stream in pages of `page` entries (XRANGE COUNT), never in one unbounded call.
    Errors: ConfigError if an archive is recorded but its directory is missing.
    """
    record = _record(client, keys, agent)
    last = (0, -1)
    if record is not None:
        root = agent_dir(record[0], agent)
        if not root.is_dir():
            raise ConfigError(f"agent {agent}: its journal up to {record[1]} is archived in {root}, which is missing")
        for path in sorted(root.glob("*.journal")):
            for eid, payload in _read_file(path):
                ms, _, seq = eid.partition("-")
                key = (int(ms), int(seq))
                if key <= last:
                    continue
                last = key
                yield payload
    start = f"{last[0]}-{last[1] + 1}" if last[1] >= 0 else "-"
    stream = keys.events(agent)
    while True:
        entries: Any = client.xrange(stream, min=start, count=page)
        if not entries:
            return
        for _, fields in entries:
            yield fields[FIELD]
        if len(entries) < page:
            return
        start = _after(_text(entries[-1][0]))
