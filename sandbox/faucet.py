"""Sandbox faucet: `POST /faucet/claim` credits $1 to a casino balance, once per agent.

As in the real service there is no auth, a bad body reads as `{}`, and the casino's own
registration already claims for every new agent, so a manual claim usually answers 409
`already_claimed`. Not imitated: the 1-claim-per-IP-per-24 h limit (every sandbox caller shares
127.0.0.1).
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from messages.money import MICRO
from sandbox import accounts
from sandbox.clock import iso
from sandbox.context import SandboxContext
from sandbox.http import ApiError, make_service_app, read_json, reply, wire

SERVICE = "faucet"
CLAIM_AMOUNT = 1 * MICRO

SCHEMA = """
CREATE TABLE IF NOT EXISTS faucet_claims (
    id TEXT PRIMARY KEY,
    agent_id TEXT NOT NULL UNIQUE,
    amount INTEGER NOT NULL,
    referral_code TEXT,
    referrer_id TEXT,
    ip TEXT,
    created_ms INTEGER NOT NULL
);
"""


def ensure_schema(ctx: SandboxContext) -> None:
    accounts.ensure_schema(ctx)
    ctx.store.ensure_schema(SERVICE, SCHEMA)


def claim(ctx: SandboxContext, agent_id: Any, referral_code: Any, *, ip: str) -> dict[str, Any]:
    """Credit the one-time $1; raises `ApiError` with the real service's codes."""
    ensure_schema(ctx)
    if not isinstance(agent_id, str) or not agent_id.startswith("ag_"):
        raise ApiError(400, "invalid_request", "agent_casino_id (ag_...) is required")
    now = ctx.clock.now_ms()
    with ctx.store.tx() as conn:
        if accounts.get_agent(conn, agent_id) is None:
            raise ApiError(404, "agent_not_found", "No casino agent with that id. Register at casino.purpleflea.com")
        if conn.execute("SELECT 1 FROM faucet_claims WHERE agent_id = ?", (agent_id,)).fetchone():
            raise ApiError(409, "already_claimed", "This agent has already claimed the faucet")
        if conn.execute("SELECT 1 FROM casino_deposits WHERE agent_id = ? AND status = 'credited'",
                        (agent_id,)).fetchone():
            raise ApiError(403, "has_deposits", "The faucet is for agents that have not deposited yet")
        referrer = None
        if isinstance(referral_code, str) and referral_code:
            row = conn.execute("SELECT id FROM casino_agents WHERE referral_code = ?", (referral_code,)).fetchone()
            referrer = row["id"] if row and row["id"] != agent_id else None
        claim_id = f"fc_{ctx.new_id('faucet.claim', 8)}"
        conn.execute("INSERT INTO faucet_claims(id, agent_id, amount, referral_code, referrer_id, ip, created_ms) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?)",
                     (claim_id, agent_id, CLAIM_AMOUNT, referral_code if isinstance(referral_code, str) else None,
                      referrer, ip, now))
        after = accounts.post_entry(ctx, conn, agent_id, "credit", CLAIM_AMOUNT, "faucet_claim", claim_id, SERVICE)
    return {"credited": wire(CLAIM_AMOUNT), "claim_id": claim_id, "agent_id": agent_id,
            "referral_tracked": referrer is not None, "new_balance": wire(after), "claimed_at": iso(now),
            "message": "$1.00 credited to your casino balance"}


def create_app(ctx: SandboxContext) -> Starlette:
    ensure_schema(ctx)

    async def post_claim(request: Request) -> Response:
        body = await read_json(request, strict=False)
        ip = request.client.host if request.client else "unknown"
        return reply(claim(ctx, body.get("agent_casino_id"), body.get("referral_code"), ip=ip), service=SERVICE)

    async def stats(request: Request) -> Response:
        row = ctx.store.one("SELECT COUNT(*) AS n, COALESCE(SUM(amount), 0) AS total, "
                            "SUM(CASE WHEN referrer_id IS NOT NULL THEN 1 ELSE 0 END) AS referred FROM faucet_claims")
        return reply({"total_claims": row["n"], "total_distributed_usd": wire(row["total"]),
                      "referred_claims": row["referred"] or 0, "claim_amount_usd": wire(CLAIM_AMOUNT)},
                     service=SERVICE)

    return make_service_app(SERVICE, [
        Route("/faucet/claim", post_claim, methods=["POST"]),
        Route("/faucet/stats", stats, methods=["GET"]),
    ])
