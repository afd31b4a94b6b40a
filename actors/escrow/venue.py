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

from actors.venues import TIMEOUT_S, AgentClients
from runtime.keys import Keys
from venue.client.casino import CasinoClient
from venue.client.escrow import EscrowClient


@dataclass(frozen=True)
class EscrowVenue:
    """The escrow client and the casino client of one agent, both on its casino key."""

    escrow: EscrowClient
    casino: CasinoClient

    def close(self) -> None:
        self.escrow.close()
        self.casino.close()


VenueFor = Callable[[str], EscrowVenue]
"""`venue_for(agent)`: an `AgentClients[EscrowVenue]` in the workers, any callable in tests."""


def escrow_venue_factory(client: redis.Redis, keys: Keys, escrow_url: str, casino_url: str,
                         **client_options) -> VenueFor:
    """`venue_for(agent)`, caching one pair of clients per agent (`client_options` go to both)."""
    options = {"timeout_s": TIMEOUT_S, **client_options}
    return AgentClients(client, keys, "casino",
                        lambda key: EscrowVenue(EscrowClient(escrow_url, key, casino_url=casino_url, **options),
                                                CasinoClient(casino_url, key, **options)),
                        missing="escrow uses the casino account")
