"""What the trading bucket keeps in Redis besides the ledger, and the arithmetic of its bookings.

Two hashes per agent, under the agent's shard tag so the atomic steps can write them:

* `positions`: venue position id → `PositionRecord` (JSON). It is the treasury's own book of open
  positions: the venue's database and its exchange can disagree (see the sandbox), so the actor
  settles against this book, once per position.
* `trade_plans`: message id → `OrderPlan` (JSON), written before the margin is reserved and
  deleted by the commit that ends the order. A redelivered `OpenPosition` reuses its plan (same
  notional, same reservation) and uses the venue rows listed in it to recognise the position its
  lost attempt may have opened: a look-up by anything else could adopt the wrong position.

The booking functions are pure and exact: the ledger moves by whole micro-USD and every split
adds up to what it splits.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from actors.policy.buckets import share_ceil
from actors.policy.trading_rules import TrailingStop
from messages.trading_msgs import TradeSizing
from runtime.keys import Keys

FEE_ALLOWANCE_BP = 10
"""Reserved on top of the margin for the opening fee: the venue charges 5.5 bp of the notional
(Hyperliquid 3.5 + builder 2 on the free tier), so 10 bp always covers it and the commit after a
venue open can never be refused for want of funds."""


def positions_key(keys: Keys, agent: str) -> str:
    return keys.positions(agent)


def plans_key(keys: Keys, agent: str) -> str:
    return keys.trade_plans(agent)


def fee_allowance(notional: int) -> int:
    return share_ceil(notional, FEE_ALLOWANCE_BP)


class Trail(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A trailing stop's state, as `TrailingStop` (prices as decimal text)."""

    bp: int
    best: str
    stop: str

    def machine(self, side: str) -> TrailingStop:
        return TrailingStop(side, self.bp, Decimal(self.best), Decimal(self.stop))  # type: ignore[arg-type]

    @classmethod
    def of(cls, state: TrailingStop) -> Trail:
        return cls(state.trail_bp, str(state.best_price), str(state.stop_price))


class PositionRecord(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One open position as the treasury booked it. `margin` is what sits in `trading:margin`."""

    position_id: str
    coin: str
    side: str
    entry_price: str
    notional: int
    margin: int
    leverage: int
    fee_open: int
    stop_loss: str
    take_profit: str
    opened_by: str
    opened_ms: int
    trail: Trail | None = None

    def encode(self) -> str:
        return msgspec.json.encode(self).decode()

    @classmethod
    def decode(cls, data: bytes | str) -> PositionRecord:
        return msgspec.json.decode(data, type=cls)


class OrderPlan(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An order as sized and checked, before anything was reserved or sent."""

    coin: str
    side: str
    notional: int
    leverage: int
    stop_pct: str
    """The stop distance as a percentage of the entry (`trading_rules.stop_prices` takes it so)."""
    take_profit_multiple: str
    held: int
    """margin + fee allowance: the amount the fence reserves."""
    cap: int
    """The fence's cap for this order: 10 % of the bucket plus the fee allowance on it."""
    trail_bp: int | None
    before: list[str]
    """The venue's position rows (ids) listed just before this order: a row not among them with
    this order's market, side and notional is this order's position."""
    created_ms: int
    sizing: TradeSizing | None = None

    def encode(self) -> str:
        return msgspec.json.encode(self).decode()

    @classmethod
    def decode(cls, data: bytes | str) -> OrderPlan:
        return msgspec.json.decode(data, type=cls)


def read_positions(client, keys: Keys, agent: str) -> dict[str, PositionRecord]:
    raw = client.hgetall(positions_key(keys, agent))
    return {(k.decode() if isinstance(k, bytes) else k): PositionRecord.decode(v) for k, v in raw.items()}


def read_plan(client, keys: Keys, agent: str, msg_id: str) -> OrderPlan | None:
    raw = client.hget(plans_key(keys, agent), msg_id)
    return None if raw is None else OrderPlan.decode(raw)


def read_plans(client, keys: Keys, agent: str) -> dict[str, OrderPlan]:
    raw = client.hgetall(plans_key(keys, agent))
    return {(k.decode() if isinstance(k, bytes) else k): OrderPlan.decode(v) for k, v in raw.items()}


# ---------------------------------------------------------------- bookings


class OpenBooking(msgspec.Struct, frozen=True):
    """How a reservation of `held` splits once the venue opened: margin posted, fee paid, and the
    rest back to the available balance. margin + fee + back == held, all ≥ 0."""

    margin: int
    fee: int
    back: int


def book_open(held: int, venue_margin: int, fee: int) -> OpenBooking:
    """Split the reservation. A fee beyond the allowance (a venue that raised its fees) is taken
    out of the booked margin instead of failing the commit, so the ledger stays exact and the
    position's booked margin errs low (the safe side)."""
    margin = min(max(venue_margin, 0), held)
    fee = max(fee, 0)
    if fee > held - margin:
        margin = max(held - fee, 0)
        fee = held - margin
    return OpenBooking(margin, fee, held - margin - fee)


def settled_amount(margin: int, pnl: int, fee: int) -> int:
    """What a closed position gives back to the trading bucket: margin + pnl − fee, but never
    below zero. An isolated position cannot lose more than its margin: beyond that it is a
    liquidation, and the ledger may never go negative."""
    return max(0, margin + pnl - fee)
