"""Every agent's client of a venue shares one connection pool; an idle pool is closed, then remade."""

from __future__ import annotations

from venue.client.casino import CasinoClient
from venue.client.pool import HttpPool


def test_clients_of_one_base_url_share_one_pool_and_an_idle_one_is_evicted():
    now = [0.0]
    pool = HttpPool(idle_s=300, clock=lambda: now[0])
    with pool.borrow("http://casino.test", 5.0) as a:
        with pool.borrow("http://casino.test", 5.0) as b:
            assert a is b
    with pool.borrow("http://trading.test", 5.0) as c:
        assert c is not a
    assert len(pool) == 2 and pool.created == 2
    now[0] = 299.0
    with pool.borrow("http://trading.test", 5.0):
        pass
    assert len(pool) == 2  # the casino pool has been idle 299 s: kept
    now[0] = 400.0
    with pool.borrow("http://trading.test", 5.0):
        pass
    assert len(pool) == 1 and a.is_closed  # idle 400 s: closed
    with pool.borrow("http://casino.test", 5.0) as again:
        assert again is not a and not again.is_closed
    assert pool.created == 3


def test_a_pool_in_use_is_never_evicted():
    now = [0.0]
    pool = HttpPool(idle_s=1, clock=lambda: now[0])
    with pool.borrow("http://casino.test", 5.0) as held:
        now[0] = 10.0
        with pool.borrow("http://other.test", 5.0):
            pass
        assert not held.is_closed


def test_per_agent_clients_hold_no_connection_of_their_own():
    clients = [CasinoClient("http://127.0.0.1:9", f"sk_live_{i}") for i in range(100)]
    assert all(c._http is None for c in clients)


def test_a_closed_client_refuses_to_send_and_the_shared_pool_stays():
    import pytest

    client = CasinoClient("http://127.0.0.1:9", "sk_live_x")
    client.close()
    assert client.closed
    with pytest.raises(RuntimeError, match="closed"):
        client.request_json("GET", "/api/v1/balance")
