"""Money paid to an agent: recognising it in the venue's records, so it is booked once, as an inflow.

Escrow pays the counterparty into its casino balance (the venue writes a casino ledger credit with
reason `escrow_release: <escrow id>`), and nothing tells the treasury. The casino actor reads the
casino ledger on the `ScanIncoming` tick and books each such credit with `actors.flows.book_flow`
(source `escrow_received`, bucket `casino`, ref the escrow id), so the casino bucket and the
treasury total grow by what arrived, exactly once, and the breakers see a flow, not a win.
"""

from __future__ import annotations

from dataclasses import dataclass

ESCROW_RELEASE = "escrow_release:"


@dataclass(frozen=True)
class Incoming:
    """One payment received: `amount_micros` into the casino balance, `ref` its once-only id."""

    ref: str
    amount_micros: int
    source: str
    detail: str


def incoming_payments(entries) -> list[Incoming]:
    """The casino ledger's escrow payouts to this agent (credits whose reason names an escrow), oldest
    first. `entries` are `venue.client.types.LedgerEntry` rows (any object with `type`, `amount`,
    `reason`, `id`). Everything else (bets, deposits, the agent's own refunds) is left alone."""
    found = []
    for entry in entries:
        reason = (entry.reason or "").strip()
        if entry.type != "credit" or not reason.startswith(ESCROW_RELEASE) or entry.amount <= 0:
            continue
        escrow_id = reason[len(ESCROW_RELEASE):].strip()
        if not escrow_id:
            continue
        found.append(Incoming(ref=f"escrow-received:{escrow_id}", amount_micros=int(entry.amount),
                              source="escrow_received", detail=f"escrow {escrow_id} released to this agent"))
    return list(reversed(found))
