"""Typed client of the faucet (`<base>/faucet/...`, no auth): $1 to a casino balance, once.

A claim is safe to repeat: the venue allows one per agent and answers 409 `already_claimed`
afterwards, so `claim` is retried on transport failures and a 409 after a lost answer means the
first attempt landed.
"""

from __future__ import annotations

from venue.client.base import ServiceClient
from venue.client.types import FaucetClaim, FaucetStats


class FaucetClient(ServiceClient):
    service = "faucet"

    def claim(self, agent_casino_id: str, referral_code: str | None = None) -> FaucetClaim:
        """Claim the one-time $1. Raises `VenueRejected` with `already_claimed` (409),
        `agent_not_found` (404), `has_deposits` (403) or `invalid_request` (400)."""
        body = {"agent_casino_id": agent_casino_id}
        if referral_code:
            body["referral_code"] = referral_code
        return self.retry_safe(lambda: self.post("/faucet/claim", FaucetClaim, body, auth=False))

    def stats(self) -> FaucetStats:
        return self.get("/faucet/stats", FaucetStats, auth=False)
