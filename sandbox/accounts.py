"""The casino ACCOUNTS: agents, balances and the ledger, in the casino's tables.

The real escrow and faucet write straight into the casino's database; here they (and the
`/_sandbox` deposit credit) use these functions, so no service module imports another to move
money. Ledger ids are UUID strings and rows carry whole-second `createdAt`, as the real ledger.
"""

from __future__ import annotations

import hashlib
import math
import sqlite3
from collections.abc import Callable
from typing import Any

from sandbox.context import SandboxContext
from sandbox.http import ApiError, wire

SERVICE = "casino"

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
    created_ms INTEGER NOT NULL,
    uid TEXT NOT NULL DEFAULT ''
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


def is_js_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


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
               reference: str | None, service: str = SERVICE, *, uid: str | None = None) -> int:
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
        "INSERT INTO casino_ledger(agent_id, type, amount, balance_after, reason, reference, service, created_ms, uid) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (agent_id, kind, micros, after, reason, reference, service, ctx.clock.now_ms(),
         uid or new_uuid(ctx, "casino.ledger")),
    )
    return after


def new_uuid(ctx: SandboxContext, kind: str) -> str:
    """A fresh UUID-shaped id (the real casino's ledger, deposit and withdrawal ids)."""
    raw = ctx.new_id(kind, 16)
    return f"{raw[:8]}-{raw[8:12]}-4{raw[13:16]}-{raw[16:20]}-{raw[20:32]}"


LEDGER_ORDER = "ORDER BY created_ms / 1000 DESC, id ASC"
"""The real ledger's order: newest second first, and within one second oldest first (its rows
carry whole-second times and SQLite keeps insertion order among equal keys)."""


def credit_deposit(ctx: SandboxContext, agent_id: str, micros: int, *, chain: str = "base") -> dict[str, Any]:
    """Simulate an on-chain deposit found by the poller and credited (sandbox admin only)."""
    ensure_schema(ctx)
    now = ctx.clock.now_ms()
    with ctx.store.tx() as conn:
        if get_agent(conn, agent_id) is None:
            raise ApiError(404, "agent_not_found", f"No casino agent {agent_id}")
        deposit_id = new_uuid(ctx, "casino.deposit")
        tx_hash = "0x" + ctx.derive_hex(f"deposit-tx:{deposit_id}", 32)
        token = CHAINS.get(chain, ("USDC",))[0].split(",")[0]
        conn.execute(
            "INSERT INTO casino_deposits(id, agent_id, chain, token, amount, tx_hash, status, created_ms, credited_ms) "
            "VALUES (?, ?, ?, ?, ?, ?, 'credited', ?, ?)",
            (deposit_id, agent_id, chain, token, micros, tx_hash, now, now),
        )
        after = post_entry(ctx, conn, agent_id, "credit", micros, f"deposit:{chain}:{token}", deposit_id, "deposit")
        conn.execute("UPDATE casino_agents SET total_deposited = total_deposited + ? WHERE id = ?", (micros, agent_id))
    return {"deposit_id": deposit_id, "agent_id": agent_id, "amount": wire(micros), "chain": chain,
            "tx_hash": tx_hash, "status": "credited", "new_balance": wire(after)}


def balance_of(ctx: SandboxContext, agent_id: str) -> int | None:
    """An agent's casino balance in micro-USD (None if unknown): for tests and the harness."""
    value = ctx.store.scalar("SELECT balance FROM casino_agents WHERE id = ?", (agent_id,))
    return None if value is None else int(value)


ONCHAIN_PAYOUTS: list[Callable[[SandboxContext, str, int], None]] = []
"""Where a completed casino withdrawal's USDC lands: the wallet sandbox registers its simulated
Base chain here when it starts (the casino does not import the wallet, nor the wallet the casino)."""


def pay_out_onchain(ctx: SandboxContext, address: str, micros: int) -> None:
    """A completed withdrawal's USDC lands at `address` on the simulated Base chain (the real
    casino sends it on-chain synchronously), so the wallet silo shows it."""
    for payout in ONCHAIN_PAYOUTS:
        payout(ctx, address, micros)
