"""Sandbox of the Purple Flea trading service (`/trading/v1/...`): perpetuals on a pretend
Hyperliquid.

The real service keeps two records that can disagree, and so does this one:

* its own database (positions, orders, trades, SL/TP and limit orders), which `/trade/positions
  ?status=all`, `close-all`, `check-exits` and `check-limits` read and write;
* the exchange (Hyperliquid), which holds the collateral and the positions that really exist and
  is what the default `/trade/positions` lists. Here the exchange is the `hl_*` columns and the
  per-agent collateral balance (the trading silo).

Reproduced on purpose, because the treasury must survive them:

* `size_usd` is the notional; leverage defaults to 5 and is silently capped at the account
  maximum (10 by default), while a capped value above the market's own maximum fails with
  400 `trade_failed`;
* `margin_used` = notional / leverage is locked on open; fees (3.5 bp Hyperliquid + 2 bp builder
  on the free tier, on notional, on open and on close) come out of collateral; the close's `pnl`
  is notional × price move and does not deduct them;
* SL/TP and limit orders live only in the database and fire only when the client calls
  `check-exits` / `check-limits`;
* liquidation is the exchange's business: once the loss eats the margin the position is closed at
  its liquidation price and the margin is gone, but the database row still says `open`;
* `close-all` marks database rows closed with pnl 0 and sends no exchange order: the exchange
  positions, their margin and their risk stay.

Known simplifications: market orders fill at the walk's price (no spread or slippage); positions are
kept one by one instead of being netted per coin as Hyperliquid does; every agent has a generated
wallet, so `wallet_not_configured` never happens; tiers never change by themselves.

`/_sandbox/*` under this service is NOT part of the real API: it funds collateral (a deposit on
Hyperliquid), moves and pins prices, shows the exchange-side account, and toggles rate limits.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from messages.money import MICRO
from sandbox.clock import iso
from sandbox.prices import MARKETS, Market, PriceBook, resolve_market
from sandbox.runner import (
    ApiError,
    SandboxContext,
    amount_from_wire,
    bearer,
    make_service_app,
    read_json,
    reply,
    wire,
    wire_cents,
)

SERVICE = "trading"

DEFAULT_MAX_LEVERAGE = 10
DEFAULT_MAX_POSITION = 10_000 * MICRO
DEFAULT_LEVERAGE = Decimal(5)
HL_FEE_RATE = Decimal("0.00035")
BUILDER_FEE_RATE = {"free": Decimal("0.0002"), "pro": Decimal("0.0001"), "whale": Decimal(0)}
MAINTENANCE_MARGIN = Decimal("0.0005")
MIN_ORDER_VALUE = 10 * MICRO
"""Hyperliquid refuses orders under $10 of notional."""
MAX_PENDING_LIMITS = 10
REFERRAL_SHARE = Decimal("0.20")
REFERRAL_LEVELS = (Decimal(1), Decimal("0.5"), Decimal("0.25"))
TIER_CAPS = {"free": (Decimal(20), 50_000 * MICRO)}
OTHER_TIER_CAPS = (Decimal(50), 500_000 * MICRO)
RATE_LIMITS = {"/v1/auth/register": 10, "/v1/trade/open": 30, "/v1/trade/close": 30, "/v1/referral/withdraw": 5}
"""Requests per minute per client IP and exact path, as the real service limits them."""
PRICE_STEP_MS = 1_000
_EVM_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_SIGNING_KEY = re.compile(r"^0x[0-9a-fA-F]{64}$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS trading_agents (
    id TEXT PRIMARY KEY,
    api_key_hash TEXT NOT NULL UNIQUE,
    referral_code TEXT NOT NULL UNIQUE,
    referred_by TEXT,
    wallet_agent_id TEXT,
    tier TEXT NOT NULL DEFAULT 'free',
    hl_wallet_address TEXT NOT NULL,
    generated_wallet INTEGER NOT NULL,
    max_leverage TEXT NOT NULL,
    max_position_micros INTEGER NOT NULL,
    max_daily_loss_micros INTEGER,
    total_volume_micros INTEGER NOT NULL DEFAULT 0,
    total_fees_micros INTEGER NOT NULL DEFAULT 0,
    total_pnl_micros INTEGER NOT NULL DEFAULT 0,
    collateral_micros INTEGER NOT NULL DEFAULT 0,
    created_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_trading_agents_address ON trading_agents(hl_wallet_address);
CREATE TABLE IF NOT EXISTS trading_positions (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    agent_id TEXT NOT NULL,
    coin TEXT NOT NULL,
    side TEXT NOT NULL,
    size_micros INTEGER NOT NULL,
    entry_price TEXT NOT NULL,
    leverage TEXT NOT NULL,
    margin_micros INTEGER NOT NULL,
    liquidation_price TEXT NOT NULL,
    status TEXT NOT NULL,
    db_pnl_micros INTEGER NOT NULL DEFAULT 0,
    hl_status TEXT NOT NULL,
    hl_order_id TEXT NOT NULL,
    hl_exit_price TEXT,
    hl_pnl_micros INTEGER,
    opened_ms INTEGER NOT NULL,
    closed_ms INTEGER,
    hl_closed_ms INTEGER
);
CREATE INDEX IF NOT EXISTS idx_trading_positions_agent ON trading_positions(agent_id, status);
CREATE TABLE IF NOT EXISTS trading_orders (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    agent_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    coin TEXT NOT NULL,
    side TEXT NOT NULL,
    size_micros INTEGER NOT NULL,
    leverage TEXT,
    price TEXT,
    status TEXT NOT NULL,
    position_id TEXT,
    fee_micros INTEGER NOT NULL DEFAULT 0,
    note TEXT,
    created_ms INTEGER NOT NULL,
    done_ms INTEGER
);
CREATE INDEX IF NOT EXISTS idx_trading_orders_agent ON trading_orders(agent_id, kind, status);
CREATE TABLE IF NOT EXISTS trading_trades (
    id TEXT PRIMARY KEY,
    agent_id TEXT NOT NULL,
    order_id TEXT NOT NULL,
    coin TEXT NOT NULL,
    side TEXT NOT NULL,
    size_micros INTEGER NOT NULL,
    price TEXT NOT NULL,
    fee_micros INTEGER NOT NULL,
    realized_pnl_micros INTEGER NOT NULL DEFAULT 0,
    created_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_trading_trades_agent ON trading_trades(agent_id, created_ms);
CREATE TABLE IF NOT EXISTS trading_collateral_ledger (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_id TEXT NOT NULL,
    delta_micros INTEGER NOT NULL,
    balance_after INTEGER NOT NULL,
    reason TEXT NOT NULL,
    ref TEXT,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS trading_referral_earnings (
    id TEXT PRIMARY KEY,
    referrer_id TEXT NOT NULL,
    referred_id TEXT NOT NULL,
    fee_micros INTEGER NOT NULL,
    commission_micros INTEGER NOT NULL,
    order_id TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS trading_referral_withdrawals (
    id TEXT PRIMARY KEY,
    referrer_id TEXT NOT NULL,
    amount_micros INTEGER NOT NULL,
    address TEXT NOT NULL,
    status TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
"""


# ── small pure helpers ───────────────────────────────────────────────────────────────────────


