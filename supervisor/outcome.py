"""The outcome of a command, for `treasury cmd --wait`: which journal event ends it and how it reads.

Which events end which command is the catalogue's fact (`messages/catalogue.py`); this module
follows the agent's journal until one arrives (`wait_outcome`) and renders it as one line for
people (`describe`). Exit codes: `EXIT_DONE` 0, `EXIT_NOT_DONE` 1 (refused, rejected or failed),
`EXIT_NO_OUTCOME` 3.
"""

from __future__ import annotations

import time
import typing
from datetime import datetime, timezone

import msgspec

from messages.catalogue import Outcome, facts_for, outcome_of
from messages.envelope import Envelope
from messages.money import Micros, SignedMicros, format_usd
from messages.schema import CommandRefused
from runtime.journal import JournalFollower

EXIT_DONE, EXIT_NOT_DONE, EXIT_NO_OUTCOME = 0, 1, 3
"""`--wait` exit codes: the command was done; it was refused, rejected or failed; no outcome in time."""


def _field_text(name: str, value, annotation) -> str | None:
    if isinstance(value, dict) and value and all(isinstance(v, (int, str)) for v in value.values()):
        money = typing.get_args(annotation)[1:] in ((Micros,), (SignedMicros,))
        return f"{name} {{{', '.join(f'{k}={format_usd(v) if money else v}' for k, v in value.items())}}}"
    if value is None or isinstance(value, (msgspec.Struct, dict, list, tuple)):
        return None
    if annotation in _MONEY and isinstance(value, int):
        return f"{name} {format_usd(value)}"
    if name.endswith("_ms") and isinstance(value, int) and value > 10**11:
        when = datetime.fromtimestamp(value / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        return f"{name.removesuffix('_ms')} {when}"
    return f"{name} {value}"


_MONEY = (Micros, SignedMicros, Micros | None, SignedMicros | None)


def describe(outcome: Outcome) -> str:
    """A one-line reading of a terminal event for people: its kind and type, the `code` and `reason`
    when it has them, then its other plain fields with money in dollars and times in UTC."""
    body = outcome.event.body
    fields = {f.name: f for f in msgspec.structs.fields(body)}
    head = f"{outcome.kind}: {type(body).__name__}"
    code, reason = getattr(body, "code", None), getattr(body, "reason", None)
    if code:
        head += f" ({code})"
    if reason:
        head += f": {reason}"
    rest = [text for name, f in fields.items() if name not in ("code", "reason")
            if (text := _field_text(name, getattr(body, name), f.type)) is not None]
    return head + (f" [{', '.join(rest)}]" if rest else "")


def wait_outcome(follower: JournalFollower, envelope: Envelope, timeout_s: float) -> Outcome | None:
    """The command's terminal event from the agent's journal, or None when none came in time.

    The catalogue says which events end the command: those it caused, those of its correlation
    for outcomes a later step causes, a `CommandRefused` of the entry itself, and for a command
    that follows another message (a retry) that message's outcome.
    """
    facts = facts_for(envelope.body)
    followed = getattr(envelope.body, facts.follows) if facts.follows else envelope.id
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for event in follower.poll(block_ms=200):
            if isinstance(event.body, CommandRefused) and event.causation == envelope.id:
                return Outcome("refused", event)
            outcome = outcome_of(facts, followed, event)
            if outcome is not None:
                return outcome
    return None
