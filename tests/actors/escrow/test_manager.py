"""EscrowManager against a real Redis and the sandbox: create, refuse, release, dispute, refund, sync.

Every test checks the ledger total: it changes only by what really leaves the treasury (a
release pays amount − fee and the fee; a refund costs the fee) and never on create or dispute.
"""

from __future__ import annotations

import msgspec
import pytest

from actors.escrow.manager import OVERCOMMIT, build
from messages.escrow_msgs import (
    CreateEscrow,
    DisputeEscrow,
    EscrowCreated,
    EscrowDisputed,
    EscrowRefunded,
    EscrowRefused,
    EscrowRejected,
    EscrowReleased,
    EscrowSynced,
    ReleaseEscrow,
    SyncEscrows,
)
from supervisor.status import escrows_key as status_escrows_key
from supervisor.status import record_rows
from tests.kit.escrow import AGENT, CASINO_BUCKET, FLOAT, RESERVE, USD

pytestmark = pytest.mark.redis

TOTAL = RESERVE + CASINO_BUCKET


def create(w, actor, amount, *, hours=24, description="write the quarterly report"):
    return w.send(actor, CreateEscrow(counterparty=w.counterparty_id, amount=amount, description=description,
                                      timeout_hours=hours))


def only(events, kind):
    found = [e for e in events if isinstance(e, kind)]
    assert len(found) == 1, events
    return found[0]


def test_create_locks_the_amount_counts_the_fee_and_records_the_escrow(world):
    w = world
    actor = w.start_actor()
    env = create(w, actor, 50 * USD)
    created = only(w.journal(env.id), EscrowCreated)
    assert created.amount == 50 * USD and created.fee == 500_000 and created.net_to_counterparty == 49_500_000
    assert created.locked_after == 50 * USD and not created.recovered and created.fence_seq
    ledger = w.ledger()
    assert ledger.held_by("reserve", "locked") == 50 * USD
    assert ledger.held_by("reserve", "reserved") == 0
    assert ledger.available["reserve"] == RESERVE - 50 * USD  # the fee part of the reservation is back
    assert ledger.total == TOTAL
    record = w.escrows()[created.escrow_id]
    assert record.status == "funded" and record.fee == 500_000 and record.venue_fee == 500_000
    assert record.created_by == env.id and record.counterparty == w.counterparty_id
    (venue,) = w.venue_escrows()
    assert venue["id"] == created.escrow_id and venue["amount"] == 50 * USD
    assert venue["description"] == f"write the quarterly report [ref:{env.id}]"
    assert w.venue_balance() == CASINO_BUCKET + FLOAT - 50 * USD
    assert w.client.hlen(w.keys.reservations(AGENT)) == 0 and w.pending() == 0
    assert w.risk_commands() == 1  # BalancesChanged for RiskGuard, in the same commit


def test_fee_rounds_up_for_an_odd_amount(world):
    w = world
    actor = w.start_actor()
    env = create(w, actor, 10_000_001)
    created = only(w.journal(env.id), EscrowCreated)
    assert created.fee == 100_001  # 1 % of 10.000001 is 0.10000001: counted as 0.100001
    assert w.ledger().total == TOTAL


