"""Rebalancing messages: the requests that start a rebalance, the legs of a move between buckets,
and the events that journal every step of it.

A move between two buckets is a saga (see `actors/transfers.py`, `docs/rebalancing.md`), because
each bucket's balance has one writer, its own actor: the Rebalancer plans and coordinates, the
source bucket's actor debits, the destination's actor credits. The leg commands and their
answers carry no authority of their own: every leg handler checks the command against the leg
the Rebalancer recorded in the saga's Redis hash, and the Rebalancer decides from that hash, not
from what an answer says. So a forged leg message can move nothing that was not planned
(`messages/catalogue.py` marks them internal for the command gate).
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from messages.base import Bucket, Message, MessageId, Micros, RiskState

LegIndex = Annotated[int, msgspec.Meta(ge=0, le=63)]
"""A move's position in its saga's plan (a plan has at most a handful of moves)."""

Silo = Literal["wallet", "trading", "casino"]
"""Where money physically sits: on-chain wallet USDC, Hyperliquid collateral, the casino balance."""

LegStage = Literal["debit", "credit", "compensate", "land"]


# ---------------------------------------------------------------- requests (to the "rebalancer" role)


class Rebalance(Message, frozen=True):
    """Rebalance now if the trigger holds (`docs/rebalancing.md` lists the triggers).

    `trigger` names why: `manual`, `drift`, `schedule`, a breaker (`reserve_floor`,
    `casino_session`, `trading_drawdown`), `big_win` (with `bucket`, `amount` = the win and
    `bucket_before`) or `before_escrow` (with `amount` = the escrow). The Rebalancer re-checks
    the trigger against the ledger and answers in the journal: a `RebalancePlanned` (then one of
    `RebalanceCompleted` / `RebalanceCompensated` / `RebalanceFailed`) or a `RebalanceSkipped`.
    """

    trigger: str
    reason: str
    bucket: Bucket | None = None
    amount: Micros | None = None
    bucket_before: Micros | None = None


class RebalanceTick(Message, frozen=True):
    """The periodic poke for one agent: run the scheduled or drift rebalance if due, and resume a
    saga that has stalled (resend its pending leg, or compensate it)."""


class SetPolicy(Message, frozen=True):
    """An operator changes one agent's policy settings (names and ranges of
    `actors.policy.buckets.Policy`; integers, and `kelly_fraction` as text). The whole resulting
    policy is validated before anything is stored: one bad setting refuses the command."""

    settings: dict[str, int | str]


# ---------------------------------------------------------------- the legs (to the bucket roles)


class LegOfMove(Message, frozen=True):
    """The fields every message about one leg of a move carries (not sent on its own)."""

    saga: MessageId
    leg: LegIndex
    source: Bucket
    dest: Bucket
    amount: Micros
    reason: str


class LegLanding(Message, frozen=True):
    """The fields of a message about a held part of a leg landing in its silo (not sent on its own)."""

    saga: MessageId
    leg: LegIndex
    bucket: Bucket
    amount: Micros
    reason: str



class DebitLeg(LegOfMove, frozen=True):
    """To the source bucket's role: take `amount` out of `source` into `<dest>:in_transit`."""


class CreditLeg(LegOfMove, frozen=True):
    """To the destination bucket's role: move the leg's money from `<dest>:in_transit` into
    `dest`, except `hold`, which stays in transit until a physical deposit lands (`LandTransit`)."""

    hold: Micros = 0


class CompensateLeg(LegOfMove, frozen=True):
    """To the source bucket's role: the credit failed; put the money in transit back in `source`.

    Only a leg whose credit never happened is returned, so a compensation racing a late credit
    cannot undo it."""


class LandTransit(LegLanding, frozen=True):
    """To the destination bucket's role: a held part of a leg physically arrived in the
    destination's silo; make it available. Sent by whatever watches the silo's deposits."""



# ------------------------------------------------ leg events (journal, and the answer to the Rebalancer)


class FundsDebited(LegOfMove, frozen=True):
    """The source's actor took the money out of `source`; it is in `<dest>:in_transit` now."""


