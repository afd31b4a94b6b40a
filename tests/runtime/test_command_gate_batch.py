"""`CommandGate.check_many` (a bus batch gated at once) judges each command as `check` does."""

from __future__ import annotations

import msgspec

from messages.envelope import seeded_ids, wrap
from messages.schema import BalancesChanged, SetRisk
from runtime.clock import ManualClock
from runtime.command_gate import CommandGate
from runtime.keyring import Keyring, generate_key
from runtime.nonces import MemoryNonceStore
from runtime.signing import CommandAuthError, VerifiedCommand, sign

NOW = 1_800_000_000_000
KEY = generate_key("agent-key", "agent")
IDS = seeded_ids(3)


def command(signed_at: int = NOW, ttl_ms: int = 60_000, nonce: str | None = None):
    env = wrap(SetRisk(state="PAUSED", reason="t"), agent="a1", now_ms=signed_at, new_id=IDS)
    return sign(env, KEY, now_ms=signed_at, ttl_ms=ttl_ms, nonce=nonce)


def codes(results) -> list[str]:
    out = []
    for r in results:
        if r is None:
            out.append("internal")
        elif isinstance(r, VerifiedCommand):
            out.append("ok")
        else:
            assert isinstance(r, CommandAuthError)
            out.append(r.code)
    return out


def test_a_batch_is_judged_in_order_with_one_claim_per_passing_command():
    nonces = MemoryNonceStore()
    gate = CommandGate(Keyring([KEY]), nonces, ManualClock(NOW))
    good = command(nonce="g" * 32)
    poke = wrap(BalancesChanged(cause="bet"), agent="a1", now_ms=NOW, new_id=IDS)
    tampered = msgspec.structs.replace(command(nonce="t" * 32), agent="a2")
    batch = [(tampered, "1-1"), (good, "1-2"), (poke, "1-3"), (good, "1-4"), (command(NOW - 120_000), "1-5")]
    assert codes(gate.check_many(batch)) == ["bad_signature", "ok", "internal", "replayed", "expired"]
    assert len(nonces) == 1  # only the command that passed every other check claimed its nonce
    # the same entry again (a redelivery) passes; as `check` says too
    assert codes(gate.check_many([(good, "1-2")])) == ["ok"]
    assert isinstance(gate.check(good, "1-2"), VerifiedCommand)


def test_a_command_accepted_before_is_judged_as_of_its_acceptance():
    clock = ManualClock(NOW)
    accepted = command(NOW, nonce="a" * 32)
    never = command(NOW, nonce="b" * 32)
    asked: list[list[str]] = []

    def accepted_at_many(envs):
        asked.append([e.id for e in envs])
        return [NOW + 1_000 if e.id == accepted.id else None for e in envs]

    gate = CommandGate(Keyring([KEY]), MemoryNonceStore(), clock, accepted_at_many=accepted_at_many)
    clock.advance(70_000)  # both signatures have expired by now
    assert codes(gate.check_many([(accepted, "1-1"), (never, "1-2")])) == ["ok", "expired"]
    assert asked == [[accepted.id, never.id]]  # one look-up for the batch