def test_overcommit_boundary_with_the_policy_guides_numbers(world):
    """$400 reserve: $118.811881 + $1.188119 fee = $120.00 = 30 % passes; one micro more is refused."""
    w = world
    actor = w.start_actor()
    env = create(w, actor, 118_811_882)
    refused = only(w.journal(env.id), EscrowRefused)
    assert refused.code == OVERCOMMIT and "30" in refused.reason and "$400" in refused.reason
    assert w.ledger().held_by("reserve", "locked") == 0 and w.ledger().available["reserve"] == RESERVE
    assert w.venue_escrows() == [] and w.pending() == 0

    env = create(w, actor, 118_811_881)
    created = only(w.journal(env.id), EscrowCreated)
    assert created.fee == 1_188_119 and created.amount + created.fee == 120 * USD
    assert w.ledger().held_by("reserve", "locked") == 118_811_881 and w.ledger().total == TOTAL

    # the reserve is still $400 (locked money is the reserve's): $1.188119 of room is left, counted
    # with the new fee on top; existing locks count without theirs (the venue took them out of the amount)
    env = create(w, actor, 1_176_356)  # + $0.011764 fee = $1.188120: one micro beyond
    assert only(w.journal(env.id), EscrowRefused).code == OVERCOMMIT
    env = create(w, actor, 1_176_355)  # + $0.011764 fee = $1.188119: exactly at the limit
    assert only(w.journal(env.id), EscrowCreated).locked_after == 118_811_881 + 1_176_355
    env = create(w, actor, 100_000)
    assert only(w.journal(env.id), EscrowRefused).code == OVERCOMMIT
    assert len(w.venue_escrows()) == 2 and w.ledger().total == TOTAL


def test_timeout_above_72_hours_is_refused_72_is_accepted(world):
    w = world
    actor = w.start_actor()
    env = create(w, actor, 5 * USD, hours=73)
    refused = only(w.journal(env.id), EscrowRefused)
    assert refused.code == "invalid_timeout" and "1–72 h" in refused.reason
    assert w.venue_escrows() == [] and w.ledger().available["reserve"] == RESERVE
    env = create(w, actor, 5 * USD, hours=0)
    assert only(w.journal(env.id), EscrowRefused).code == "invalid_timeout"
    env = create(w, actor, 5 * USD, hours=72)
    assert only(w.journal(env.id), EscrowCreated).timeout_hours == 72
    env = create(w, actor, 99_999)
    assert only(w.journal(env.id), EscrowRefused).code == "below_minimum"


def test_release_pays_the_counterparty_and_keeps_the_proof(world):
    w = world
    actor = w.start_actor()
    created = only(w.journal(create(w, actor, 20 * USD).id), EscrowCreated)
    counterparty_before = w.venue_balance(w.counterparty_id)
    env = w.send(actor, ReleaseEscrow(escrow_id=created.escrow_id, proof="sha256:9f86d081884c7d65"))
    released = only(w.journal(env.id), EscrowReleased)
    assert released.amount == 20 * USD and released.paid == 19_800_000 and released.fee == 200_000
    assert released.proof == "sha256:9f86d081884c7d65" and released.source == "command"
    ledger = w.ledger()
    assert ledger.held_by("reserve", "locked") == 0 and ledger.total == TOTAL - 20 * USD
    record = w.escrows()[created.escrow_id]
    assert record.status == "released" and record.proof == "sha256:9f86d081884c7d65"
    assert not w.client.hexists(w.escrows_key(), created.escrow_id)  # the open list no longer shows it
    assert w.venue_balance(w.counterparty_id) == counterparty_before + 19_800_000
    assert w.risk_commands() == 2

    env = w.send(actor, ReleaseEscrow(escrow_id=created.escrow_id, proof="again"))
    assert only(w.journal(env.id), EscrowRefused).code == "invalid_status"
    env = w.send(actor, ReleaseEscrow(escrow_id="esc_0000000000000000", proof="x"))
    assert only(w.journal(env.id), EscrowRefused).code == "unknown_escrow"
    assert w.ledger().total == TOTAL - 20 * USD and w.pending() == 0


