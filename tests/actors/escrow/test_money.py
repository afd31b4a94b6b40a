"""The escrow ledger arithmetic and message validation, without Redis or a venue."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.escrow.money import lock_cap, on_created, on_failed, on_refunded, on_released, to_reserve
from actors.policy.breakers import escrow_lock
from actors.policy.escrow_rules import escrow_fee
from messages.codec import decode, encode
from messages.envelope import seeded_ids, wrap
from messages.errors import MessageDecodeError
from messages.escrow_msgs import CreateEscrow, DisputeEscrow, ReleaseEscrow

USD = 1_000_000
amounts = st.integers(0, 10**12)


@settings(max_examples=300, deadline=None)
@given(amount=amounts, locked=amounts, reserve=amounts)
def test_the_fence_cap_is_exactly_breaker_7(amount, locked, reserve):
    """Reserving amount + fee under `lock_cap` is allowed exactly when `escrow_lock` does not fire."""
    allowed = to_reserve(amount) <= lock_cap(reserve, locked)
    assert allowed == (escrow_lock(locked, amount, escrow_fee(amount), reserve) is None)


def test_policy_guide_boundary():
    assert lock_cap(400 * USD, 0) == 120 * USD
    assert to_reserve(118_811_881) == 120 * USD and to_reserve(118_811_882) == 120 * USD + 1


def _net(move):
    return sum(delta for _, delta in move.deltas)


@given(amount=st.integers(100_000, 10**12))
def test_each_step_changes_the_total_only_by_what_leaves(amount):
    reserved = to_reserve(amount)
    assert _net(on_created(amount, reserved)) == 0 and on_created(amount, reserved).left == 0
    assert dict(on_created(amount, reserved).deltas)["reserve:locked"] == amount
    assert _net(on_failed(reserved)) == 0
    assert _net(on_released(amount)) == -amount == -on_released(amount).left
    refund = on_refunded(amount)
    assert _net(refund) == -escrow_fee(amount) == -refund.left


def _roundtrip(body):
    return decode(encode(wrap(body, agent="a", now_ms=0, new_id=seeded_ids(1)))).body


def test_commands_decode_and_malformed_ones_do_not():
    good = CreateEscrow(counterparty="ag_0123456789ab", amount=5 * USD, description="audit the contract",
                        timeout_hours=96)
    assert _roundtrip(good) == good  # 96 h decodes: it is refused by the actor, in the journal
    assert _roundtrip(ReleaseEscrow(escrow_id="esc_0123456789abcdef", proof="sha256:00")).proof == "sha256:00"
    for bad in (ReleaseEscrow(escrow_id="esc_0123456789abcdef", proof=""),
                ReleaseEscrow(escrow_id="esc_0123456789abcdef", proof="   "),
                DisputeEscrow(escrow_id="esc_1", reason=""),
                ReleaseEscrow(escrow_id="0123", proof="x"),
                msgspec.structs.replace(good, counterparty="bob"),
                msgspec.structs.replace(good, amount=-1),
                msgspec.structs.replace(good, description="  ")):
        with pytest.raises(MessageDecodeError):
            _roundtrip(bad)


def test_the_buckets_an_escrow_may_not_take_from_are_those_homed_at_the_casino():
    from actors.escrow.money import CASINO_HOMED
    from actors.rebalancer import HOME_SILO
    from actors.silo.reconcile import HOME

    assert set(CASINO_HOMED) == {b for b, silo in HOME_SILO.items() if silo == "casino"}
    assert HOME == HOME_SILO