class FundsMoved(LegOfMove, frozen=True):
    """The move is done: the destination's actor credited it (`held` of it waits in transit for a
    physical deposit)."""

    held: Micros = 0


class FundsReturned(LegOfMove, frozen=True):
    """A compensated leg: the money in transit went back to `source`."""


class TransitLanded(LegLanding, frozen=True):
    """A held part of a leg landed in its silo and became available in `bucket`."""


class LegFailed(Message, frozen=True):
    """A leg that was not carried out, and why (`code` for machines, `reason` for people).

    A failed debit moved nothing; a failed credit leaves the money in transit until it is
    compensated; a compensation that finds the credit already done changes nothing."""

    saga: MessageId
    leg: LegIndex
    stage: LegStage
    source: Bucket
    dest: Bucket
    amount: Micros
    code: str
    reason: str


# ---------------------------------------------------------------- the Rebalancer's events


class PlannedMove(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One move of a plan: `hold` of it waits in the destination's transit for a physical deposit."""

    source: Bucket
    dest: Bucket
    amount: Micros
    hold: Micros = 0


class RebalancePlanned(Message, frozen=True):
    """A rebalance saga started: its `moves` in order (micro-USD each), the risk `state` it was
    planned under, and the buckets `before` and `after` (bucket → micro-USD)."""

    saga: MessageId
    trigger: str
    reason: str
    moves: tuple[PlannedMove, ...]
    close_positions_first: bool
    """Money leaves the trading bucket while positions are open: they are closed before any move."""
    state: RiskState
    before: dict[str, Micros]
    after: dict[str, Micros]
    dropped: tuple[str, ...] = ()
    """Planned moves that the risk state or a bucket halt did not allow, or the balance could not
    fund, each with why."""


class RebalanceSkipped(Message, frozen=True):
    """A rebalance request that led to no saga, and why (trigger not met, nothing to move, a saga
    already running, a risk state that allows none of the moves)."""

    trigger: str
    reason: str


class RebalanceCompleted(Message, frozen=True):
    """Every move of saga `saga` is done: `moves` legs, `moved` micro-USD in all."""

    saga: MessageId
    reason: str
    moves: int
    moved: Micros
    held: Micros
    """Of `moved`, what waits in transit for a physical deposit."""


class RebalanceCompensated(Message, frozen=True):
    """A credit failed; its money went back to the source. Moves before it stay done; the ones
    after it were not started."""

    saga: MessageId
    leg: LegIndex
    reason: str
    returned: Micros
    moves_done: int


class RebalanceFailed(Message, frozen=True):
    """The saga stopped without money in flight: a debit was refused, the positions were not
    closed, or the source never answered. Moves before the failure stay done."""

    saga: MessageId
    stage: str
    reason: str
    moves_done: int


class PhysicalTransferIntended(Message, frozen=True):
    """A silo must physically receive money for the ledger moves of a saga (netted per silo).

    This version records the intent and keeps the destination's share in `<bucket>:in_transit`;
    `route` says what the real transfer is. Executing it is the silo executor's job
    (`docs/rebalancing.md`, "Physical silos")."""

    saga: MessageId
    from_silo: Silo
    to_silo: Silo
    amount: Micros
    route: str
    reason: str


class PolicyChanged(Message, frozen=True):
    """The settings an operator changed, as stored; `policy` is every override now in force."""

    settings: dict[str, int | str]
    policy: dict[str, int | str]


class PolicyRefused(Message, frozen=True):
    """A `SetPolicy` that was not applied (an unknown name or a value out of range): nothing changed."""

    settings: dict[str, int | str]
    reason: str


MESSAGES: tuple[type, ...] = (
    Rebalance, RebalanceTick, SetPolicy, PolicyChanged, PolicyRefused,
    DebitLeg, CreditLeg, CompensateLeg, LandTransit,
    FundsDebited, FundsMoved, FundsReturned, TransitLanded, LegFailed,
    RebalancePlanned, RebalanceSkipped, RebalanceCompleted, RebalanceCompensated, RebalanceFailed,
    PhysicalTransferIntended,
)