def _number(value: Any) -> Decimal | None:
    """A JSON number as JavaScript's `typeof x === "number" && isFinite(x)` sees it, or None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    return number if number.is_finite() else None


def _decimal_text(value: Any) -> Decimal | None:
    """A number or numeric string (admin input), or None."""
    if isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except ArithmeticError:
            return None
        return number if number.is_finite() else None
    return _number(value)


def _micros(amount: Decimal) -> int:
    """Dollars (Decimal) → micro-USD, half-even."""
    return int((amount * MICRO).to_integral_value(rounding=ROUND_HALF_EVEN))


def _num_out(value: Decimal) -> int | float:
    """A Decimal that is not money (price, leverage) as the JSON number the service would send."""
    return int(value) if value == value.to_integral_value() else float(value)


def _hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def fee_split(notional: int, tier: str) -> tuple[int, int]:
    """(Hyperliquid fee, builder fee) in micro-USD for one fill of `notional`."""
    hl = _micros(Decimal(notional) / MICRO * HL_FEE_RATE)
    builder = _micros(Decimal(notional) / MICRO * BUILDER_FEE_RATE.get(tier, BUILDER_FEE_RATE["free"]))
    return hl, builder


def pnl_of(side: str, notional: int, entry: Decimal, exit_price: Decimal) -> int:
    """P&L on the notional for a move from `entry` to `exit_price` (fees not included)."""
    move = (exit_price - entry) / entry
    if side == "short":
        move = -move
    return _micros(Decimal(notional) / MICRO * move)


def liquidation_price(side: str, entry: Decimal, leverage: Decimal, tick: Decimal) -> Decimal:
    """Where the loss reaches the margin less the maintenance margin: the service's estimate."""
    move = Decimal(1) / leverage - MAINTENANCE_MARGIN
    raw = entry * (1 - move) if side == "long" else entry * (1 + move)
    return max(tick, (raw / tick).to_integral_value(rounding=ROUND_HALF_EVEN) * tick).quantize(tick)


def exit_fires(kind: str, side: str, price: Decimal, trigger: Decimal) -> bool:
    """The real service's rule: long SL at price ≤ trigger, short SL at ≥; take profit reversed."""
    if kind == "stop_loss":
        return price <= trigger if side == "long" else price >= trigger
    return price >= trigger if side == "long" else price <= trigger


def limit_fills(side: str, price: Decimal, limit: Decimal) -> bool:
    """A long limit buys at or below its price, a short sells at or above."""
    return price <= limit if side == "long" else price >= limit


def liquidated(side: str, price: Decimal, liq: Decimal) -> bool:
    return price <= liq if side == "long" else price >= liq


# ── rate limiting (off unless switched on: tests and paper runs are faster than any human) ──


class _RateLimiter:
    """Fixed one-minute windows per (client IP, exact path), in wall-clock time like the real one."""

    def __init__(self, limits: dict[str, int]) -> None:
        self.limits = limits
        self.enabled = False
        self._buckets: dict[tuple[str, str], tuple[float, int]] = {}
        self._lock = threading.Lock()

    def check(self, request: Request, path: str) -> None:
        limit = self.limits.get(path)
        if not self.enabled or limit is None:
            return
        ip = request.headers.get("x-forwarded-for", "").split(",")[0].strip() or (
            request.client.host if request.client else "unknown"
        )
        now = time.monotonic()
        with self._lock:
            start, count = self._buckets.get((ip, path), (now, 0))
            if now - start > 60:
                start, count = now, 0
            count += 1
            self._buckets[(ip, path)] = (start, count)
        if count > limit:
            raise ApiError(429, "rate_limited", f"Too many requests. Limit: {limit} per 60s")

    def reset(self) -> None:
        with self._lock:
            self._buckets.clear()


# ── the exchange and the service database ────────────────────────────────────────────────────


@dataclass(frozen=True)
class Fill:
    """An executed market order on the pretend exchange."""

    price: Decimal
    fee_hl: int
    fee_builder: int

    @property
    def fee(self) -> int:
        return self.fee_hl + self.fee_builder


