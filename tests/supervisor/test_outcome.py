"""`treasury cmd --wait` prints an outcome as one readable line: kind, type, code and reason first,
money in dollars, times in UTC, never the raw event with epoch milliseconds."""

from __future__ import annotations

from messages.catalogue import Outcome
from messages.envelope import seeded_ids, wrap
from messages.schema import BetRefused, CapitalAllocated, RiskStateChanged
from supervisor.outcome import describe

IDS = seeded_ids(9)


def line(kind, body):
    return describe(Outcome(kind, wrap(body, agent="a", now_ms=1, new_id=IDS)))


def test_a_refusal_leads_with_its_code_and_reason():
    text = line("refused", BetRefused(code="over_cap", reason="stake $2.50 exceeds the 1.00 % bet cap of $1.50",
                                      fence_seq=7))
    assert text == "refused: BetRefused (over_cap): stake $2.50 exceeds the 1.00 % bet cap of $1.50 [fence_seq 7]"


def test_money_is_in_dollars_and_times_in_utc():
    text = line("done", RiskStateChanged(state="PAUSED", previous="ACTIVE", breaker="daily_loss", reason="r",
                                         total=998_490_000, peak=1_000_000_000, day_start=1_000_000_000,
                                         until_ms=1_767_344_400_000))
    assert "total $998.49" in text and "until 2026-01-02 09:00:00 UTC" in text
    assert "1767344400000" not in text and "998490000" not in text and "\n" not in text
    text = line("done", CapitalAllocated(buckets={"reserve": 400_000_000}, total=1_000_000_000))
    assert text == "done: CapitalAllocated [buckets {reserve=$400.00}, total $1,000.00]"
