"""Sandbox escrow: `/escrow/...` on top of the casino balances, as the real agent-escrow.

The creator's casino balance is debited in full at creation; release pays the counterparty the
amount minus the 1 % fee; 15 % of the fee goes to a referrer (the `referral_code` given at
creation, else whoever referred the creator) on release or timeout. The timeout job refunds
every `funded` OR `completed` escrow past `auto_release_at` to the CREATOR minus the fee — even
when the counterparty marked the work complete. Disputed escrows stay locked forever.

The real job runs every 5 minutes; here it runs at the start of every escrow and casino request
and on `POST /_sandbox/escrow/run-timeouts`, against the injected clock, so tests see a refund
at the first request after the deadline (the real service can lag up to 5 minutes).
"""

from __future__ import annotations

import math
import sqlite3
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from messages.money import MAX_MICROS, MICRO
from sandbox import accounts
from sandbox.clock import iso
from sandbox.context import SandboxContext
from sandbox.http import (
    ApiError,
    amount_from_wire,
    bearer,
    make_service_app,
    read_json,
    reply,
    wire,
)

SERVICE = "escrow"
MIN_AMOUNT = MICRO // 10
MAX_TIMEOUT_HOURS = 720
HOUR_MS = 3_600_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS escrows (
    id TEXT PRIMARY KEY,
    creator_id TEXT NOT NULL,
    counterparty_id TEXT NOT NULL,
    amount INTEGER NOT NULL,
    commission INTEGER NOT NULL,
    description TEXT NOT NULL,
    status TEXT NOT NULL,
    timeout_hours INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    auto_release_ms INTEGER NOT NULL,
    completed_ms INTEGER,
    released_ms INTEGER,
    disputed_ms INTEGER,
    referrer_id TEXT,
    referral_commission INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS idx_escrows_due ON escrows(status, auto_release_ms);
CREATE TABLE IF NOT EXISTS escrow_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
    escrow_id TEXT NOT NULL,
    event TEXT NOT NULL,
    actor_id TEXT,
    note TEXT,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS escrow_stats (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    total_created INTEGER NOT NULL DEFAULT 0,
    total_released INTEGER NOT NULL DEFAULT 0,
    total_disputed INTEGER NOT NULL DEFAULT 0,
    total_volume INTEGER NOT NULL DEFAULT 0,
    total_commission INTEGER NOT NULL DEFAULT 0
);
INSERT OR IGNORE INTO escrow_stats(id) VALUES (1);
"""


def ensure_schema(ctx: SandboxContext) -> None:
    accounts.ensure_schema(ctx)
    ctx.store.ensure_schema(SERVICE, SCHEMA)


def percent(micros: int, rate: str) -> int:
    """`micros × rate`, to the micro (the real service rounds with toFixed(6))."""
    return int((Decimal(micros) * Decimal(rate)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _event(ctx: SandboxContext, conn: sqlite3.Connection, escrow_id: str, event: str, actor: str | None,
           note: str) -> None:
    now = ctx.clock.now_ms()
    conn.execute("INSERT INTO escrow_events(id, escrow_id, event, actor_id, note, created_ms) "
                 "VALUES (?, ?, ?, ?, ?, ?)",
                 (f"{escrow_id}_{event}_{now}", escrow_id, event, actor, note, now))


def run_timeouts(ctx: SandboxContext) -> int:
    """Refund every funded/completed escrow past its deadline (creator gets amount − fee)."""
    ensure_schema(ctx)
    now = ctx.clock.now_ms()
    if not ctx.store.one("SELECT 1 FROM escrows WHERE status IN ('funded', 'completed') AND auto_release_ms <= ?",
                         (now,)):
        return 0
    refunded = 0
    with ctx.store.tx() as conn:
        due = conn.execute("SELECT * FROM escrows WHERE status IN ('funded', 'completed') AND auto_release_ms <= ?",
                           (now,)).fetchall()
        for e in due:
            accounts.post_entry(ctx, conn, e["creator_id"], "credit", e["amount"] - e["commission"],
                              f"escrow_timeout_refund: {e['id']}", e["id"] + "_timeout", SERVICE)
            if e["referrer_id"] and e["referral_commission"] > 0:
                accounts.post_entry(ctx, conn, e["referrer_id"], "credit", e["referral_commission"],
                                  f"escrow_referral_commission: {e['id']}", e["id"] + "_refcom", SERVICE)
            conn.execute("UPDATE escrows SET status = 'refunded', released_ms = ? WHERE id = ?", (now, e["id"]))
            _event(ctx, conn, e["id"], "refunded", None, f"Auto-refunded after {e['timeout_hours']}h timeout")
            refunded += 1
    return refunded


def _view(e: sqlite3.Row) -> dict[str, Any]:
    return {
        "escrow_id": e["id"], "status": e["status"], "amount_usd": wire(e["amount"]),
        "commission_usd": wire(e["commission"]), "net_to_counterparty": wire(e["amount"] - e["commission"]),
        "description": e["description"], "creator_id": e["creator_id"], "counterparty_id": e["counterparty_id"],
        "timeout_hours": e["timeout_hours"], "created_at": iso(e["created_ms"]),
        "auto_release_at": iso(e["auto_release_ms"]),
        "completed_at": iso(e["completed_ms"]) if e["completed_ms"] else None,
        "released_at": iso(e["released_ms"]) if e["released_ms"] else None,
        "disputed_at": iso(e["disputed_ms"]) if e["disputed_ms"] else None,
    }


class Escrow:
    def __init__(self, ctx: SandboxContext) -> None:
        self.ctx = ctx
        self.store = ctx.store

    def ok(self, data: dict[str, Any], status: int = 200) -> Response:
        return reply(data, status, service=SERVICE)

    def caller(self, request: Request, *, required: bool = True, explain: bool = False) -> str | None:
        """The casino agent of the bearer key. Only `create` explains a 401 (as the real one)."""
        run_timeouts(self.ctx)
        agent = accounts.agent_for_key(self.ctx, bearer(request))
        if agent is None and required:
            raise ApiError(401, "unauthorized",
                           "Bearer {casino_api_key} required. Register at casino.purpleflea.com." if explain else None)
        return agent["id"] if agent else None

    def load(self, conn: sqlite3.Connection, escrow_id: str, *, explain: bool = True) -> sqlite3.Row:
        row = conn.execute("SELECT * FROM escrows WHERE id = ?", (escrow_id,)).fetchone()
        if row is None:
            raise ApiError(404, "not_found", "Escrow not found" if explain else None)
        return row

    async def create(self, request: Request) -> Response:
        creator_id = self.caller(request, explain=True)
        assert creator_id is not None
        body = await read_json(request, strict=False)
        raw_amount = body.get("amount_usd")
        # Infinity (JSON 1e309) passes the real minimum check and fails the balance check: 402.
        unbounded = isinstance(raw_amount, float) and raw_amount == math.inf
        amount = MAX_MICROS if unbounded else amount_from_wire(raw_amount, allow_string=True)
        description = body.get("description").strip() if isinstance(body.get("description"), str) else ""
        counterparty = body.get("counterparty_agent_id")
        counterparty = counterparty.strip() if isinstance(counterparty, str) else ""
        hours = body.get("timeout_hours", 24)
        hours = math.floor(hours) if accounts.is_js_number(hours) else 24
        hours = min(max(1, hours), MAX_TIMEOUT_HOURS)
        if amount is None or amount < MIN_AMOUNT:
            raise ApiError(400, "invalid_amount", "Minimum escrow amount is $0.1")
        if len(description) < 3:
            raise ApiError(400, "invalid_description", "description is required (min 3 chars)")
        if not counterparty.startswith("ag_"):
            raise ApiError(400, "invalid_counterparty", "counterparty_agent_id must be in ag_xxx format")
        if counterparty == creator_id:
            raise ApiError(400, "self_escrow", "Cannot create escrow with yourself")
        ctx = self.ctx
        now = ctx.clock.now_ms()
        with self.store.tx() as conn:
            if accounts.get_agent(conn, counterparty) is None:
                raise ApiError(404, "counterparty_not_found", "Counterparty agent not found in casino")
            creator = accounts.get_agent(conn, creator_id)
            if unbounded or creator["balance"] < amount:
                shown = "Infinity" if unbounded else f"{amount / MICRO:.2f}"
                raise ApiError(402, "insufficient_balance",
                               f"Balance ${creator['balance'] / MICRO:.2f} < escrow amount ${shown}",
                               balance=wire(creator["balance"]))
            commission = percent(amount, "0.01")
            referrer = None
            code = body.get("referral_code")
            if code:
                row = conn.execute("SELECT id FROM casino_agents WHERE referral_code = ?", (str(code),)).fetchone()
                referrer = row["id"] if row and row["id"] != creator_id else None
            elif creator["referred_by"]:
                referrer = creator["referred_by"]
            referral = percent(commission, "0.15") if referrer else 0
            escrow_id = f"esc_{ctx.new_id('escrow.id', 8)}"
            accounts.post_entry(ctx, conn, creator_id, "debit", amount, f"escrow_lock: {escrow_id}", escrow_id, SERVICE,
                                uid=f"{escrow_id}_debit")
            due = now + hours * HOUR_MS
            conn.execute(
                "INSERT INTO escrows(id, creator_id, counterparty_id, amount, commission, description, status, "
                "timeout_hours, created_ms, auto_release_ms, referrer_id, referral_commission) "
                "VALUES (?, ?, ?, ?, ?, ?, 'funded', ?, ?, ?, ?, ?)",
                (escrow_id, creator_id, counterparty, amount, commission, description, hours, now, due, referrer,
                 referral),
            )
            _event(ctx, conn, escrow_id, "created", creator_id,
                   f'Escrow created: ${amount / MICRO} for "{description}"')
            conn.execute("UPDATE escrow_stats SET total_created = total_created + 1, "
                         "total_volume = total_volume + ? WHERE id = 1", (amount,))
        return self.ok({
            "escrow_id": escrow_id, "amount_usd": wire(amount), "commission_usd": wire(commission),
            "net_to_counterparty": wire(amount - commission), "description": description, "creator_id": creator_id,
            "counterparty_id": counterparty, "status": "funded", "timeout_hours": hours,
            "auto_release_at": iso(due),
            "next_steps": {"counterparty": f"POST /escrow/complete/{escrow_id} when task is done",
                           "creator": f"POST /escrow/release/{escrow_id} to release funds",
                           "dispute": f"POST /escrow/dispute/{escrow_id} if something goes wrong"},
        }, 201)

    async def complete(self, request: Request) -> Response:
        actor = self.caller(request)
        with self.store.tx() as conn:
            e = self.load(conn, request.path_params["id"])
            if e["counterparty_id"] != actor:
                raise ApiError(403, "forbidden", "Only the counterparty can mark the task complete")
            if e["status"] != "funded":
                raise ApiError(409, "invalid_status", f"Cannot complete escrow in status '{e['status']}'")
            conn.execute("UPDATE escrows SET status = 'completed', completed_ms = ? WHERE id = ?",
                         (self.ctx.clock.now_ms(), e["id"]))
            _event(self.ctx, conn, e["id"], "completed", actor, "Counterparty marked task complete")
        return self.ok({"escrow_id": e["id"], "status": "completed", "auto_release_at": iso(e["auto_release_ms"]),
                        "message": "Task marked complete. Waiting for creator to release funds.",
                        "next_step": f"Creator should call POST /escrow/release/{e['id']}"})

    async def release(self, request: Request) -> Response:
        actor = self.caller(request)
        with self.store.tx() as conn:
            e = self.load(conn, request.path_params["id"])
            if e["creator_id"] != actor:
                raise ApiError(403, "forbidden", "Only the escrow creator can release funds")
            if e["status"] not in ("funded", "completed"):
                raise ApiError(409, "invalid_status", f"Cannot release escrow in status '{e['status']}'")
            net = e["amount"] - e["commission"]
            accounts.post_entry(self.ctx, conn, e["counterparty_id"], "credit", net, f"escrow_release: {e['id']}",
                              e["id"] + "_release", SERVICE)
            if e["referrer_id"] and e["referral_commission"] > 0:
                accounts.post_entry(self.ctx, conn, e["referrer_id"], "credit", e["referral_commission"],
                                  f"escrow_referral_commission: {e['id']}", e["id"] + "_refcom", SERVICE)
            conn.execute("UPDATE escrows SET status = 'released', released_ms = ? WHERE id = ?",
                         (self.ctx.clock.now_ms(), e["id"]))
            _event(self.ctx, conn, e["id"], "released", actor, f"Released by creator {actor}")
            conn.execute("UPDATE escrow_stats SET total_released = total_released + 1, "
                         "total_commission = total_commission + ? WHERE id = 1", (e["commission"],))
        return self.ok({"escrow_id": e["id"], "status": "released", "amount_released": wire(net),
                        "commission": wire(e["commission"]), "referral_commission": wire(e["referral_commission"]),
                        "counterparty_id": e["counterparty_id"],
                        "message": f"${net / MICRO:.2f} released to counterparty."})

    async def dispute(self, request: Request) -> Response:
        actor = self.caller(request)
        body = await read_json(request, strict=False)
        reason = body.get("reason").strip() if isinstance(body.get("reason"), str) else ""
        reason = reason or "No reason provided"
        with self.store.tx() as conn:
            e = self.load(conn, request.path_params["id"], explain=False)
            if actor not in (e["creator_id"], e["counterparty_id"]):
                raise ApiError(403, "forbidden", "Only escrow participants can dispute")
            if e["status"] not in ("funded", "completed"):
                raise ApiError(409, "invalid_status", f"Cannot dispute escrow in status '{e['status']}'")
            conn.execute("UPDATE escrows SET status = 'disputed', disputed_ms = ? WHERE id = ?",
                         (self.ctx.clock.now_ms(), e["id"]))
            _event(self.ctx, conn, e["id"], "disputed", actor, reason)
            conn.execute("UPDATE escrow_stats SET total_disputed = total_disputed + 1 WHERE id = 1")
        return self.ok({"escrow_id": e["id"], "status": "disputed", "reason": reason,
                        "message": "Escrow flagged for manual review. Purple Flea team will investigate.",
                        "contact": "support@purpleflea.com"})

    async def get(self, request: Request) -> Response:
        actor = self.caller(request, required=False)
        with self.store.tx() as conn:
            e = self.load(conn, request.path_params["id"])
            data = _view(e)
            if actor in (e["creator_id"], e["counterparty_id"]):
                data["events"] = [{"id": r["id"], "escrow_id": r["escrow_id"], "event": r["event"],
                                   "actor_id": r["actor_id"], "note": r["note"], "created_at": r["created_ms"] // 1000}
                                  for r in conn.execute("SELECT * FROM escrow_events WHERE escrow_id = ? ORDER BY seq",
                                                        (e["id"],))]
        return self.ok(data)

    async def stats(self, request: Request) -> Response:
        run_timeouts(self.ctx)
        s = self.store.one("SELECT * FROM escrow_stats WHERE id = 1")
        return self.ok({"total_created": s["total_created"], "total_released": s["total_released"],
                        "total_disputed": s["total_disputed"], "total_volume_usd": round(s["total_volume"] / MICRO, 2),
                        "total_commission_usd": round(s["total_commission"] / MICRO, 2), "commission_rate": "1%",
                        "referral_commission_rate": "15% of fees"})


def create_app(ctx: SandboxContext) -> Starlette:
    ensure_schema(ctx)
    e = Escrow(ctx)
    return make_service_app(SERVICE, not_found_message=False, routes=[
        Route("/escrow/create", e.create, methods=["POST"]),
        Route("/escrow/complete/{id}", e.complete, methods=["POST"]),
        Route("/escrow/release/{id}", e.release, methods=["POST"]),
        Route("/escrow/dispute/{id}", e.dispute, methods=["POST"]),
        Route("/escrow/stats", e.stats, methods=["GET"]),
        Route("/escrow/{id}", e.get, methods=["GET"]),
    ])