class TradingSandbox:
    """All of the trading service's state changes, each in one store transaction."""

    def __init__(self, ctx: SandboxContext) -> None:
        self.ctx = ctx
        self.store = ctx.store
        self.store.ensure_schema("trading", _SCHEMA)
        self.limiter = _RateLimiter(RATE_LIMITS)
        self.book = PriceBook(ctx.seed, [m.instrument for m in MARKETS], step_ms=PRICE_STEP_MS,
                              epoch_ms=ctx.clock.now_ms())
        saved = self.store.meta("trading.prices")
        if saved:
            self.book.restore(json.loads(saved))
        else:
            self._save_prices()

    # -- ids and time ------------------------------------------------------------------------

    def now(self) -> int:
        return self.ctx.clock.now_ms()

    def _uuid(self, kind: str) -> str:
        return str(uuid.UUID(hex=self.ctx.new_id(f"trading.{kind}", 16), version=4))

    def _seq(self, kind: str) -> int:
        return self.store.next_seq(f"trading.{kind}.seq")

    # -- prices ------------------------------------------------------------------------------

    def _save_prices(self) -> None:
        self.store.set_meta("trading.prices", json.dumps(self.book.snapshot()))

    def sync(self) -> None:
        """Bring prices up to the clock; a move may liquidate positions, as on the exchange."""
        if self.book.advance_to(self.now()):
            self._save_prices()
            self.sweep_liquidations()

    def price(self, market: Market) -> Decimal:
        return self.book.price(market.coin)

    def set_price(self, market: Market, price: Decimal) -> Decimal:
        pinned = self.book.set_price(market.coin, price)
        self._save_prices()
        self.sweep_liquidations()
        return pinned

    def tick(self, steps: int, market: Market | None) -> dict[str, Decimal]:
        moved = self.book.tick(steps, market.coin if market else None)
        self._save_prices()
        self.sweep_liquidations()
        return moved

    # -- agents ------------------------------------------------------------------------------

    def register(self, body: dict[str, Any]) -> dict[str, Any]:
        address = body.get("hl_wallet_address")
        signing_key = body.get("hl_signing_key")
        if address and not (isinstance(address, str) and _EVM_ADDRESS.match(address)):
            raise ApiError(400, "invalid_wallet", "hl_wallet_address must be a valid Ethereum address (0x...)")
        if signing_key and not (isinstance(signing_key, str) and _SIGNING_KEY.match(signing_key)):
            raise ApiError(400, "invalid_signing_key", "hl_signing_key must be a valid 32-byte hex private key (0x...)")
        generated = not (address and signing_key)
        if address and signing_key:
            final_address = address.lower()
        elif signing_key:
            final_address = "0x" + hashlib.sha256(signing_key.lower().encode()).hexdigest()[:40]
        else:
            final_address = "0x" + self.ctx.new_id("trading.wallet", 20)
        agent_id = "ag_" + self.ctx.new_id("trading.agent", 6)
        api_key = "sk_trade_" + self.ctx.new_id("trading.key", 24)
        referral_code = "ref_" + self.ctx.new_id("trading.referral", 4)
        referrer_id = None
        code = body.get("referral_code")
        with self.store.tx() as db:
            if isinstance(code, str) and code:
                referrer = db.execute("SELECT id, referred_by FROM trading_agents WHERE referral_code = ?",
                                      (code,)).fetchone()
                if referrer is not None and referrer["referred_by"] is None:
                    referrer_id = referrer["id"]
            wallet_agent_id = body.get("wallet_agent_id")
            db.execute(
                "INSERT INTO trading_agents(id, api_key_hash, referral_code, referred_by, wallet_agent_id, "
                "hl_wallet_address, generated_wallet, max_leverage, max_position_micros, created_ms) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (agent_id, _hash_key(api_key), referral_code, referrer_id,
                 wallet_agent_id if isinstance(wallet_agent_id, str) else None, final_address,
                 1 if generated else 0, str(DEFAULT_MAX_LEVERAGE), DEFAULT_MAX_POSITION, self.now()),
            )
        return {
            "agent_id": agent_id,
            "api_key": api_key,
            "referral_code": referral_code,
            "tier": "free",
            "deposit_address": final_address,
            "hl_wallet": {
                "address": final_address,
                "generated": generated,
                "signing_key_stored": True,
                "builder_fee_approved": not generated,
                "execution": "sandbox",
            },
            "message": "Store your API key securely — it cannot be recovered.",
        }

    def authenticate(self, request: Request) -> Any:
        token = bearer(request)
        if token is None:
            raise ApiError(401, "unauthorized", "Provide Authorization: Bearer <api_key>")
        row = self.store.one("SELECT * FROM trading_agents WHERE api_key_hash = ?", (_hash_key(token),))
        if row is None:
            raise ApiError(401, "invalid_key")
        return row

    def agent(self, agent_id: str) -> Any:
        return self.store.one("SELECT * FROM trading_agents WHERE id = ?", (agent_id,))

    def account(self, agent: Any) -> dict[str, Any]:
        return {
            "agent_id": agent["id"],
            "tier": agent["tier"],
            "max_leverage": _num_out(Decimal(agent["max_leverage"])),
            "max_position_usd": wire(agent["max_position_micros"]),
            "total_volume": wire(agent["total_volume_micros"]),
            "total_fees_paid": wire(agent["total_fees_micros"]),
            "total_pnl": wire(agent["total_pnl_micros"]),
            "referral_code": agent["referral_code"],
            "hl_wallet": {
                "address": agent["hl_wallet_address"],
                "connected": True,
                "generated": bool(agent["generated_wallet"]),
                "signing_key_stored": True,
                "builder_fee_approved": not agent["generated_wallet"],
                "execution": "sandbox",
            },
        }

    # -- collateral (the exchange account) -------------------------------------------------------

    def _move_collateral(self, db: Any, agent_id: str, delta: int, reason: str, ref: str | None) -> int:
        row = db.execute("SELECT collateral_micros FROM trading_agents WHERE id = ?", (agent_id,)).fetchone()
        balance = row["collateral_micros"] + delta
        if balance < 0:
            raise ApiError(400, "trade_failed", "Insufficient margin to place order.")
        db.execute("UPDATE trading_agents SET collateral_micros = ? WHERE id = ?", (balance, agent_id))
        db.execute(
            "INSERT INTO trading_collateral_ledger(agent_id, delta_micros, balance_after, reason, ref, created_ms) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (agent_id, delta, balance, reason, ref, self.now()),
        )
        return balance

    def fund(self, agent_id: str, micros: int, ref: str | None = None) -> int:
        """A deposit lands on the agent's exchange account."""
        with self.store.tx() as db:
            if db.execute("SELECT 1 FROM trading_agents WHERE id = ?", (agent_id,)).fetchone() is None:
                raise ApiError(404, "agent_not_found")
            return self._move_collateral(db, agent_id, micros, "deposit", ref)

    def withdraw_collateral(self, agent_id: str, micros: int, ref: str | None = None) -> int:
        """Take free collateral out of the exchange account (the caller moves it elsewhere)."""
        with self.store.tx() as db:
            row = db.execute("SELECT collateral_micros FROM trading_agents WHERE id = ?", (agent_id,)).fetchone()
            if row is None:
                raise ApiError(404, "agent_not_found")
            if row["collateral_micros"] < micros:
                raise ApiError(400, "insufficient_collateral", available_usd=wire(row["collateral_micros"]))
            return self._move_collateral(db, agent_id, -micros, "withdrawal", ref)

    def exchange_account(self, agent_id: str) -> dict[str, Any]:
        agent = self.agent(agent_id)
        if agent is None:
            raise ApiError(404, "agent_not_found")
        rows = self.store.all("SELECT * FROM trading_positions WHERE agent_id = ? AND hl_status = 'open'", (agent_id,))
        locked = sum(r["margin_micros"] for r in rows)
        unrealized = sum(self._unrealized(r) for r in rows)
        return {
            "agent_id": agent_id,
            "collateral_usd": wire(agent["collateral_micros"]),
            "collateral_micros": agent["collateral_micros"],
            "margin_locked_micros": locked,
            "unrealized_pnl_micros": unrealized,
            "account_value_micros": agent["collateral_micros"] + locked + unrealized,
            "open_positions": [self._hl_row(r) for r in rows],
        }

    # -- the exchange's side of a trade ------------------------------------------------------

    def _fill(self, agent: Any, market: Market, notional: int, leverage: Decimal) -> Fill:
        """Check what Hyperliquid would check, then fill at the current price (no spread)."""
        if leverage > market.max_leverage:
            raise ApiError(
                400,
                "trade_failed",
                f"Leverage {_num_out(leverage)}x exceeds max leverage {market.max_leverage}x for {market.coin}",
            )
        if notional < MIN_ORDER_VALUE:
            raise ApiError(400, "trade_failed", "Order must have minimum value of $10.")
        hl, builder = fee_split(notional, agent["tier"])
        return Fill(price=self.price(market), fee_hl=hl, fee_builder=builder)

    def _unrealized(self, row: Any) -> int:
        market = resolve_market(row["coin"])
        assert market is not None
        return pnl_of(row["side"], row["size_micros"], Decimal(row["entry_price"]), self.price(market))

    def sweep_liquidations(self) -> list[str]:
        """Close, at their liquidation price, every exchange position whose margin is used up.

        The service database is not told: its row stays `open`, as on the real service."""
        gone = []
        with self.store.tx() as db:
            for row in db.execute("SELECT * FROM trading_positions WHERE hl_status = 'open'").fetchall():
                market = resolve_market(row["coin"])
                assert market is not None
                liq = Decimal(row["liquidation_price"])
                if not liquidated(row["side"], self.price(market), liq):
                    continue
                pnl = pnl_of(row["side"], row["size_micros"], Decimal(row["entry_price"]), liq)
                agent = db.execute("SELECT tier FROM trading_agents WHERE id = ?", (row["agent_id"],)).fetchone()
                hl, builder = fee_split(row["size_micros"], agent["tier"])
                returned = max(0, row["margin_micros"] + pnl - hl - builder)
                db.execute(
                    "UPDATE trading_positions SET hl_status = 'liquidated', hl_exit_price = ?, hl_pnl_micros = ?, "
                    "hl_closed_ms = ? WHERE id = ?",
                    (str(liq), pnl, self.now(), row["id"]),
                )
                if returned:
                    self._move_collateral(db, row["agent_id"], returned, "liquidation_remainder", row["id"])
                gone.append(row["id"])
        return gone

    # -- open -------------------------------------------------------------------------------------

    def open(self, agent: Any, body: dict[str, Any]) -> dict[str, Any]:
        coin, side, size_raw, lev_raw = body.get("coin"), body.get("side"), body.get("size_usd"), body.get("leverage")
        if not coin or not side or not size_raw:
            raise ApiError(400, "invalid_request", "Provide coin, side (long/short), size_usd")
        size = _number(size_raw)
        if size is None or size <= 0:
            raise ApiError(400, "invalid_size", "size_usd must be a positive number")
        if side not in ("long", "short"):
            raise ApiError(400, "invalid_side", "side must be 'long' or 'short'")
        requested = DEFAULT_LEVERAGE
        if lev_raw is not None:
            requested = _number(lev_raw)
            if requested is None or requested < 1:
                raise ApiError(400, "invalid_leverage", "leverage must be a number >= 1")
        leverage = min(requested, Decimal(agent["max_leverage"]))
        notional = _micros(size)
        if notional > agent["max_position_micros"]:
            max_usd = wire(agent["max_position_micros"])
            raise ApiError(
                400,
                "position_too_large",
                f"Max position size is ${max_usd:g}. Upgrade tier for higher limits.",
                max_position_usd=max_usd,
            )
        self._check_daily_loss(agent)
        if not isinstance(coin, str) or (market := resolve_market(coin)) is None:
            raise ApiError(400, "trade_failed", f"Unknown market: {coin}")
        return self._open_filled(agent, market, side, notional, leverage)

    def _check_daily_loss(self, agent: Any) -> None:
        limit = agent["max_daily_loss_micros"]
        if not limit:
            return
        net, _ = self._today(agent["id"])
        loss = max(0, -net)
        if loss >= limit:
            raise ApiError(403, "daily_loss_limit_reached",
                           "Daily loss limit reached. Trading blocked until UTC midnight.",
                           daily_loss_limit_usd=wire(limit), current_daily_loss_usd=wire_cents(loss),
                           resets_at=self._next_midnight_iso())

    def _today(self, agent_id: str) -> tuple[int, int]:
        start = self._midnight_ms()
        row = self.store.one(
            "SELECT COALESCE(SUM(realized_pnl_micros - fee_micros), 0) AS net, COUNT(*) AS n "
            "FROM trading_trades WHERE agent_id = ? AND created_ms >= ?", (agent_id, start))
        return int(row["net"]), int(row["n"])

    def _midnight_ms(self) -> int:
        now = datetime.fromtimestamp(self.now() / 1000, tz=UTC)
        return int(now.replace(hour=0, minute=0, second=0, microsecond=0).timestamp() * 1000)

    def _next_midnight_iso(self) -> str:
        return iso(self._midnight_ms() + int(timedelta(days=1).total_seconds() * 1000))

    def _open_filled(self, agent: Any, market: Market, side: str, notional: int, leverage: Decimal,
                     order_id: str | None = None) -> dict[str, Any]:
        fill = self._fill(agent, market, notional, leverage)
        margin = _micros(Decimal(notional) / MICRO / leverage)
        liq = liquidation_price(side, fill.price, leverage, market.instrument.tick)
        position_id = "pos_" + self._uuid("position")
        order_id = order_id or "ord_" + self._uuid("order")
        hl_order_id = str(self._seq("hl_order") + 40_000_000_000)
        now = self.now()
        with self.store.tx() as db:
            self._move_collateral(db, agent["id"], -(margin + fill.fee), "open", position_id)
            db.execute(
                "INSERT INTO trading_positions(id, seq, agent_id, coin, side, size_micros, entry_price, leverage, "
                "margin_micros, liquidation_price, status, hl_status, hl_order_id, opened_ms) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'open', 'open', ?, ?)",
                (position_id, self._seq("position"), agent["id"], market.coin, side, notional, str(fill.price),
                 str(leverage), margin, str(liq), hl_order_id, now),
            )
            # A limit order that fills already has its row; a market order gets one now.
            db.execute(
                "INSERT OR IGNORE INTO trading_orders(id, seq, agent_id, kind, coin, side, size_micros, leverage, "
                "price, status, position_id, fee_micros, created_ms, done_ms) "
                "VALUES (?, ?, ?, 'market', ?, ?, ?, ?, ?, 'filled', ?, ?, ?, ?)",
                (order_id, self._seq("order"), agent["id"], market.coin, "buy" if side == "long" else "sell", notional,
                 str(leverage), str(fill.price), position_id, fill.fee, now, now),
            )
            self._record_trade(db, agent, order_id, market.coin, "buy" if side == "long" else "sell", notional,
                               fill, 0)
        return {
            "position_id": position_id,
            "order_id": order_id,
            "coin": market.coin,
            "ticker": market.ticker,
            "category": market.category,
            "dex": market.dex,
            "side": side,
            "size_usd": wire(notional),
            "entry_price": _num_out(fill.price),
            "leverage": _num_out(leverage),
            "max_leverage": market.max_leverage,
            "margin_used": wire(margin),
            "liquidation_price": _num_out(liq),
            "fee": wire(fill.fee),
            "fee_breakdown": {"hyperliquid": wire(fill.fee_hl), "purple_flea_builder": wire(fill.fee_builder)},
            "hl_order_id": int(hl_order_id),
            "execution": "sandbox",
            "status": "open",
        }

    def _record_trade(self, db: Any, agent: Any, order_id: str, coin: str, side: str, notional: int, fill: Fill,
                      pnl: int) -> None:
        now = self.now()
        db.execute(
            "INSERT INTO trading_trades(id, agent_id, order_id, coin, side, size_micros, price, fee_micros, "
            "realized_pnl_micros, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ("trd_" + self._uuid("trade"), agent["id"], order_id, coin, side, notional, str(fill.price), fill.fee,
             pnl, now),
        )
        db.execute(
            "UPDATE trading_agents SET total_volume_micros = total_volume_micros + ?, "
            "total_fees_micros = total_fees_micros + ?, total_pnl_micros = total_pnl_micros + ? WHERE id = ?",
            (notional, fill.fee, pnl, agent["id"]),
        )
        self._pay_referrers(db, agent, fill.fee_builder, order_id)

    def _pay_referrers(self, db: Any, agent: Any, builder_fee: int, order_id: str) -> None:
        """20 % / 10 % / 5 % of the builder fee to three levels, rounded to cents, ≥ 1 cent."""
        if not agent["referred_by"] or builder_fee <= 0:
            return
        referred, referrer = agent["id"], agent["referred_by"]
        for multiplier in REFERRAL_LEVELS:
            if not referrer:
                break
            commission = Decimal(builder_fee) * REFERRAL_SHARE * multiplier / 10_000
            cents = int(commission.to_integral_value(rounding=ROUND_HALF_EVEN)) * 10_000
            if cents >= 10_000:
                db.execute(
                    "INSERT INTO trading_referral_earnings(id, referrer_id, referred_id, fee_micros, "
                    "commission_micros, order_id, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    ("ref_" + self._uuid("earning"), referrer, referred, builder_fee, cents, order_id, self.now()),
                )
            upstream = db.execute("SELECT referred_by FROM trading_agents WHERE id = ?", (referrer,)).fetchone()
            referred, referrer = referrer, (upstream["referred_by"] if upstream else None)

    # -- close ---------------------------------------------------------------------------------

    def close(self, agent: Any, body: dict[str, Any]) -> dict[str, Any]:
        position_id = body.get("position_id")
        if not position_id:
            raise ApiError(400, "provide position_id")
        row = self.store.one("SELECT * FROM trading_positions WHERE id = ? AND agent_id = ? AND status = 'open'",
                             (position_id, agent["id"]))
        if row is None:
            raise ApiError(404, "position_not_found")
        if row["hl_status"] != "open":
            raise ApiError(400, "close_failed", f"No open position for {row['coin']} on Hyperliquid")
        return self._close_on_exchange(agent, row)

    def _close_on_exchange(self, agent: Any, row: Any, order_id: str | None = None) -> dict[str, Any]:
        market = resolve_market(row["coin"])
        assert market is not None
        notional = row["size_micros"]
        hl, builder = fee_split(notional, agent["tier"])
        fill = Fill(price=self.price(market), fee_hl=hl, fee_builder=builder)
        entry = Decimal(row["entry_price"])
        pnl = pnl_of(row["side"], notional, entry, fill.price)
        now = self.now()
        order_id = order_id or "ord_" + self._uuid("order")
        close_side = "sell" if row["side"] == "long" else "buy"
        with self.store.tx() as db:
            returned = row["margin_micros"] + pnl - fill.fee
            # A loss beyond the margin cannot leave the account below zero: the exchange takes what
            # is there (liquidation normally comes first).
            current = db.execute("SELECT collateral_micros FROM trading_agents WHERE id = ?",
                                 (agent["id"],)).fetchone()["collateral_micros"]
            self._move_collateral(db, agent["id"], max(returned, -current), "close", row["id"])
            db.execute(
                "UPDATE trading_positions SET status = 'closed', db_pnl_micros = ?, closed_ms = ?, "
                "hl_status = 'closed', "
                "hl_exit_price = ?, hl_pnl_micros = ?, hl_closed_ms = ? WHERE id = ?",
                (pnl, now, str(fill.price), pnl, now, row["id"]),
            )
            db.execute(
                "INSERT OR IGNORE INTO trading_orders(id, seq, agent_id, kind, coin, side, size_micros, leverage, "
                "price, status, position_id, fee_micros, created_ms, done_ms) "
                "VALUES (?, ?, ?, 'market', ?, ?, ?, ?, ?, 'filled', ?, ?, ?, ?)",
                (order_id, self._seq("order"), agent["id"], row["coin"], close_side, notional, row["leverage"],
                 str(fill.price), row["id"], fill.fee, now, now),
            )
            self._record_trade(db, agent, order_id, row["coin"], close_side, notional, fill, pnl)
        return {
            "position_id": row["id"],
            "coin": row["coin"],
            "ticker": market.ticker,
            "side": row["side"],
            "entry_price": _num_out(entry),
            "exit_price": _num_out(fill.price),
            "size_usd": wire(notional),
            "leverage": _num_out(Decimal(row["leverage"])),
            "pnl": wire_cents(pnl),
            "pnl_percent": float(((fill.price - entry) / entry * 100).quantize(Decimal("0.01"))),
            "fee": wire(fill.fee),
            "execution": "sandbox",
            "status": "closed",
        }

    # -- positions -----------------------------------------------------------------------------

    def positions(self, agent: Any, show_all: bool) -> dict[str, Any]:
        if show_all:
            rows = self.store.all(
                "SELECT * FROM trading_positions WHERE agent_id = ? ORDER BY opened_ms DESC, seq DESC LIMIT 50",
                (agent["id"],))
            out = [self._db_row(r) for r in rows]
            return {"positions": out, "count": len(out), "source": "database"}
        rows = self.store.all(
            "SELECT * FROM trading_positions WHERE agent_id = ? AND hl_status = 'open' ORDER BY seq", (agent["id"],))
        out = [self._hl_row(r) for r in rows]
        return {"positions": out, "count": len(out), "source": "hyperliquid"}

    def _db_row(self, r: Any) -> dict[str, Any]:
        """A database row, camelCase as drizzle returns it (closed rows keep their pnl in
        `unrealizedPnl`, as the real schema does)."""
        market = resolve_market(r["coin"])
        assert market is not None
        current = self.price(market)
        is_open = r["status"] == "open"
        unrealized = self._unrealized(r) if is_open else r["db_pnl_micros"]
        return {
            "id": r["id"],
            "agentId": r["agent_id"],
            "coin": r["coin"],
            "side": r["side"],
            "sizeUsd": wire(r["size_micros"]),
            "entryPrice": _num_out(Decimal(r["entry_price"])),
            "leverage": _num_out(Decimal(r["leverage"])),
            "marginUsed": wire(r["margin_micros"]),
            "liquidationPrice": _num_out(Decimal(r["liquidation_price"])),
            "unrealizedPnl": wire_cents(r["db_pnl_micros"]),
            "status": r["status"],
            "hlOrderId": r["hl_order_id"],
            "openedAt": r["opened_ms"] // 1000,
            "closedAt": r["closed_ms"] // 1000 if r["closed_ms"] is not None else None,
            "ticker": market.ticker,
            "current_price": _num_out(current),
            "unrealized_pnl": wire_cents(unrealized),
        }

    def _hl_row(self, r: Any) -> dict[str, Any]:
        """An exchange position, snake_case; `position_id` only while the database row is open."""
        market = resolve_market(r["coin"])
        assert market is not None
        entry = Decimal(r["entry_price"])
        size = (Decimal(r["size_micros"]) / MICRO / entry).quantize(Decimal("0.000001"))
        unrealized = self._unrealized(r)
        return {
            "position_id": r["id"] if r["status"] == "open" else None,
            "coin": r["coin"],
            "ticker": market.ticker,
            "side": r["side"],
            "size": float(size),
            "size_usd": wire_cents(r["size_micros"]),
            "entry_price": _num_out(entry),
            "current_price": _num_out(self.price(market)),
            "leverage": {"type": "isolated", "value": _num_out(Decimal(r["leverage"]))},
            "margin_used": wire(r["margin_micros"]),
            "liquidation_price": _num_out(Decimal(r["liquidation_price"])),
            "unrealized_pnl": wire(unrealized),
            "return_on_equity": str((Decimal(unrealized) / r["margin_micros"]).quantize(Decimal("0.0001"))),
            "source": "hyperliquid",
        }

    # -- stop loss / take profit -------------------------------------------------------------

    def place_exit(self, agent: Any, body: dict[str, Any], kind: str) -> dict[str, Any]:
        position_id = body.get("position_id")
        if not position_id or not isinstance(position_id, str):
            raise ApiError(400, "missing_position_id", "Provide position_id")
        trigger = _number(body.get("trigger_price"))
        if trigger is None or trigger <= 0:
            raise ApiError(400, "invalid_trigger_price", "trigger_price must be a positive number (absolute price)")
        row = self.store.one("SELECT * FROM trading_positions WHERE id = ? AND agent_id = ?",
                             (position_id, agent["id"]))
        if row is None:
            raise ApiError(404, "position_not_found")
        if row["status"] != "open":
            raise ApiError(400, "position_not_open", f"Position is {row['status']}")
        order_id = ("sl_" if kind == "stop_loss" else "tp_") + self._uuid("exit")
        with self.store.tx() as db:
            db.execute(
                "INSERT INTO trading_orders(id, seq, agent_id, kind, coin, side, size_micros, leverage, price, status, "
                "position_id, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
                (order_id, self._seq("order"), agent["id"], kind, row["coin"], row["side"], row["size_micros"],
                 row["leverage"], str(trigger), row["id"], self.now()),
            )
        return {
            "order_id": order_id,
            "type": kind,
            "position_id": row["id"],
            "coin": row["coin"],
            "side": row["side"],
            "trigger_price": _num_out(trigger),
            "size_usd": wire(row["size_micros"]),
            "entry_price": _num_out(Decimal(row["entry_price"])),
            "status": "pending",
            "note": "Call POST /v1/trade/check-exits to execute triggered orders",
        }

    def check_exits(self, agent: Any) -> dict[str, Any]:
        orders = self.store.all(
            "SELECT * FROM trading_orders WHERE agent_id = ? AND kind IN ('stop_loss', 'take_profit') "
            "AND status = 'pending' ORDER BY seq", (agent["id"],))
        executions: list[dict[str, Any]] = []
        waiting: list[dict[str, Any]] = []
        checked = 0
        for order in orders:
            row = self.store.one("SELECT * FROM trading_positions WHERE id = ?", (order["position_id"],))
            if row is None or row["status"] != "open":
                self.store.execute("UPDATE trading_orders SET status = 'cancelled', done_ms = ? WHERE id = ?",
                                   (self.now(), order["id"]))
                continue
            checked += 1
            market = resolve_market(row["coin"])
            assert market is not None
            price, trigger = self.price(market), Decimal(order["price"])
            if not exit_fires(order["kind"], row["side"], price, trigger):
                waiting.append({"order_id": order["id"], "position_id": row["id"], "type": order["kind"],
                                "coin": row["coin"], "trigger_price": _num_out(trigger),
                                "current_price": _num_out(price)})
                continue
            if row["hl_status"] == "open":
                closed = self._close_on_exchange(agent, row, order_id=order["id"])
                execution, pnl, fee = "real", closed["pnl"], closed["fee"]
            else:
                # The exchange has nothing to close: record a simulated fill, as the service does.
                pnl_micros = pnl_of(row["side"], row["size_micros"], Decimal(row["entry_price"]), price)
                self.store.execute(
                    "UPDATE trading_positions SET status = 'closed', db_pnl_micros = ?, closed_ms = ? WHERE id = ?",
                    (pnl_micros, self.now(), row["id"]))
                execution, pnl, fee = "simulated", wire_cents(pnl_micros), 0.0
            self.store.execute(
                "UPDATE trading_orders SET status = CASE WHEN id = ? THEN 'triggered' ELSE 'cancelled' END, "
                "done_ms = ? "
                "WHERE position_id = ? AND status = 'pending' AND kind IN ('stop_loss', 'take_profit')",
                (order["id"], self.now(), row["id"]),
            )
            executions.append({"order_id": order["id"], "position_id": row["id"], "type": order["kind"],
                               "coin": row["coin"], "side": row["side"], "trigger_price": _num_out(trigger),
                               "exit_price": _num_out(price), "pnl": pnl, "fee": fee, "execution": execution})
        # Orders whose siblings fired in this pass are no longer waiting.
        fired = {e["position_id"] for e in executions}
        waiting = [w for w in waiting if w["position_id"] not in fired]
        return {"checked": checked, "triggered": len(executions), "executions": executions,
                "not_yet_triggered": waiting}

    # -- limit orders ---------------------------------------------------------------------------

    def place_limit(self, agent: Any, body: dict[str, Any]) -> dict[str, Any]:
        coin, side, size_raw, price_raw = (
            body.get("coin"),
            body.get("side"),
            body.get("size_usd"),
            body.get("limit_price"),
        )
        if not coin or not side or not size_raw or not price_raw:
            raise ApiError(400, "invalid_request", "Provide coin, side, size_usd, limit_price")
        market = resolve_market(coin)
        if market is None:
            raise ApiError(400, "unknown_coin", f"Unknown market: {coin}")
        if side not in ("long", "short"):
            raise ApiError(400, "invalid_side", "side must be 'long' or 'short'")
        size, limit_price = _number(size_raw), _number(price_raw)
        if size is None or size <= 0:
            raise ApiError(400, "invalid_size", "size_usd must be a positive number")
        if limit_price is None or limit_price <= 0:
            raise ApiError(400, "invalid_price", "limit_price must be a positive number")
        leverage = DEFAULT_LEVERAGE
        if body.get("leverage") is not None:
            leverage = _number(body.get("leverage"))
            if leverage is None or leverage < 1:
                raise ApiError(400, "invalid_leverage", "leverage must be a number >= 1")
        leverage = min(leverage, Decimal(agent["max_leverage"]))
        notional = _micros(size)
        if notional > agent["max_position_micros"]:
            raise ApiError(400, "too_large", max_position_usd=wire(agent["max_position_micros"]))
        pending = self.store.scalar(
            "SELECT COUNT(*) FROM trading_orders WHERE agent_id = ? AND kind = 'limit' AND status = 'pending'",
            (agent["id"],), default=0)
        if pending >= MAX_PENDING_LIMITS:
            raise ApiError(400, "limit_reached", f"At most {MAX_PENDING_LIMITS} pending limit orders")
        order_id = "lim_" + self._uuid("limit")
        self.store.execute(
            "INSERT INTO trading_orders(id, seq, agent_id, kind, coin, side, size_micros, leverage, price, status, "
            "created_ms) VALUES (?, ?, ?, 'limit', ?, ?, ?, ?, ?, 'pending', ?)",
            (order_id, self._seq("order"), agent["id"], market.coin, side, notional, str(leverage), str(limit_price),
             self.now()))
        return self._limit_out(self.store.one("SELECT * FROM trading_orders WHERE id = ?", (order_id,)))

    def _limit_out(self, o: Any) -> dict[str, Any]:
        return {"order_id": o["id"], "coin": o["coin"], "side": o["side"], "size_usd": wire(o["size_micros"]),
                "limit_price": _num_out(Decimal(o["price"])), "leverage": _num_out(Decimal(o["leverage"])),
                "status": o["status"], "position_id": o["position_id"], "created_at": iso(o["created_ms"])}

    def list_limits(self, agent: Any) -> dict[str, Any]:
        rows = self.store.all("SELECT * FROM trading_orders WHERE agent_id = ? AND kind = 'limit' ORDER BY seq DESC "
                              "LIMIT 50", (agent["id"],))
        out = [self._limit_out(r) for r in rows]
        return {"orders": out, "count": len(out)}

    def cancel_limit(self, agent: Any, order_id: str) -> dict[str, Any]:
        row = self.store.one("SELECT * FROM trading_orders WHERE id = ? AND agent_id = ? AND kind = 'limit'",
                             (order_id, agent["id"]))
        if row is None:
            raise ApiError(404, "order_not_found")
        if row["status"] != "pending":
            raise ApiError(400, "invalid_status", f"Order is {row['status']}")
        self.store.execute("UPDATE trading_orders SET status = 'cancelled', done_ms = ? WHERE id = ?",
                           (self.now(), order_id))
        return {"order_id": order_id, "status": "cancelled"}

    def check_limits(self, agent: Any) -> dict[str, Any]:
        rows = self.store.all(
            "SELECT * FROM trading_orders WHERE agent_id = ? AND kind = 'limit' AND status = 'pending' ORDER BY seq",
            (agent["id"],),
        )
        filled, failed, pending = [], [], 0
        for o in rows:
            market = resolve_market(o["coin"])
            assert market is not None
            price = self.price(market)
            if not limit_fills(o["side"], price, Decimal(o["price"])):
                pending += 1
                continue
            fresh = self.agent(agent["id"])
            try:
                opened = self._open_filled(
                    fresh,
                    market,
                    o["side"],
                    o["size_micros"],
                    min(Decimal(o["leverage"]), Decimal(fresh["max_leverage"])),
                    order_id=o["id"],
                )
            except ApiError as exc:
                self.store.execute(
                    "UPDATE trading_orders SET status = 'failed', note = ?, done_ms = ? WHERE id = ?",
                    (exc.message or exc.code, self.now(), o["id"]),
                )
                failed.append(
                    {
                        **self._limit_out(self.store.one("SELECT * FROM trading_orders WHERE id = ?", (o["id"],))),
                        "reason": exc.message or exc.code,
                    }
                )
                continue
            self.store.execute("UPDATE trading_orders SET status = 'filled', position_id = ?, done_ms = ? WHERE id = ?",
                               (opened["position_id"], self.now(), o["id"]))
            filled.append({**self._limit_out(self.store.one("SELECT * FROM trading_orders WHERE id = ?", (o["id"],))),
                           "fill_price": opened["entry_price"], "fee": opened["fee"]})
        return {"checked": len(rows), "filled": filled, "failed": failed, "pending": pending}

    # -- risk settings, close-all --------------------------------------------------------------

    def risk_settings(self, agent: Any) -> dict[str, Any]:
        net, count = self._today(agent["id"])
        loss = max(0, -net)
        limit = agent["max_daily_loss_micros"]
        return {
            "risk_settings": {
                "max_leverage": _num_out(Decimal(agent["max_leverage"])),
                "max_position_usd": wire(agent["max_position_micros"]),
                "max_daily_loss_usd": wire(limit) if limit else None,
            },
            "today": {
                "net_pnl": wire_cents(net),
                "current_loss_usd": wire_cents(loss),
                "trade_count": count,
                "daily_loss_limit_pct_used": float((Decimal(loss) / limit * 100).quantize(Decimal("0.01")))
                if limit
                else None,
                "trading_blocked": bool(limit and loss >= limit),
                "resets_at": self._next_midnight_iso(),
            },
        }

    def update_risk_settings(self, agent: Any, body: dict[str, Any]) -> dict[str, Any]:
        updates: dict[str, Any] = {}
        changed: list[str] = []
        max_lev_cap, max_pos_cap = TIER_CAPS.get(agent["tier"], OTHER_TIER_CAPS)
        if "max_daily_loss_usd" in body:
            value = body["max_daily_loss_usd"]
            micros = amount_from_wire(value)
            if value is None:
                updates["max_daily_loss_micros"] = None
                changed.append("max_daily_loss_usd: disabled (no limit)")
            elif micros is not None and micros > 0:
                updates["max_daily_loss_micros"] = micros
                changed.append(f"max_daily_loss_usd: ${wire(micros):g}")
            else:
                raise ApiError(400, "invalid_value", "max_daily_loss_usd must be a positive number or null to disable")
        if "max_leverage" in body:
            value = _number(body["max_leverage"])
            if value is None or value < 1 or value > 50:
                raise ApiError(400, "invalid_value", "max_leverage must be 1-50")
            capped = min(value, max_lev_cap)
            updates["max_leverage"] = str(capped)
            changed.append(f"max_leverage: {_num_out(capped)}x")
        if "max_position_usd" in body:
            micros = amount_from_wire(body["max_position_usd"])
            if micros is None or micros <= 0:
                raise ApiError(400, "invalid_value", "max_position_usd must be a positive number")
            capped_pos = min(micros, max_pos_cap)
            updates["max_position_micros"] = capped_pos
            changed.append(f"max_position_usd: ${wire(capped_pos):g}")
        if not changed:
            raise ApiError(
                400, "no_changes", "Provide at least one of: max_daily_loss_usd, max_leverage, max_position_usd"
            )
        with self.store.tx() as db:
            for column, value in updates.items():
                db.execute(f"UPDATE trading_agents SET {column} = ? WHERE id = ?", (value, agent["id"]))
        fresh = self.agent(agent["id"])
        return {"success": True, "changed": changed, "risk_settings": self.risk_settings(fresh)["risk_settings"]}

    def close_all(self, agent: Any) -> dict[str, Any]:
        """Database only, pnl 0: the exchange positions stay open (the real service's behaviour)."""
        with self.store.tx() as db:
            rows = db.execute("SELECT id FROM trading_positions WHERE agent_id = ? AND status = 'open' ORDER BY seq",
                              (agent["id"],)).fetchall()
            ids = [r["id"] for r in rows]
            db.execute("UPDATE trading_positions SET status = 'closed', db_pnl_micros = 0, closed_ms = ? "
                       "WHERE agent_id = ? AND status = 'open'", (self.now(), agent["id"]))
        return {"success": True, "closed": len(ids), "position_ids": ids,
                "message": f"Marked {len(ids)} position(s) closed"}

    # -- referral --------------------------------------------------------------------------------

    def referral_stats(self, agent: Any) -> dict[str, Any]:
        earnings = self.store.all("SELECT * FROM trading_referral_earnings WHERE referrer_id = ? ORDER BY created_ms",
                                  (agent["id"],))
        referred = self.store.scalar("SELECT COUNT(*) FROM trading_agents WHERE referred_by = ?", (agent["id"],), 0)
        earned = sum(e["commission_micros"] for e in earnings)
        withdrawn = self.store.scalar("SELECT COALESCE(SUM(amount_micros), 0) FROM trading_referral_withdrawals "
                                      "WHERE referrer_id = ?", (agent["id"],), 0)
        return {
            "total_referrals": referred,
            "total_fees_generated_usd": wire_cents(sum(e["fee_micros"] for e in earnings)),
            "total_earned_usd": wire_cents(earned),
            "available_usd": wire_cents(earned - withdrawn),
            "commission_rate": "20%",
            "recent_earnings": [{"from_agent": e["referred_id"], "fee": wire(e["fee_micros"]),
                                 "commission": wire(e["commission_micros"]), "order": e["order_id"],
                                 "at": iso(e["created_ms"])} for e in earnings[-20:]],
        }

    def referral_withdraw(self, agent: Any, body: dict[str, Any]) -> dict[str, Any]:
        address = body.get("address")
        if not isinstance(address, str) or not _EVM_ADDRESS.match(address):
            raise ApiError(
                400,
                "invalid_address",
                suggestion="Provide a valid Base/Ethereum address (0x followed by 40 hex characters)",
            )
        with self.store.tx() as db:
            earned = db.execute("SELECT COALESCE(SUM(commission_micros), 0) FROM trading_referral_earnings "
                                "WHERE referrer_id = ?", (agent["id"],)).fetchone()[0]
            withdrawn = db.execute("SELECT COALESCE(SUM(amount_micros), 0) FROM trading_referral_withdrawals "
                                   "WHERE referrer_id = ?", (agent["id"],)).fetchone()[0]
            available = earned - withdrawn
            if available < MICRO:
                raise ApiError(400, "insufficient_balance", available_usd=wire_cents(available), minimum=1.0,
                               suggestion="Minimum withdrawal is $1.00. Earn more by referring agents!")
            withdrawal_id = "rw_" + self.ctx.new_id("trading.withdrawal", 6)
            db.execute("INSERT INTO trading_referral_withdrawals(id, referrer_id, amount_micros, address, status, "
                       "created_ms) VALUES (?, ?, ?, ?, 'pending', ?)",
                       (withdrawal_id, agent["id"], available, address, self.now()))
        return {"withdrawal_id": withdrawal_id, "amount_usd": wire_cents(available), "address": address,
                "status": "pending",
                "note": "Referral commission withdrawal queued. USDC will be sent to your address within 24h."}

    def market_out(self, market: Market) -> dict[str, Any]:
        return {"coin": market.coin, "ticker": market.ticker, "display_name": market.ticker,
                "price": _num_out(self.price(market)), "max_leverage": market.max_leverage,
                "category": market.category, "dex": market.dex}