def test_dispute_keeps_the_money_locked_through_syncs(world):
    w = world
    actor = w.start_actor()
    created = only(w.journal(create(w, actor, 30 * USD).id), EscrowCreated)
    env = w.send(actor, DisputeEscrow(escrow_id=created.escrow_id, reason="deliverable never arrived"))
    disputed = only(w.journal(env.id), EscrowDisputed)
    assert disputed.reason == "deliverable never arrived" and disputed.amount == 30 * USD
    assert w.escrows()[created.escrow_id].status == "disputed"
    assert w.ledger().held_by("reserve", "locked") == 30 * USD and w.ledger().total == TOTAL

    w.admin.advance_clock(hours=100)  # past the deadline: disputed escrows are never refunded
    env = w.send(actor, SyncEscrows())
    assert w.journal(env.id) == []  # the sync found the escrow as it was: nothing written
    assert w.ledger().held_by("reserve", "locked") == 30 * USD and w.ledger().total == TOTAL
    env = w.send(actor, ReleaseEscrow(escrow_id=created.escrow_id, proof="too late"))
    assert only(w.journal(env.id), EscrowRefused).code == "invalid_status"


def test_timeout_refund_returns_amount_minus_fee_to_the_reserve(world):
    w = world
    actor = w.start_actor()
    created = only(w.journal(create(w, actor, 40 * USD, hours=1).id), EscrowCreated)
    env = w.send(actor, SyncEscrows())  # before the deadline: nothing to do, nothing written
    assert w.journal(env.id) == []
    venue_before = w.venue_balance()

    w.admin.advance_clock(hours=2)
    w.admin.run_escrow_timeouts()
    env = w.send(actor, SyncEscrows())
    refunded = only(w.journal(env.id), EscrowRefunded)
    assert refunded.amount == 40 * USD and refunded.returned == 39_600_000 and refunded.fee == 400_000
    assert only(w.journal(env.id), EscrowSynced).refunded == 1
    ledger = w.ledger()
    assert ledger.held_by("reserve", "locked") == 0
    assert ledger.available["reserve"] == RESERVE - 400_000
    assert ledger.total == TOTAL - 400_000
    assert w.venue_balance() == venue_before + 39_600_000  # the venue agrees to the micro
    assert w.escrows()[created.escrow_id].status == "refunded"
    env = w.send(actor, SyncEscrows())
    assert w.journal(env.id) == []


def test_sync_after_a_restart_knows_every_open_escrow(world):
    w = world
    first = w.start_actor()
    quick = only(w.journal(create(w, first, 10 * USD, hours=1).id), EscrowCreated)
    paid = only(w.journal(create(w, first, 11 * USD, hours=48).id), EscrowCreated)
    fought = only(w.journal(create(w, first, 12 * USD, hours=48).id), EscrowCreated)
    kept = only(w.journal(create(w, first, 13 * USD, hours=48).id), EscrowCreated)
    first.stop()
    w.actors.remove(first)

    # while no actor runs: one is released by hand, one disputed by the counterparty, one times out
    w.escrow_client(w.creator_key).release(paid.escrow_id)
    w.escrow_client(w.counterparty_key).dispute(fought.escrow_id, "not what was ordered")
    w.admin.advance_clock(hours=2)

    second = w.start_actor()
    env = w.send(second, SyncEscrows())
    events = w.journal(env.id)
    synced = only(events, EscrowSynced)
    assert (synced.checked, synced.released, synced.refunded, synced.disputed, synced.unchanged) == (4, 1, 1, 1, 1)
    assert only(events, EscrowReleased).escrow_id == paid.escrow_id and only(events, EscrowReleased).source == "venue"
    assert only(events, EscrowRefunded).escrow_id == quick.escrow_id
    assert only(events, EscrowDisputed).reason == "not what was ordered"
    statuses = {i: r.status for i, r in w.escrows().items()}
    assert statuses == {quick.escrow_id: "refunded", paid.escrow_id: "released", fought.escrow_id: "disputed",
                        kept.escrow_id: "funded"}
    ledger = w.ledger()
    assert ledger.held_by("reserve", "locked") == 12 * USD + 13 * USD
    assert ledger.total == TOTAL - 11 * USD - 100_000  # the release left, the refund cost its fee
    env = w.send(second, SyncEscrows())
    assert w.journal(env.id) == []  # both still open and unchanged
    # the open list is what `treasury status` reads: the two still locked, with their amounts
    assert status_escrows_key(w.keys, AGENT) == w.escrows_key()
    rows = record_rows({k.decode(): v for k, v in w.client.hgetall(w.escrows_key()).items()}, "amount")
    assert rows["count"] == 2 and rows["amount"] == 25 * USD


