"""Crash safety: the flow is killed between the venue and the commit (an injected failure), the
entry stays pending, and its redelivery must never open a second position — it finds the first
one at the venue and books it, once. Positions are counted at the sandbox."""

from __future__ import annotations

import pytest

from actors.trading.book import plans_key
from messages.trading_msgs import CheckExits, ClosePosition, OrderRefused, PositionClosed, PositionOpened, StopMoved
from tests.kit.trading import TRADING, USD, Harness, assert_books, order
from venue.client.trading import TradingClient
from venue.errors import VenueUnavailable

pytestmark = pytest.mark.redis

FEE = 2_750_000


class Crash(Exception):
    """The worker dying at the worst moment."""


def crash_final_commit(h: Harness, msg_id: str, times: int = 1) -> list[str]:
    """Make the commit of `msg_id` (the one after the venue call) fail `times` times."""
    real = h.steps.commit
    crashed: list[str] = []

    def commit(c, commit_id, now_ms):
        if commit_id == msg_id and len(crashed) < times:
            crashed.append(commit_id)
            raise Crash(f"killed before committing {commit_id}")
        return real(c, commit_id, now_ms)

    h.steps.commit = commit
    return crashed


def test_a_redelivered_order_finds_its_position_instead_of_opening_another(harness):
    h = harness
    h.set_price("BTC", "100000")
    d = h.deliver(order())
    crash_final_commit(h, d.envelope.id)
    with pytest.raises(Crash):
        h.actor.ask(d)
    # the venue opened it; the treasury holds the reservation and the plan; the entry is pending
    assert len(h.venue_rows()) == 1
    held = 1_000 * USD + 5 * USD
    assert h.ledger()["reserved"] == held and h.pending() == 1
    assert h.rclient.hexists(plans_key(h.steps.keys, h.agent), d.envelope.id)

    h.set_price("BTC", "100500")  # the market moved meanwhile: the plan, not a new sizing, decides
    h.redeliver(d)
    opened = h.one(d, PositionOpened)
    rows = h.venue_rows()
    assert len(rows) == 1 and rows[0].position_id == opened.position_id
    assert opened.reconstructed and opened.entry_price == "100000"
    assert (opened.notional, opened.margin, opened.fee) == (5_000 * USD, 1_000 * USD, FEE)  # fee as the venue charged
    assert_books(h)
    # the position is fully usable: it closes and settles like any other
    closed = h.one(h.send(ClosePosition(position_id=opened.position_id, reason="done")), PositionClosed)
    assert closed.pnl == 25 * USD
    assert_books(h)

    h.redeliver(d)  # a late duplicate of the same entry changes nothing
    assert len(h.venue_rows()) == 1 and len(h.events(d, PositionOpened)) == 1
    assert_books(h)


def test_after_redis_lost_the_plan_and_reservation_the_redelivery_adopts_the_open_position(harness, monkeypatch):
    """An AOF suffix lost (appendfsync everysec): the venue opened the position, but Redis lost the
    plan, the reservation and the applied id, while the command entry survived. The redelivery
    plans afresh; the new plan must not count the lost attempt's position as "there before"."""
    from actors.trading.actor import TradingBucket

    h = harness
    monkeypatch.setattr(TradingBucket, "redis_may_lose_writes", lambda self: True)
    h.set_price("BTC", "100000")
    d = h.deliver(order())
    crash_final_commit(h, d.envelope.id)
    with pytest.raises(Crash):
        h.actor.ask(d)
    assert len(h.venue_rows()) == 1
    keys = h.steps.keys
    held = int(h.rclient.hget(keys.ledger(h.agent), "trading:reserved"))
    h.rclient.hdel(plans_key(keys, h.agent), d.envelope.id)          # the lost suffix: plan,
    h.rclient.hdel(keys.reservations(h.agent), d.envelope.id)        # reservation,
    h.rclient.hincrby(keys.ledger(h.agent), "trading:reserved", -held)  # the money it held
    h.rclient.hincrby(keys.ledger(h.agent), "trading", held)
    h.redeliver(d)
    rows = h.venue_rows()
    opened = h.one(d, PositionOpened)
    assert len(rows) == 1 and rows[0].position_id == opened.position_id   # adopted, not opened twice
    assert opened.reconstructed
    assert_books(h)


