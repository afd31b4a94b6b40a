"""Client of the Purple Flea trading service (perpetuals on Hyperliquid).

Reads are retried; spends (open, close, limit orders, referral withdrawal) are sent once. The
real service accepts no idempotency key, so after an answer is lost (timeout, dropped
connection, 5xx, unreadable body) the only safe move is to look the result up:

* `open_position_once` lists `/trade/positions?status=all` (the service's database, newest 50)
  before sending, and again after a failure. A row that was not there before, with the same
  market, side and notional (within the exchange's lot rounding), is the open: it is returned
  and never opened a second time. When no such row exists the open provably did not happen and
  it is sent again, up to `attempts` times. Opens are serialised per client so that a look-up can
  only ever match this client's own open; one client (one process) per trading account.
  After a timeout the look-up waits `settle_s` first, since the request may still be running.
* `close_position_once` looks the position up by id: `closed` means the close happened.
* `referral_withdraw` compares the available referral balance before and after.

Leverage: the service silently caps a request at the account maximum but refuses one above the
market's own maximum, and Hyperliquid takes whole numbers, so the client always sends an
explicit integer leverage no higher than `min(account max, market max)`.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypeVar

from messages.errors import MoneyError
from messages.money import MICRO
from venue.client.base import Secret, ServiceClient
from venue.client.trading_types import (
    CloseAllResult,
    ClosedPosition,
    ExitCheck,
    ExitOrder,
    ExitPair,
    LimitCheck,
    LimitOrder,
    LimitOrderBook,
    Market,
    OpenedPosition,
    Position,
    PositionList,
    ReferralWithdrawal,
    RiskSettings,
    TradingAccount,
    TradingReferralStats,
    TradingRegistration,
)
from venue.errors import VenueRejected, VenueUnavailable
from venue.wire import to_venue_amount

T = TypeVar("T")

__all__ = ["TradingClient", "DEFAULT_LEVERAGE", "SIDES"]

DEFAULT_LEVERAGE = 5
"""What the service uses when no leverage is sent."""
SIDES = ("long", "short")
_UNSET: Any = object()


def _ticker(coin: str) -> str:
    return coin.replace("xyz:", "").upper()


def _price_text(price: Decimal | int | str) -> float | int:
    """A trigger or limit price as the JSON number the service reads."""
    value = Decimal(str(price))
    if not value.is_finite() or value <= 0:
        raise ValueError(f"price must be a positive finite number, got {price!r}")
    return int(value) if value == value.to_integral_value() else float(value)


class TradingClient(ServiceClient):
    """Every trading route, typed, with money in integer micro-USD."""

    service = "trading"

    def __init__(self, base_url: str, api_key: str | Secret | None = None, **options: Any) -> None:
        super().__init__(base_url, api_key, **options)
        self._open_lock = threading.Lock()
        self._account: TradingAccount | None = None
        self._markets: dict[str, Market] | None = None

    # ── plumbing ──────────────────────────────────────────────────────────────────────────

    def _get(self, path: str, build: Callable[[Any], T], *, params: dict[str, Any] | None = None,
             auth: bool = True) -> T:
        return self.retry_safe(lambda: self._parse(self.request_json("GET", path, params=params, auth=auth), build,
                                                   f"GET {path}"))

    def _post_once(self, path: str, build: Callable[[Any], T], body: dict[str, Any], *,
                   idempotency_key: str | None = None, auth: bool = True) -> T:
        data = self.request_json("POST", path, body=body, auth=auth, idempotency_key=idempotency_key)
        return self._parse(data, build, f"POST {path}")

    def _post_repeatable(self, path: str, build: Callable[[Any], T], body: dict[str, Any] | None = None) -> T:
        """A POST whose repetition changes nothing more than the first call (check-exits, settings)."""
        return self.retry_safe(lambda: self._post_once(path, build, body or {}))

    # ── account ───────────────────────────────────────────────────────────────────────────

    def register(self, referral_code: str | None = None, *, hl_wallet_address: str | None = None,
                 hl_signing_key: str | Secret | None = None, wallet_agent_id: str | None = None,
                 adopt: bool = True) -> TradingRegistration:
        """Create a trading account (its own agent id and `sk_trade_` key). `adopt` makes this
        client use the new key. Sent once: a lost answer leaves an orphan account, no money."""
        body: dict[str, Any] = {}
        if referral_code:
            body["referral_code"] = referral_code
        if hl_wallet_address:
            body["hl_wallet_address"] = hl_wallet_address
        if hl_signing_key:
            body["hl_signing_key"] = hl_signing_key.reveal() if isinstance(hl_signing_key, Secret) else hl_signing_key
        if wallet_agent_id:
            body["wallet_agent_id"] = wallet_agent_id
        registration = self._post_once("/v1/auth/register", TradingRegistration.from_wire, body, auth=False)
        if adopt:
            self.set_api_key(registration.api_key)
            self._account = None
        return registration

    def account(self, *, refresh: bool = True) -> TradingAccount:
        """`GET /auth/account`; cached for leverage capping (`refresh=False` reuses the cache)."""
        if refresh or self._account is None:
            self._account = self._get("/v1/auth/account", TradingAccount.from_wire)
        return self._account

    def deposit_address(self) -> str:
        return self._get("/v1/auth/deposit-address", lambda d: str(d["deposit_address"]))

    # ── markets ───────────────────────────────────────────────────────────────────────────

    def markets(self, *, refresh: bool = True) -> list[Market]:
        if refresh or self._markets is None:
            def build(data: Any) -> dict[str, Market]:
                rows = data.get("markets") if isinstance(data, dict) else None
                if rows is None and isinstance(data, dict):
                    rows = [m for cat in (data.get("categories") or {}).values() if isinstance(cat, dict)
                            for m in cat.get("markets") or []]
                return {_ticker(m.coin): m for m in (Market.from_wire(row) for row in rows or [])}

            self._markets = self._get("/v1/markets", build, auth=False)
        return list(self._markets.values())

    def market(self, coin: str) -> Market:
        return self._get(f"/v1/markets/{_ticker(coin)}", Market.from_wire, auth=False)

    def price(self, coin: str) -> Decimal:
        def build(data: Any) -> Decimal:
            value = data.get("price") if isinstance(data, dict) else None
            if value is None:
                raise ValueError("no price")
            return Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))

        return self._get(f"/v1/markets/{_ticker(coin)}/price", build, auth=False)

    def market_max_leverage(self, coin: str) -> int:
        if self._markets is None or _ticker(coin) not in self._markets:
            self.markets(refresh=True)
        assert self._markets is not None
        found = self._markets.get(_ticker(coin))
        if found is None:
            raise VenueRejected(self.service, f"unknown market {coin!r}", code="unknown_market")
        return found.max_leverage

    def capped_leverage(self, coin: str, requested: int | None = None) -> int:
        """The leverage to send: the request (default 5), never above the account's or the market's
        maximum, a whole number ≥ 1."""
        wanted = DEFAULT_LEVERAGE if requested is None else int(requested)
        if wanted < 1:
            raise ValueError("leverage must be >= 1")
        account_max = int(self.account(refresh=False).max_leverage)
        return max(1, min(wanted, account_max, self.market_max_leverage(coin)))

    # ── open / close ──────────────────────────────────────────────────────────────────────

    def open_position(self, coin: str, side: str, size_usd: int, leverage: int | None = None, *,
                      idempotency_key: str | None = None) -> OpenedPosition:
        """One `POST /trade/open`, sent once. `size_usd` is the NOTIONAL in micro-USD. The
        leverage is capped first (see `capped_leverage`). A `VenueUnavailable` means the outcome is
        unknown: use `open_position_once` unless you do the look-up yourself."""
        return self._send_open(coin, side, size_usd, self.capped_leverage(coin, leverage), idempotency_key)

    def _send_open(self, coin: str, side: str, size_usd: int, leverage: int, idempotency_key: str | None
                   ) -> OpenedPosition:
        if side not in SIDES:
            raise ValueError(f"side must be one of {SIDES}")
        if size_usd <= 0:
            raise MoneyError("size_usd must be positive")
        body = {"coin": _ticker(coin), "side": side, "size_usd": to_venue_amount(size_usd), "leverage": leverage}
        return self._post_once("/v1/trade/open", OpenedPosition.from_wire, body, idempotency_key=idempotency_key)

    def open_position_once(self, coin: str, side: str, size_usd: int, leverage: int | None = None, *,
                           idempotency_key: str | None = None, attempts: int = 3) -> OpenedPosition:
        """Open exactly once, whatever the network does.

        Returns the position (rebuilt from the listing, `reconstructed=True`, if the answer was
        lost). Raises `VenueRejected` for a definite refusal, `VenueNotApplied` when every attempt
        was lost and the look-ups proved none happened, and `VenueUnavailable` when the outcome
        could not be established (the look-up itself failed): then nothing is retried."""
        key = idempotency_key or f"open-{uuid.uuid4()}"
        capped = self.capped_leverage(coin, leverage)  # reads happen before anything is sent
        with self._open_lock:
            before = {p.position_id for p in self.positions(show_all=True).positions}

            def lookup() -> OpenedPosition | None:
                found = self._find_new_position(before, coin, side, size_usd)
                return None if found is None else OpenedPosition.from_position(found)

            return self.spend_once(f"open {coin} {side}", lambda: self._send_open(coin, side, size_usd, capped, key),
                                   lookup, attempts=max(1, attempts), details={"idempotency_key": key},
                                   settle=self.wait_settle)

    def _find_new_position(self, before: set[str | None], coin: str, side: str, size_usd: int) -> Position | None:
        """The position this client's lost open created, if any. Raises `VenueUnavailable` when the
        listing cannot be read (the outcome then stays unknown)."""
        tolerance = max(size_usd // 100, MICRO)
        rows = self.positions(show_all=True).positions
        matches = [p for p in rows
                   if p.position_id not in before and _ticker(p.coin) == _ticker(coin) and p.side == side
                   and abs(p.size_usd - size_usd) <= tolerance]
        if len(matches) > 1:
            raise VenueUnavailable(self.service, f"{len(matches)} new {coin} {side} positions match one open: "
                                                 f"another client trades this account", code="ambiguous_lookup")
        if not matches and not listing_covers(rows, before):
            raise VenueUnavailable(self.service, f"open {coin} {side}: the position listing (newest {POSITIONS_PAGE}) "
                                                 f"no longer reaches back to before the open", code="lookup_window")
        return matches[0] if matches else None

    def close_position(self, position_id: str, *, idempotency_key: str | None = None) -> ClosedPosition:
        """One `POST /trade/close`, sent once. The pnl is on the notional and excludes fees."""
        return self._post_once("/v1/trade/close", ClosedPosition.from_wire, {"position_id": position_id},
                               idempotency_key=idempotency_key)

    def close_position_once(self, position_id: str, *, idempotency_key: str | None = None,
                            attempts: int = 3) -> ClosedPosition:
        """Close exactly once: after a lost answer the position's row says whether it closed."""
        key = idempotency_key or f"close-{uuid.uuid4()}"

        def lookup() -> ClosedPosition | None:
            row = next((p for p in self.positions(show_all=True).positions if p.position_id == position_id), None)
            if row is None:
                raise VenueUnavailable(self.service, f"position {position_id} is not in the listing",
                                       code="not_listed")
            return None if row.status == "open" else ClosedPosition.from_position(row)

        return self.spend_once(f"close {position_id}", lambda: self.close_position(position_id, idempotency_key=key),
                               lookup, attempts=max(1, attempts), details={"idempotency_key": key},
                               settle=self.wait_settle)

    def positions(self, *, show_all: bool = False) -> PositionList:
        """Open exchange positions (default), or the service's database rows (`show_all`: newest
        50, open and closed, camelCase on the wire)."""
        return self._get("/v1/trade/positions", PositionList.from_wire,
                         params={"status": "all"} if show_all else None)

    def close_all(self) -> CloseAllResult:
        """Marks the service's rows closed with pnl 0 and sends NO exchange order: the positions
        and their margin stay on Hyperliquid. Use `close_position_once` per position instead."""
        return self._post_repeatable("/v1/trade/close-all", CloseAllResult.from_wire)

    # ── exits (SL / TP) ───────────────────────────────────────────────────────────────────

    def set_stop_loss(self, position_id: str, trigger_price: Decimal | int | str) -> ExitOrder:
        """An absolute-price stop loss. It only fires when someone calls `check_exits`. Retried
        like a read: a duplicate order at the same price cannot close the position twice."""
        return self._post_repeatable("/v1/trade/stop-loss", ExitOrder.from_wire,
                                     {"position_id": position_id, "trigger_price": _price_text(trigger_price)})

    def set_take_profit(self, position_id: str, trigger_price: Decimal | int | str) -> ExitOrder:
        return self._post_repeatable("/v1/trade/take-profit", ExitOrder.from_wire,
                                     {"position_id": position_id, "trigger_price": _price_text(trigger_price)})

    def set_exits(self, position: str | OpenedPosition, stop_price: Decimal | int | str | None,
                  take_profit_price: Decimal | int | str | None) -> ExitPair:
        """Place a stop loss and/or a take profit. Given the `OpenedPosition`, the prices are
        checked against its side and entry first (a long's stop below entry, its target above;
        reversed for a short), so a sign mistake cannot close the position at once."""
        position_id = position.position_id if isinstance(position, OpenedPosition) else position
        if isinstance(position, OpenedPosition):
            entry = position.entry_price
            below, above = (stop_price, take_profit_price) if position.side == "long" else (take_profit_price,
                                                                                            stop_price)
            if below is not None and not Decimal(str(below)) < entry:
                raise ValueError(f"{position.side} exit {below} must be below entry {entry}")
            if above is not None and not Decimal(str(above)) > entry:
                raise ValueError(f"{position.side} exit {above} must be above entry {entry}")
        stop = self.set_stop_loss(position_id, stop_price) if stop_price is not None else None
        target = self.set_take_profit(position_id, take_profit_price) if take_profit_price is not None else None
        return ExitPair(stop_loss=stop, take_profit=target)

    def check_exits(self) -> ExitCheck:
        """Fire the stop losses and take profits whose price has been reached (nothing fires
        unless this is called)."""
        return self._post_repeatable("/v1/trade/check-exits", ExitCheck.from_wire)

    # ── limit orders ──────────────────────────────────────────────────────────────────────

    def place_limit(self, coin: str, side: str, size_usd: int, limit_price: Decimal | int | str,
                    leverage: int | None = None, *, idempotency_key: str | None = None) -> LimitOrder:
        """A database-only limit order (≤ 10 pending), filled by `check_limits`. Sent once: a
        duplicate would open twice when it fills."""
        if side not in SIDES:
            raise ValueError(f"side must be one of {SIDES}")
        body = {"coin": _ticker(coin), "side": side, "size_usd": to_venue_amount(size_usd),
                "limit_price": _price_text(limit_price), "leverage": self.capped_leverage(coin, leverage)}
        return self._post_once("/v1/trade/limit", LimitOrder.from_wire, body, idempotency_key=idempotency_key)

    def limit_orders(self) -> LimitOrderBook:
        """The account's limit orders: `pending`, `filled` and `cancelled` lists."""
        return self._get("/v1/trade/limit-orders", LimitOrderBook.from_wire)

    def cancel_limit(self, order_id: str) -> str:
        """Returns the order's new status (`cancelled`)."""
        def call() -> str:
            data = self.request_json("DELETE", f"/v1/trade/limit-orders/{order_id}")
            return self._parse(data, lambda d: str(d["status"]), "DELETE limit order")

        return self.retry_safe(call)

    def check_limits(self) -> LimitCheck:
        return self._post_repeatable("/v1/trade/check-limits", LimitCheck.from_wire)

    # ── risk settings ─────────────────────────────────────────────────────────────────────

    def risk_settings(self) -> RiskSettings:
        return self._get("/v1/trade/risk-settings", RiskSettings.from_wire)

    def update_risk_settings(self, *, max_leverage: int | None = None, max_position_usd: int | None = None,
                             max_daily_loss_usd: int | None | Any = _UNSET) -> RiskSettings:
        """Change the account's caps (the service silently caps them by tier). Pass
        `max_daily_loss_usd=None` to remove the daily loss limit."""
        body: dict[str, Any] = {}
        if max_leverage is not None:
            body["max_leverage"] = int(max_leverage)
        if max_position_usd is not None:
            body["max_position_usd"] = to_venue_amount(max_position_usd)
        if max_daily_loss_usd is not _UNSET:
            body["max_daily_loss_usd"] = None if max_daily_loss_usd is None else to_venue_amount(max_daily_loss_usd)
        settings = self._post_repeatable("/v1/trade/risk-settings", RiskSettings.from_wire, body)
        self._account = None
        return settings

    # ── referral ──────────────────────────────────────────────────────────────────────────

    def referral_code(self) -> str:
        return self._get("/v1/referral/code", lambda d: str(d["referral_code"]))

    def referral_stats(self) -> TradingReferralStats:
        return self._get("/v1/referral/stats", TradingReferralStats.from_wire)

    def referral_withdraw(self, address: str, *, idempotency_key: str | None = None,
                          available_before: int | None = None) -> ReferralWithdrawal:
        """Queue the WHOLE available referral balance (minimum $1) for a manual payout.

        Sending it again after a lost answer is safe: if the first request was queued nothing is
        left and the service answers 400 `insufficient_balance`; with the available balance known
        before (≥ $1), that answer proves the first request (returned with `reconstructed=True`).
        The real stats do not send `available_usd`, so the caller passes `available_before`
        (micro-USD earned and not yet withdrawn, by its own books); without either the answer is
        `VenueUnavailable` `unknown_outcome`, never a refusal read as "nothing was withdrawn"."""
        key = idempotency_key or f"referral-withdraw-{uuid.uuid4()}"
        told = self.referral_stats().available_usd
        before = told if told is not None else available_before
        try:
            return self._post_once("/v1/referral/withdraw", ReferralWithdrawal.from_wire, {"address": address},
                                   idempotency_key=key)
        except VenueUnavailable as exc:
            self.wait_settle(exc)
            lost = exc
        try:
            return self._post_once("/v1/referral/withdraw", ReferralWithdrawal.from_wire, {"address": address},
                                   idempotency_key=key)
        except VenueRejected as exc:
            if exc.code != "insufficient_balance":
                raise
            if before is None:
                raise VenueUnavailable(self.service, f"referral withdraw: outcome unknown ({lost}; the available "
                                                     f"amount before the call is not known)",
                                       code="unknown_outcome") from None
            if before < MICRO:
                raise
            return ReferralWithdrawal(withdrawal_id="", amount_usd=before, status="pending", address=address,
                                      reconstructed=True)
        except VenueUnavailable:
            raise VenueUnavailable(self.service, f"referral withdraw: outcome unknown ({lost})",
                                   code="unknown_outcome") from None


POSITIONS_PAGE = 50
"""Rows of `GET /trade/positions?status=all`: the newest 50 by opening second."""


def listing_covers(rows: list[Position], before: set[str | None]) -> bool:
    """Does a `status=all` listing prove that a position opened after `before` was read would be
    in it? Yes when the listing is not full, or when it still shows a position from `before` opened
    in an earlier second than the newest `before` position listed (rows are newest second first,
    and the new one opened no earlier than every `before` one). Otherwise the window may have slid
    past it: a look-up must then say "unknown", never "absent"."""
    if len(rows) < POSITIONS_PAGE:
        return True
    seconds = [p.opened_at_s for p in rows if p.position_id in before and p.opened_at_s is not None]
    return len(seconds) >= 2 and min(seconds) < max(seconds)
