"""The risk-state authority table, cell by cell (expected values written from the table in
docs/policy.md, not from the code): who may move ACTIVE / PAUSED / HALTED which way."""

from __future__ import annotations

import pytest

from actors.policy.authority import may_change

NOW = 1_000_000
SOON, LATER = NOW + 60_000, NOW + 3_600_000

# (from state, from until, to state, to until) -> the authorities that may do it
CELLS = [
    (("ACTIVE", 0, "PAUSED", SOON), {"breaker", "agent", "operator"}),
    (("ACTIVE", 0, "HALTED", 0), {"breaker", "agent", "operator"}),
    (("PAUSED", SOON, "PAUSED", LATER), {"breaker", "agent", "operator"}),  # later end: stricter
    (("PAUSED", SOON, "PAUSED", 0), {"breaker", "agent", "operator"}),  # until resumed: strictest pause
    (("PAUSED", LATER, "PAUSED", SOON), {"operator"}),  # earlier end: laxer
    (("PAUSED", 0, "PAUSED", LATER), {"operator"}),  # an end where there was none: laxer
    (("PAUSED", SOON, "ACTIVE", 0), {"operator"}),
    (("PAUSED", SOON, "HALTED", 0), {"breaker", "agent", "operator"}),
    (("HALTED", 0, "PAUSED", SOON), {"operator"}),  # issue 9 case 1: the agent key cannot do this
    (("HALTED", 0, "ACTIVE", 0), {"operator"}),
    (("HALTED", 0, "HALTED", 0), {"breaker", "agent", "operator"}),
]


@pytest.mark.parametrize("change, allowed", CELLS)
@pytest.mark.parametrize("who", ["internal", "expiry", "breaker", "agent", "operator"])
def test_each_cell_of_the_table(change, allowed, who):
    verdict = may_change(*change, who, NOW)
    assert (verdict is None) == (who in allowed), verdict


def test_an_ended_pause_lapses_to_active_by_expiry_and_counts_as_active():
    assert may_change("PAUSED", NOW - 1, "ACTIVE", 0, "expiry", NOW) is None
    assert may_change("PAUSED", NOW + 1, "ACTIVE", 0, "expiry", NOW) is not None
    assert may_change("PAUSED", NOW - 1, "PAUSED", SOON, "agent", NOW) is None  # over: pausing again is stricter


def test_a_bus_without_a_gate_is_a_trusted_writer():
    assert may_change("HALTED", 0, "ACTIVE", 0, None, NOW) is None


def test_a_refusal_names_a_pause_end_as_a_utc_time_not_epoch_ms():
    end = 1_796_433_106_169  # 2026-12-05 01:11:46.169 UTC
    verdict = may_change("HALTED", 0, "PAUSED", end, "agent", end - 3_600_000)
    assert verdict == ("HALTED -> PAUSED until 2026-12-05 01:11:46 UTC relaxes the risk state and needs an operator "
                       "key (this command carries agent authority)")
    verdict = may_change("PAUSED", end, "PAUSED", end - 60_000, "agent", end - 3_600_000)
    assert verdict is not None and verdict.startswith(
        "PAUSED until 2026-12-05 01:11:46 UTC -> PAUSED until 2026-12-05 01:10:46 UTC relaxes"), verdict
    assert str(end) not in verdict
