"""Sandbox faucet: `POST /faucet/claim` credits $1 to a casino balance, once per agent.

As in the real service there is no auth, a bad body reads as `{}`, a caller is known by its
X-Forwarded-For (else "unknown"), and there are 5 claims per IP per minute and one successful
claim per IP per 24 h. The casino's own registration claims from "unknown", so only the first
agent registered in a day gets the $1 that way.
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from messages.money import MICRO
from sandbox import accounts
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


RATE_LIMIT = 5
"""Claims per IP per minute (the real service's in-memory limiter, 429 `rate_limited`)."""
RATE_WINDOW_MS = 60_000
IP_COOLDOWN_MS = 24 * 3_600_000
"""One successful claim per IP per 24 h (429 `ip_rate_limited`)."""


def _rate_limited(ctx: SandboxContext, ip: str) -> bool:
    """Count this request in the IP's one-minute window (in memory, as the real limiter)."""
    now = ctx.clock.now_ms()
    hits = ctx.memory.setdefault(f"faucet.rate:{ip}", [])
    hits[:] = [t for t in hits if t > now - RATE_WINDOW_MS]
    hits.append(now)
    return len(hits) > RATE_LIMIT


def claim(ctx: SandboxContext, agent_id: Any, referral_code: Any, *, ip: str) -> dict[str, Any]:
    """Credit the one-time $1; raises `ApiError` with the real service's codes, in its order:
    the per-IP rate limit, the id format, one successful claim per IP per 24 h, the agent, one
    claim per agent, no deposits yet. `ip` is the caller's X-Forwarded-For, else "unknown" (the
    casino's own claim at registration comes from "unknown" too)."""
    ensure_schema(ctx)
    if _rate_limited(ctx, ip):
        raise ApiError(429, "rate_limited", f"Too many requests. Limit: {RATE_LIMIT} per 60s")
    if not isinstance(agent_id, str) or not agent_id.startswith("ag_"):
        raise ApiError(400, "invalid_request", "agent_casino_id is required (ag_xxx format)")
    now = ctx.clock.now_ms()
    with ctx.store.tx() as conn:
        if conn.execute("SELECT 1 FROM faucet_claims WHERE ip = ? AND created_ms > ?",
                        (ip, now - IP_COOLDOWN_MS)).fetchone():
            raise ApiError(429, "ip_rate_limited", "Already claimed from this IP today. Try again in ~24h.")
        if accounts.get_agent(conn, agent_id) is None:
            raise ApiError(404, "agent_not_found", "Agent not found in casino. Register at "
                                                   "https://casino.purpleflea.com/api/v1/auth/register")
        if conn.execute("SELECT 1 FROM faucet_claims WHERE agent_id = ?", (agent_id,)).fetchone():
            raise ApiError(409, "already_claimed", "This agent has already claimed the faucet bonus.")
        if conn.execute("SELECT 1 FROM casino_deposits WHERE agent_id = ? AND status = 'credited'",
                        (agent_id,)).fetchone():
            raise ApiError(403, "has_deposits", "The faucet is for agents that have not deposited yet")
        referrer = None
        if isinstance(referral_code, str) and referral_code:
            row = conn.execute("SELECT id FROM casino_agents WHERE referral_code = ?", (referral_code,)).fetchone()
            referrer = row["id"] if row and row["id"] != agent_id else None
        if referrer is None:
            row = conn.execute("SELECT referred_by FROM casino_agents WHERE id = ?", (agent_id,)).fetchone()
            referrer = row["referred_by"] if row else None
        claim_id = accounts.new_uuid(ctx, "faucet.claim")
        conn.execute("INSERT INTO faucet_claims(id, agent_id, amount, referral_code, referrer_id, ip, created_ms) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?)",
                     (claim_id, agent_id, CLAIM_AMOUNT, referral_code if isinstance(referral_code, str) else None,
                      referrer, ip, now))
        accounts.post_entry(ctx, conn, agent_id, "credit", CLAIM_AMOUNT, "faucet_claim: $1 free credits", claim_id,
                            SERVICE)
    return {"credited": wire(CLAIM_AMOUNT), "message": "Free $1 credited. Use it to try the casino!",
            "casino_url": "https://casino.purpleflea.com", "claim_id": claim_id, "agent_id": agent_id,
            "referral_tracked": referrer is not None}


def client_ip(request: Request) -> str:
    """Who the real services think is calling: X-Forwarded-For, else "unknown"."""
    forwarded = request.headers.get("x-forwarded-for", "").split(",")[0].strip()
    return forwarded or "unknown"


def create_app(ctx: SandboxContext) -> Starlette:
    ensure_schema(ctx)

    async def post_claim(request: Request) -> Response:
        body = await read_json(request, strict=False)
        return reply(claim(ctx, body.get("agent_casino_id"), body.get("referral_code"), ip=client_ip(request)),
                     service=SERVICE)

    async def stats(request: Request) -> Response:
        row = ctx.store.one("SELECT COUNT(*) AS n, COUNT(DISTINCT agent_id) AS agents, "
                            "COALESCE(SUM(amount), 0) AS total FROM faucet_claims")
        n, agents = int(row["n"]), int(row["agents"])
        return reply({"total_claims": n, "total_agents": agents, "total_value_usd": wire(row["total"]),
                      "avg_per_agent": wire(row["total"] // agents) if agents else 0}, service=SERVICE)

    return make_service_app(SERVICE, [
        Route("/faucet/claim", post_claim, methods=["POST"]),
        Route("/faucet/stats", stats, methods=["GET"]),
    ])
