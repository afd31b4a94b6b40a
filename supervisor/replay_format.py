"""The replay record: a run's inputs and outputs, one JSON object per line (optionally gzip'd).

A record is what `treasury demo --scenario NAME --record FILE` writes and `treasury replay FILE`
reads. Line 1 is the header; then, in the order they happened:

| kind      | fields                                                   | what it is                                   |
|-----------|----------------------------------------------------------|----------------------------------------------|
| `header`  | format, version, scenario, seed, agent, roles, prefix,   | how to rebuild the run: the roles it ran,    |
|           | shards, venues {service: base URL}, keys [{id, scope,    | the key prefix and shard count, the venue    |
|           | secret_hex}]                                             | base URLs and the command-signing keys       |
| `clock`   | ms (epoch milliseconds)                                  | the simulated clock was set to `ms`          |
| `onboard` | agent, capital_micros, buckets {bucket: micro-USD} or    | the agent was registered at the venues and   |
|           | null, casino_float_micros                                | its treasury opened (paper funding included) |
| `command` | role, entry_b64 (msgpack envelope, as on the stream)     | a command was added to the role's stream     |
| `venue`   | method, url, request_b64, status, body_b64, content_type | one HTTP exchange with a venue, as the       |
|           |                                                          | treasury saw it (in the order it was made)   |
| `output`  | event_b64 (msgpack envelope, as in the journal), agent   | one journal event; agents in name order,     |
|           |                                                          | each agent's events in journal order         |

Bytes are base64 so any body (JSON, CSV, a garbled answer) round-trips exactly.

Versions: 2 is written. Version 1 (the first format) stored venue bodies as UTF-8 text in `body`
and `request` instead of base64 in `body_b64` / `request_b64`; it is upgraded on reading, so old
records still replay. A version newer than this code is refused with a one-line `ReplayFormatError`.

The keys in a header are the signing secrets of the run (the commands must verify on replay):
keep records of production runs as private as the keys file.
"""

from __future__ import annotations

import base64
import gzip
import io
from pathlib import Path
from typing import IO, Iterator, Union

import msgspec

FORMAT = "agent-treasury-replay"
VERSION = 2
SUPPORTED_VERSIONS = (1, 2)


class ReplayFormatError(ValueError):
    """A record that cannot be read: wrong format name, unknown version, a malformed line."""


class KeyEntry(msgspec.Struct, frozen=True):
    id: str
    scope: str
    secret_hex: str


class Header(msgspec.Struct, frozen=True, tag="header", tag_field="kind"):
    format: str
    version: int
    scenario: str
    seed: int
    agent: str
    roles: list[str]
    prefix: str
    shards: int
    venues: dict[str, str]
    keys: list[KeyEntry]


class ClockSet(msgspec.Struct, frozen=True, tag="clock", tag_field="kind"):
    ms: int


class Onboard(msgspec.Struct, frozen=True, tag="onboard", tag_field="kind"):
    agent: str
    capital_micros: int
    buckets: dict[str, int] | None = None
    casino_float_micros: int = 0


class Command(msgspec.Struct, frozen=True, tag="command", tag_field="kind"):
    role: str
    entry_b64: str

    @property
    def entry(self) -> bytes:
        return base64.b64decode(self.entry_b64)


class VenueExchange(msgspec.Struct, frozen=True, tag="venue", tag_field="kind"):
    method: str
    url: str
    request_b64: str
    status: int
    body_b64: str
    content_type: str = "application/json"

    @property
    def request(self) -> bytes:
        return base64.b64decode(self.request_b64)

    @property
    def body(self) -> bytes:
        return base64.b64decode(self.body_b64)


class Output(msgspec.Struct, frozen=True, tag="output", tag_field="kind"):
    event_b64: str
    agent: str

    @property
    def event(self) -> bytes:
        return base64.b64decode(self.event_b64)