def test_a_crash_before_the_venue_call_opens_exactly_once_on_redelivery(harness, monkeypatch):
    h = harness
    h.set_price("BTC", "100000")
    real = TradingClient.open_position_once
    calls = []

    def lost(self, *args, **kwargs):
        calls.append(args)
        if len(calls) == 1:
            raise Crash("killed before the order left")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(TradingClient, "open_position_once", lost)
    d = h.deliver(order())
    with pytest.raises(Crash):
        h.actor.ask(d)
    assert h.venue_rows() == [] and h.ledger()["reserved"] > 0
    h.redeliver(d)
    opened = h.one(d, PositionOpened)
    assert not opened.reconstructed and len(h.venue_rows()) == 1 and len(calls) == 2
    assert_books(h)


def test_a_halt_committed_after_the_crash_releases_the_reservation(harness, monkeypatch):
    h = harness
    h.set_price("BTC", "100000")

    def lost(self, *args, **kwargs):
        raise VenueUnavailable("trading", "timed out", code="timeout")

    monkeypatch.setattr(TradingClient, "open_position_once", lost)
    d = h.deliver(order())
    with pytest.raises(VenueUnavailable):
        h.actor.ask(d)
    monkeypatch.undo()
    h.set_risk(state="HALTED", reason="treasury drawdown")
    h.redeliver(d)
    refused = h.one(d, OrderRefused)
    assert refused.code == "halted" and h.venue_rows() == []
    assert_books(h)
    assert h.ledger()["bucket"] == TRADING


def test_a_position_closed_by_its_stop_before_the_redelivery_is_booked_open_and_closed(harness):
    h = harness
    h.set_price("BTC", "100000")
    d = h.deliver(order())
    crash_final_commit(h, d.envelope.id)
    with pytest.raises(Crash):
        h.actor.ask(d)
    # Meanwhile the price falls through the stop and the venue's exit check fires it (the
    # treasury's own tick does not know the position yet and leaves it alone).
    h.set_price("BTC", "97000")
    h.send(CheckExits())
    assert h.client.check_exits().triggered == 1
    h.redeliver(d)
    opened = h.one(d, PositionOpened)
    closed = h.one(d, PositionClosed)
    assert opened.reconstructed and closed.reconstructed
    assert (closed.position_id, closed.reason, closed.pnl, closed.fee) == (
        opened.position_id, "closed_before_booked", -150 * USD, FEE)
    assert len(h.venue_rows()) == 1 and h.positions() == {}
    assert_books(h)


def test_a_close_whose_commit_was_lost_is_settled_once_on_redelivery(harness):
    h = harness
    h.set_price("BTC", "100000")
    opened = h.one(h.send(order(side="short")), PositionOpened)
    h.set_price("BTC", "99000")
    d = h.deliver(ClosePosition(position_id=opened.position_id, reason="agent exit"))
    crash_final_commit(h, d.envelope.id)
    with pytest.raises(Crash):
        h.actor.ask(d)
    assert h.client.positions().positions == []  # the venue closed it
    h.set_price("BTC", "98000")
    h.redeliver(d)
    closed = h.one(d, PositionClosed)
    assert (closed.pnl, closed.fee, closed.reconstructed) == (50 * USD, FEE, True)  # the price of the real close
    assert_books(h)


def test_an_exit_tick_whose_commit_was_lost_settles_once_on_redelivery(harness):
    h = harness
    h.set_price("BTC", "100000")
    h.one(h.send(order(trail_bp=100, stop_distance="0.01")), PositionOpened)
    h.set_price("BTC", "98500")
    d = h.deliver(CheckExits())
    crash_final_commit(h, d.envelope.id)
    with pytest.raises(Crash):
        h.actor.ask(d)
    h.redeliver(d)
    closed = h.one(d, PositionClosed)
    assert (closed.reason, closed.pnl, closed.fee, closed.reconstructed) == ("closed_at_venue", -75 * USD, FEE, True)
    assert len(h.events(kind=PositionClosed)) == 1
    assert_books(h)


def test_a_redelivered_tick_does_not_trip_over_a_stop_it_can_no_longer_move(harness):
    """The tick ratcheted the trail and the venue fired the target, then the commit was lost. The
    redelivery ratchets again, but the venue refuses a stop on a closed position: the tick goes on
    and settles the close it finds in the venue's database."""
    h = harness
    h.set_price("BTC", "100000")
    opened = h.one(h.send(order(trail_bp=200)), PositionOpened)
    h.set_price("BTC", "104500")
    d = h.deliver(CheckExits())
    crash_final_commit(h, d.envelope.id)
    with pytest.raises(Crash):
        h.actor.ask(d)
    h.redeliver(d)
    closed = h.one(d, PositionClosed)
    assert (closed.position_id, closed.reason, closed.pnl, closed.reconstructed) == (
        opened.position_id, "closed_at_venue", 225 * USD, True)
    assert h.events(d, StopMoved) == []  # the move that reached the venue was never committed
    assert_books(h)
