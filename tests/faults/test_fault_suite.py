"""Issue 9's fault suite: each kind of fault at seeded random points of a busy run, every trial
checked (see `tests/kit/faults.py` for the checks, `tests/kit/fault_trials.py` for the kinds).

Default run: one short trial per kind. `pytest -m soak tests/faults`: `FAULT_TRIALS` (default 5)
longer trials per kind, with a tally of trials and violations printed at the end.
"""

from __future__ import annotations

import os

import pytest

from tests.kit.fault_trials import KINDS, run_trial

pytestmark = pytest.mark.redis


@pytest.mark.parametrize("kind", KINDS)
def test_one_trial_of_each_fault_leaves_no_violation(kind, tmp_path):
    result = run_trial(kind, seed=1000 + KINDS.index(kind), tmp=tmp_path, bets=10)
    print(f"{kind}: {result.commands} commands, {len(result.violations)} violations, {result.notes}")
    assert result.violations == [], result


@pytest.mark.soak
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("kind", KINDS)
def test_fault_soak(kind, tmp_path, capsys):
    trials = int(os.environ.get("FAULT_TRIALS", "5"))
    failures = []
    for n in range(trials):
        result = run_trial(kind, seed=2000 + 100 * KINDS.index(kind) + n, tmp=tmp_path / f"t{n}", bets=40)
        failures += [f"seed {result.seed}: {v}" for v in result.violations]
        with capsys.disabled():
            print(f"\n{kind} seed {result.seed}: {result.commands} commands, {len(result.violations)} violations, "
                  f"{result.notes}")
    with capsys.disabled():
        print(f"\nfault soak {kind}: {trials} trials, {len(failures)} violations")
    assert failures == []
