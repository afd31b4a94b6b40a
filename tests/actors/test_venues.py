"""`AgentClients`: one client per agent and service, built from the credentials hash (fakeredis)."""

from __future__ import annotations

import fakeredis
import pytest

from actors.escrow.venue import escrow_venue_factory
from actors.venues import AgentClients, read_credentials
from runtime.bus import HandlerRejected
from runtime.keys import Keys

KEYS = Keys("v", 4)


class Client:
    """Stands in for a venue client: remembers its key and whether it was closed."""

    def __init__(self, key: str):
        self.key = key
        self.closed = False

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def r():
    return fakeredis.FakeRedis()


def test_one_client_per_agent_built_from_its_service_key(r):
    r.hset(KEYS.credentials("a"), mapping={"casino_key": "sk_a", "trading_key": "tk_a"})
    r.hset(KEYS.credentials("b"), mapping={"casino_key": "sk_b"})
    built: list[str] = []
    clients = AgentClients(r, KEYS, "casino", lambda key: built.append(key) or Client(key))
    first = clients("a")
    assert clients("a") is first and first.key == "sk_a"
    assert clients("b").key == "sk_b"
    assert built == ["sk_a", "sk_b"]


def test_a_missing_key_is_a_handler_rejection_naming_the_service_and_agent(r):
    r.hset(KEYS.credentials("a"), mapping={"casino_key": "sk_a"})
    clients = AgentClients(r, KEYS, "wallet", Client, missing="onboard the wallet first")
    with pytest.raises(HandlerRejected, match="no wallet credentials for agent a: onboard the wallet first"):
        clients("a")
    assert clients.get("a") is None


def test_a_key_stored_after_a_miss_is_picked_up(r):
    clients = AgentClients(r, KEYS, "trading", Client)
    assert clients.get("a") is None
    r.hset(KEYS.credentials("a"), "trading_key", "tk_late")
    assert clients("a").key == "tk_late"


def test_close_closes_every_client_built_and_forgets_them(r):
    r.hset(KEYS.credentials("a"), "casino_key", "sk_a")
    clients = AgentClients(r, KEYS, "casino", Client)
    old = clients("a")
    clients.close()
    assert old.closed
    assert clients("a") is not old


def test_escrow_builds_both_clients_on_the_casino_key_and_closes_both(r):
    r.hset(KEYS.credentials("a"), "casino_key", "sk_live_" + "a" * 48)
    venue_for = escrow_venue_factory(r, KEYS, "http://127.0.0.1:9/escrow", "http://127.0.0.1:9/casino")
    pair = venue_for("a")
    assert venue_for("a") is pair
    with pytest.raises(HandlerRejected, match="escrow uses the casino account"):
        venue_for("nobody")
    venue_for.close()
    assert pair.escrow.closed and pair.casino.closed


def test_read_credentials_decodes_the_hash(r):
    r.hset(KEYS.credentials("a"), mapping={"casino_key": "sk_a", "casino_agent_id": "ag_1"})
    assert read_credentials(r, KEYS, "a") == {"casino_key": "sk_a", "casino_agent_id": "ag_1"}
    assert read_credentials(r, KEYS, "nobody") == {}
