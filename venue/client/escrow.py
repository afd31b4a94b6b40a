"""Typed client of the escrow API (`<base>/escrow/...`), authenticated with the CASINO key.

`create` debits the creator's casino balance at once and is sent once. The venue has no
idempotency and no listing, so `create_once` tags the description with the idempotency key
(`… [ref:<key>]`) and, after a lost answer, finds the escrow through the casino ledger
(`escrow_lock: <id>` debits) and `GET /escrow/:id`, sending again only when it provably does
not exist. State changes (complete, release, dispute) are guarded by the venue (409 on a wrong
state), so after a lost answer `get()` shows whether they happened.
"""

from __future__ import annotations

from typing import Any

import httpx

from venue.client.base import DEFAULT_TIMEOUT_S, ServiceClient
from venue.client.casino import CasinoClient, _dollars
from venue.client.types import Escrow, EscrowCreated, EscrowRelease, EscrowStats, EscrowTransition
from venue.errors import VenueRejected

LOCK_REASON = "escrow_lock:"


def tag_description(description: str, idempotency_key: str) -> str:
    """The description sent by `create_once`: the key makes the escrow findable later."""
    return f"{description} [ref:{idempotency_key}]"


class EscrowClient(ServiceClient):
    service = "escrow"

    def __init__(self, base_url: str, api_key: str | None = None, *, casino_url: str | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S, transport: httpx.BaseTransport | None = None,
                 **options: Any) -> None:
        super().__init__(base_url, api_key, timeout_s=timeout_s, transport=transport, **options)
        self.casino_url = casino_url
        self._casino: CasinoClient | None = None
        self._casino_args = (timeout_s, transport, options)

    def close(self) -> None:
        if self._casino is not None:
            self._casino.close()
        super().close()

    def create(self, counterparty_agent_id: str, amount: int, description: str, *, timeout_hours: int = 24,
               referral_code: str | None = None, idempotency_key: str) -> EscrowCreated:
        """Lock `amount` micro-USD of the caller's casino balance for the counterparty. Sent once."""
        body: dict[str, Any] = {"amount_usd": _dollars(amount), "description": description,
                                "counterparty_agent_id": counterparty_agent_id, "timeout_hours": timeout_hours}
        if referral_code:
            body["referral_code"] = referral_code
        return self.post("/escrow/create", EscrowCreated, body, idempotency_key=idempotency_key)

    def create_once(self, counterparty_agent_id: str, amount: int, description: str, *, idempotency_key: str,
                    timeout_hours: int = 24, referral_code: str | None = None, attempts: int = 3) -> EscrowCreated:
        """Create the escrow at most once (needs `casino_url` for the ledger lookup). Outcomes as in
        `CasinoClient.place_bet_once`; a found escrow comes back with `recovered=True`."""
        tagged = tag_description(description, idempotency_key)
        return self.spend_once(
            f"escrow {idempotency_key!r}",
            lambda: self.create(counterparty_agent_id, amount, tagged, timeout_hours=timeout_hours,
                                referral_code=referral_code, idempotency_key=idempotency_key),
            lambda: self.find_created(tagged, amount), attempts=attempts, details={"idempotency_key": idempotency_key})

    def find_created(self, tagged_description: str, amount: int) -> EscrowCreated | None:
        """The escrow this agent created with exactly this description, among the escrow locks in
        the 50 newest casino ledger entries; None if there is none."""
        for entry in self._casino_client().ledger():
            if entry.type != "debit" or not (entry.reason or "").startswith(LOCK_REASON) or entry.amount != amount:
                continue
            escrow_id = entry.reference or (entry.reason or "")[len(LOCK_REASON):].strip()
            try:
                escrow = self.get_escrow(escrow_id)
            except VenueRejected:
                continue
            if escrow.description == tagged_description:
                return EscrowCreated(escrow_id=escrow.escrow_id, amount=escrow.amount, commission=escrow.commission,
                                     net_to_counterparty=escrow.net_to_counterparty, creator_id=escrow.creator_id,
                                     counterparty_id=escrow.counterparty_id, status=escrow.status,
                                     timeout_hours=escrow.timeout_hours, auto_release_at=escrow.auto_release_at,
                                     description=escrow.description, recovered=True)
        return None

    def _casino_client(self) -> CasinoClient:
        if self.casino_url is None:
            raise ValueError("EscrowClient needs casino_url to look escrows up in the casino ledger")
        if self._casino is None:
            timeout_s, transport, options = self._casino_args
            self._casino = CasinoClient(self.casino_url, self._key, timeout_s=timeout_s, transport=transport,
                                        **options)
        return self._casino

    def complete(self, escrow_id: str) -> EscrowTransition:
        """Counterparty: mark the work done (funded → completed)."""
        return self.post(f"/escrow/complete/{escrow_id}", EscrowTransition)

    def release(self, escrow_id: str) -> EscrowRelease:
        """Creator: pay the counterparty amount − 1 % (from funded or completed)."""
        return self.post(f"/escrow/release/{escrow_id}", EscrowRelease)

    def dispute(self, escrow_id: str, reason: str | None = None) -> EscrowTransition:
        """Either party: freeze the escrow for manual review (no automatic way out)."""
        return self.post(f"/escrow/dispute/{escrow_id}", EscrowTransition, {"reason": reason} if reason else {})

    def get_escrow(self, escrow_id: str) -> Escrow:
        """The escrow (with its events when the caller is a participant)."""
        return self.get(f"/escrow/{escrow_id}", Escrow, auth=self.has_key)

    def stats(self) -> EscrowStats:
        return self.get("/escrow/stats", EscrowStats, auth=False)
