"""The trading bucket's messages: commands to open, close and watch perpetual positions, and the
events that record every position's life in the journal.

Prices, rates and ratios travel as decimal strings (`"0.02"`, `"97000.5"`): they are not money,
but a stop placed from a float would not be where the agent asked. Money is integer micro-USD.
The rules themselves (a stop on every order, take-profit at least 2× the stop distance, the
leverage and margin caps) are checked by the actor, so an order that breaks one is journaled as an
`OrderRefused` with its reason instead of being dropped by the decoder.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from messages.base import KellyFraction, Message, Micros, SignedMicros

DecimalText = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{1,12}(\.[0-9]{1,18})?$")]
"""A non-negative decimal number as text: exact, unlike a float."""

Coin = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9:_-]{1,32}$")]
Side = Literal["long", "short"]
PositionId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.:-]{1,80}$")]
Role = Annotated[str, msgspec.Meta(pattern=r"^[a-z]{1,32}$")]


# ---------------------------------------------------------------- commands


class OpenPosition(Message, frozen=True):
    """Size, fence and open one perpetual position with its stop-loss and take-profit.

    `win_rate` (p) and `win_loss_ratio` (average win / average loss, b) are the agent's own record
    of the strategy; Kelly turns them into the amount to lose at the stop. `stop_distance` is a
    fraction of the entry price (`"0.02"` = 2 %); the take-profit sits `take_profit_multiple`
    times as far on the winning side (at least 2). `leverage` above the lower of the policy's and
    the venue's cap is refused, never silently lowered. `trail_bp` makes the stop-loss a trailing
    stop that follows the best price by that many basis points. `notional` replaces the Kelly
    size with the agent's own (an explicit opt-in; an edge and every cap are still required).
    """

    coin: Coin
    side: Side
    win_rate: DecimalText
    win_loss_ratio: DecimalText
    stop_distance: DecimalText
    leverage: Annotated[int, msgspec.Meta(ge=1, le=100)]
    take_profit_multiple: DecimalText = "2"
    kelly: KellyFraction = "half"
    trail_bp: Annotated[int, msgspec.Meta(ge=1, le=9999)] | None = None
    notional: Micros | None = None


class ClosePosition(Message, frozen=True):
    """Close one position at the market and settle it (allowed in every risk state)."""

    position_id: PositionId
    reason: str


class CloseAllPositions(Message, frozen=True):
    """Close every open position of the agent (trading drawdown breaker, or before a rebalance
    moves trading funds); answered by one `PositionsClosedAll`, in the journal and on the command
    stream of the `reply_to` role (by default the rebalancer, which coordinates moves of money and
    waits for this answer; None: the journal only)."""

    reason: str
    reply_to: Role | None = "rebalancer"


class CheckExits(Message, frozen=True):
    """The periodic tick: ratchet trailing stops, let the venue fire stop-losses and take-profits
    (it only does when asked), and settle every position the venue closed."""


# ---------------------------------------------------------------- events


class TradeSizing(Message, frozen=True):
    """How an order was sized: Kelly's figures and what the caps made of them."""

    win_rate: str
    win_loss_ratio: str
    full_fraction: str
    applied_fraction: str
    bucket: Micros
    risk: Micros
    """Micro-USD lost if the stop fills."""
    notional: Micros
    margin: Micros
    leverage: int
    margin_capped: bool
    reason: str


class PositionOpened(Message, frozen=True):
    """A position opened at the venue and booked: `notional`, `margin` and `fee` in micro-USD,
    prices (`entry_price`, `stop_loss`, `take_profit`) as decimal strings as the venue holds them,
    `trail_bp` the trailing stop in basis points, and `reconstructed` when the open's answer was
    lost and the position was found by a look-up."""

    position_id: str
    coin: str
    side: Side
    entry_price: str
    notional: Micros
    margin: Micros
    leverage: int
    fee: Micros
    stop_loss: str
    take_profit: str
    trail_bp: int | None = None
    sizing: TradeSizing | None = None
    reconstructed: bool = False
    """True when the venue's answer was lost and the position was found by a look-up."""


class PositionClosed(Message, frozen=True):
    """A position settled into the ledger: `returned` went back to the trading bucket's available
    balance, so the ledger changed by `returned - margin`."""

    position_id: str
    coin: str
    side: Side
    reason: str
    entry_price: str
    exit_price: str
    notional: Micros
    margin: Micros
    pnl: SignedMicros
    """The venue's P&L on the notional, before fees."""
    fee: Micros
    """The closing fee (the opening fee was booked at the open)."""
    returned: Micros
    """margin + pnl − fee, never below 0: a loss beyond the margin is a liquidation."""
    liquidated: bool = False
    reconstructed: bool = False


class OrderRefused(Message, frozen=True):
    """An order or close the treasury itself did not carry out (policy, fence, state), and why.
    `code` is for machines."""

    code: str
    reason: str
    position_id: str | None = None
    sizing: TradeSizing | None = None
    fence_seq: int | None = None


class OrderRejected(Message, frozen=True):
    """An order or close the venue refused (its error `code` and text); the reservation went back."""

    code: str
    reason: str
    position_id: str | None = None
    sizing: TradeSizing | None = None
    fence_seq: int | None = None


class StopMoved(Message, frozen=True):
    """A trailing stop ratcheted; the venue's stop-loss trigger was moved with it."""

    position_id: str
    previous: str
    stop_loss: str
    best_price: str


class PositionsClosedAll(Message, frozen=True):
    """The answer to `CloseAllPositions`: how many booked positions were closed and settled (those
    the venue had already closed or liquidated included), their summed pnl and closing fees."""

    reason: str
    closed: int
    pnl: SignedMicros
    fees: Micros


MESSAGES: tuple[type, ...] = (
    OpenPosition, ClosePosition, CloseAllPositions, CheckExits,
    TradeSizing, PositionOpened, PositionClosed, OrderRefused, OrderRejected, StopMoved, PositionsClosedAll,
)
