"""Per-agent venue clients for escrow: the escrow service and the casino account it draws on.

Escrow authenticates with the agent's CASINO key and moves the agent's CASINO balance, so both
clients are built from the same credential (`casino_key` in the agent's credentials hash). The
casino client is needed for the balance check before a creation and for the ledger lookups that
make a lost creation findable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import redis

from runtime.bus import HandlerRejected
from runtime.keys import Keys
from venue.client.casino import CasinoClient
from venue.client.escrow import EscrowClient

TIMEOUT_S = 5.0


@dataclass(frozen=True)
class EscrowVenue:
    escrow: EscrowClient
    casino: CasinoClient


VenueFor = Callable[[str], EscrowVenue]


def escrow_venue_factory(client: redis.Redis, keys: Keys, escrow_url: str, casino_url: str,
                         **client_options) -> VenueFor:
    """`venue_for(agent)`, caching one pair of clients per agent."""
    cache: dict[str, EscrowVenue] = {}

    def venue_for(agent: str) -> EscrowVenue:
        if agent not in cache:
            api_key = client.hget(keys.credentials(agent), "casino_key")
            if api_key is None:
                raise HandlerRejected(f"no casino credentials for agent {agent}: escrow uses the casino account")
            key = api_key.decode()
            options = {"timeout_s": TIMEOUT_S, **client_options}
            cache[agent] = EscrowVenue(EscrowClient(escrow_url, key, casino_url=casino_url, **options),
                                       CasinoClient(casino_url, key, **options))
        return cache[agent]

    return venue_for