# ── cross-silo hook: a deposit arriving on an agent's exchange address ─────────────────────────


def credit_deposit_address(ctx: SandboxContext, address: str, micros: int, ref: str | None = None) -> str | None:
    """Credit collateral to the trading agent whose deposit address is `address`.

    The wallet sandbox calls this when a USDC transfer to such an address settles. Returns the
    agent id, or None when the address is no trading agent's."""
    ctx.store.ensure_schema("trading", _SCHEMA)
    row = ctx.store.one("SELECT id FROM trading_agents WHERE lower(hl_wallet_address) = lower(?)", (address,))
    if row is None:
        return None
    with ctx.store.tx() as db:
        balance = db.execute("SELECT collateral_micros FROM trading_agents WHERE id = ?", (row["id"],)).fetchone()[0]
        db.execute("UPDATE trading_agents SET collateral_micros = ? WHERE id = ?", (balance + micros, row["id"]))
        db.execute(
            "INSERT INTO trading_collateral_ledger(agent_id, delta_micros, balance_after, reason, ref, created_ms) "
            "VALUES (?, ?, ?, 'deposit', ?, ?)",
            (row["id"], micros, balance + micros, ref, ctx.clock.now_ms()),
        )
    return str(row["id"])


# ── HTTP ───────────────────────────────────────────────────────────────────────────────────────


