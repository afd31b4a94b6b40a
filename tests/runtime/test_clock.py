"""The one clock module: the wall clock can be pushed forward, the manual clock moves only when
told, both serve the sandbox as a `MovableClock`, and time never goes back."""

from __future__ import annotations

import pytest

import sandbox.clock
from runtime.clock import ManualClock, MovableClock, SystemClock


def test_the_system_clock_is_pushed_forward_by_advance():
    clock = SystemClock()
    before = clock.now_ms()
    after = clock.advance(25 * 3600 * 1000)
    assert after >= before + 25 * 3600 * 1000 and clock.now_ms() >= after


@pytest.mark.parametrize("clock", [SystemClock(), ManualClock(1_000)], ids=["system", "manual"])
def test_time_never_goes_back(clock):
    with pytest.raises(ValueError):
        clock.advance(-1)
    assert isinstance(clock, MovableClock)


def test_the_manual_clock_moves_only_when_told():
    clock = ManualClock(1_000)
    assert (clock.now_ms(), clock.advance(500), clock.now_ms()) == (1_000, 1_500, 1_500)


def test_the_sandbox_uses_the_same_clocks():
    assert sandbox.clock.ManualClock is ManualClock and sandbox.clock.SystemClock is SystemClock
    assert sandbox.clock.Clock is MovableClock
