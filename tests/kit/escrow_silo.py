"""Harness for escrows seen by reconciliation: the silo harness (real Redis, the sandbox, the silo
role, the stand-in buckets) plus the real EscrowManager on the escrow role's stream, and a second
casino agent to pay. (No tests here.)

`venue_view` reads what the venues hold straight from the sandbox (wallet USDC, casino balance, the
escrow service's open escrows of this agent and the casino ledger rows the
escrow service wrote), for oracles that do not go through the reconcile code."""

from __future__ import annotations

from dataclasses import dataclass

from actors.escrow.manager import EscrowManager
from actors.escrow.venue import escrow_venue_factory
from messages.envelope import seeded_ids
from messages.silo_msgs import Reconcile, ReconciliationChecked
from tests.kit.silo import SILO_ROLES, SiloHarness
from venue.client import CasinoClient

ROLES = (*SILO_ROLES, "escrow")
FAST = {"backoff_s": 0.001, "max_backoff_s": 0.01}


@dataclass(frozen=True)
class VenueView:
    wallet: int
    casino: int
    escrowed: int
    """The amounts of this agent's escrows the escrow service still holds (funded, completed, disputed)."""
    escrow_debits: int
    """Every `escrow_lock` debit the casino wrote for this agent."""
    escrow_credits: int
    """Every escrow credit to this agent's casino balance (timeout refunds)."""


class EscrowSiloHarness(SiloHarness):
    def __init__(self, redis_url, keys, **kw):
        super().__init__(redis_url, keys, **kw)
        venue_for = escrow_venue_factory(self.client, self.keys, self.sandbox.urls["escrow"],
                                         self.sandbox.urls["casino"], **FAST)
        self.escrow = EscrowManager.start(self.steps, self.clock, seeded_ids(51, prefix="e"), venue_for)
        self.buses["escrow"] = self._bus("escrow", lambda d: self.escrow.ask(d))
        with CasinoClient(self.sandbox.urls["casino"], **FAST) as casino:
            self.counterparty = casino.register().agent_id

    def pump(self, roles=ROLES, max_rounds: int = 100) -> int:
        return super().pump(roles, max_rounds)

    def venue_view(self) -> VenueView:
        store = self.sandbox.ctx.store
        me = self.creds()["casino_agent_id"]
        escrowed = store.one("SELECT COALESCE(SUM(amount), 0) AS s FROM escrows WHERE creator_id = ? "
                             "AND status IN ('funded', 'completed', 'disputed')", (me,))["s"]
        rows = store.all("SELECT type, amount, reason FROM casino_ledger WHERE agent_id = ?", (me,))
        debits = sum(r["amount"] for r in rows if r["type"] == "debit" and r["reason"].startswith("escrow_lock:"))
        credits = sum(r["amount"] for r in rows if r["type"] == "credit" and r["reason"].startswith("escrow_"))
        return VenueView(wallet=self.wallet_usdc(), casino=self.casino_balance(),
                         escrowed=int(escrowed), escrow_debits=int(debits), escrow_credits=int(credits))

    def reconcile(self) -> dict:
        """Reconcile now (`Reconcile` to the silo role, pumped): the check's answer per silo, by name."""
        self.send(Reconcile(reason="test"), role="silo")
        self.pump()
        return {c.silo: c for c in self.journal(ReconciliationChecked)[-1].silos}

    def close(self) -> None:
        if self.escrow.is_alive():
            self.escrow.stop()
        super().close()
