"""External flows: money that entered or left an agent's treasury without being won or lost.

A flow is booked by `actors.flows.book_flow` in the same atomic step as the ledger change it
explains; the breakers then measure performance, not flows (`docs/policy.md`, *Flows*).
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from messages.base import Bucket, Message, SignedMicros

FlowSource = Annotated[str, msgspec.Meta(pattern=r"^[a-z_]{1,32}$")]
"""Where the money came from or went: `capital`, `deposit`, `escrow_received`,
`referral_commission` (inflows); `escrow_payment`, `withdrawal`, `owner_transfer` (outflows)."""

FlowRef = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.:|-]{1,120}$")]


class FlowBooked(Message, frozen=True):
    """Journal event: `amount_micros` (signed: + in, − out) entered or left `bucket` from `source`.

    `ref` identifies the outside fact (an escrow id, a venue ledger entry, a deposit's tx hash);
    a flow with a ref is booked at most once per agent.
    """

    bucket: Bucket
    amount_micros: SignedMicros
    source: FlowSource
    detail: str = ""
    ref: FlowRef | None = None


class ScanIncoming(Message, frozen=True):
    """The periodic poke to the casino role: book money paid to the agent (escrow payouts into its
    casino balance) that is not booked yet. Carries no authority: each payment is booked once."""


MESSAGES: tuple[type, ...] = (FlowBooked, ScanIncoming)
