"""Typed client of the faucet (`<base>/faucet/...`, no auth): $1 to a casino balance, once.

A claim is safe to repeat: the venue allows one per agent and answers 409 `already_claimed`
afterwards, so `claim` is retried on transport failures and a 409 after a lost answer means the
first attempt landed. A 429 is not retried: the faucet's limits are per IP, 5 claims a minute and
one successful claim a day (`ip_rate_limited`), so a retry a second later is refused the same way.
"""

from __future__ import annotations

from venue.client.base import ServiceClient
from venue.client.types import FaucetClaim, FaucetStats
from venue.errors import VenueUnavailable


class FaucetClient(ServiceClient):
    service = "faucet"

    def claim(self, agent_casino_id: str, referral_code: str | None = None) -> FaucetClaim:
        """Claim the one-time $1. Raises `VenueRejected` with `already_claimed` (409),
        `agent_not_found` (404), `has_deposits` (403) or `invalid_request` (400);
        `VenueRateLimited` (429 `rate_limited` or `ip_rate_limited`) at once, without retrying;
        `VenueUnavailable` once the retries of a transport failure or 5xx are spent."""
        body = {"agent_casino_id": agent_casino_id}
        if referral_code:
            body["referral_code"] = referral_code
        for attempt in range(self.retries + 1):
            try:
                return self.post("/faucet/claim", FaucetClaim, body, auth=False)
            except VenueUnavailable:
                if attempt >= self.retries:
                    raise
                self._sleep(self.backoff(attempt))
        raise AssertionError("unreachable")

    def stats(self) -> FaucetStats:
        return self.get("/faucet/stats", FaucetStats, auth=False)
