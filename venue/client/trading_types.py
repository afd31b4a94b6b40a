"""Typed answers of the trading service, with money as integer micro-USD.

The service answers with JSON floats for money, snake_case rows from Hyperliquid but camelCase
rows from its own database (`GET /trade/positions?status=all`), optional fields that come and go,
and an extra `_info` object. Each `from_wire` here reads one such answer leniently (either
spelling, numbers as floats or strings) and strictly where it matters: money goes through
`usd_from_venue`, so NaN, infinities and absurd magnitudes raise `MoneyError` instead of
entering the treasury. Prices and leverage are not money and stay `Decimal`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec

from messages.money import usd_from_venue
from venue.client.base import Secret

__all__ = [
    "TradingRegistration",
    "TradingAccount",
    "Market",
    "OpenedPosition",
    "ClosedPosition",
    "Position",
    "PositionList",
    "ExitOrder",
    "ExitPair",
    "ExitExecution",
    "ExitCheck",
    "LimitOrder",
    "LimitCheck",
    "LimitOrderBook",
    "RiskSettings",
    "CloseAllResult",
    "TradingReferralStats",
    "ReferralWithdrawal",
    "WireReader",
]


class WireReader:
    """Lenient access to one JSON object: alternative key spellings, numbers as text, no floats
    for money. Raises `ValueError` (or `MoneyError`) naming the field when a required value is
    missing or unusable."""

    __slots__ = ("_data", "_what")

    def __init__(self, data: Any, what: str) -> None:
        if not isinstance(data, dict):
            raise ValueError(f"{what}: expected a JSON object, got {type(data).__name__}")
        self._data = data
        self._what = what

    def raw(self, *keys: str) -> Any:
        for key in keys:
            if key in self._data and self._data[key] is not None:
                return self._data[key]
        return None

    def has(self, *keys: str) -> bool:
        return self.raw(*keys) is not None

    def _missing(self, keys: tuple[str, ...]) -> ValueError:
        return ValueError(f"{self._what}: missing {' / '.join(keys)}")

    def text(self, *keys: str, default: str | None = None, required: bool = True) -> str | None:
        value = self.raw(*keys)
        if value is None:
            if required and default is None:
                raise self._missing(keys)
            return default
        return str(value)

    def money(self, *keys: str, signed: bool = False, required: bool = True) -> int | None:
        value = self.raw(*keys)
        if value is None:
            if required:
                raise self._missing(keys)
            return None
        return usd_from_venue(value, field=f"{self._what}.{keys[0]}", allow_negative=signed)

    def money_or_zero(self, *keys: str, signed: bool = False) -> int:
        value = self.money(*keys, signed=signed, required=False)
        return 0 if value is None else value

    def decimal(self, *keys: str, required: bool = True) -> Decimal | None:
        value = self.raw(*keys)
        if value is None:
            if required:
                raise self._missing(keys)
            return None
        if isinstance(value, bool):
            raise ValueError(f"{self._what}.{keys[0]}: expected a number, got a boolean")
        try:
            number = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))
        except ArithmeticError:
            raise ValueError(f"{self._what}.{keys[0]}: {value!r} is not a number") from None
        if not number.is_finite():
            raise ValueError(f"{self._what}.{keys[0]}: {value!r} is not finite")
        return number

    def integer(self, *keys: str, default: int | None = None) -> int:
        value = self.raw(*keys)
        if value is None:
            if default is None:
                raise self._missing(keys)
            return default
        if isinstance(value, bool):
            raise ValueError(f"{self._what}.{keys[0]}: expected an integer, got a boolean")
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))
        if not number.is_finite() or number != number.to_integral_value():
            raise ValueError(f"{self._what}.{keys[0]}: {value!r} is not an integer")
        return int(number)

    def items(self, *keys: str) -> list[Any]:
        value = self.raw(*keys)
        if value is None:
            return []
        if not isinstance(value, list):
            raise ValueError(f"{self._what}.{keys[0]}: expected a list")
        return value

    def child(self, *keys: str) -> "WireReader":
        value = self.raw(*keys)
        return WireReader(value if isinstance(value, dict) else {}, f"{self._what}.{keys[0]}")


def _seconds(reader: WireReader, *keys: str) -> int | None:
    """Unix seconds from an integer, a numeric string or an ISO-8601 text; None when absent."""
    value = reader.raw(*keys)
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    text = str(value)
    if text.isdigit():
        return int(text)
    from datetime import datetime

    try:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return None


class TradingRegistration(msgspec.Struct, frozen=True):
    """`POST /auth/register`. The key is shown once by the service; as a `Secret` it never
    appears in a repr."""

    agent_id: str
    api_key: Secret
    referral_code: str
    tier: str
    deposit_address: str | None

    @classmethod
    def from_wire(cls, data: Any) -> "TradingRegistration":
        r = WireReader(data, "register")
        return cls(
            agent_id=r.text("agent_id"),
            api_key=Secret(r.text("api_key")),
            referral_code=r.text("referral_code", default=""),
            tier=r.text("tier", default="free"),
            deposit_address=r.text("deposit_address", required=False)
            or r.child("hl_wallet").text("address", required=False),
        )


class TradingAccount(msgspec.Struct, frozen=True):
    """`GET /auth/account`: the caps the service applies, and lifetime totals."""

    agent_id: str | None
    tier: str
    max_leverage: int
    max_position_usd: int
    total_volume: int
    total_fees_paid: int
    total_pnl: int
    hl_wallet_address: str | None

    @classmethod
    def from_wire(cls, data: Any) -> "TradingAccount":
        r = WireReader(data, "account")
        return cls(
            agent_id=r.text("agent_id", required=False),
            tier=r.text("tier", default="free"),
            max_leverage=int(r.decimal("max_leverage")),
            max_position_usd=r.money("max_position_usd"),
            total_volume=r.money_or_zero("total_volume"),
            total_fees_paid=r.money_or_zero("total_fees_paid"),
            total_pnl=r.money_or_zero("total_pnl", signed=True),
            hl_wallet_address=r.child("hl_wallet").text("address", required=False),
        )


class Market(msgspec.Struct, frozen=True):
    """One perpetual market with its own leverage maximum."""

    coin: str
    ticker: str
    price: Decimal | None
    max_leverage: int
    category: str
    dex: str

    @classmethod
    def from_wire(cls, data: Any) -> "Market":
        r = WireReader(data, "market")
        coin = r.text("coin")
        return cls(
            coin=coin,
            ticker=r.text("ticker", "display_name", default=coin.replace("xyz:", "")),
            price=r.decimal("price", required=False),
            max_leverage=int(r.decimal("max_leverage")),
            category=r.text("category", default="crypto"),
            dex=r.text("dex", default=""),
        )


class OpenedPosition(msgspec.Struct, frozen=True):
    """`POST /trade/open`. `size_usd` is the notional; `margin_used` = notional / leverage."""

    position_id: str
    order_id: str | None
    coin: str
    side: str
    size_usd: int
    entry_price: Decimal
    leverage: Decimal
    margin_used: int
    liquidation_price: Decimal | None
    fee: int
    fee_hyperliquid: int
    fee_builder: int
    status: str
    reconstructed: bool = False
    """True when the answer was lost and this was rebuilt from a position look-up (fees then
    read 0: the listing does not carry them)."""

    @classmethod
    def from_wire(cls, data: Any) -> "OpenedPosition":
        r = WireReader(data, "open")
        fees = r.child("fee_breakdown")
        return cls(
            position_id=r.text("position_id"),
            order_id=r.text("order_id", required=False),
            coin=r.text("coin"),
            side=r.text("side"),
            size_usd=r.money("size_usd"),
            entry_price=r.decimal("entry_price"),
            leverage=r.decimal("leverage"),
            margin_used=r.money_or_zero("margin_used"),
            liquidation_price=r.decimal("liquidation_price", required=False),
            fee=r.money_or_zero("fee"),
            fee_hyperliquid=fees.money_or_zero("hyperliquid"),
            fee_builder=fees.money_or_zero("purple_flea_builder"),
            status=r.text("status", default="open"),
        )

    @classmethod
    def from_position(cls, position: "Position") -> "OpenedPosition":
        """Rebuild an open's answer from the position found by a look-up after a lost reply.
        Fees are not listed with positions, so they read 0 here."""
        return cls(
            position_id=position.position_id or "",
            order_id=None,
            coin=position.coin,
            side=position.side,
            size_usd=position.size_usd,
            entry_price=position.entry_price,
            leverage=position.leverage,
            margin_used=position.margin_used or 0,
            liquidation_price=position.liquidation_price,
            fee=0,
            fee_hyperliquid=0,
            fee_builder=0,
            status=position.status,
            reconstructed=True,
        )


class ClosedPosition(msgspec.Struct, frozen=True):
    """`POST /trade/close`. `pnl` is on the notional and does not include the fees."""

    position_id: str
    coin: str
    side: str
    entry_price: Decimal
    exit_price: Decimal
    size_usd: int
    pnl: int
    pnl_percent: Decimal
    fee: int
    status: str
    reconstructed: bool = False
    """True when the answer was lost and this was rebuilt from the closed row of a look-up: the
    exit price is then derived from the recorded pnl, and the fee reads 0."""

    @classmethod
    def from_position(cls, position: "Position") -> "ClosedPosition":
        entry = position.entry_price
        move = Decimal(position.unrealized_pnl) / position.size_usd if position.size_usd else Decimal(0)
        if position.side == "short":
            move = -move
        return cls(
            position_id=position.position_id or "",
            coin=position.coin,
            side=position.side,
            entry_price=entry,
            exit_price=entry * (1 + move),
            size_usd=position.size_usd,
            pnl=position.unrealized_pnl,
            pnl_percent=(move * 100).quantize(Decimal("0.01")),
            fee=0,
            status="closed",
            reconstructed=True,
        )

    @classmethod
    def from_wire(cls, data: Any) -> "ClosedPosition":
        r = WireReader(data, "close")
        return cls(
            position_id=r.text("position_id"),
            coin=r.text("coin"),
            side=r.text("side", default=""),
            entry_price=r.decimal("entry_price"),
            exit_price=r.decimal("exit_price"),
            size_usd=r.money("size_usd"),
            pnl=r.money("pnl", signed=True),
            pnl_percent=r.decimal("pnl_percent", required=False) or Decimal(0),
            fee=r.money_or_zero("fee"),
            status=r.text("status", default="closed"),
        )


class Position(msgspec.Struct, frozen=True):
    """A row of `GET /trade/positions`, read from either spelling (HL snake, DB camel)."""

    position_id: str | None
    coin: str
    side: str
    size_usd: int
    entry_price: Decimal
    current_price: Decimal | None
    leverage: Decimal
    margin_used: int | None
    liquidation_price: Decimal | None
    unrealized_pnl: int
    status: str
    opened_at_s: int | None
    closed_at_s: int | None

    @classmethod
    def from_wire(cls, data: Any) -> "Position":
        r = WireReader(data, "position")
        leverage = r.raw("leverage")
        if isinstance(leverage, dict):  # Hyperliquid's {"type": "cross", "value": 5}
            leverage = leverage.get("value")
        return cls(
            position_id=r.text("position_id", "id", required=False),
            coin=r.text("coin"),
            side=r.text("side"),
            size_usd=r.money("size_usd", "sizeUsd"),
            entry_price=r.decimal("entry_price", "entryPrice"),
            current_price=r.decimal("current_price", "currentPrice", required=False),
            leverage=WireReader({"v": leverage}, "position").decimal("v", required=False) or Decimal(1),
            margin_used=r.money("margin_used", "marginUsed", required=False),
            liquidation_price=r.decimal("liquidation_price", "liquidationPrice", required=False),
            unrealized_pnl=r.money_or_zero("unrealized_pnl", "unrealizedPnl", signed=True),
            status=r.text("status", default="open"),
            opened_at_s=_seconds(r, "openedAt", "opened_at"),
            closed_at_s=_seconds(r, "closedAt", "closed_at"),
        )


class PositionList(msgspec.Struct, frozen=True):
    positions: list[Position]
    count: int
    source: str

    @classmethod
    def from_wire(cls, data: Any) -> "PositionList":
        r = WireReader(data, "positions")
        rows = [Position.from_wire(row) for row in r.items("positions")]
        return cls(positions=rows, count=r.integer("count", default=len(rows)), source=r.text("source", default=""))


class ExitOrder(msgspec.Struct, frozen=True):
    """`POST /trade/stop-loss` or `/trade/take-profit`: a DB-only order at an absolute price."""

    order_id: str
    type: str
    position_id: str | None
    trigger_price: Decimal
    size_usd: int
    entry_price: Decimal | None

    @classmethod
    def from_wire(cls, data: Any) -> "ExitOrder":
        r = WireReader(data, "exit_order")
        return cls(
            order_id=r.text("order_id"),
            type=r.text("type"),
            position_id=r.text("position_id", required=False),
            trigger_price=r.decimal("trigger_price"),
            size_usd=r.money_or_zero("size_usd"),
            entry_price=r.decimal("entry_price", required=False),
        )


class ExitPair(msgspec.Struct, frozen=True):
    """What `TradingClient.set_exits` placed: either leg may be absent if it was not asked for."""

    stop_loss: ExitOrder | None
    take_profit: ExitOrder | None


class ExitExecution(msgspec.Struct, frozen=True):
    """A stop loss or take profit that `check-exits` fired, closing its position."""

    order_id: str
    position_id: str
    type: str
    coin: str
    trigger_price: Decimal
    exit_price: Decimal
    pnl: int
    fee: int

    @classmethod
    def from_wire(cls, data: Any) -> "ExitExecution":
        r = WireReader(data, "execution")
        return cls(
            order_id=r.text("order_id", default=""),
            position_id=r.text("position_id"),
            type=r.text("type"),
            coin=r.text("coin", default=""),
            trigger_price=r.decimal("trigger_price"),
            exit_price=r.decimal("exit_price", "current_price"),
            pnl=r.money_or_zero("pnl", signed=True),
            fee=r.money_or_zero("fee"),
        )


class ExitCheck(msgspec.Struct, frozen=True):
    checked: int
    triggered: int
    executions: list[ExitExecution]
    not_yet_triggered: list[str]
    """Order ids still waiting."""

    @classmethod
    def from_wire(cls, data: Any) -> "ExitCheck":
        r = WireReader(data, "check_exits")
        waiting = []
        for row in r.items("not_yet_triggered"):
            waiting.append(str(row.get("order_id", "")) if isinstance(row, dict) else str(row))
        executions = [ExitExecution.from_wire(row) for row in r.items("executions")]
        return cls(
            checked=r.integer("checked", default=0),
            triggered=r.integer("triggered", default=len(executions)),
            executions=executions,
            not_yet_triggered=waiting,
        )


class LimitOrder(msgspec.Struct, frozen=True):
    order_id: str
    coin: str
    side: str
    size_usd: int
    limit_price: Decimal
    leverage: Decimal
    status: str
    position_id: str | None = None

    @classmethod
    def from_wire(cls, data: Any) -> "LimitOrder":
        r = WireReader(data, "limit_order")
        return cls(
            order_id=r.text("order_id", "id"),
            coin=r.text("coin"),
            side=r.text("side"),
            size_usd=r.money("size_usd", "sizeUsd"),
            limit_price=r.decimal("limit_price", "limitPrice"),
            leverage=r.decimal("leverage", required=False) or Decimal(1),
            status=r.text("status", default="pending"),
            position_id=r.text("position_id", "positionId", required=False),
        )


class LimitOrderBook(msgspec.Struct, frozen=True):
    """`GET /trade/limit-orders`: `{pending, filled, cancelled}` lists of orders."""

    pending: list[LimitOrder]
    filled: list[LimitOrder]
    cancelled: list[LimitOrder]

    @classmethod
    def from_wire(cls, data: Any) -> "LimitOrderBook":
        r = WireReader(data, "limit_orders")
        for key in ("pending", "filled", "cancelled"):
            if not isinstance(r.raw(key), list):
                raise ValueError(f"limit_orders: missing {key}")
        lists = [[LimitOrder.from_wire({**row, "status": key}) if isinstance(row, dict) else LimitOrder.from_wire(row)
                  for row in r.items(key)] for key in ("pending", "filled", "cancelled")]
        return cls(*lists)


class LimitCheck(msgspec.Struct, frozen=True):
    checked: int
    filled: list[LimitOrder]
    pending: int

    @classmethod
    def from_wire(cls, data: Any) -> "LimitCheck":
        r = WireReader(data, "check_limits")
        filled = [LimitOrder.from_wire(row) for row in r.items("filled", "fills")]
        return cls(checked=r.integer("checked", default=0), filled=filled, pending=r.integer("pending", default=0))


class RiskSettings(msgspec.Struct, frozen=True):
    max_leverage: int
    max_position_usd: int
    max_daily_loss_usd: int | None

    @classmethod
    def from_wire(cls, data: Any) -> "RiskSettings":
        r = WireReader(data, "risk_settings")
        inner = r.child("risk_settings") if r.has("risk_settings") else r
        return cls(
            max_leverage=int(inner.decimal("max_leverage")),
            max_position_usd=inner.money("max_position_usd"),
            max_daily_loss_usd=inner.money("max_daily_loss_usd", required=False),
        )


class CloseAllResult(msgspec.Struct, frozen=True):
    """`POST /trade/close-all` only marks database rows closed (pnl 0); no exchange order is sent."""

    closed: int
    position_ids: list[str]

    @classmethod
    def from_wire(cls, data: Any) -> "CloseAllResult":
        r = WireReader(data, "close_all")
        ids = [str(x) for x in r.items("position_ids")]
        return cls(closed=r.integer("closed", "count", default=len(ids)), position_ids=ids)


class TradingReferralStats(msgspec.Struct, frozen=True):
    """`GET /v1/referral/stats`. The real service sends `total_earned_usd` (cumulative) but no
    `available_usd`: what a withdrawal would take (earned − every payout ever queued) is only
    told by `POST /referral/withdraw` itself. `available_usd` is None unless sent (the sandbox
    used to); the treasury never sizes a sweep from it."""
    total_referrals: int
    total_fees_generated_usd: int
    total_earned_usd: int
    available_usd: int | None

    @classmethod
    def from_wire(cls, data: Any) -> "TradingReferralStats":
        r = WireReader(data, "referral_stats")
        return cls(
            total_referrals=r.integer("total_referrals"),
            total_fees_generated_usd=r.money("total_fees_generated_usd"),
            total_earned_usd=r.money("total_earned_usd"),
            available_usd=r.money("available_usd", required=False),
        )


class ReferralWithdrawal(msgspec.Struct, frozen=True):
    """A queued referral payout: the whole available amount, paid by hand later."""

    withdrawal_id: str
    amount_usd: int
    status: str
    address: str | None = None
    chain: str | None = None
    reconstructed: bool = False
    """True when the answer was lost and the withdrawal was inferred from the referral stats
    (its id is then unknown: "")."""

    @classmethod
    def from_wire(cls, data: Any) -> "ReferralWithdrawal":
        r = WireReader(data, "referral_withdraw")
        return cls(
            withdrawal_id=r.text("withdrawal_id"),
            amount_usd=r.money("amount_usd"),
            status=r.text("status", default="pending"),
            address=r.text("address", required=False),
            chain=r.text("chain", required=False),
        )
