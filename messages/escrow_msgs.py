"""Escrow messages: the commands the EscrowManager (role "escrow") takes and the events it journals.

Escrow money belongs to the reserve bucket and is integer micro-USD. A few limits are checked
by the decoder because a message breaking them is malformed (an empty proof, a counterparty that
is not a casino agent id); the treasury's policy limits (at most 72 h, at most 30 % of the
reserve locked) are NOT decoder limits: a command breaking them is well formed and must be
refused with a journaled `EscrowRefused`, so the refusal and its reason stay in the audit trail.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from messages.base import Message, Micros

CasinoAgentId = Annotated[str, msgspec.Meta(pattern=r"^ag_[A-Za-z0-9]{1,61}$")]
"""A counterparty is named by its CASINO agent id: escrow debits and credits casino balances."""

EscrowId = Annotated[str, msgspec.Meta(pattern=r"^esc_[A-Za-z0-9]{1,60}$")]

Description = Annotated[str, msgspec.Meta(min_length=3, max_length=200, pattern=r"\S")]
"""What the escrow pays for. The treasury appends its message id to it (` [ref:<id>]`) so a lost
creation can be found again; 200 characters leave room for that tag."""

NonEmptyText = Annotated[str, msgspec.Meta(min_length=1, max_length=1000, pattern=r"\S")]
"""A proof of delivery or a dispute reason: at least one visible character."""

TimeoutHours = Annotated[int, msgspec.Meta(ge=-100_000, le=100_000)]
"""Any plausible integer decodes; the 1–72 h rule is judged by the actor and refused in the journal."""

EscrowStatus = Literal["funded", "completed", "disputed", "released", "refunded"]


# ---------------------------------------------------------------- commands


class CreateEscrow(Message, frozen=True):
    """Lock `amount` of the reserve for `counterparty` until released, disputed or timed out.

    The venue takes its 1 % fee out of the amount (the counterparty gets amount − fee); the
    treasury counts the fee on top when it judges the 30 % limit, on the safe side.
    """

    counterparty: CasinoAgentId
    amount: Micros
    description: Description
    timeout_hours: TimeoutHours = 24


class ReleaseEscrow(Message, frozen=True):
    """Pay the counterparty of an open escrow. `proof` (e.g. a delivery hash) is journaled with it."""

    escrow_id: EscrowId
    proof: NonEmptyText


class DisputeEscrow(Message, frozen=True):
    """Freeze an open escrow for manual review; its money stays locked until a person decides."""

    escrow_id: EscrowId
    reason: NonEmptyText


class SyncEscrows(Message, frozen=True):
    """Periodic tick: look every open escrow up at the venue and apply what happened there
    (released by someone else, refunded by timeout, disputed by the counterparty)."""


# ---------------------------------------------------------------- events (the journal)


class EscrowCreated(Message, frozen=True):
    """An escrow is funded: `amount` moved from the reserve to `reserve:locked`.

    `recovered` is true when the escrow was found at the venue after a lost answer or a crash,
    rather than created by this delivery.
    """

    escrow_id: str
    counterparty: str
    amount: Micros
    fee: Micros
    net_to_counterparty: Micros
    timeout_hours: int
    auto_release_at: str
    locked_after: Micros
    recovered: bool = False
    fence_seq: int | None = None


class EscrowReleased(Message, frozen=True):
    """The counterparty was paid: `amount` left the ledger (`paid` to it, `fee` to the venue)."""

    escrow_id: str
    amount: Micros
    paid: Micros
    fee: Micros
    proof: str | None = None
    source: Literal["command", "venue"] = "command"
    """`venue`: found released at the venue by a sync (released by someone else, or by an
    earlier attempt whose commit did not happen)."""


class EscrowRefunded(Message, frozen=True):
    """The venue refunded the escrow at its timeout: `returned` (amount − fee) is back in the reserve."""

    escrow_id: str
    amount: Micros
    returned: Micros
    fee: Micros


class EscrowDisputed(Message, frozen=True):
    """The escrow is frozen; its `amount` stays in `reserve:locked` until a manual review."""

    escrow_id: str
    amount: Micros
    reason: str
    source: Literal["command", "venue"] = "command"


class EscrowRefused(Message, frozen=True):
    """A command the treasury itself did not let go ahead (policy, fence, state), and why. `code` is
    machine-readable, `reason` for people."""

    code: str
    reason: str
    escrow_id: str | None = None
    amount: Micros | None = None
    fence_seq: int | None = None


class EscrowRejected(Message, frozen=True):
    """A command the venue refused (its error `code` and text); anything reserved for it went back."""

    code: str
    reason: str
    escrow_id: str | None = None
    amount: Micros | None = None
    fence_seq: int | None = None


class EscrowSynced(Message, frozen=True):
    """What one sync found. `checked` open escrows were looked up; `unreachable` could not be."""

    checked: int
    released: int = 0
    refunded: int = 0
    disputed: int = 0
    completed: int = 0
    unchanged: int = 0
    missing: int = 0
    unreachable: int = 0


MESSAGES: tuple[type, ...] = (
    CreateEscrow, ReleaseEscrow, DisputeEscrow, SyncEscrows,
    EscrowCreated, EscrowReleased, EscrowRefunded, EscrowDisputed, EscrowRefused, EscrowRejected, EscrowSynced,
)
