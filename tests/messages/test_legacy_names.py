"""Renamed events still decode: an old journal or replay record holding `CommandRejected` or
`BetFailed` is read as `CommandRefused` / `BetRejected`, with the same fields."""

from __future__ import annotations

import msgspec
import pytest

from messages.codec import decode, encode
from messages.envelope import Envelope
from messages.schema import ALL_MESSAGES, BetRejected, CommandRefused


def _old_entry(old_type: str, fields: dict) -> dict:
    return {"id": "m1", "agent": "alice", "created_ms": 1_700_000_000_000, "body": {"type": old_type, **fields},
            "causation": "c1", "correlation": "c1"}


@pytest.mark.parametrize(("old", "new", "fields"), [
    ("CommandRejected", CommandRefused, {"command": "PlaceBet", "reason": "unknown agent"}),
    ("BetFailed", BetRejected, {"code": "insufficient_balance", "reason": "venue said no", "stake": 2_500_000}),
])
def test_old_name_decodes_as_the_new_one(old, new, fields):
    raw = msgspec.msgpack.encode(_old_entry(old, fields))  # as an old journal stored it
    env = decode(raw)
    assert type(env.body) is new
    assert env.type == new.__name__
    assert msgspec.structs.asdict(env.body) == fields
    # written back, it carries the new name only
    assert decode(encode(env)).type == new.__name__
    assert old.encode() not in encode(env)


@pytest.mark.parametrize("old", ["CommandRejected", "BetFailed"])
def test_old_name_from_json_records(old):
    fields = {"command": "X", "reason": "r"} if old == "CommandRejected" else {"code": "c", "reason": "r", "stake": 1}
    env = msgspec.json.decode(msgspec.json.encode(_old_entry(old, fields)), type=Envelope)
    assert env.type in ("CommandRefused", "BetRejected")
    env2 = msgspec.convert(_old_entry(old, fields), Envelope)
    assert env2.type == env.type


def test_legacy_names_are_never_current_messages():
    names = {m.__name__ for m in ALL_MESSAGES}
    assert not names & {"CommandRejected", "BetFailed"}
