"""Crash safety: a CreateEscrow (or ReleaseEscrow) delivered again never spends twice at the venue.

Each test breaks one delivery at a chosen point — after the venue created the escrow but before
the commit, with the answer lost on the wire, before the venue was reached — then delivers the
same stream entry again to a freshly started actor, as the bus does after a worker dies. The
sandbox's own tables and its Idempotency-Key log say how many escrows really exist.
"""

from __future__ import annotations

import threading
import time

import pytest

from actors.escrow.manager import OVERCOMMIT
from actors.escrow.store import creating_key, load_intent
from messages.escrow_msgs import (
    CreateEscrow,
    EscrowCreated,
    EscrowRefunded,
    EscrowRefused,
    EscrowReleased,
    ReleaseEscrow,
)
from runtime.atomic import AtomicSteps
from runtime.bus import OutcomeUnknown, StreamBus
from tests.kit.escrow import AGENT, CASINO_BUCKET, RESERVE, USD
from venue.errors import VenueUnavailable

pytestmark = pytest.mark.redis

TOTAL = RESERVE + CASINO_BUCKET


class CrashingSteps(AtomicSteps):
    """The worker dies at the final commit of one message: nothing of that commit is written."""

    def __init__(self, base: AtomicSteps):
        super().__init__(base.client, base.keys)
        self.target: str | None = None

    def commit(self, commit, msg_id, now_ms):
        if msg_id == self.target:
            self.target = None
            raise ConnectionError("worker died before its commit")
        return super().commit(commit, msg_id, now_ms)


def breaking_create(w, *, send_first: bool):
    """A venue whose escrow `create` fails once: after doing it (the answer is lost) or before."""
    make = w.venue_factory()
    state = {"armed": True}

    def venue_for(agent):
        venue = make(agent)
        real = venue.escrow.create

        def create(*args, **kwargs):
            if state["armed"]:
                state["armed"] = False
                if send_first:
                    real(*args, **kwargs)
                raise VenueUnavailable("escrow", "POST /escrow/create: timed out", code="timeout")
            return real(*args, **kwargs)
        venue.escrow.create = create
        return venue

    return venue_for


def command(w, amount=25 * USD, hours=24):
    return CreateEscrow(counterparty=w.counterparty_id, amount=amount, description="label 10k images",
                        timeout_hours=hours)


def only(events, kind):
    found = [e for e in events if isinstance(e, kind)]
    assert len(found) == 1, events
    return found[0]


def assert_one_escrow(w, delivery, amount):
    (venue,) = w.venue_escrows()
    assert venue["amount"] == amount
    assert w.admin.idempotency(delivery.envelope.id)["successes"] == 1
    ledger = w.ledger()
    assert ledger.held_by("reserve", "locked") == amount and ledger.held_by("reserve", "reserved") == 0
    assert ledger.total == TOTAL
    assert w.client.hlen(w.keys.reservations(AGENT)) == 0
    assert w.client.hlen(creating_key(w.keys, AGENT)) == 0
    assert w.pending() == 0
    return venue


def test_crash_between_the_venue_and_the_commit_then_redelivery_creates_once(world):
    w = world
    crashing = CrashingSteps(w.steps)
    first = w.start_actor(steps=crashing)
    delivery = w.publish(command(w))
    crashing.target = delivery.envelope.id
    with pytest.raises(ConnectionError):
        first.ask(delivery)
    # the venue has the escrow; the treasury has only the reservation and the intent
    assert len(w.venue_escrows()) == 1
    assert w.ledger().held_by("reserve", "reserved") == 25 * USD + 250_000
    assert load_intent(w.client, w.keys, AGENT, delivery.envelope.id) is not None
    assert w.journal(delivery.envelope.id) == []

    second = w.start_actor()
    w.redeliver(second, delivery)
    venue = assert_one_escrow(w, delivery, 25 * USD)
    created = only(w.journal(delivery.envelope.id), EscrowCreated)
    assert created.recovered and created.escrow_id == venue["id"]
    w.redeliver(second, delivery)  # and once more after the commit: only acked
    assert_one_escrow(w, delivery, 25 * USD)
    assert len(w.journal(delivery.envelope.id)) == 1


def test_lost_answer_then_redelivery_finds_the_escrow(world):
    w = world
    actor = w.start_actor(breaking_create(w, send_first=True))
    delivery = w.publish(command(w))
    with pytest.raises(VenueUnavailable):
        actor.ask(delivery)
    w.redeliver(w.start_actor(), delivery)
    assert_one_escrow(w, delivery, 25 * USD)
    assert only(w.journal(delivery.envelope.id), EscrowCreated).recovered


