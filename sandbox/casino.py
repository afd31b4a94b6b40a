"""Sandbox casino: `/api/v1/...` as the real agent-casino answers it.

It also owns the casino ACCOUNTS (balances and the ledger) that the escrow and faucet services
debit and credit, as the real ones write straight into the casino's database.

Faithful on purpose, including the awkward parts a client must survive: payouts are gross
(`amount_won` includes the stake), `amount_won` and `new_balance` are rounded to cents on the wire
while the balance keeps full precision, the Kelly cap is the "entertainment" formula
`round2(bankroll × risk_factor × p)` for every negative-EV game, the batch summary's
`total_wagered` is always 0, there is no idempotency, and registration quietly claims the $1
faucet. Games offered here: coin-flip, dice, multiplier, custom (plus batch); others answer 404.

Sandbox deviation: `/bets/history` rows also carry `client_seed` (the real rows do not; the real
`/bets/export.csv`, also served here, does).
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import math
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from messages.money import CENT, MICRO
from sandbox.clock import iso
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

SERVICE = "casino"
PREFIX = "/api/v1"
HOUSE_EDGE = 0.005
WITHDRAW_FEE = MICRO // 2
WITHDRAW_MIN = 1 * MICRO
WITHDRAW_MAX = 100_000 * MICRO
WITHDRAW_REVIEW_ABOVE = 1_000 * MICRO
DEFAULT_RISK_FACTOR = 0.25
SEED_ROTATION = 1000
REFERRAL_LEVELS = (1.0, 0.5, 0.25)  # × 10 % of a losing stake
ADDRESS_RE = re.compile(r"^0x[0-9a-fA-F]{40}$")

SCHEMA = """
CREATE TABLE IF NOT EXISTS casino_agents (
    id TEXT PRIMARY KEY,
    key_hash TEXT NOT NULL UNIQUE,
    referral_code TEXT NOT NULL UNIQUE,
    referred_by TEXT,
    balance INTEGER NOT NULL DEFAULT 0,
    tier TEXT NOT NULL DEFAULT 'free',
    risk_factor REAL NOT NULL DEFAULT 0.25,
    total_deposited INTEGER NOT NULL DEFAULT 0,
    total_withdrawn INTEGER NOT NULL DEFAULT 0,
    total_wagered INTEGER NOT NULL DEFAULT 0,
    total_won INTEGER NOT NULL DEFAULT 0,
    deposit_index INTEGER NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS casino_ledger (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_id TEXT NOT NULL,
    type TEXT NOT NULL,
    amount INTEGER NOT NULL,
    balance_after INTEGER NOT NULL,
    reason TEXT NOT NULL,
    reference TEXT,
    service TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_casino_ledger_agent ON casino_ledger(agent_id, id);
CREATE TABLE IF NOT EXISTS casino_referrals (
    referrer_id TEXT NOT NULL,
    referred_id TEXT NOT NULL,
    total_earned INTEGER NOT NULL DEFAULT 0,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (referrer_id, referred_id)
);
CREATE TABLE IF NOT EXISTS casino_seeds (
    agent_id TEXT NOT NULL,
    generation INTEGER NOT NULL,
    seed TEXT NOT NULL,
    seed_hash TEXT NOT NULL,
    nonce INTEGER NOT NULL DEFAULT 0,
    active INTEGER NOT NULL DEFAULT 1,
    revealed_ms INTEGER,
    PRIMARY KEY (agent_id, generation)
);
CREATE TABLE IF NOT EXISTS casino_bets (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    agent_id TEXT NOT NULL,
    game TEXT NOT NULL,
    amount INTEGER NOT NULL,
    payout_multiplier REAL NOT NULL,
    won INTEGER NOT NULL,
    amount_won INTEGER NOT NULL,
    result TEXT NOT NULL,
    seed_generation INTEGER NOT NULL,
    server_seed_hash TEXT NOT NULL,
    client_seed TEXT NOT NULL,
    nonce INTEGER NOT NULL,
    result_hash TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_casino_bets_agent ON casino_bets(agent_id, seq);
CREATE INDEX IF NOT EXISTS idx_casino_bets_seed ON casino_bets(agent_id, client_seed);
CREATE TABLE IF NOT EXISTS casino_deposit_addresses (
    agent_id TEXT NOT NULL,
    chain TEXT NOT NULL,
    address TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (agent_id, chain)
);
CREATE TABLE IF NOT EXISTS casino_deposits (
    id TEXT PRIMARY KEY,
    agent_id TEXT NOT NULL,
    chain TEXT NOT NULL,
    token TEXT NOT NULL,
    amount INTEGER NOT NULL,
    tx_hash TEXT NOT NULL,
    status TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    credited_ms INTEGER
);
CREATE TABLE IF NOT EXISTS casino_withdrawals (
    id TEXT PRIMARY KEY,
    agent_id TEXT NOT NULL,
    amount INTEGER NOT NULL,
    fee INTEGER NOT NULL,
    chain TEXT NOT NULL,
    token TEXT NOT NULL,
    address TEXT NOT NULL,
    status TEXT NOT NULL,
    tx_hash TEXT,
    created_ms INTEGER NOT NULL,
    completed_ms INTEGER
);
"""

# chain → (send_token, auto_swap, swap_fee, minimum)
CHAINS: dict[str, tuple[str, bool, str, str]] = {
    "base": ("USDC", False, "0%", "$0.50"),
    "ethereum": ("ETH, USDC, or USDT", True, "0.1–0.3%", "$0.50 equivalent"),
    "bsc": ("BNB, USDT, or USDC", True, "0.1–0.3%", "$0.50 equivalent"),
    "arbitrum": ("ETH, USDC, or USDT", True, "0.1–0.3%", "$0.50 equivalent"),
    "solana": ("SOL", True, "0.1–0.3%", "$0.50 equivalent"),
    "bitcoin": ("BTC", True, "0.1–0.5% + BTC mining fee", "~$5 (min Wagyu swap)"),
    "tron": ("USDT", False, "0%", "$0.50"),
    "monero": ("XMR", True, "0.1–0.3%", "$0.50 equivalent"),
}
EVM_CHAINS = ("base", "ethereum", "bsc", "arbitrum")


def ensure_schema(ctx: SandboxContext) -> None:
    ctx.store.ensure_schema(SERVICE, SCHEMA)


# ── JavaScript number habits, reproduced ─────────────────────────────────────────────────────


def js_round(value: float, places: int) -> float:
    """`Math.round(value * 10^places) / 10^places`: halves go up."""
    factor = 10**places
    return math.floor(value * factor + 0.5) / factor


def is_js_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def times(micros: int, multiplier: float) -> int:
    """micro-USD × a float multiplier, rounded half-even to the micro."""
    exact = Decimal(micros) * Decimal(repr(float(multiplier)))
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def bankroll_float(micros: int) -> float:
    return micros / MICRO


# ── accounts: balances and the ledger, shared with escrow and faucet ─────────────────────────


class InsufficientBalance(Exception):
    """A debit larger than the balance; nothing was written."""


def hash_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def get_agent(conn: sqlite3.Connection | Any, agent_id: str) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM casino_agents WHERE id = ?", (agent_id,)).fetchone()


def agent_for_key(ctx: SandboxContext, api_key: str | None) -> sqlite3.Row | None:
    if not api_key:
        return None
    return ctx.store.one("SELECT * FROM casino_agents WHERE key_hash = ?", (hash_key(api_key),))


def post_entry(ctx: SandboxContext, conn: sqlite3.Connection, agent_id: str, kind: str, micros: int, reason: str,
               reference: str | None, service: str = SERVICE) -> int:
    """Move `micros` in (`credit`) or out (`debit`) of a casino balance and write the ledger row.
    Must run inside `ctx.store.tx()`. Returns the balance after."""
    row = conn.execute("SELECT balance FROM casino_agents WHERE id = ?", (agent_id,)).fetchone()
    if row is None:
        raise KeyError(agent_id)
    if kind == "debit":
        if row["balance"] < micros:
            raise InsufficientBalance(agent_id)
        after = row["balance"] - micros
    elif kind == "credit":
        after = row["balance"] + micros
    else:
        raise ValueError(kind)
    conn.execute("UPDATE casino_agents SET balance = ? WHERE id = ?", (after, agent_id))
    conn.execute(
        "INSERT INTO casino_ledger(agent_id, type, amount, balance_after, reason, reference, service, created_ms) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (agent_id, kind, micros, after, reason, reference, service, ctx.clock.now_ms()),
    )
    return after


def credit_deposit(ctx: SandboxContext, agent_id: str, micros: int, *, chain: str = "base") -> dict[str, Any]:
    """Simulate an on-chain deposit found by the poller and credited (sandbox admin only)."""
    ensure_schema(ctx)
    now = ctx.clock.now_ms()
    with ctx.store.tx() as conn:
        if get_agent(conn, agent_id) is None:
            raise ApiError(404, "agent_not_found", f"No casino agent {agent_id}")
        deposit_id = f"dep_{ctx.new_id('casino.deposit', 8)}"
        tx_hash = "0x" + ctx.derive_hex(f"deposit-tx:{deposit_id}", 32)
        token = CHAINS.get(chain, ("USDC",))[0].split(",")[0]
        conn.execute(
            "INSERT INTO casino_deposits(id, agent_id, chain, token, amount, tx_hash, status, created_ms, credited_ms) "
            "VALUES (?, ?, ?, ?, ?, ?, 'credited', ?, ?)",
            (deposit_id, agent_id, chain, token, micros, tx_hash, now, now),
        )
        after = post_entry(ctx, conn, agent_id, "credit", micros, "deposit", deposit_id)
        conn.execute("UPDATE casino_agents SET total_deposited = total_deposited + ? WHERE id = ?", (micros, agent_id))
    return {"deposit_id": deposit_id, "agent_id": agent_id, "amount": wire(micros), "chain": chain,
            "tx_hash": tx_hash, "status": "credited", "new_balance": wire(after)}


ONCHAIN_PAYOUTS: list[Callable[[SandboxContext, str, int], None]] = []
"""Where a completed withdrawal's USDC lands: the wallet sandbox registers its simulated Base
chain here when it starts (the casino does not import the wallet)."""


def pay_out_onchain(ctx: SandboxContext, address: str, micros: int) -> None:
    """A completed withdrawal's USDC lands at `address` on the simulated Base chain (the real
    casino sends it on-chain synchronously), so the wallet silo shows it."""
    for payout in ONCHAIN_PAYOUTS:
        payout(ctx, address, micros)


def balance_of(ctx: SandboxContext, agent_id: str) -> int | None:
    """An agent's casino balance in micro-USD (None if unknown): for tests and the harness."""
    value = ctx.store.scalar("SELECT balance FROM casino_agents WHERE id = ?", (agent_id,))
    return None if value is None else int(value)


# ── Kelly ────────────────────────────────────────────────────────────────────────────────────


def kelly(bankroll: float, p: float, payout: float, risk_factor: float) -> dict[str, Any]:
    """The casino's Kelly figures; for negative-EV games the cap is bankroll × risk_factor × p."""
    b = payout - 1
    q = 1 - p
    full = (b * p - q) / b if b > 0 else -math.inf
    fraction = risk_factor * p if full <= 0 else full * risk_factor
    max_bet = bankroll * fraction
    suggested = max_bet * 0.5
    try:
        growth = p * math.log(1 + fraction * b) + q * math.log(1 - fraction)
    except ValueError:
        growth = math.nan
    return {
        "max_bet": js_round(max_bet, 2),
        "kelly_fraction": js_round(full, 4) if math.isfinite(full) else None,
        "adjusted_fraction": js_round(fraction, 4),
        "edge": js_round(p * payout - 1, 4),
        "expected_value_per_bet": js_round(suggested * (p * payout - 1), 4),
        "bets_until_ruin": math.floor(bankroll / max_bet) if max_bet > 0 else math.inf,
        "suggested_bet": js_round(suggested, 2),
        "growth_rate": js_round(growth, 4) if math.isfinite(growth) else math.nan,
    }


def kelly_limits(bankroll: float, risk_factor: float) -> dict[str, Any]:
    """`GET /kelly/limits`: advertised with 1.96-style payouts, as the real endpoint does."""
    table = {
        "coin_flip": (0.5, 1.96), "dice_over_50": (0.5, 1.96), "dice_over_75": (0.25, 3.92),
        "dice_over_90": (0.1, 9.8), "dice_over_95": (0.05, 19.6), "custom_25pct": (0.25, 3.92),
        "custom_50pct": (0.5, 1.96), "custom_75pct": (0.75, 1.3067), "roulette_red": (18 / 37, 1.96),
        "roulette_number": (1 / 37, 35.28),
    }
    return {"bankroll": bankroll, "risk_factor": risk_factor,
            "limits": {name: kelly(bankroll, p, pay, risk_factor) for name, (p, pay) in table.items()}}


# ── provably fair rolls ──────────────────────────────────────────────────────────────────────


def result_hash(server_seed: str, client_seed: str, nonce: int) -> str:
    return hmac.new(server_seed.encode(), f"{client_seed}:{nonce}".encode(), hashlib.sha256).hexdigest()


def roll_from_hash(digest: str) -> float:
    """0.00–99.99 from the first 8 hex digits of the result hash."""
    return (int(digest[:8], 16) % 10000) / 100


def _active_seed(ctx: SandboxContext, conn: sqlite3.Connection, agent_id: str) -> sqlite3.Row:
    row = conn.execute("SELECT * FROM casino_seeds WHERE agent_id = ? AND active = 1", (agent_id,)).fetchone()
    if row is not None:
        return row
    generation = int(conn.execute("SELECT COALESCE(MAX(generation), -1) + 1 FROM casino_seeds WHERE agent_id = ?",
                                  (agent_id,)).fetchone()[0])
    seed = ctx.derive_hex(f"casino.server_seed:{agent_id}:{generation}", 32)
    conn.execute("INSERT INTO casino_seeds(agent_id, generation, seed, seed_hash, nonce, active) "
                 "VALUES (?, ?, ?, ?, 0, 1)",
                 (agent_id, generation, seed, hashlib.sha256(seed.encode()).hexdigest()))
    return conn.execute("SELECT * FROM casino_seeds WHERE agent_id = ? AND generation = ?",
                        (agent_id, generation)).fetchone()


def _rotate(ctx: SandboxContext, conn: sqlite3.Connection, agent_id: str) -> sqlite3.Row:
    """Reveal the active seed and start the next one; returns the revealed row."""
    old = _active_seed(ctx, conn, agent_id)
    conn.execute("UPDATE casino_seeds SET active = 0, revealed_ms = ? WHERE agent_id = ? AND generation = ?",
                 (ctx.clock.now_ms(), agent_id, old["generation"]))
    _active_seed(ctx, conn, agent_id)
    return conn.execute("SELECT * FROM casino_seeds WHERE agent_id = ? AND generation = ?",
                        (agent_id, old["generation"])).fetchone()


# ── games ────────────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class Game:
    """One bet's rules: win probability and gross payout (what Kelly sees) and how a roll settles."""

    name: str
    p: float
    payout: float
    settle: Callable[[float], tuple[bool, dict[str, Any]]]


def _number(params: dict[str, Any], field: str, default: Any, use_default: bool) -> Any:
    value = params.get(field)
    if value is None and use_default:
        return default
    return value


def coin_flip(params: dict[str, Any], defaults: bool = False) -> Game:
    side = _number(params, "side", "heads", defaults)
    if side not in ("heads", "tails"):
        raise ApiError(400, "invalid_side", "Side must be 'heads' or 'tails'")

    def settle(roll: float) -> tuple[bool, dict[str, Any]]:
        outcome = "heads" if roll < 50 else "tails"
        return outcome == side, {"side_chosen": side, "outcome": outcome, "roll": js_round(roll, 2)}

    return Game("coin_flip", 0.5, 1.99, settle)


def dice(params: dict[str, Any], defaults: bool = False) -> Game:
    direction = _number(params, "direction", "over", defaults)
    threshold = _number(params, "threshold", 50, defaults)
    if direction not in ("over", "under"):
        raise ApiError(400, "invalid_direction", "Direction must be 'over' or 'under'")
    if not is_js_number(threshold) or not 1 <= threshold <= 99:
        raise ApiError(400, "invalid_threshold", "Threshold must be between 1 and 99")
    p = (100 - threshold) / 100 if direction == "over" else threshold / 100
    payout = js_round((1 / p) * (1 - HOUSE_EDGE), 4)

    def settle(roll: float) -> tuple[bool, dict[str, Any]]:
        value = math.floor(roll) + 1
        won = value > threshold if direction == "over" else value < threshold
        return won, {"direction": direction, "threshold": threshold, "dice_value": value,
                     "win_probability": js_round(p, 4), "roll": js_round(roll, 2)}

    return Game("dice", p, payout, settle)


def multiplier(params: dict[str, Any], defaults: bool = False) -> Game:
    target = _number(params, "target_multiplier", 2, defaults)
    if not is_js_number(target) or not 1.01 <= target <= 1000:
        raise ApiError(400, "invalid_multiplier", "Target multiplier must be between 1.01x and 1000x")
    p = (1 - HOUSE_EDGE) / target

    def settle(roll: float) -> tuple[bool, dict[str, Any]]:
        crash = 10000 if roll >= 99.99 else js_round((1 - HOUSE_EDGE) / (1 - roll / 100), 2)
        return crash >= target, {"target_multiplier": target, "crash_point": crash, "win_probability": js_round(p, 4),
                                 "roll": js_round(roll, 2)}

    return Game("multiplier", p, float(target), settle)


def custom(params: dict[str, Any], defaults: bool = False) -> Game:
    pct = _number(params, "win_probability", 50, defaults)
    if not is_js_number(pct) or not 1 <= pct <= 99:
        raise ApiError(400, "invalid_probability", "Win probability must be between 1% and 99%")
    p = pct / 100
    payout = js_round((1 / p) * (1 - HOUSE_EDGE), 4)

    def settle(roll: float) -> tuple[bool, dict[str, Any]]:
        return roll < pct, {"win_probability_pct": pct, "payout_multiplier": payout, "roll": js_round(roll, 2),
                            "threshold": pct}

    return Game("custom", p, payout, settle)


GAMES_BY_PATH: dict[str, Callable[..., Game]] = {
    "coin-flip": coin_flip, "dice": dice, "multiplier": multiplier, "custom": custom,
}
GAMES_BY_BATCH_ID: dict[str, Callable[..., Game]] = {
    "coin_flip": coin_flip, "dice": dice, "multiplier": multiplier, "custom": custom,
}
HISTORY_GAMES = ("coin_flip", "dice", "multiplier", "roulette", "custom", "blackjack", "crash", "plinko", "slots")


def _check_amount(amount: Any) -> int:
    if not is_js_number(amount) or amount <= 0:
        raise ApiError(400, "invalid_amount", "Bet amount must be a positive finite number")
    if amount < 0.01:
        raise ApiError(400, "minimum_bet", "Minimum bet is $0.01")
    micros = amount_from_wire(amount)
    assert micros is not None
    return micros


def place_bet(ctx: SandboxContext, agent_id: str, game: Game, amount: Any, client_seed: Any) -> dict[str, Any]:
    """Validate, Kelly-check, debit, roll, pay out, record: one atomic bet."""
    micros = _check_amount(amount)
    with ctx.store.tx() as conn:
        agent = get_agent(conn, agent_id)
        assert agent is not None
        balance = agent["balance"]
        if balance < micros:
            raise ApiError(400, "insufficient_balance",
                           f"Balance ${balance / MICRO:.2f} is less than bet ${amount:.2f}", required=amount,
                           suggestion=f"Deposit at least ${(micros - balance) / MICRO:.2f} or reduce bet size")
        risk_factor = float(agent["risk_factor"])
        check = kelly(bankroll_float(balance), game.p, game.payout, risk_factor)
        if amount > check["max_bet"]:
            raise ApiError(400, "kelly_limit_exceeded",
                           f"Bet ${amount:.2f} exceeds Kelly limit of ${check['max_bet']:.2f}",
                           max_bet=check["max_bet"], kelly=check,
                           suggestion=f"Reduce bet to ${check['max_bet']:.2f} or lower. "
                                      "Kelly protects your bankroll from ruin.")
        now = ctx.clock.now_ms()
        raw = ctx.new_id("casino.bet", 16)
        bet_id = f"bet_{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:32]}"
        post_entry(ctx, conn, agent_id, "debit", micros, "reservation", bet_id)
        seed = _active_seed(ctx, conn, agent_id)
        nonce = int(seed["nonce"])
        conn.execute("UPDATE casino_seeds SET nonce = nonce + 1 WHERE agent_id = ? AND generation = ?",
                     (agent_id, seed["generation"]))
        if nonce + 1 >= SEED_ROTATION:
            _rotate(ctx, conn, agent_id)
        cs = str(client_seed) if client_seed not in (None, "") else f"auto_{now}"
        digest = result_hash(seed["seed"], cs, nonce)
        won, result = game.settle(roll_from_hash(digest))
        won_micros = times(micros, game.payout) if won else 0
        new_balance = balance - micros
        if won_micros:
            new_balance = post_entry(ctx, conn, agent_id, "credit", won_micros, "reservation_release", bet_id)
        conn.execute("UPDATE casino_agents SET total_wagered = total_wagered + ?, total_won = total_won + ? "
                     "WHERE id = ?", (micros, won_micros, agent_id))
        conn.execute(
            "INSERT INTO casino_bets(id, agent_id, game, amount, payout_multiplier, won, amount_won, result, "
            "seed_generation, server_seed_hash, client_seed, nonce, result_hash, created_ms) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (bet_id, agent_id, game.name, micros, game.payout, int(won), won_micros, json.dumps(result),
             seed["generation"], seed["seed_hash"], cs, nonce, digest, now),
        )
        if not won:
            _pay_referrers(ctx, conn, agent_id, micros, bet_id)
        after = kelly(bankroll_float(new_balance), game.p, game.payout, risk_factor)
    return {
        "bet_id": bet_id,
        "game": game.name,
        "amount_bet": amount,
        "result": result,
        "won": won,
        "payout_multiplier": game.payout,
        "amount_won": wire_cents(won_micros),
        "new_balance": wire_cents(new_balance),
        "proof": {"server_seed_hash": seed["seed_hash"], "client_seed": cs, "nonce": nonce, "result_hash": digest},
        "kelly": {"bankroll": wire_cents(new_balance), "risk_factor": risk_factor,
                  "max_bet_this_game": after["max_bet"], "bets_until_ruin": after["bets_until_ruin"],
                  "suggested_bet": after["suggested_bet"]},
    }


def _pay_referrers(ctx: SandboxContext, conn: sqlite3.Connection, agent_id: str, stake: int, bet_id: str) -> None:
    """10 % / 5 % / 2.5 % of a losing stake, rounded to cents, up the referral chain."""
    referred = agent_id
    referrer = get_agent(conn, agent_id)["referred_by"]
    for level, share in enumerate(REFERRAL_LEVELS, start=1):
        if not referrer:
            break
        commission = round(js_round(stake / MICRO * 0.10 * share, 2) * 100) * CENT
        if commission >= CENT:
            post_entry(ctx, conn, referrer, "credit", commission, f"referral_commission_l{level}:{bet_id}", bet_id)
            conn.execute("UPDATE casino_referrals SET total_earned = total_earned + ? "
                         "WHERE referrer_id = ? AND referred_id = ?", (commission, referrer, referred))
        next_row = get_agent(conn, referrer)
        referred, referrer = referrer, (next_row["referred_by"] if next_row else None)


# ── rows as the real list endpoints show them (camelCase) ────────────────────────────────────


def _ledger_row(r: sqlite3.Row) -> dict[str, Any]:
    return {"id": r["id"], "agentId": r["agent_id"], "type": r["type"], "amount": wire(r["amount"]),
            "balanceAfter": wire(r["balance_after"]), "reason": r["reason"], "reference": r["reference"],
            "service": r["service"], "createdAt": r["created_ms"] // 1000, "at": iso(r["created_ms"])}


def _deposit_row(r: sqlite3.Row) -> dict[str, Any]:
    return {"id": r["id"], "agentId": r["agent_id"], "chain": r["chain"], "token": r["token"],
            "amount": wire(r["amount"]), "amountUsd": wire(r["amount"]), "txHash": r["tx_hash"],
            "status": r["status"], "createdAt": r["created_ms"] // 1000,
            "creditedAt": r["credited_ms"] // 1000 if r["credited_ms"] else None}


def _withdrawal_row(r: sqlite3.Row) -> dict[str, Any]:
    return {"id": r["id"], "agentId": r["agent_id"], "amount": wire(r["amount"]), "fee": wire(r["fee"]),
            "chain": r["chain"], "token": r["token"], "address": r["address"], "status": r["status"],
            "txHash": r["tx_hash"], "createdAt": r["created_ms"] // 1000,
            "completedAt": r["completed_ms"] // 1000 if r["completed_ms"] else None}


# ── the HTTP service ─────────────────────────────────────────────────────────────────────────


class Casino:
    """Route handlers; one instance per running sandbox."""

    def __init__(self, ctx: SandboxContext) -> None:
        self.ctx = ctx
        self.store = ctx.store

    def ok(self, data: dict[str, Any], status: int = 200) -> JSONResponse:
        return reply(data, status, service=SERVICE)

    def agent(self, request: Request) -> sqlite3.Row:
        """The caller, from `Authorization: Bearer sk_live_…`, or 401. Also lets due escrow
        timeouts land first, so balances read here include them."""
        agent = agent_for_key(self.ctx, bearer(request))
        if agent is None:
            raise ApiError(401, "unauthorized", "Valid API key required (Authorization: Bearer sk_live_...)")
        if "escrow" in self.ctx.urls:
            from sandbox.escrow import run_timeouts

            if run_timeouts(self.ctx):
                agent = get_agent(self.store, agent["id"])
        return agent

    # auth & account ---------------------------------------------------------------------------

    async def register(self, request: Request) -> Response:
        body = await read_json(request, strict=False)
        code = body.get("referral_code")
        ctx = self.ctx
        agent_id = f"ag_{ctx.new_id('casino.agent', 6)}"
        api_key = f"sk_live_{ctx.new_id('casino.key', 24)}"
        referral_code = f"ref_{ctx.new_id('casino.referral_code', 4)}"
        now = ctx.clock.now_ms()
        with self.store.tx() as conn:
            referrer = None
            if isinstance(code, str) and code:
                row = conn.execute("SELECT id FROM casino_agents WHERE referral_code = ?", (code,)).fetchone()
                referrer = row["id"] if row else None
            index = int(conn.execute("SELECT COALESCE(MAX(deposit_index), -1) + 1 FROM casino_agents").fetchone()[0])
            conn.execute(
                "INSERT INTO casino_agents(id, key_hash, referral_code, referred_by, risk_factor, deposit_index, "
                "created_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (agent_id, hash_key(api_key), referral_code, referrer, DEFAULT_RISK_FACTOR, index, now),
            )
            if referrer:
                conn.execute("INSERT INTO casino_referrals(referrer_id, referred_id, created_ms) VALUES (?, ?, ?)",
                             (referrer, agent_id, now))
        if "faucet" in ctx.urls:
            from sandbox.faucet import claim

            try:  # fire and forget, as the real registration does
                claim(ctx, agent_id, None, ip="casino")
            except ApiError:
                pass
        return self.ok({
            "agent_id": agent_id, "api_key": api_key, "referral_code": referral_code, "balance": 0.0,
            "tier": "free", "risk_factor": DEFAULT_RISK_FACTOR,
            "referral_commission": "10% of net losses from referred agents",
            "message": "Store your API key securely — it cannot be recovered.",
        }, 201)

    async def balance(self, request: Request) -> Response:
        agent = self.agent(request)
        recent = self.store.all("SELECT * FROM casino_ledger WHERE agent_id = ? ORDER BY id DESC LIMIT 10",
                                (agent["id"],))
        return self.ok({
            "agent_id": agent["id"], "balance_usd": wire(agent["balance"]), "tier": agent["tier"],
            "risk_factor": agent["risk_factor"],
            "lifetime": {
                "total_deposited": wire(agent["total_deposited"]), "total_withdrawn": wire(agent["total_withdrawn"]),
                "total_wagered": wire(agent["total_wagered"]), "total_won": wire(agent["total_won"]),
                "net_profit": wire(agent["total_won"] - agent["total_wagered"]),
            },
            "recent_activity": [{"type": r["type"], "amount": wire(r["amount"]),
                                 "balance_after": wire(r["balance_after"]), "reason": r["reason"],
                                 "service": r["service"], "at": iso(r["created_ms"])} for r in recent],
        })

    async def ledger(self, request: Request) -> Response:
        agent = self.agent(request)
        rows = self.store.all("SELECT * FROM casino_ledger WHERE agent_id = ? ORDER BY id DESC LIMIT 50",
                              (agent["id"],))
        return self.ok({"entries": [_ledger_row(r) for r in rows]})

    async def deposit_address(self, request: Request) -> Response:
        agent = self.agent(request)
        body = await read_json(request, strict=False)
        chain = body.get("chain") or "base"
        if chain not in CHAINS:
            raise ApiError(400, "unsupported_chain", supported=list(CHAINS),
                           suggestion="Use 'base' for lowest fees (USDC on Base)")
        send_token, auto_swap, swap_fee, minimum = CHAINS[chain]
        info = {"chain": chain, "send_token": send_token, "auto_swap": auto_swap, "swap_fee": swap_fee,
                "minimum": minimum, "withdrawals": "USDC on Base only — all deposits converted to USD balance"}
        with self.store.tx() as conn:
            row = conn.execute("SELECT address FROM casino_deposit_addresses WHERE agent_id = ? AND chain = ?",
                               (agent["id"], chain)).fetchone()
            if row:
                return self.ok({**info, "address": row["address"]})
            address = self._address(agent["id"], chain)
            conn.execute("INSERT INTO casino_deposit_addresses(agent_id, chain, address, created_ms) "
                         "VALUES (?, ?, ?, ?)", (agent["id"], chain, address, self.ctx.clock.now_ms()))
        return self.ok({**info, "address": address}, 201)

    def _address(self, agent_id: str, chain: str) -> str:
        derive = self.ctx.derive_hex
        if chain in EVM_CHAINS:
            return "0x" + derive(f"casino.deposit:{agent_id}:evm", 20)
        if chain == "bitcoin":
            return "bc1q" + derive(f"casino.deposit:{agent_id}:btc", 19)
        if chain == "solana":
            return derive(f"casino.deposit:{agent_id}:sol", 22)
        if chain == "tron":
            return "T" + derive(f"casino.deposit:{agent_id}:trx", 17)
        return "4" + derive(f"casino.deposit:{agent_id}:xmr", 47)

    async def deposits(self, request: Request) -> Response:
        agent = self.agent(request)
        rows = self.store.all("SELECT * FROM casino_deposits WHERE agent_id = ? ORDER BY created_ms DESC, id "
                              "LIMIT 50", (agent["id"],))
        return self.ok({"deposits": [_deposit_row(r) for r in rows]})

    async def withdrawals(self, request: Request) -> Response:
        agent = self.agent(request)
        rows = self.store.all("SELECT * FROM casino_withdrawals WHERE agent_id = ? ORDER BY created_ms DESC, id "
                              "LIMIT 50", (agent["id"],))
        return self.ok({"withdrawals": [_withdrawal_row(r) for r in rows]})

    async def withdraw(self, request: Request) -> Response:
        agent = self.agent(request)
        body = await read_json(request, strict=True)
        amount, address = body.get("amount"), body.get("address")
        if not is_js_number(amount) or amount <= 0:
            raise ApiError(400, "invalid_amount", suggestion="Amount must be a positive finite number")
        micros = amount_from_wire(amount)
        assert micros is not None
        if micros < WITHDRAW_MIN:
            raise ApiError(400, "minimum_withdrawal", minimum=1.0, suggestion="Minimum withdrawal is $1.00")
        if micros > WITHDRAW_MAX:
            raise ApiError(400, "maximum_withdrawal", maximum=100000,
                           suggestion="Maximum single withdrawal is $100,000.")
        if not isinstance(address, str) or not ADDRESS_RE.match(address):
            raise ApiError(400, "invalid_address",
                           suggestion="Provide a valid Base/Ethereum address (0x followed by 40 hex characters)")
        total = micros + WITHDRAW_FEE
        raw = self.ctx.new_id("casino.withdrawal", 16)
        withdrawal_id = f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:32]}"
        now = self.ctx.clock.now_ms()
        common = {"withdrawal_id": withdrawal_id, "amount": amount, "fee": wire(WITHDRAW_FEE), "chain": "base",
                  "address": address}
        with self.store.tx() as conn:
            try:
                after = post_entry(self.ctx, conn, agent["id"], "debit", total, "withdrawal", withdrawal_id)
            except InsufficientBalance:
                available = get_agent(conn, agent["id"])["balance"]
                raise ApiError(400, "insufficient_balance", requested=amount, fee=wire(WITHDRAW_FEE),
                               total_needed=wire(total), available=wire(available)) from None
            if micros > WITHDRAW_REVIEW_ABOVE:
                conn.execute("INSERT INTO casino_withdrawals(id, agent_id, amount, fee, chain, token, address, status, "
                             "created_ms) VALUES (?, ?, ?, ?, 'base', 'USDC', ?, 'reviewing', ?)",
                             (withdrawal_id, agent["id"], micros, WITHDRAW_FEE, address, now))
                return self.ok({"status": "pending_review", **common,
                                "note": "Withdrawals over $1,000 are reviewed within 1 hour"})
            tx_hash = "0x" + self.ctx.derive_hex(f"withdrawal-tx:{withdrawal_id}", 32)
            conn.execute("UPDATE casino_agents SET total_withdrawn = total_withdrawn + ? WHERE id = ?",
                         (micros, agent["id"]))
            conn.execute("INSERT INTO casino_withdrawals(id, agent_id, amount, fee, chain, token, address, status, "
                         "tx_hash, created_ms, completed_ms) "
                         "VALUES (?, ?, ?, ?, 'base', 'USDC', ?, 'completed', ?, ?, ?)",
                         (withdrawal_id, agent["id"], micros, WITHDRAW_FEE, address, tx_hash, now, now))
        pay_out_onchain(self.ctx, address, micros)
        return self.ok({"status": "completed", **common, "token": "USDC", "tx_hash": tx_hash,
                        "explorer": f"https://basescan.org/tx/{tx_hash}", "new_balance": wire(after)})

    async def pay(self, request: Request) -> Response:
        agent = self.agent(request)
        body = await read_json(request, strict=True)
        to, amount, memo = body.get("to_agent_id"), body.get("amount"), body.get("memo")
        if not isinstance(to, str) or not to or not is_js_number(amount):
            raise ApiError(400, "invalid_request", "to_agent_id and a numeric amount are required")
        if amount < 0.01:
            raise ApiError(400, "invalid_amount", "Minimum payment is $0.01")
        if to == agent["id"]:
            raise ApiError(400, "same_agent", "Cannot pay yourself")
        micros = amount_from_wire(amount)
        assert micros is not None
        tx_id = f"pay_{self.ctx.new_id('casino.pay', 8)}"
        with self.store.tx() as conn:
            if get_agent(conn, to) is None:
                raise ApiError(404, "recipient_not_found", f"No agent {to}")
            try:
                after = post_entry(self.ctx, conn, agent["id"], "debit", micros, f"pay_to:{to}", tx_id)
            except InsufficientBalance:
                raise ApiError(400, "insufficient_balance", balance=wire(agent["balance"]), required=amount) from None
            post_entry(self.ctx, conn, to, "credit", micros, f"pay_from:{agent['id']}", tx_id)
        return self.ok({"tx_id": tx_id, "from": agent["id"], "to": to, "amount": amount,
                        "memo": memo if isinstance(memo, str) else None, "sender_new_balance": wire(after)})

    async def referral_code(self, request: Request) -> Response:
        agent = self.agent(request)
        return self.ok({"referral_code": agent["referral_code"],
                        "commission": "10% / 5% / 2.5% of referred agents' losing stakes (3 levels)"})

    async def referral_stats(self, request: Request) -> Response:
        agent = self.agent(request)
        me = agent["id"]
        since = self.ctx.clock.now_ms() - 30 * 86_400_000
        levels: dict[str, dict[str, Any]] = {}
        direct = [r["referred_id"] for r in self.store.all("SELECT referred_id FROM casino_referrals "
                                                           "WHERE referrer_id = ?", (me,))]
        tier = direct
        for level in (1, 2, 3):
            earned = self.store.scalar("SELECT SUM(amount) FROM casino_ledger WHERE agent_id = ? AND reason LIKE ?",
                                       (me, f"referral_commission_l{level}:%"), 0)
            levels[f"level_{level}"] = {"referrals": len(tier), "earned_usd": wire(int(earned))}
            if tier:
                marks = ",".join("?" * len(tier))
                tier = [r["referred_id"] for r in self.store.all(
                    f"SELECT referred_id FROM casino_referrals WHERE referrer_id IN ({marks})", tier)]
        total = self.store.scalar("SELECT SUM(amount) FROM casino_ledger WHERE agent_id = ? "
                                  "AND reason LIKE 'referral_commission_l%'", (me,), 0)
        recent = self.store.scalar("SELECT SUM(amount) FROM casino_ledger WHERE agent_id = ? "
                                   "AND reason LIKE 'referral_commission_l%' AND created_ms >= ?", (me, since), 0)
        return self.ok({"referral_code": agent["referral_code"], "total_referrals": len(direct),
                        "total_earned_usd": wire(int(total)), "last_30_days_usd": wire(int(recent)),
                        "by_level": levels})

    # games ------------------------------------------------------------------------------------

    async def play(self, request: Request) -> Response:
        builder = GAMES_BY_PATH.get(request.path_params["game"])
        if builder is None:
            raise ApiError(404, "not_found", f"Game {request.path_params['game']} is not offered by the sandbox")
        agent = self.agent(request)
        body = await read_json(request, strict=True)
        game = builder(body)
        return self.ok(place_bet(self.ctx, agent["id"], game, body.get("amount"), body.get("client_seed")))

    async def batch(self, request: Request) -> Response:
        agent = self.agent(request)
        body = await read_json(request, strict=True)
        bets = body.get("bets")
        if not isinstance(bets, list) or not bets:
            raise ApiError(400, "invalid_bets", "Provide an array of bets")
        if len(bets) > 20:
            raise ApiError(400, "too_many_bets", "Maximum 20 bets per batch call")
        results: list[dict[str, Any]] = []
        for item in bets:
            item = item if isinstance(item, dict) else {}
            try:
                builder = GAMES_BY_BATCH_ID.get(item.get("game"))  # type: ignore[arg-type]
                if builder is None:
                    raise ApiError(400, "invalid_game", f"Unknown game: {item.get('game')}")
                game = builder(item, defaults=True)
                results.append(place_bet(self.ctx, agent["id"], game, item.get("amount"), item.get("client_seed")))
            except ApiError as exc:
                results.append(exc.body())
        played = [r for r in results if "error" not in r]
        won = sum(1 for r in played if r["won"])
        total_won = sum(r["amount_won"] for r in played)
        # The real summary sums a field the results do not have, so total_wagered is always 0.
        total_wagered = sum(r.get("amount", 0) for r in played)
        balance = balance_of(self.ctx, agent["id"]) or 0
        risk_factor = float(agent["risk_factor"])
        return self.ok({
            "results": results,
            "summary": {"total": len(bets), "won": won, "lost": len(played) - won, "errors": len(results) - len(played),
                        "total_wagered": js_round(total_wagered, 2), "total_won": js_round(total_won, 2),
                        "net_pnl": js_round(total_won - total_wagered, 2),
                        "win_rate_pct": js_round(won / len(played) * 100, 2) if played else 0},
            "balance_after": wire_cents(balance),
            "kelly_max_next_bet": js_round(bankroll_float(balance) * risk_factor, 2),
        })

    def _history_rows(self, request: Request, agent_id: str, max_limit: int) -> list[sqlite3.Row]:
        query = request.query_params
        clauses, params = ["agent_id = ?"], [agent_id]
        game = query.get("game")
        if game:
            if game not in HISTORY_GAMES:
                raise ApiError(400, "invalid_game", f"game must be one of: {', '.join(HISTORY_GAMES)}")
            clauses.append("game = ?")
            params.append(game)
        if query.get("outcome") in ("won", "lost"):
            clauses.append("won = ?")
            params.append(1 if query["outcome"] == "won" else 0)
        try:
            limit = min(int(query.get("limit", "50")), max_limit)
        except ValueError:
            limit = 50
        try:
            offset = max(int(query.get("offset", "0")), 0)
        except ValueError:
            offset = 0
        sql = (f"SELECT * FROM casino_bets WHERE {' AND '.join(clauses)} "
               "ORDER BY created_ms DESC, seq DESC LIMIT ? OFFSET ?")
        return self.store.all(sql, [*params, limit, offset])

    async def history(self, request: Request) -> Response:
        agent = self.agent(request)
        rows = self._history_rows(request, agent["id"], 200)
        total = self.store.scalar("SELECT COUNT(*) FROM casino_bets WHERE agent_id = ?", (agent["id"],), 0)
        bets = [{
            "id": r["id"], "game": r["game"], "amount": wire_cents(r["amount"]),
            "amount_won": wire_cents(r["amount_won"]),
            "multiplier": r["payout_multiplier"], "won": bool(r["won"]),
            "net": wire_cents(r["amount_won"] - r["amount"]) if r["amount_won"] >= r["amount"]
            else -wire_cents(r["amount"] - r["amount_won"]),
            "verify": f"GET /api/v1/fairness/verify?hash={r['result_hash']}", "at": iso(r["created_ms"]),
            "client_seed": r["client_seed"],
        } for r in rows]
        return self.ok({"bets": bets, "pagination": {"total": total, "limit": len(bets), "offset": 0,
                                                      "has_more": len(bets) < total}})

    async def export_csv(self, request: Request) -> Response:
        agent = self.agent(request)
        rows = self._history_rows(request, agent["id"], 10_000)
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(["bet_id", "game", "amount_usd", "amount_won_usd", "net_usd", "payout_multiplier", "won",
                         "server_seed_hash", "client_seed", "nonce", "result_hash", "timestamp_utc"])
        for r in rows:
            writer.writerow([r["id"], r["game"], f"{wire_cents(r['amount']):.2f}", f"{wire_cents(r['amount_won']):.2f}",
                             f"{(r['amount_won'] - r['amount']) / MICRO:.2f}",
                             repr(js_round(r["payout_multiplier"], 4)),
                             "true" if r["won"] else "false", r["server_seed_hash"], r["client_seed"], r["nonce"],
                             r["result_hash"], iso(r["created_ms"])])
        return Response(out.getvalue(), media_type="text/csv; charset=utf-8")

    # Kelly & fairness -------------------------------------------------------------------------

    async def limits(self, request: Request) -> Response:
        agent = self.agent(request)
        return self.ok(kelly_limits(bankroll_float(agent["balance"]), float(agent["risk_factor"])))

    async def kelly_config(self, request: Request) -> Response:
        agent = self.agent(request)
        body = await read_json(request, strict=True)
        rf = body.get("risk_factor")
        if not is_js_number(rf) or not 0.1 <= rf <= 1.0:
            raise ApiError(400, "invalid_risk_factor", "risk_factor must be between 0.1 and 1.0")
        self.store.execute("UPDATE casino_agents SET risk_factor = ? WHERE id = ?", (float(rf), agent["id"]))
        limits = kelly_limits(bankroll_float(agent["balance"]), float(rf))
        return self.ok({"risk_factor": float(rf), "new_limits": limits})

    async def seed_hash(self, request: Request) -> Response:
        agent = self.agent(request)
        with self.store.tx() as conn:
            seed = _active_seed(self.ctx, conn, agent["id"])
        return self.ok({"server_seed_hash": seed["seed_hash"], "current_nonce": seed["nonce"],
                        "bets_until_rotation": SEED_ROTATION - seed["nonce"]})

    async def verify(self, request: Request) -> Response:
        agent = self.agent(request)
        body = await read_json(request, strict=True)
        bet = self.store.one("SELECT * FROM casino_bets WHERE id = ? AND agent_id = ?",
                             (body.get("bet_id"), agent["id"]))
        if bet is None:
            raise ApiError(404, "bet_not_found", "No such bet for this agent")
        seed = self.store.one("SELECT * FROM casino_seeds WHERE agent_id = ? AND generation = ?",
                              (agent["id"], bet["seed_generation"]))
        revealed = seed["revealed_ms"] is not None
        data: dict[str, Any] = {"bet_id": bet["id"], "server_seed_hash": bet["server_seed_hash"],
                                "client_seed": bet["client_seed"], "nonce": bet["nonce"],
                                "result_hash": bet["result_hash"], "roll": roll_from_hash(bet["result_hash"]),
                                "server_seed": seed["seed"] if revealed else None, "revealed": revealed}
        if revealed:
            data["valid"] = (hashlib.sha256(seed["seed"].encode()).hexdigest() == bet["server_seed_hash"]
                             and result_hash(seed["seed"], bet["client_seed"], bet["nonce"]) == bet["result_hash"])
        else:
            data["message"] = "Server seed not revealed yet: POST /api/v1/fairness/rotate to reveal it"
        return self.ok(data)

    async def rotate(self, request: Request) -> Response:
        agent = self.agent(request)
        with self.store.tx() as conn:
            old = _rotate(self.ctx, conn, agent["id"])
            new = _active_seed(self.ctx, conn, agent["id"])
        return self.ok({"previous_seed": old["seed"], "previous_seed_hash": old["seed_hash"],
                        "bets_with_previous_seed": old["nonce"], "new_seed_hash": new["seed_hash"]})


def create_app(ctx: SandboxContext) -> Starlette:
    ensure_schema(ctx)
    c = Casino(ctx)
    p = PREFIX
    routes = [
        Route(f"{p}/auth/register", c.register, methods=["POST"]),
        Route(f"{p}/auth/balance", c.balance, methods=["GET"]),
        Route(f"{p}/auth/ledger", c.ledger, methods=["GET"]),
        Route(f"{p}/auth/deposit-address", c.deposit_address, methods=["POST"]),
        Route(f"{p}/auth/deposits", c.deposits, methods=["GET"]),
        Route(f"{p}/auth/withdrawals", c.withdrawals, methods=["GET"]),
        Route(f"{p}/auth/withdraw", c.withdraw, methods=["POST"]),
        Route(f"{p}/auth/referral/code", c.referral_code, methods=["GET"]),
        Route(f"{p}/auth/referral/stats", c.referral_stats, methods=["GET"]),
        Route(f"{p}/stats/pay", c.pay, methods=["POST"]),
        Route(p + "/games/{game:str}", c.play, methods=["POST"]),
        Route(f"{p}/bets/batch", c.batch, methods=["POST"]),
        Route(f"{p}/bets/history", c.history, methods=["GET"]),
        Route(f"{p}/bets/export.csv", c.export_csv, methods=["GET"]),
        Route(f"{p}/kelly/limits", c.limits, methods=["GET"]),
        Route(f"{p}/kelly/config", c.kelly_config, methods=["PUT"]),
        Route(f"{p}/fairness/seed-hash", c.seed_hash, methods=["GET"]),
        Route(f"{p}/fairness/verify", c.verify, methods=["POST"]),
        Route(f"{p}/fairness/rotate", c.rotate, methods=["POST"]),
    ]
    return make_service_app(SERVICE, routes)
