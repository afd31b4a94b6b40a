"""A command's body checked against its message schema here, before it is signed or published,
with the schema's refusal said in plain words for a person.

A worker decodes every command with the same schema (`messages/codec.py`) and dead-letters what
does not fit; checking here first turns that into one line and exit 2 with nothing sent.
msgspec's own text ("Expected `int` <= 99 - at `$.game.threshold`") is translated from the
field's declared constraints (`msgspec.inspect`): "--threshold 100: must be between 1 and 99".

`check_body(body, flags)` raises `ConfigError`; `flags` maps a body field name to the flag (or
positional) the person typed, for the fields whose flag is not `--<field-with-dashes>`. Every
string anywhere in the body is also refused when it holds a control character (the rule of
`--reason`, `supervisor.cli_common.safe_text`), so no free-text field can carry one to a venue.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

import msgspec
import msgspec.inspect as mi

from messages.errors import ConfigError
from supervisor.cli_common import safe_text

PATTERN_WORDS = {
    r"^ag_[A-Za-z0-9]{1,61}$": "must be a casino agent id: ag_ then letters and digits (`treasury agent list` "
                               "shows them)",
    r"^esc_[A-Za-z0-9]{1,60}$": "must be an escrow id: esc_ then letters and digits (`treasury status` shows them)",
    r"\S": "needs some visible text",
    r"^[A-Za-z0-9:_-]{1,32}$": "must be 1 to 32 of A-Z a-z 0-9 : _ -",
    r"^[0-9]{1,12}(\.[0-9]{1,18})?$": "must be a plain decimal number, e.g. 0.55",
    r"^[A-Za-z0-9_.:-]{1,80}$": "must be a position id: 1 to 80 of A-Z a-z 0-9 _ . : - (`treasury trade list` "
                                "shows them)",
}
"""The schema's patterns in words; any other pattern is quoted as it is."""

_AT = re.compile(r"^(?P<what>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)


def check_body(body: msgspec.Struct, flags: Mapping[str, str] | None = None) -> None:
    """Refuse `body` (a command message) with one plain line when its schema or the control-character
    rule would: `ConfigError("--threshold 100: must be between 1 and 99")`."""
    flags = flags or {}
    _check_text(msgspec.to_builtins(body), (), flags)
    try:
        msgspec.msgpack.decode(msgspec.msgpack.encode(body), type=type(body))
    except msgspec.ValidationError as exc:
        raise ConfigError(explain(exc, body, flags)) from None


def explain(exc: msgspec.ValidationError, body: msgspec.Struct, flags: Mapping[str, str] | None = None) -> str:
    """msgspec's refusal of `body` in plain words, naming the flag and the value given."""
    flags = flags or {}
    m = _AT.match(str(exc))
    path = re.findall(r"\.(\w+)", m.group("path") or "") if m else []
    if not path:
        return f"the command does not fit its message: {safe_text(str(exc))}"
    info: Any = mi.type_info(type(body))
    value: Any = body
    for name in path:
        info = _struct_of(info, value)
        field = next((f for f in info.fields if f.name == name), None) if info is not None else None
        if field is None:
            return f"{_flag(path[-1], flags)}: {safe_text(m.group('what'))}"
        info, value = field.type, getattr(value, name, None)
    return f"{_flag(path[-1], flags)} {_shown(value)}: {rule(info)}"


def rule(info: Any) -> str:
    """What a value of the declared type `info` must be, in words ("must be between 1 and 99")."""
    info = _not_none(info)
    if isinstance(info, (mi.IntType, mi.FloatType)):
        low = (info.ge, "at least") if info.ge is not None else (info.gt, "more than")
        high = (info.le, "at most") if info.le is not None else (info.lt, "less than")
        finite = " (a finite number)" if isinstance(info, mi.FloatType) else ""
        if low[0] is not None and high[0] is not None and info.ge is not None and info.le is not None:
            return f"must be between {low[0]:g} and {high[0]:g}{finite}"
        parts = [f"{word} {bound:g}" for bound, word in (low, high) if bound is not None]
        return ("must be " + " and ".join(parts) + finite) if parts else "must be a whole number"
    if isinstance(info, mi.StrType):
        words = []
        if info.min_length is not None or info.max_length is not None:
            lo, hi = info.min_length or 0, info.max_length
            words.append(f"must be {lo} to {hi} characters" if hi is not None else f"must be at least {lo} characters")
        if info.pattern:
            words.append(PATTERN_WORDS.get(info.pattern, f"must match {info.pattern}"))
        return "; ".join(words) or "must be text"
    if isinstance(info, mi.LiteralType):
        return "must be one of " + ", ".join(map(str, info.values))
    return f"must be {type(info).__name__.removesuffix('Type').lower()}"


def _check_text(value: Any, path: tuple[str, ...], flags: Mapping[str, str]) -> None:
    if isinstance(value, str):
        if safe_text(value) != value:
            raise ConfigError(f"{_flag(path[-1] if path else 'text', flags)} {ascii(value)[:60]} holds control "
                              f"characters")
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_text(v, (*path, str(k)), flags)
    elif isinstance(value, list):
        for v in value:
            _check_text(v, path, flags)


def _flag(name: str, flags: Mapping[str, str]) -> str:
    return flags.get(name, "--" + name.replace("_", "-"))


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return ascii(value)[:60]
    return safe_text(value, 60)


def _not_none(info: Any) -> Any:
    if isinstance(info, mi.UnionType):
        members = [t for t in info.types if not isinstance(t, mi.NoneType)]
        if len(members) == 1:
            return members[0]
    if isinstance(info, mi.Metadata):
        return _not_none(info.type)
    return info


def _struct_of(info: Any, value: Any) -> Any:
    """The struct type info of `value` within `info` (a union of tagged structs picks the member)."""
    info = _not_none(info)
    if isinstance(info, mi.UnionType):
        info = next((t for t in info.types if isinstance(t, mi.StructType) and t.cls is type(value)), None)
    return info if isinstance(info, mi.StructType) else None