def test_venue_never_reached_then_redelivery_creates_it_once(world):
    w = world
    actor = w.start_actor(breaking_create(w, send_first=False))
    delivery = w.publish(command(w))
    with pytest.raises(VenueUnavailable):
        actor.ask(delivery)
    assert w.venue_escrows() == []
    w.redeliver(w.start_actor(), delivery)
    assert_one_escrow(w, delivery, 25 * USD)
    assert not only(w.journal(delivery.envelope.id), EscrowCreated).recovered


def test_found_after_its_deadline_is_created_and_refunded_in_one_commit(world):
    w = world
    crashing = CrashingSteps(w.steps)
    delivery = w.publish(command(w, hours=1))
    crashing.target = delivery.envelope.id
    with pytest.raises(ConnectionError):
        w.start_actor(steps=crashing).ask(delivery)
    w.admin.advance_clock(hours=2)  # the worker stays down past the deadline; the venue refunds
    w.redeliver(w.start_actor(), delivery)
    events = w.journal(delivery.envelope.id)
    assert only(events, EscrowCreated).recovered
    assert only(events, EscrowRefunded).returned == 25 * USD - 250_000
    assert len(w.venue_escrows()) == 1
    ledger = w.ledger()
    assert ledger.held_by("reserve", "locked") == 0 and ledger.total == TOTAL - 250_000


def test_unprovable_absence_is_not_guessed(world):
    """More than 50 casino ledger entries since the call: the lookup cannot prove the escrow was
    not created, so nothing is created on a guess: the outcome is unknown (the bus parks the
    command, retries it and alerts past a deadline) and the reservation stays held."""
    w = world
    actor = w.start_actor(breaking_create(w, send_first=False))
    delivery = w.publish(command(w))
    with pytest.raises(VenueUnavailable):
        actor.ask(delivery)
    for _ in range(51):  # a busy casino bucket pushes the recorded entry out of the window
        w.admin.credit(w.creator_id, 10_000)
    with pytest.raises(OutcomeUnknown, match="stays held"):
        w.redeliver(w.start_actor(), delivery)
    assert w.venue_escrows() == []
    assert w.ledger().held_by("reserve", "reserved") == 25 * USD + 250_000 and w.ledger().total == TOTAL
    assert load_intent(w.client, w.keys, AGENT, delivery.envelope.id) is not None
    # while unresolved, the $25 may be locked at the venue: breaker 7 counts it ($95 of room left)
    env = w.send(w.start_actor(), command(w, amount=95 * USD))  # + $0.95 fee > $95
    assert only(w.journal(env.id), EscrowRefused).code == OVERCOMMIT
    env = w.send(w.start_actor(), command(w, amount=94 * USD))  # + $0.94 fee ≤ $95
    assert only(w.journal(env.id), EscrowCreated).amount == 94 * USD


def test_release_crash_then_redelivery_pays_once(world):
    w = world
    actor = w.start_actor()
    created = only(w.journal(w.send(actor, command(w)).id), EscrowCreated)
    counterparty_before = w.venue_balance(w.counterparty_id)
    crashing = CrashingSteps(w.steps)
    delivery = w.publish(ReleaseEscrow(escrow_id=created.escrow_id, proof="ipfs://bafy-delivery"))
    crashing.target = delivery.envelope.id
    with pytest.raises(ConnectionError):
        w.start_actor(steps=crashing).ask(delivery)
    assert w.ledger().held_by("reserve", "locked") == 25 * USD  # paid at the venue, not yet in the ledger
    w.redeliver(w.start_actor(), delivery)  # the venue answers 409; a GET shows it was released
    released = only(w.journal(delivery.envelope.id), EscrowReleased)
    assert released.proof == "ipfs://bafy-delivery" and released.paid == 24_750_000
    assert w.venue_balance(w.counterparty_id) == counterparty_before + 24_750_000
    ledger = w.ledger()
    assert ledger.held_by("reserve", "locked") == 0 and ledger.total == TOTAL - 25 * USD
    assert w.pending() == 0


def test_through_the_bus_a_lost_answer_is_retried_and_creates_once(world, redis_url):
    w = world
    actor = w.start_actor(breaking_create(w, send_first=True))
    bus = StreamBus(redis_url, w.keys, "escrow", [w.keys.shard(AGENT)], lambda d: actor.ask(d), block_ms=50,
                    retry_backoff_ms=1, clock=w.clock)
    bus.ensure_groups()
    env = w.enqueue(command(w))
    stop = threading.Event()
    thread = threading.Thread(target=bus.run, args=(stop,))
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not w.journal(env.id):
            time.sleep(0.02)
    finally:
        stop.set()
        thread.join(5)
        bus.close()
    assert only(w.journal(env.id), EscrowCreated).recovered
    (venue,) = w.venue_escrows()
    assert w.admin.idempotency(env.id)["successes"] == 1
    assert w.ledger().held_by("reserve", "locked") == 25 * USD and w.ledger().total == TOTAL
    assert w.client.xlen(w.keys.dead(w.keys.shard(AGENT))) == 0
