"""Fixtures for the command-authentication tests: fixed keys, a fixed clock, sample commands,
and a real Redis connection confined to a unique key prefix that is deleted afterwards."""

from __future__ import annotations

import uuid

import pytest

from messages.envelope import Envelope
from messages.schema import CoinFlip, PlaceBet, SetRisk
from runtime.keyring import Keyring, SigningKey
from runtime.nonces import MemoryNonceStore

NOW_MS = 1_700_000_000_000
"""A fixed clock: every test passes time explicitly, so nothing depends on the wall clock."""

AGENT_SECRET = bytes(range(32))
OPERATOR_SECRET = bytes(range(100, 132))
OTHER_SECRET = bytes(range(200, 232))



@pytest.fixture
def agent_key() -> SigningKey:
    return SigningKey(key_id="deploy-1", secret=AGENT_SECRET, scope="agent")


@pytest.fixture
def operator_key() -> SigningKey:
    return SigningKey(key_id="ops-alice", secret=OPERATOR_SECRET, scope="operator")


@pytest.fixture
def keyring(agent_key: SigningKey, operator_key: SigningKey) -> Keyring:
    return Keyring([agent_key, operator_key])


@pytest.fixture
def nonces() -> MemoryNonceStore:
    return MemoryNonceStore()


def _make_envelope(body=None, *, agent: str = "agent-7", msg_id: str = "m0001") -> Envelope:
    if body is None:
        body = PlaceBet(game=CoinFlip(side="tails"), win_prob=0.55, kelly="half")
    return Envelope(id=msg_id, agent=agent, created_ms=NOW_MS - 5, body=body, correlation=msg_id)


@pytest.fixture
def now_ms() -> int:
    return NOW_MS


@pytest.fixture
def make_envelope():
    """Build an unsigned command envelope: `make_envelope(body=None, *, agent, msg_id)`."""
    return _make_envelope


@pytest.fixture
def bet_envelope() -> Envelope:
    return _make_envelope()


@pytest.fixture
def resume_envelope() -> Envelope:
    return _make_envelope(SetRisk(state="ACTIVE", reason="incident closed"), msg_id="m0002")


@pytest.fixture
def auth_redis(redis_url):
    """A client on the test Redis (`redis_url`: REDIS_TEST_URL, or the embedded server)."""
    import redis

    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def auth_prefix(auth_redis):
    """A key prefix no other test uses; every key under it is deleted when the test ends."""
    prefix = f"test-auth-{uuid.uuid4().hex[:12]}"
    yield prefix
    keys = list(auth_redis.scan_iter(match=f"{prefix}:*", count=500))
    if keys:
        auth_redis.delete(*keys)
