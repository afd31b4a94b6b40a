"""The referral actor's itemised casino path reads the ledger as the real casino writes it: UUID
ids that do not order, rows of one second oldest first, a 50-row window. Commissions are counted
by time (closed seconds past the watermark), each exactly once."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from actors.referral import LEGACY_WATERMARK, ReferralState, read_casino
from venue.client.types import LedgerEntry

T0 = 1_796_006_880  # Unix seconds


def row(second: int, amount: int, reason: str, kind: str = "credit") -> LedgerEntry:
    return LedgerEntry(id=str(uuid.uuid4()), type=kind, amount=amount, agent_id="ag_1", balance_after=0,
                       reason=reason, reference=None, service="casino", created_at=second,
                       at="2026-11-30T00:00:00.000Z")


@dataclass
class Ledger:
    """The real listing: newest second first, oldest first within a second, 50 rows."""

    rows: list[LedgerEntry] = field(default_factory=list)
    total_earned: int = 0
    now_s: int | None = None

    def ledger(self) -> list[LedgerEntry]:
        ordered = sorted(enumerate(self.rows), key=lambda p: (-p[1].created_at, p[0]))
        return [r for _, r in ordered][:50]

    def referral_stats(self):
        return type("Stats", (), {"total_earned": self.total_earned})()

    def venue_now_ms(self) -> int | None:
        return None if self.now_s is None else self.now_s * 1000

    def add(self, second: int, amount: int, reason: str = "referral_commission_l1:bet_x", kind: str = "credit"):
        self.rows.append(row(second, amount, reason, kind))
        if reason.startswith("referral_commission_"):
            self.total_earned += amount


def state(watermark: int, earned: int = 0) -> ReferralState:
    return ReferralState(casino_entry=watermark, earned={"casino": earned, "wallet": 0, "trading": 0})


def test_counts_closed_seconds_once_whatever_the_ids_and_the_order_within_a_second():
    venue = Ledger()
    venue.add(T0 + 1, 100)
    venue.add(T0 + 1, 5, "reservation", "debit")
    venue.add(T0 + 1, 200)
    venue.add(T0 + 2, 400)  # the newest second: still open, counted by the next sweep
    first = read_casino(venue, state(T0))
    assert first.total == 300 and first.newest_entry == T0 + 1
    venue.add(T0 + 2, 800)  # lands in the same (then open) second after the first read
    venue.add(T0 + 3, 1)
    second = read_casino(venue, state(first.newest_entry, 300))
    assert second.total == 1200 and second.newest_entry == T0 + 2


def test_the_venue_clock_closes_the_newest_second():
    venue = Ledger(now_s=T0 + 3)
    venue.add(T0 + 2, 400)
    reading = read_casino(venue, state(T0))
    assert reading.total == 400 and reading.newest_entry == T0 + 2


def test_a_full_page_that_does_not_reach_the_watermark_takes_the_rest_from_the_cumulative_figure():
    venue = Ledger()
    venue.add(T0 + 1, 700)  # beyond the 50-row window by the time of the sweep
    for i in range(60):
        venue.add(T0 + 10 + i, 1, "reservation", "debit")
    venue.add(T0 + 80, 30)
    venue.add(T0 + 90, 5, "reservation", "debit")
    reading = read_casino(venue, state(T0))
    assert reading.credits == ((T0 + 80, 30),) and reading.beyond_page == 700 and reading.total == 730


def test_an_old_entry_number_watermark_is_settled_by_the_cumulative_figure_once():
    assert 50 < LEGACY_WATERMARK
    venue = Ledger()
    venue.add(T0 + 1, 100)
    venue.add(T0 + 2, 900)  # open second: left for the next sweep, not in this total
    reading = read_casino(venue, state(50, earned=0))
    assert reading.total == 100 and reading.credits == () and reading.newest_entry == T0 + 1
    after = read_casino(venue, state(reading.newest_entry, earned=100))
    assert after.total == 0  # T0 + 2 is still the newest, still open
    venue.add(T0 + 3, 1)
    assert read_casino(venue, state(reading.newest_entry, earned=100)).total == 900