def test_completed_by_the_counterparty_can_still_be_released(world):
    w = world
    actor = w.start_actor()
    created = only(w.journal(create(w, actor, 10 * USD).id), EscrowCreated)
    w.escrow_client(w.counterparty_key).complete(created.escrow_id)
    env = w.send(actor, SyncEscrows())
    assert only(w.journal(env.id), EscrowSynced).completed == 1
    assert w.escrows()[created.escrow_id].status == "completed"
    env = w.send(actor, ReleaseEscrow(escrow_id=created.escrow_id, proof="delivered"))
    assert only(w.journal(env.id), EscrowReleased).paid == 9_900_000
    assert w.ledger().total == TOTAL - 10 * USD


def test_not_enough_reserve_money_at_the_casino_is_refused_and_changes_nothing(world):
    """The casino balance is shared with the casino bucket: an escrow may only take the reserve's float."""
    w = world
    actor = w.start_actor()
    with w.sandbox.ctx.store.tx() as conn:  # only $5 of reserve money has reached the casino
        conn.execute("UPDATE casino_agents SET balance = ? WHERE id = ?", (CASINO_BUCKET + 5 * USD, w.creator_id))
    before = w.ledger()
    env = create(w, actor, 10 * USD)  # the venue balance ($105) could pay it; the reserve's $5 cannot
    refused = only(w.journal(env.id), EscrowRefused)
    assert refused.code == "insufficient_balance" and "casino bucket" in refused.reason
    assert w.ledger() == before and w.venue_escrows() == []
    assert w.client.hlen(w.keys.reservations(AGENT)) == 0 and w.pending() == 0


def test_a_402_from_the_venue_releases_the_reservation(world):
    """The balance looked fine, then the casino bucket's bets spent it before the escrow landed."""
    w = world
    make = w.venue_factory()

    def venue_for(agent):
        venue = make(agent)
        real = venue.casino.balance
        venue.casino.balance = lambda: msgspec.structs.replace(real(), balance=CASINO_BUCKET + FLOAT)  # stale view
        return venue

    actor = w.start_actor(venue_for)
    with w.sandbox.ctx.store.tx() as conn:
        conn.execute("UPDATE casino_agents SET balance = ? WHERE id = ?", (USD, w.creator_id))
    before = w.ledger()
    env = create(w, actor, 10 * USD)
    refused = only(w.journal(env.id), EscrowRejected)  # the venue's refusal
    assert refused.code == "insufficient_balance" and "402" in refused.reason
    assert w.ledger() == before and before.total == TOTAL and w.venue_escrows() == []
    assert w.client.hlen(w.keys.reservations(AGENT)) == 0 and w.pending() == 0
    assert w.client.hlen(w.keys.escrow_creating(AGENT)) == 0


def test_release_is_refused_while_halted(world):
    w = world
    actor = w.start_actor()
    created = only(w.journal(create(w, actor, 10 * USD).id), EscrowCreated)
    w.client.hset(w.keys.risk(AGENT), mapping={"state": "HALTED", "reason": "operator halt"})
    env = w.send(actor, ReleaseEscrow(escrow_id=created.escrow_id, proof="delivered"))
    assert only(w.journal(env.id), EscrowRefused).code == "halted"
    env = create(w, actor, 10 * USD)
    assert only(w.journal(env.id), EscrowRefused).code == "halted"  # the fence
    assert w.escrows()[created.escrow_id].status == "funded" and w.ledger().total == TOTAL


