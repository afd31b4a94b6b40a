"""The envelope every message travels in on the bus.

The message id is unique, is the unit of idempotency (a duplicate id is applied once) and is the
idempotency key sent to the venue. Causation and correlation ids tie a journal together: an
event's causation is the command that caused it, and all messages of one story share the
correlation id of the first.
"""

from __future__ import annotations

import os
import random
import uuid
from typing import Callable

import msgspec

from messages.base import AgentId, MessageId
from messages.schema import LEGACY_NAMES, AnyMessage, current_message


class Envelope(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Every message on a stream: a body with who, when, why, and (for commands) a signature.

    `id` is unique per message (the commit's de-duplication key); `agent` the agent it concerns;
    `created_ms` epoch milliseconds from the sender's clock; `body` one message of the tagged
    union (`type` is its tag); `causation` the id of the message that caused this one and
    `correlation` the id of the command that started the chain (both None for a first command);
    `signature` the command signature (`runtime.signing`), None on events. Built by `wrap`."""

    id: MessageId
    agent: AgentId
    created_ms: int
    body: AnyMessage
    causation: MessageId | None = None
    correlation: MessageId | None = None
    signature: str | None = None

    def __post_init__(self) -> None:
        # an old journal's renamed event (CommandRejected, BetFailed) is read under its current name
        if type(self.body) in LEGACY_NAMES:
            msgspec.structs.force_setattr(self, "body", current_message(self.body))

    @property
    def type(self) -> str:
        """The body's type tag (its class name)."""
        return type(self.body).__name__


IdFactory = Callable[[], str]


def random_ids() -> IdFactory:
    """Ids from the OS: for production."""
    return lambda: uuid.UUID(bytes=os.urandom(16), version=4).hex


def seeded_ids(seed: int, prefix: str = "m") -> IdFactory:
    """Reproducible ids for tests and the demo: the same seed gives the same ids."""
    rng = random.Random(seed)
    return lambda: f"{prefix}{rng.getrandbits(64):016x}"


def wrap(
    body: AnyMessage,
    *,
    agent: str,
    now_ms: int,
    new_id: IdFactory,
    cause: Envelope | None = None,
) -> Envelope:
    """Put a body in an envelope, inheriting correlation from the message that caused it."""
    if cause is None:
        msg_id = new_id()
        return Envelope(id=msg_id, agent=agent, created_ms=now_ms, body=body, correlation=msg_id)
    return Envelope(
        id=new_id(),
        agent=agent,
        created_ms=now_ms,
        body=body,
        causation=cause.id,
        correlation=cause.correlation or cause.id,
    )
