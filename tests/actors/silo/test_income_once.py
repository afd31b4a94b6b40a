"""Money paid to an agent is booked by exactly one role: an escrow payout by the casino role
(`actors/incoming.py`, a flow referenced by the escrow), a casino payment by the silo role. A
payout that both booked counted twice (bob +$49.50 for a $24.75 release)."""

from __future__ import annotations

from types import SimpleNamespace

from actors.incoming import incoming_payments
from actors.silo.venues import AgentVenues


class _Casino:
    def __init__(self, ledger):
        self._ledger = ledger

    def deposits(self):
        return []

    def ledger(self):
        return self._ledger


def _entry(uid: str, reason: str, amount: int) -> SimpleNamespace:
    return SimpleNamespace(id=uid, type="credit", reason=reason, amount=amount, created_ms=1)


def test_an_escrow_payout_is_booked_by_one_role_only():
    ledger = [_entry("u1", "escrow_release: esc_abc", 24_750_000), _entry("u2", "payment_received", 5_000_000)]
    venues = object.__new__(AgentVenues)
    venues.casino = _Casino(ledger)
    silo_refs = {ref for ref, *_ in venues.outside_income()}
    casino_role = incoming_payments(ledger)
    assert [p.amount_micros for p in casino_role] == [24_750_000]
    assert silo_refs == {"ledger:u2"}, "the silo role books the casino payment and nothing the casino role books"
