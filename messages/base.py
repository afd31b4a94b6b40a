"""The base types every message module builds on (kept apart so message modules of each
concern can import them without importing one another)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

import msgspec

from messages.errors import BadAgentId
from messages.money import Micros as Micros  # re-exported for message modules
from messages.money import SignedMicros as SignedMicros

AGENT_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}\Z"
"""The one rule for an agent's name: 1 to 64 of ASCII letters, digits, `_ . : -`. `\\Z`, not `$`,
so a trailing newline does not slip through (`$` matches before one)."""

AgentId = Annotated[str, msgspec.Meta(pattern=AGENT_ID_PATTERN)]
MessageId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.:-]{1,80}\Z")]

_AGENT_ID = re.compile(AGENT_ID_PATTERN)


def validate_agent_id(name: object) -> str:
    """`name` if it is a valid agent id (`AGENT_ID_PATTERN`, the rule every message uses), else
    `BadAgentId` with one printable line (control characters and non-ASCII shown escaped)."""
    if isinstance(name, str) and _AGENT_ID.match(name):
        return name
    shown = ascii(name) if len(str(name)) <= 70 else ascii(str(name)[:64]) + f"... ({len(str(name))} characters)"
    raise BadAgentId(f"agent name {shown} is not valid: use 1 to 64 of A-Z a-z 0-9 _ . : - (no spaces)")
Probability = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
Bucket = Literal["reserve", "trading", "casino", "referral"]
RiskState = Literal["ACTIVE", "PAUSED", "HALTED"]
KellyFraction = Literal["full", "half", "quarter"] | Annotated[float, msgspec.Meta(gt=0.0, le=1.0)]

BUCKETS: tuple[str, ...] = ("reserve", "trading", "casino", "referral")


class Message(msgspec.Struct, tag=True, tag_field="type", frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of every message body. Not sent on its own. Subclasses declare required fields first:
    `kw_only` does not carry over to subclasses in msgspec. Subclasses repeat `frozen=True`: msgspec
    inherits it anyway, but a type checker reads `dataclass_transform` per class (msgspec issue 657)."""
