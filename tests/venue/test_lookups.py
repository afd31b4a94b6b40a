"""Look-ups before a re-spend, against the sandbox: FOUND, ABSENT only when the rows read cover
the spend's time (or the whole list), UNKNOWN otherwise — for escrow creations and casino
withdrawals, whose lists are 50-row windows without paging."""

from __future__ import annotations

import pytest

from venue.client import CasinoClient, EscrowClient, SandboxAdmin
from venue.client.escrow import tag_description
from venue.client.lookup import Lookup, Presence, scan_pages

ADDRESS = "0x" + "ab" * 20


@pytest.fixture
def venue(sandbox_factory):
    handle = sandbox_factory(seed=41)
    clock = handle.ctx.clock
    casino = CasinoClient(handle.urls["casino"], now_ms=clock.now_ms, backoff_s=0.001)
    reg = casino.register()
    worker = CasinoClient(handle.urls["casino"]).register()
    SandboxAdmin(handle.root_url).credit(reg.agent_id, 500_000_000)
    escrow = EscrowClient(handle.urls["escrow"], reg.api_key, casino_url=handle.urls["casino"], now_ms=clock.now_ms)
    yield handle, clock, casino, escrow, worker.agent_id
    casino.close()
    escrow.close()


def test_an_escrow_creation_behind_a_busy_ledger_is_unknown_not_absent(venue):
    handle, clock, casino, escrow, worker = venue
    clock.advance(120_000)
    sent_at = clock.now_ms()
    created = escrow.create(worker, 1_000_000, tag_description("job", "e1"), idempotency_key="e1")
    assert escrow.lookup_created(tag_description("job", "e1"), 1_000_000, since_ms=sent_at).found
    assert escrow.lookup_created(tag_description("job", "e2"), 1_000_000, since_ms=sent_at).absent  # < 50 rows
    for i in range(60):  # the ledger window slides past the creation
        clock.advance(1_000)
        casino.bet("coin_flip", 10_000, {"side": "heads"}, client_seed=f"b{i}", idempotency_key=f"b{i}")
    assert escrow.lookup_created(tag_description("job", "e1"), 1_000_000, since_ms=sent_at).unknown
    missing = escrow.lookup_created(tag_description("job", "e2"), 1_000_000, since_ms=sent_at)
    assert missing.unknown and "reach back" in missing.reason
    # a creation sent after rows older than it were read back: absence is proven by time
    clock.advance(120_000)
    later = clock.now_ms()
    assert escrow.lookup_created(tag_description("job", "e3"), 1_000_000, since_ms=later).absent
    assert created.escrow_id


def test_a_withdrawal_is_found_or_proven_absent_by_its_time(venue):
    handle, clock, casino, escrow, worker = venue
    clock.advance(120_000)
    sent_at = clock.now_ms()
    done = casino.withdraw(2_000_000, ADDRESS, idempotency_key="w1")
    found = casino.lookup_withdrawal(2_000_000, ADDRESS, since_ms=sent_at)
    assert found.found and found.value.id == done.withdrawal_id
    assert casino.lookup_withdrawal(3_000_000, ADDRESS, since_ms=sent_at).absent


def test_clocks_that_disagree_prove_nothing_by_time(sandbox_factory):
    handle = sandbox_factory(seed=42)
    casino = CasinoClient(handle.urls["casino"])  # our clock: the system's; the venue's: a manual one
    casino.register()
    assert not casino.clocks_agree()
    window = scan_pages([([{"t": 1_000}], False)], match=lambda r: False, time_ms=lambda r: r["t"],
                        since_ms=10**12, what="x", clocks_agree=casino.clocks_agree())
    assert window.unknown
    whole = scan_pages([([{"t": 1_000}], True)], match=lambda r: False, time_ms=lambda r: r["t"], since_ms=10**12,
                       what="x", clocks_agree=False)
    assert whole.absent  # a whole list read proves absence whatever the clocks say


def test_scan_pages_reads_every_row_of_a_page_whatever_the_order():
    page = [{"id": "b", "t": 5_000}, {"id": "a", "t": 4_000}, {"id": "c", "t": 5_000}]
    found = scan_pages([(page, False)], match=lambda r: r["id"] == "c", time_ms=lambda r: r["t"], since_ms=0,
                       what="x")
    assert found.found and found.value["id"] == "c" and found.pages == 1
    assert isinstance(found, Lookup) and found.presence is Presence.FOUND
    assert found.map(lambda r: r["id"]).value == "c"
    unread = scan_pages([(page, False)], match=lambda r: False, time_ms=lambda r: None, since_ms=0, what="x")
    assert unread.unknown and "no time" in unread.reason


def test_a_full_position_listing_proves_an_open_absent_only_when_it_reaches_back():
    from decimal import Decimal

    from venue.client.trading import POSITIONS_PAGE, listing_covers
    from venue.client.trading_types import Position

    def pos(pid: str, second: int) -> Position:
        return Position(position_id=pid, coin="BTC", side="long", size_usd=1, entry_price=Decimal(1),
                        current_price=None, leverage=Decimal(1), margin_used=None, liquidation_price=None,
                        unrealized_pnl=0, status="closed", opened_at_s=second, closed_at_s=None)

    newer = [pos(f"n{i}", 200 + i) for i in range(POSITIONS_PAGE - 2)]
    assert listing_covers(newer[:10], {"old"})  # not full: the whole history
    # full, and two positions from before the open, of different seconds, still listed: covered
    assert listing_covers(newer + [pos("b2", 100), pos("b1", 90)], {"b1", "b2"})
    # full, and the only ones from before share a second (or are gone): unknown
    assert not listing_covers(newer + [pos("b2", 100), pos("b1", 100)], {"b1", "b2"})
    assert not listing_covers(newer + [pos("x", 1), pos("y", 2)], {"b1"})
