"""The Redis nonce store against a real server: atomic claims, expiry, bounded keys, cluster slots."""

from __future__ import annotations

import threading
import time

import pytest

from runtime.keys import Keys
from runtime.nonces import NonceStore, RedisNonceStore
from runtime.signing import CommandAuthError, sign, verify

pytestmark = pytest.mark.redis

NONCE = "0123456789abcdef0123456789abcdef"


def _server_ms(client) -> int:
    seconds, micros = client.time()
    return seconds * 1000 + micros // 1000


def test_claims_once(auth_redis, auth_prefix):
    store = RedisNonceStore(auth_redis, auth_prefix)
    assert isinstance(store, NonceStore)
    now = _server_ms(auth_redis)
    assert store.claim("deploy-1", NONCE, now + 60_000, now, agent="agent-7")
    assert not store.claim("deploy-1", NONCE, now + 60_000, now, agent="agent-7")
    assert store.claim("ops-alice", NONCE, now + 60_000, now, agent="agent-7"), "nonces are per key"


def test_key_carries_the_agents_shard_tag(auth_redis, auth_prefix):
    store = RedisNonceStore(auth_redis, auth_prefix, shards=16)
    shard = Keys(auth_prefix, 16).shard("agent-7")
    key = store.key("deploy-1", NONCE, "agent-7")
    assert key == f"{auth_prefix}:{{{shard}}}:nonce:deploy-1:{NONCE}"
    assert key.split(":")[1] == Keys(auth_prefix, 16).risk("agent-7").split(":")[1], "same slot as the agent's risk key"
    assert store.key("deploy-1", NONCE) == f"{auth_prefix}:nonce:deploy-1:{NONCE}"
    now = _server_ms(auth_redis)
    store.claim("deploy-1", NONCE, now + 60_000, now, agent="agent-7")
    assert auth_redis.exists(key) == 1


def test_nonce_lives_as_long_as_its_command_plus_grace(auth_redis, auth_prefix):
    store = RedisNonceStore(auth_redis, auth_prefix, grace_ms=5_000)
    now = _server_ms(auth_redis)
    store.claim("deploy-1", NONCE, now + 60_000, now, agent="agent-7")
    ttl = auth_redis.pttl(store.key("deploy-1", NONCE, "agent-7"))
    assert 60_000 < ttl <= 65_001


def test_nonces_expire(auth_redis, auth_prefix):
    store = RedisNonceStore(auth_redis, auth_prefix, grace_ms=0)
    now = _server_ms(auth_redis)
    assert store.claim("deploy-1", NONCE, now + 150, now, agent="agent-7")
    assert not store.claim("deploy-1", NONCE, now + 150, now, agent="agent-7")
    key = store.key("deploy-1", NONCE, "agent-7")
    deadline = time.monotonic() + 3
    while auth_redis.exists(key) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not auth_redis.exists(key), "the record expired with its command"
    assert store.claim("deploy-1", NONCE, now + 60_000, now, agent="agent-7")


def test_store_stays_bounded(auth_redis, auth_prefix):
    """Every record has a TTL: nothing is kept forever."""
    store = RedisNonceStore(auth_redis, auth_prefix)
    now = _server_ms(auth_redis)
    for n in range(50):
        store.claim("deploy-1", f"{n:032x}", now + 1_000, now, agent=f"agent-{n}")
    keys = list(auth_redis.scan_iter(match=f"{auth_prefix}:*"))
    assert len(keys) == 50
    assert all(0 < auth_redis.pttl(k) <= 31_001 for k in keys)


def test_twenty_threads_claim_the_same_nonce_one_wins(auth_redis, auth_prefix):
    store = RedisNonceStore(auth_redis, auth_prefix)
    now = _server_ms(auth_redis)
    barrier = threading.Barrier(20)
    wins: list[bool] = []
    lock = threading.Lock()

    def worker():
        barrier.wait()
        won = store.claim("deploy-1", NONCE, now + 60_000, now, agent="agent-7")
        with lock:
            wins.append(won)

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert sorted(wins) == [False] * 19 + [True]


def test_twenty_threads_verify_the_same_command_one_is_applied(
    auth_redis, auth_prefix, bet_envelope, agent_key, keyring
):
    store = RedisNonceStore(auth_redis, auth_prefix)
    now = _server_ms(auth_redis)
    signed = sign(bet_envelope, agent_key, now_ms=now)
    barrier = threading.Barrier(20)
    results: list[str] = []
    lock = threading.Lock()

    def worker():
        barrier.wait()
        try:
            verify(signed, keyring, now_ms=now, nonces=store)
            outcome = "ok"
        except CommandAuthError as exc:
            outcome = exc.code
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert sorted(results) == ["ok"] + ["replayed"] * 19


def test_forged_command_does_not_burn_the_nonce_in_redis(auth_redis, auth_prefix, bet_envelope, agent_key, keyring):
    import msgspec

    store = RedisNonceStore(auth_redis, auth_prefix)
    now = _server_ms(auth_redis)
    good = sign(bet_envelope, agent_key, now_ms=now, nonce=NONCE)
    tampered = msgspec.structs.replace(good, agent="agent-8")
    with pytest.raises(CommandAuthError, match="bad_signature"):
        verify(tampered, keyring, now_ms=now, nonces=store)
    assert list(auth_redis.scan_iter(match=f"{auth_prefix}:*")) == []
    assert verify(good, keyring, now_ms=now, nonces=store).nonce == NONCE


def test_claim_many_answers_as_claims_one_after_the_other(auth_redis, auth_prefix):
    from runtime.nonces import MemoryNonceStore, NonceClaim, claim_many

    now = _server_ms(auth_redis)
    other = "fedcba9876543210fedcba9876543210"
    store = RedisNonceStore(auth_redis, auth_prefix)
    assert store.claim("deploy-1", other, now + 60_000, now, agent="a", holder="1-1")
    batch = [
        NonceClaim("deploy-1", NONCE, now + 60_000, now, "a", "2-1"),  # fresh: wins
        NonceClaim("deploy-1", NONCE, now + 60_000, now, "a", "2-2"),  # same nonce, other entry: replay
        NonceClaim("deploy-1", other, now + 60_000, now, "a", "1-1"),  # claimed before by this entry: redelivery
        NonceClaim("deploy-1", other, now + 60_000, now, "a", "2-3"),  # claimed before by another entry
        NonceClaim("deploy-1", NONCE, now + 60_000, now, "a", None),   # no holder: never a redelivery
    ]
    expected = [True, False, True, False, False]
    assert store.claim_many(batch) == expected
    memory = MemoryNonceStore()
    memory.claim("deploy-1", other, now + 60_000, now, agent="a", holder="1-1")
    assert claim_many(memory, batch) == expected  # the fallback: one claim after the other
    assert store.claim_many([]) == []
