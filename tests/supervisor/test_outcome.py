"""`treasury cmd --wait` prints an outcome as one readable line: the event type, then the journal's
summary of it (money in dollars, a refusal as `refused (code): reason`), never raw event JSON."""

from __future__ import annotations

from messages.catalogue import Outcome
from messages.envelope import seeded_ids, wrap
from messages.schema import BetRefused
from messages.treasury_msgs import PolicyChanged, RebalanceCompleted
from supervisor.outcome import describe

IDS = seeded_ids(9)


def line(kind, body):
    return describe(Outcome(kind, wrap(body, agent="a", now_ms=1, new_id=IDS)))


def test_a_refusal_leads_with_its_code_and_reason():
    text = line("refused", BetRefused(code="over_cap", reason="the stake $2.50 exceeds the 1.00 % bet cap of $1.50",
                                      fence_seq=7))
    assert text == "BetRefused: refused (over_cap): the stake $2.50 exceeds the 1.00 % bet cap of $1.50"


def test_money_is_in_dollars_and_settings_are_spelled_out():
    text = line("done", RebalanceCompleted(saga="s1", reason="drift", moves=2, moved=15_000_000, held=0))
    assert "moved=$15.00" in text and "15000000" not in text and "\n" not in text
    assert line("done", PolicyChanged(settings={"max_bet_bp": 100}, policy={"max_bet_bp": 100})) == \
        "PolicyChanged: settings={max_bet_bp=100}, policy={max_bet_bp=100}"


def test_a_rebalance_whose_money_still_travels_says_it_may_come_back():
    """`--wait rebalance` ends at the booking; money moving between venues is not there yet."""
    travelling = line("done", RebalanceCompleted(saga="s1", reason="drift", moves=3, moved=131_570_000,
                                                 held=131_570_000))
    assert "$131.57 of it still travels between venues and may yet come back" in travelling
    settled = line("done", RebalanceCompleted(saga="s1", reason="drift", moves=1, moved=10_000_000, held=0))
    assert "travels" not in settled
