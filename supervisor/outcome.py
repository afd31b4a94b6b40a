"""The outcome of a command, for `treasury cmd --wait`: which journal event ends it and how it reads.

Which events end which command is the catalogue's fact (`messages/catalogue.py`); this module
follows the agent's journal until one arrives (`wait_outcome`) and renders it as one line for
people (`describe`). Exit codes: `EXIT_DONE` 0, `EXIT_NOT_DONE` 1 (refused, rejected or failed),
`EXIT_NO_OUTCOME` 3.
"""

from __future__ import annotations

import time

import msgspec

from messages.catalogue import Outcome, facts_for, outcome_of
from messages.envelope import Envelope
from messages.schema import CommandRefused
from messages.treasury_msgs import RebalanceCompleted
from runtime.journal import JournalFollower
from supervisor.status import summarize

EXIT_DONE, EXIT_NOT_DONE, EXIT_NO_OUTCOME = 0, 1, 3
"""`--wait` exit codes: the command was done; it was refused, rejected or failed; no outcome in time."""


def describe(outcome: Outcome) -> str:
    """A one-line reading of a terminal event for people: its type, then the journal's summary of it
    (`supervisor.status.summarize`: money in dollars; a refusal as `refused (code): reason`), whole:
    never cut, however long the reason."""
    body = outcome.event.body
    line = f"{type(body).__name__}: {summarize(msgspec.to_builtins(body), limit=None)}"
    if isinstance(body, RebalanceCompleted) and body.held > 0:
        from messages.money import format_usd

        line += (f" — booked; {format_usd(body.held)} of it still travels between venues and may yet come back "
                 f"(silo transfers: `treasury status` and `treasury reconcile` follow them)")
    return line


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
