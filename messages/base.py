"""The base types every message module builds on (kept apart so message modules of each
concern can import them without importing one another)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from messages.money import Micros as Micros  # re-exported for message modules
from messages.money import SignedMicros as SignedMicros

AgentId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]
MessageId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.:-]{1,80}$")]
Probability = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
Bucket = Literal["reserve", "trading", "casino", "referral"]
RiskState = Literal["ACTIVE", "PAUSED", "HALTED"]
KellyFraction = Literal["full", "half", "quarter"] | Annotated[float, msgspec.Meta(gt=0.0, le=1.0)]

BUCKETS: tuple[str, ...] = ("reserve", "trading", "casino", "referral")


class Message(msgspec.Struct, tag=True, tag_field="type", frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of every message body. Not sent on its own. Subclasses declare required fields first:
    `kw_only` does not carry over to subclasses in msgspec. Subclasses repeat `frozen=True`: msgspec
    inherits it anyway, but a type checker reads `dataclass_transform` per class (msgspec issue 657)."""
