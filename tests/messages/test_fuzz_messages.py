"""Fuzzing the message codec: every message type with each field's edge values, and raw bytes.

Whatever arrives on a stream, `decode_entry` either returns an envelope whose body passes the
oracle below, or raises `MessageDecodeError` — never anything else (a RecursionError, an
OverflowError, a TypeError would kill the worker that reads it). The oracle is written from the
product's rules, not from the schema code: money is an integer of micro-USD within ±$1 billion,
no float is NaN or infinite, an agent id is 1–64 characters of [A-Za-z0-9_.:-], and what decodes
encodes back to the same message.

Example counts (default run): 60 per message type with edge values (2,000 per type under
`-m soak`), 2,000 raw byte strings, 300 hand-made nestings up to 200,000 deep in five places,
200 JSON-like bodies, 300 envelopes with a broken frame.
"""

from __future__ import annotations

import math
import re

import msgspec
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from messages.codec import FIELD, decode_entry, encode
from messages.errors import MessageDecodeError
from messages.schema import ALL_MESSAGES

MONEY_NAME = re.compile(r"(amount|stake|capital|fee|balance|total|micros|payout|pnl|margin|size_usd|collateral)")
AGENT_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
ONE_BILLION_USD_MICROS = 10**15

EDGE_VALUES = st.one_of(
    st.sampled_from([0, -1, 1, -0.0, 0.5, 1.0, 1.0000001, 2**63, -(2**63), 2**64, 10**15, 10**15 + 1, 10**30,
                     float("nan"), float("inf"), float("-inf"), 1e308, 5e-324, "", " ", "0", "-1", "1e309", "NaN",
                     "abc", "٣", "1_000", "\x00", "\u202e", "💸" * 40, "x" * 5000, True, False, None, [], {}, [1],
                     {"a": 1}, b"\xff\xfe", "heads", "full", "half", "ACTIVE", "HALTED", "casino", "reserve"]),
    st.integers(), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=80), st.binary(max_size=40),
)


def _field_names(tp: type) -> list[str]:
    return [f.encode_name for f in msgspec.structs.fields(tp)]


def _tag(tp: type) -> str:
    return msgspec.inspect.type_info(tp).tag


def _frame(body: object, agent: object = "alice") -> bytes:
    """The envelope as a writer would put it on a stream (values msgpack cannot carry are skipped)."""
    try:
        return msgspec.msgpack.encode({"id": "m1", "agent": agent, "created_ms": 1_767_258_000_000,
                                       "correlation": "m1", "body": body})
    except (OverflowError, RecursionError):
        assume(False)
        raise


def _walk(value, name=""):
    if isinstance(value, msgspec.Struct):
        for f in msgspec.structs.fields(value):
            yield from _walk(getattr(value, f.name), f.encode_name)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(v, str(k))
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _walk(v, name)
    else:
        yield name, value


def _oracle(env) -> None:
    assert AGENT_ID.match(env.agent), env.agent
    for name, value in _walk(env.body):
        if isinstance(value, float):
            assert math.isfinite(value), f"{type(env.body).__name__}.{name} = {value}"
        if isinstance(value, int) and not isinstance(value, bool) and MONEY_NAME.search(name):
            assert -ONE_BILLION_USD_MICROS <= value <= ONE_BILLION_USD_MICROS, f"{name} = {value}"
    again = decode_entry({FIELD: encode(env)})
    assert again == env


def _decode_or_refuse(data: bytes) -> None:
    try:
        env = decode_entry({FIELD: data})
    except MessageDecodeError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    _oracle(env)


def _edge_case(tp, data) -> None:
    names = _field_names(tp)
    body: dict = {"type": _tag(tp)}
    for name in names:
        if data.draw(st.booleans()):
            body[name] = data.draw(EDGE_VALUES)
    if data.draw(st.integers(0, 9)) == 0:
        body[data.draw(st.text(min_size=1, max_size=10))] = data.draw(EDGE_VALUES)  # an unknown field
    agent = data.draw(st.one_of(st.just("alice"), EDGE_VALUES))
    _decode_or_refuse(_frame(body, agent))


@pytest.mark.parametrize("tp", ALL_MESSAGES, ids=lambda t: t.__name__)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_each_message_type_with_edge_values(tp, data):
    _edge_case(tp, data)


@pytest.mark.soak
@pytest.mark.parametrize("tp", ALL_MESSAGES, ids=lambda t: t.__name__)
@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_each_message_type_with_edge_values_long(tp, data):
    _edge_case(tp, data)


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=2048))
def test_raw_bytes(data):
    _decode_or_refuse(data)


JSONISH = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                       lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                     max_size=4),
                       max_leaves=30)


PLACEHOLDER = "\x00nest-here\x00"


def _deep(depth: int, kind: str) -> bytes:
    """msgpack for `depth` nested one-element arrays (or maps) around nil, written by hand: no
    encoder would produce it, a hostile writer can."""
    opener = b"\x91" if kind == "array" else b"\x81\xa1k"
    return opener * depth + b"\xc0"


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(ALL_MESSAGES), st.sampled_from(["before_tag", "after_tag", "agent", "body", "frame"]),
       st.integers(1, 200_000), st.sampled_from(["array", "map"]))
def test_nesting_of_any_depth_anywhere(tp, where, depth, kind):
    hole = msgspec.msgpack.encode(PLACEHOLDER)
    if where == "before_tag":
        frame = _frame({"x": PLACEHOLDER, "type": _tag(tp)})
    elif where == "after_tag":
        frame = _frame({"type": _tag(tp), "x": PLACEHOLDER})
    elif where == "agent":
        frame = _frame({"type": _tag(tp)}, agent=PLACEHOLDER)
    elif where == "body":
        frame = _frame(PLACEHOLDER)
    else:
        frame = hole
    _decode_or_refuse(frame.replace(hole, _deep(depth, kind)))


@settings(max_examples=200, deadline=None)
@given(JSONISH)
def test_any_json_like_body(value):
    _decode_or_refuse(_frame(value))
    _decode_or_refuse(_frame({"type": "PlaceBet", "game": value}))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(ALL_MESSAGES), st.integers(1, 40), st.binary(min_size=1, max_size=8))
def test_envelopes_with_a_broken_frame(tp, cut, junk):
    body = {"type": _tag(tp)}
    frame = _frame(body)
    _decode_or_refuse(frame[:-cut])
    _decode_or_refuse(frame + junk)
    _decode_or_refuse(junk + frame)


@pytest.mark.parametrize("fields", [{}, {b"x": b"1"}, {FIELD: 12}, {FIELD: None}, {"m": "text"}])
def test_entries_without_a_usable_field(fields):
    with pytest.raises(MessageDecodeError):
        decode_entry(fields)
