"""`treasury cmd --wait` end to end against `treasury up` (real CLI in subprocesses, real Redis):
the outcome comes from the catalogue's terminal events, the exit code says done (0) or refused (1),
and an operator's `set-policy` changes what the casino allows, with the effective numbers quoted.

The issue's reproductions: `set-policy alice max_bet_bp=100`, then a $2.50 fixed-stake bet on the
$150 casino bucket is refused with "1.00 %" and exits 1; `--wait rebalance` returns its outcome
(Skipped or Completed, the latter caused by the last leg, not by the command) with exit 0.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from runtime.keys import Keys
from tests.supervisor.cli_helpers import stop_up, treasury

pytestmark = pytest.mark.redis

ROLES = "casino,risk,rebalancer,reserve"


@pytest.fixture(scope="module")
def up(tmp_path_factory, redis_url):
    """One `treasury up` for the module's tests (each starts the real CLI against it): alice is
    added once; no test depends on what another did to her (see each test's own before/after)."""
    import uuid

    import redis

    tmp_path = tmp_path_factory.mktemp("up")
    prefix = f"t{uuid.uuid4().hex[:10]}"
    rclient = redis.Redis.from_url(redis_url)
    env = {**os.environ, "REDIS_URL": redis_url, "TREASURY_DATA_DIR": str(tmp_path)}
    env.pop("TREASURY_KEYS", None), env.pop("TREASURY_KEYS_FILE", None)
    proc = subprocess.Popen([sys.executable, "-m", "supervisor.cli", "up", "--data-dir", str(tmp_path),
                             "--roles", ROLES, "--prefix", prefix, "--shard-count", "8"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while rclient.hlen(f"{prefix}:workers") < len(ROLES.split(",")):
            if proc.poll() is not None:
                raise AssertionError(f"treasury up exited: {proc.stderr.read()}")
            if time.monotonic() > deadline:
                raise AssertionError("treasury up did not start its workers")
            time.sleep(0.1)
        added = treasury("agent", "add", "alice", "--capital", "1000", "--prefix", prefix, env=env)
        assert "capital $1,000.00 allocated" in added.stdout, added.stderr

        def cmd(*argv):
            return treasury("cmd", "--prefix", prefix, "--timeout", "30", *argv, env=env)

        cmd.prefix = prefix
        yield cmd
    finally:
        stop_up(proc)
        keys = list(rclient.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            rclient.delete(*keys)
        rclient.close()


def test_a_bet_over_the_overridden_cap_is_refused_with_the_effective_number_and_exits_1(up):
    changed = up("--wait", "--operator", "set-policy", "alice", "max_bet_bp=100")
    assert changed.returncode == 0, changed.stdout + changed.stderr
    assert "PolicyChanged: settings={max_bet_bp=100}" in changed.stdout

    bet = up("--wait", "bet", "alice", "--game", "coin_flip", "--fixed-stake", "2.50")
    assert bet.returncode == 1, bet.stdout + bet.stderr
    [line] = bet.stdout.splitlines()  # one readable line, not the event's JSON
    assert "BetRefused: refused (over_cap)" in line and "1.00 %" in line and "$1.50" in line
    assert "{" not in line

    as_json = json.loads(up("--wait", "--json", "bet", "alice", "--fixed-stake", "2.50").stdout)
    assert (as_json["outcome"], as_json["kind"]) == ("BetRefused", "refused")

    within = up("--wait", "bet", "alice", "--game", "coin_flip", "--fixed-stake", "1.50")
    assert within.returncode == 0, within.stdout + within.stderr
    assert "BetSettled: coin_flip stake $1.50" in within.stdout


def test_wait_rebalance_returns_its_outcome_and_exits_0(up):
    started = time.monotonic()
    done = up("--wait", "--operator", "rebalance", "alice", "--reason", "check")
    took = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    assert "RebalanceSkipped:" in done.stdout or "RebalanceCompleted:" in done.stdout
    print(f"rebalance --wait answered in {took:.2f} s (process start included)")


def test_set_policy_with_an_unknown_or_out_of_range_setting_is_refused_before_publishing(up, rclient):
    keys = Keys(up.prefix, 8)
    stream = keys.agent_commands("alice", "rebalancer")
    before = rclient.xlen(stream)
    for setting, words in (("max_bet_percent=1", "unknown policy setting 'max_bet_percent'"),
                           ("max_bet_bp=0", "max_bet_bp: 0 must be in [1, 10000]"),
                           ("daily_loss_bp=ten", "daily_loss_bp")):
        refused = up("--wait", "--operator", "set-policy", "alice", setting)
        assert refused.returncode == 2 and refused.stdout == ""
        assert len(refused.stderr.strip().splitlines()) == 1 and words in refused.stderr
    assert rclient.xlen(stream) == before  # nothing was published


def test_set_policy_is_checked_against_the_stored_overrides_before_publishing(rclient, keys):
    """Valid against the defaults, but not with the floor the operator set before: refused at the CLI."""
    from actors.policy.effective import read_overrides
    from messages.errors import ConfigError
    from supervisor.cmd_checks import check_policy_settings

    rclient.hset(keys.policy("alice"), "reserve_floor_bp", 3500)
    change = ["reserve_target_bp=3000", "trading_target_bp=4500"]
    with pytest.raises(ConfigError, match="reserve_floor_bp 3500 is above the reserve target 3000"):
        check_policy_settings(change, read_overrides(rclient, keys, "alice"))
    assert check_policy_settings(change, read_overrides(rclient, keys, "bob")) == {  # no stored floor: fine
        "reserve_target_bp": 3000, "trading_target_bp": 4500}


def test_money_policy_settings_are_given_in_usd_and_kept_in_micro_usd():
    """`min_move=1` is one dollar, as every amount of the CLI, not one micro-USD."""
    from supervisor.cmd_checks import check_policy_settings

    assert check_policy_settings(["min_move=1", "referral_reinvest_threshold=250.50"]) == {
        "min_move": 1_000_000, "referral_reinvest_threshold": 250_500_000}


def test_a_policy_setting_given_twice_is_refused_rather_than_the_last_one_winning():
    from messages.errors import ConfigError
    from supervisor.cmd_checks import check_policy_settings

    with pytest.raises(ConfigError, match="policy setting 'max_bet_bp' is given twice"):
        check_policy_settings(["max_bet_bp=200", "max_bet_bp=100"])
    with pytest.raises(ConfigError, match="'min_move' is given twice"):
        check_policy_settings(["min_move=1", "min_move=1"])