def create_app(ctx: SandboxContext) -> Starlette:
    sandbox = TradingSandbox(ctx)

    def ok(data: dict[str, Any], status: int = 200) -> JSONResponse:
        return reply(data, status, service=SERVICE)

    def authed(handler: Any, *, limited: str | None = None) -> Any:
        async def endpoint(request: Request) -> JSONResponse:
            if limited:
                sandbox.limiter.check(request, limited)
            sandbox.sync()
            agent = sandbox.authenticate(request)
            return await handler(request, agent)

        return endpoint

    async def register(request: Request) -> JSONResponse:
        sandbox.limiter.check(request, "/v1/auth/register")
        try:
            body = await read_json(request, strict=True)
        except ApiError:
            body = {}
        return ok(sandbox.register(body), 201)

    async def account(request: Request, agent: Any) -> JSONResponse:
        return ok(sandbox.account(agent))

    async def deposit_address(request: Request, agent: Any) -> JSONResponse:
        return ok({"deposit_address": agent["hl_wallet_address"], "generated": bool(agent["generated_wallet"]),
                   "message": "Deposit USDC to this address on Hyperliquid"})

    async def markets(request: Request) -> JSONResponse:
        sandbox.sync()
        listed = [sandbox.market_out(m) for m in MARKETS]
        categories: dict[str, Any] = {}
        for m in listed:
            bucket = categories.setdefault(m["category"], {"count": 0, "markets": []})
            bucket["count"] += 1
            bucket["markets"].append(m)
        return ok({"total_markets": len(listed), "markets": listed, "categories": categories,
                   "fee_tiers": {"free": "HL fee + 2 bps", "pro": "HL fee + 1 bp", "whale": "HL fee only"}})

    def _market(request: Request) -> Market:
        sandbox.sync()
        market = resolve_market(request.path_params["coin"])
        if market is None:
            raise ApiError(404, "market_not_found", f"Unknown market: {request.path_params['coin']}")
        return market

    async def market(request: Request) -> JSONResponse:
        m = _market(request)
        hl, builder = fee_split(1_000 * MICRO, "free")
        return ok({**sandbox.market_out(m), "fee_example_1000_usd": {"hyperliquid": wire(hl),
                                                                     "purple_flea_builder": wire(builder)}})

    async def market_price(request: Request) -> JSONResponse:
        m = _market(request)
        return ok({"coin": m.coin, "ticker": m.ticker, "price": _num_out(sandbox.price(m))})

    async def open_(request: Request, agent: Any) -> JSONResponse:
        return ok(sandbox.open(agent, await read_json(request, strict=True)))

    async def close(request: Request, agent: Any) -> JSONResponse:
        return ok(sandbox.close(agent, await read_json(request, strict=True)))

    async def positions(request: Request, agent: Any) -> JSONResponse:
        return ok(sandbox.positions(agent, request.query_params.get("status") == "all"))

    async def stop_loss(request: Request, agent: Any) -> JSONResponse:
        return ok(sandbox.place_exit(agent, await read_json(request, strict=True), "stop_loss"))

    async def take_profit(request: Request, agent: Any) -> JSONResponse:
        return ok(sandbox.place_exit(agent, await read_json(request, strict=True), "take_profit"))

    async def check_exits(request: Request, agent: Any) -> JSONResponse:
        return ok(sandbox.check_exits(agent))

    async def limit(request: Request, agent: Any) -> JSONResponse:
        return ok(sandbox.place_limit(agent, await read_json(request, strict=True)), 201)

    async def limit_orders(request: Request, agent: Any) -> JSONResponse:
        return ok(sandbox.list_limits(agent))

    async def cancel_limit(request: Request, agent: Any) -> JSONResponse:
        return ok(sandbox.cancel_limit(agent, request.path_params["order_id"]))

    async def check_limits(request: Request, agent: Any) -> JSONResponse:
        return ok(sandbox.check_limits(agent))

    async def get_risk(request: Request, agent: Any) -> JSONResponse:
        return ok(sandbox.risk_settings(agent))

    async def post_risk(request: Request, agent: Any) -> JSONResponse:
        return ok(sandbox.update_risk_settings(agent, await read_json(request, strict=True)))

    async def close_all(request: Request, agent: Any) -> JSONResponse:
        return ok(sandbox.close_all(agent))

    async def referral_code(request: Request, agent: Any) -> JSONResponse:
        return ok({"referral_code": agent["referral_code"],
                   "commission_rate": "20% of fee markup from referred agents trades"})

    async def referral_stats(request: Request, agent: Any) -> JSONResponse:
        return ok(sandbox.referral_stats(agent))

    async def referral_withdraw(request: Request, agent: Any) -> JSONResponse:
        try:
            body = await read_json(request, strict=True)
        except ApiError:
            body = {}
        return ok(sandbox.referral_withdraw(agent, body))

    # -- /_sandbox: not part of the real API ------------------------------------------------------

    async def admin_fund(request: Request) -> JSONResponse:
        body = await read_json(request, strict=True)
        micros = amount_from_wire(body.get("amount_usd", body.get("amount")), allow_string=True)
        if micros is None or micros <= 0:
            raise ApiError(400, "invalid_amount", "amount_usd must be a positive number")
        agent_id = body.get("agent_id")
        if not agent_id and isinstance(body.get("address"), str):
            found = ctx.store.one("SELECT id FROM trading_agents WHERE lower(hl_wallet_address) = lower(?)",
                                  (body["address"],))
            agent_id = found["id"] if found else None
        if not isinstance(agent_id, str):
            raise ApiError(400, "invalid_request", "give agent_id or address")
        balance = sandbox.fund(agent_id, micros, body.get("ref") if isinstance(body.get("ref"), str) else None)
        return JSONResponse({"agent_id": agent_id, "collateral_usd": wire(balance), "collateral_micros": balance})

    async def admin_account(request: Request) -> JSONResponse:
        sandbox.sync()
        return JSONResponse(sandbox.exchange_account(request.path_params["agent_id"]))

    async def admin_set_price(request: Request) -> JSONResponse:
        body = await read_json(request, strict=True)
        market = resolve_market(body.get("coin"))
        number = _decimal_text(body.get("price"))
        if market is None or number is None or number <= 0:
            raise ApiError(400, "invalid_request", "give a known coin and a positive price")
        sandbox.sync()
        pinned = sandbox.set_price(market, number)
        return JSONResponse({"coin": market.coin, "price": _num_out(pinned)})

    async def admin_tick(request: Request) -> JSONResponse:
        body = await read_json(request, strict=True)
        steps = body.get("steps", 1)
        market = resolve_market(body["coin"]) if body.get("coin") else None
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0 or steps > 100_000 or (
                body.get("coin") and market is None):
            raise ApiError(400, "invalid_request", "steps: 0..100000, coin: a known market or absent")
        sandbox.sync()
        moved = sandbox.tick(steps, market)
        return JSONResponse({"prices": {k: _num_out(v) for k, v in moved.items()}})

    async def admin_prices(request: Request) -> JSONResponse:
        sandbox.sync()
        return JSONResponse({"prices": {m.coin: _num_out(sandbox.price(m)) for m in MARKETS}})

    async def admin_rate_limits(request: Request) -> JSONResponse:
        body = await read_json(request, strict=True)
        sandbox.limiter.enabled = bool(body.get("enabled"))
        sandbox.limiter.reset()
        return JSONResponse({"enabled": sandbox.limiter.enabled, "limits_per_minute": RATE_LIMITS})

    routes = [
        Route("/v1/auth/register", register, methods=["POST"]),
        Route("/v1/auth/account", authed(account), methods=["GET"]),
        Route("/v1/auth/deposit-address", authed(deposit_address), methods=["GET"]),
        Route("/v1/markets", markets, methods=["GET"]),
        Route("/v1/markets/{coin}", market, methods=["GET"]),
        Route("/v1/markets/{coin}/price", market_price, methods=["GET"]),
        Route("/v1/trade/open", authed(open_, limited="/v1/trade/open"), methods=["POST"]),
        Route("/v1/trade/close", authed(close, limited="/v1/trade/close"), methods=["POST"]),
        Route("/v1/trade/positions", authed(positions), methods=["GET"]),
        Route("/v1/trade/stop-loss", authed(stop_loss), methods=["POST"]),
        Route("/v1/trade/take-profit", authed(take_profit), methods=["POST"]),
        Route("/v1/trade/check-exits", authed(check_exits), methods=["POST"]),
        Route("/v1/trade/limit", authed(limit), methods=["POST"]),
        Route("/v1/trade/limit-orders", authed(limit_orders), methods=["GET"]),
        Route("/v1/trade/limit-orders/{order_id}", authed(cancel_limit), methods=["DELETE"]),
        Route("/v1/trade/check-limits", authed(check_limits), methods=["POST"]),
        Route("/v1/trade/risk-settings", authed(get_risk), methods=["GET"]),
        Route("/v1/trade/risk-settings", authed(post_risk), methods=["POST"]),
        Route("/v1/trade/close-all", authed(close_all), methods=["POST"]),
        Route("/v1/referral/code", authed(referral_code), methods=["GET"]),
        Route("/v1/referral/stats", authed(referral_stats), methods=["GET"]),
        Route("/v1/referral/withdraw", authed(referral_withdraw, limited="/v1/referral/withdraw"), methods=["POST"]),
        Route("/_sandbox/fund", admin_fund, methods=["POST"]),
        Route("/_sandbox/account/{agent_id}", admin_account, methods=["GET"]),
        Route("/_sandbox/price", admin_set_price, methods=["POST"]),
        Route("/_sandbox/prices", admin_prices, methods=["GET"]),
        Route("/_sandbox/tick", admin_tick, methods=["POST"]),
        Route("/_sandbox/rate-limits", admin_rate_limits, methods=["POST"]),
    ]
    app = make_service_app(SERVICE, routes)
    app.state.sandbox = sandbox
    return app
