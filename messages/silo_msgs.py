"""Messages of the physical side of money: transfers between silos, fees, reconciliation, and the
operator's moves and adjustments.

Buckets are ledger sub-accounts; the money physically sits in three silos (the on-chain wallet,
the casino balance, the trading collateral). When a rebalance moves money across silos, the
`silo` role (`actors/silo/`) makes the transfer through the venues, watches the destination for
the deposit, and then lands or returns the held part of each leg through the bucket actors
(`LandHeld`, `ReturnHeld`), books fees (`BookFee`) and outside income (`BookIncome`). Those four
carry no authority of their own: each is honoured only against the transfer's record in Redis,
written by the silo actor in the same commit that sent it, and consumes a one-shot token there
(`docs/rebalancing.md`, "Silo transfers"). `MoveFunds`, `PlaceFunds` and `AdjustLedger` are operator commands.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from messages.base import Bucket, Message, MessageId, Micros, SignedMicros

LegIndex = Annotated[int, msgspec.Meta(ge=0, le=63)]
Silo = Literal["wallet", "trading", "casino"]
TransferId = Annotated[str, msgspec.Meta(min_length=1, max_length=160)]
Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]


# ---------------------------------------------------------------- pokes to the "silo" role


class ExecuteSiloTransfers(Message, frozen=True):
    """Work on the agent's silo transfers now (sent by the Rebalancer when a saga leaves some)."""

    reason: str = ""


class SiloTick(Message, frozen=True):
    """The schedule's poke: retry what may be retried, look lost answers up, watch deposits, and
    reconcile when it is due."""


class Reconcile(Message, frozen=True):
    """Compare every silo's venue balance with the ledger now; answered by `ReconciliationChecked`."""

    reason: str = "on demand"


# ---------------------------------------------------------------- operator commands


class MoveFunds(Message, frozen=True):
    """Operator (to the `rebalancer` role): move `amount` from bucket `source` to bucket `dest` with
    the same saga as a rebalance move (fence, legs, physical transfer across silos)."""

    source: Bucket
    dest: Bucket
    amount: Annotated[int, msgspec.Meta(gt=0, le=10**15)]
    reason: Reason


class PlaceFunds(Message, frozen=True):
    """Operator (to the `silo` role): move `amount` of `bucket`'s money to the `silo` without changing
    the bucket (the reserve's money parked in the casino balance, so escrows can be funded from it;
    `silo="wallet"` brings it home). Answered by the transfer's events."""

    bucket: Literal["reserve"]
    silo: Silo
    amount: Annotated[int, msgspec.Meta(gt=0, le=10**15)]
    reason: Reason


class AdjustLedger(Message, frozen=True):
    """Operator (to the bucket's role): add `amount` (negative: take away) to `bucket`'s available
    balance, to settle a reconciliation difference; journaled with its reason (`LedgerAdjusted`)."""

    bucket: Bucket
    amount: SignedMicros
    reason: Reason

    def __post_init__(self) -> None:
        if self.amount == 0:
            raise ValueError("an adjustment of 0 micro-USD adjusts nothing")


# ---------------------------------------------------------------- silo role -> bucket roles


class LandHeld(Message, frozen=True):
    """To the destination bucket's role: the transfer's deposit was seen; make the leg's held part
    available. Honoured only up to the transfer record's `land:<leg>` token."""

    transfer: TransferId
    saga: MessageId
    leg: LegIndex
    bucket: Bucket
    amount: Micros
    reason: str


class ReturnHeld(Message, frozen=True):
    """To the source bucket's role: the transfer failed or was never seen; put the leg's held part
    back in `source` (from `<dest>:in_transit`). Honoured only up to the record's `ret:<leg>` token."""

    transfer: TransferId
    saga: MessageId
    leg: LegIndex
    source: Bucket
    dest: Bucket
    amount: Micros
    reason: str


class BookFee(Message, frozen=True):
    """To the bucket's role: a venue kept `amount` as a fee; it leaves the treasury. Honoured only
    up to the record's `fee:<kind>` token."""

    transfer: TransferId
    bucket: Bucket
    amount: Micros
    kind: str
    reason: str


class BookIncome(Message, frozen=True):
    """To the bucket's role: money paid to the agent from outside (a deposit no transfer explains),
    booked once. Honoured only up to the `income:<agent>` token of `ref`."""

    silo: Silo
    bucket: Bucket
    amount: Micros
    ref: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    reason: str


# ---------------------------------------------------------------- events (journal)


class SiloTransferSent(Message, frozen=True):
    """The venue took the transfer (`venue_ref`: tx hash or withdrawal id); `found` when a lost
    answer was proven by a look-up instead of the venue's answer."""

    transfer: TransferId
    saga: MessageId
    from_silo: Silo
    to_silo: Silo
    amount: Micros
    route: str
    venue_ref: str
    found: bool = False