def test_ledger_and_venue_agree_at_every_step(world):
    """Total changes only by payouts and fees, and matches the casino balance the venue reports:
    venue balance − casino bucket + escrow-locked − reserve float == ledger total − opening total."""
    w = world
    actor = w.start_actor()
    gone = 0

    def check():
        ledger = w.ledger()
        assert ledger.total == TOTAL - gone
        venue_side = w.venue_balance() - CASINO_BUCKET + ledger.held_by("reserve", "locked") - FLOAT
        assert venue_side == ledger.total - TOTAL
        assert ledger.held_by("reserve", "reserved") == 0

    a = only(w.journal(create(w, actor, 30 * USD, hours=1).id), EscrowCreated)
    check()
    b = only(w.journal(create(w, actor, 20 * USD, hours=48).id), EscrowCreated)
    check()
    c = only(w.journal(create(w, actor, 15 * USD, hours=48).id), EscrowCreated)
    check()
    w.send(actor, DisputeEscrow(escrow_id=c.escrow_id, reason="late"))
    check()
    w.send(actor, ReleaseEscrow(escrow_id=b.escrow_id, proof="sha256:ab"))
    gone += 20 * USD
    check()
    w.admin.advance_clock(hours=2)
    w.send(actor, SyncEscrows())
    gone += a.fee
    check()
    assert w.ledger().held_by("reserve", "locked") == 15 * USD


def test_an_odd_amount_refund_leaves_the_venue_at_most_one_micro_ahead(world):
    """The venue rounds its fee half-up to the micro, the treasury rounds up: never a shortfall."""
    w = world
    actor = w.start_actor()
    created = only(w.journal(create(w, actor, 10_000_001, hours=1).id), EscrowCreated)
    w.admin.advance_clock(hours=2)
    w.send(actor, SyncEscrows())
    ledger = w.ledger()
    assert ledger.total == TOTAL - created.fee
    venue_side = w.venue_balance() - CASINO_BUCKET - FLOAT
    assert venue_side - (ledger.total - TOTAL) == 1


def test_release_after_the_venue_refunded_applies_the_refund(world):
    w = world
    actor = w.start_actor()
    created = only(w.journal(create(w, actor, 10 * USD, hours=1).id), EscrowCreated)
    w.admin.advance_clock(hours=2)  # refunded at the venue before the treasury heard of it
    env = w.send(actor, ReleaseEscrow(escrow_id=created.escrow_id, proof="too late"))
    events = w.journal(env.id)
    assert only(events, EscrowRefunded).returned == 9_900_000
    assert only(events, EscrowRefused).code == "invalid_status"
    assert w.escrows()[created.escrow_id].status == "refunded"
    assert w.ledger().total == TOTAL - 100_000


def test_build_needs_both_venue_urls(world):
    with pytest.raises(ValueError, match="escrow"):
        build(world.steps, world.clock, lambda: "x", {"casino": world.sandbox.urls["casino"]})
    ref = build(world.steps, world.clock, lambda: "x", world.sandbox.urls)
    world.actors.append(ref)
    assert ref.is_alive()


def test_an_escrow_share_override_is_the_limit_and_is_quoted(world):
    """An operator's `escrow_reserve_bp=1000` (stored as the Rebalancer stores a `SetPolicy`): on the
    $400 reserve at most $40 may be locked, fees included, and the refusal says 10.00 %."""
    w = world
    w.client.hset(w.keys.policy(AGENT), "escrow_reserve_bp", 1000)
    actor = w.start_actor()
    env = create(w, actor, 40 * USD)  # + $0.40 fee: beyond 10 %, though far inside the default 30 %
    refused = only(w.journal(env.id), EscrowRefused)
    assert refused.code == OVERCOMMIT and "10.00 %" in refused.reason and "$400" in refused.reason
    assert w.ledger().held_by("reserve", "locked") == 0 and w.venue_escrows() == []
    env = create(w, actor, 39_603_960)  # + $0.396040 fee = $40.00: exactly at the overridden limit
    assert only(w.journal(env.id), EscrowCreated).amount == 39_603_960
