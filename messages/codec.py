"""One codec for the bus: msgpack via msgspec, with one error for anything undecodable."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from messages.envelope import Envelope
from messages.errors import MessageDecodeError

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Envelope)

FIELD = b"m"
"""The single stream-entry field that carries an encoded envelope."""

MAX_ENTRY_BYTES = 256 * 1024
"""Largest encoded envelope accepted (bytes). Commands are a few hundred bytes; anything bigger is
refused before decoding, so one oversized entry cannot exhaust a worker's memory."""


def encode(envelope: Envelope) -> bytes:
    """The envelope as msgpack bytes, the value of stream field `m` (`FIELD`)."""
    return _encoder.encode(envelope)


def decode(data: bytes) -> Envelope:
    """Decode an envelope, or raise `MessageDecodeError` saying what is wrong with it.

    Nothing else escapes: whatever the decoder raises for hostile bytes (too deep nesting is a
    `RecursionError`, a non-UTF-8 string a `UnicodeDecodeError`, a huge length a `MemoryError`)
    becomes one `MessageDecodeError`, so a consumer can dead-letter the entry and go on.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise MessageDecodeError(f"expected bytes, got {type(data).__name__}")
    if len(data) > MAX_ENTRY_BYTES:
        raise MessageDecodeError(f"message of {len(data)} bytes exceeds the limit of {MAX_ENTRY_BYTES} bytes")
    try:
        return _decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise MessageDecodeError(f"invalid message: {exc}") from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        # msgspec raises UnicodeDecodeError (not DecodeError) for a msgpack string that is not UTF-8
        raise MessageDecodeError(f"undecodable message: {exc}") from None
    except RecursionError:
        raise MessageDecodeError("undecodable message: nested too deeply") from None
    except Exception as exc:  # noqa: BLE001 - hostile input must never take a consumer down
        raise MessageDecodeError(f"undecodable message: {type(exc).__name__}: {exc}") from None


def decode_entry(fields: Mapping[Any, Any]) -> Envelope:
    """Decode a stream entry's field map (the envelope is under field `m`)."""
    data = fields.get(FIELD)
    if data is None:
        data = fields.get(FIELD.decode())
    if data is None:
        raise MessageDecodeError(f"stream entry has no '{FIELD.decode()}' field (fields: {sorted(map(str, fields))})")
    return decode(data)