Record = Union[ClockSet, Onboard, Command, VenueExchange, Output]
Line = Union[Header, ClockSet, Onboard, Command, VenueExchange, Output]
_decoder = msgspec.json.Decoder(Line)
_encoder = msgspec.json.Encoder()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class Recording(msgspec.Struct):
    """A whole record in memory: the header, the inputs (with venue exchanges) and the outputs."""

    header: Header
    records: list[Record] = msgspec.field(default_factory=list)

    @property
    def inputs(self) -> list[Record]:
        return [r for r in self.records if not isinstance(r, (VenueExchange, Output))]

    @property
    def exchanges(self) -> list[VenueExchange]:
        return [r for r in self.records if isinstance(r, VenueExchange)]

    @property
    def outputs(self) -> list[bytes]:
        return [r.event for r in self.records if isinstance(r, Output)]


def _open(path: Path, mode: str) -> IO[bytes]:
    if path.suffix == ".gz":
        return gzip.open(path, mode + "b")  # type: ignore[return-value]
    return open(path, mode + "b")


def write(path: str | Path, recording: Recording) -> None:
    """Write `recording` as version-2 JSON lines (gzip'd when the name ends in .gz)."""
    path = Path(path)
    with _open(path, "w") as f:
        buf = io.BytesIO()
        for line in [recording.header, *recording.records]:
            buf.write(_encoder.encode(line))
            buf.write(b"\n")
        f.write(buf.getvalue())


def _upgrade_v1(raw: dict) -> dict:
    if raw.get("kind") == "venue":
        raw = dict(raw)
        raw["request_b64"] = b64(raw.pop("request", "").encode())
        raw["body_b64"] = b64(raw.pop("body", "").encode())
    return raw


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    try:
        with _open(path, "r") as f:
            for n, line in enumerate(f, start=1):
                if line.strip():
                    yield n, line
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise ReplayFormatError(f"{path}: cannot read: {exc}") from None


def read(path: str | Path) -> Recording:
    """Read a record of any supported version; raises `ReplayFormatError` naming the line at fault."""
    path = Path(path)
    if not path.exists():
        raise ReplayFormatError(f"{path}: no such file")
    header: Header | None = None
    version = VERSION
    records: list[Record] = []
    for n, line in _lines(path):
        try:
            if header is None or version != VERSION:
                raw = msgspec.json.decode(line)
                if not isinstance(raw, dict):
                    raise msgspec.ValidationError("expected an object")
                if header is not None and version == 1:
                    raw = _upgrade_v1(raw)
                parsed = msgspec.convert(raw, Line)
            else:
                parsed = _decoder.decode(line)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as exc:
            raise ReplayFormatError(f"{path}:{n}: {exc}") from None
        if header is None:
            if not isinstance(parsed, Header):
                raise ReplayFormatError(f"{path}:{n}: the first line must be the header")
            if parsed.format != FORMAT:
                raise ReplayFormatError(f"{path}:{n}: not a replay record (format {parsed.format!r})")
            if parsed.version not in SUPPORTED_VERSIONS:
                raise ReplayFormatError(f"{path}:{n}: record version {parsed.version} is not supported "
                                        f"(this treasury reads {', '.join(map(str, SUPPORTED_VERSIONS))})")
            version = parsed.version
            header = msgspec.structs.replace(parsed, version=VERSION)
        elif isinstance(parsed, Header):
            raise ReplayFormatError(f"{path}:{n}: a second header")
        else:
            records.append(parsed)
    if header is None:
        raise ReplayFormatError(f"{path}: empty record")
    return Recording(header, records)


def downgrade_to_v1(recording: Recording) -> list[bytes]:
    """The record as version-1 lines (for tests of the upgrade path); bodies must be UTF-8."""
    out = [_encoder.encode(msgspec.structs.replace(recording.header, version=1))]
    for r in recording.records:
        raw = msgspec.to_builtins(r)
        if isinstance(r, VenueExchange):
            raw["request"] = r.request.decode()
            raw["body"] = r.body.decode()
            del raw["request_b64"], raw["body_b64"]
        out.append(msgspec.json.encode(raw))
    return out