class SiloTransferHeld(Message, frozen=True):
    """The transfer waits: `review` (the casino reviews withdrawals over $1,000), `unknown` (an
    answer was lost and the look-up could not prove it sent or absent: never resent), `unseen`
    (the destination cannot be read)."""

    transfer: TransferId
    from_silo: Silo
    to_silo: Silo
    amount: Micros
    why: Literal["review", "unknown", "unseen"]
    reason: str


class SiloTransferLanded(Message, frozen=True):
    """The destination silo shows the transfer: `credited` of its `amount` arrived (`venue_ref`: the
    deposit or withdrawal that shows it); the held legs it carries become available."""

    transfer: TransferId
    from_silo: Silo
    to_silo: Silo
    amount: Micros
    credited: Micros
    venue_ref: str


class SiloTransferFailed(Message, frozen=True):
    """The transfer did not happen (refused, impossible) or was not seen by the deadline: the held
    parts go back to their source buckets (`HeldReturned`)."""

    transfer: TransferId
    from_silo: Silo
    to_silo: Silo
    amount: Micros
    stage: Literal["send", "deposit"]
    reason: str


class TransferHeldLanded(Message, frozen=True):
    """A bucket actor made `amount` of a leg's held part available (after `LandHeld`)."""

    transfer: TransferId
    saga: MessageId
    leg: LegIndex
    bucket: Bucket
    amount: Micros
    reason: str


class HeldReturned(Message, frozen=True):
    """A bucket actor put `amount` of a leg's held part back in `source` (after `ReturnHeld`)."""

    transfer: TransferId
    saga: MessageId
    leg: LegIndex
    source: Bucket
    dest: Bucket
    amount: Micros
    reason: str


class FeeBooked(Message, frozen=True):
    """Money that left the treasury as a venue's fee, with why."""

    transfer: TransferId
    bucket: Bucket
    amount: Micros
    kind: str
    reason: str


class IncomeBooked(Message, frozen=True):
    """Money paid in from outside (`ref`: the venue row) booked once as income of `bucket`."""

    silo: Silo
    bucket: Bucket
    amount: Micros
    ref: str
    reason: str


class SiloCheck(msgspec.Struct, frozen=True, kw_only=True):
    """One silo in a reconciliation. `venue_micros` None: the balance could not be read (unknown,
    never zero). `ledger_micros`: what the ledger says the silo holds now (its buckets, plus money
    the ledger moved away that has not physically left, less money moved in that has not arrived);
    `in_flight_micros`: sent from or to it and not landed."""

    silo: Silo
    status: Literal["match", "differs", "unknown"]
    venue_micros: int | None
    ledger_micros: int
    in_flight_micros: int = 0
    difference_micros: int | None = None
    note: str = ""


class ReconciliationChecked(Message, frozen=True):
    """Every silo against the ledger (`SiloCheck` each); `clean` when all match; `alerted` when a
    difference beyond `tolerance_micros` raised an alert. Nothing is changed by it."""

    reason: str
    silos: tuple[SiloCheck, ...]
    clean: bool
    tolerance_micros: int
    alerted: bool = False


class LedgerAdjusted(Message, frozen=True):
    """An operator's `AdjustLedger` applied: `bucket` went from `before` to `after` (micro-USD)."""

    bucket: Bucket
    amount: SignedMicros
    before: SignedMicros
    after: SignedMicros
    reason: str


class AdjustRefused(Message, frozen=True):
    """An `AdjustLedger` that would leave the bucket negative: nothing changed."""

    bucket: Bucket
    amount: SignedMicros
    reason: str


MESSAGES: tuple[type, ...] = (
    ExecuteSiloTransfers, SiloTick, Reconcile, MoveFunds, PlaceFunds, AdjustLedger,
    LandHeld, ReturnHeld, BookFee, BookIncome,
    SiloTransferSent, SiloTransferHeld, SiloTransferLanded, SiloTransferFailed, TransferHeldLanded, HeldReturned,
    FeeBooked, IncomeBooked, ReconciliationChecked, LedgerAdjusted, AdjustRefused,
)

INTERNAL_POKES: frozenset[str] = frozenset({
    "ExecuteSiloTransfers", "SiloTick", "Reconcile", "LandHeld", "ReturnHeld", "BookFee", "BookIncome",
})
"""Unsigned messages the actors send each other: each is honoured only against Redis state the
silo actor's atomic commits wrote (a token per leg, fee and income ref); `Reconcile` only reads
and journals. `MoveFunds`, `PlaceFunds` and `AdjustLedger` are operator commands and must be signed."""
