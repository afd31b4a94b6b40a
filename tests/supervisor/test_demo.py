"""`treasury demo` end to end: two worker processes, a real Redis, the sandbox over HTTP."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from supervisor.demo import run_demo

pytestmark = pytest.mark.redis


def _without_timing(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k != "timing"}


def test_same_seed_same_story_on_embedded_and_external_redis(monkeypatch, redis_url):
    monkeypatch.delenv("REDIS_URL", raising=False)
    embedded = run_demo(seed=7)
    monkeypatch.setenv("REDIS_URL", redis_url)
    external = run_demo(seed=7)
    assert embedded["timing"]["redis"] == "embedded" and external["timing"]["redis"] == "REDIS_URL"
    assert _without_timing(embedded) == _without_timing(external)

    s = embedded
    assert s["risk"]["state"] == "PAUSED" and s["risk"]["breaker"] == "daily_loss"
    assert s["breakers_fired"][0]["hold_ms"] == 24 * 3_600_000
    # the breaker fired on the first loss beyond 5 % of the day-start total, not before
    assert s["capital_micros"] - s["total_micros"] > s["capital_micros"] * 5 // 100
    assert s["total_micros"] == s["capital_micros"] + s["pnl_micros"]
    assert s["after_stop"]["code"] == "paused"
    assert s["bets"]["refused"].get("no_edge", 0) > 0  # negative-EV bets were refused, not placed
    assert s["conservation"]["matches"]
    workers = s["timing"]["workers"]
    assert set(workers) == {"casino", "risk"} and workers["casino"]["pid"] != workers["risk"]["pid"]
    assert all(w["exit_code"] == 0 for w in workers.values())


def test_cli_json_is_one_object(monkeypatch, redis_url):
    monkeypatch.setenv("REDIS_URL", redis_url)
    out = subprocess.run([sys.executable, "-m", "supervisor.cli", "demo", "--seed", "3", "--json"],
                         capture_output=True, text=True, timeout=300, check=True).stdout
    summary = json.loads(out)
    assert summary["seed"] == 3 and summary["stopped_because"]


@pytest.mark.parametrize("argv, words", [
    (["kelly", "--win-prob", "1.5", "--net-odds", "1", "--bankroll", "100"], "win-prob: '1.5' is outside [0, 1]"),
    (["kelly", "--win-prob", "0.5", "--net-odds", "0", "--bankroll", "100"], "net-odds: '0' must be greater than 0"),
    (["kelly", "--win-prob", "0.5", "--net-odds", "1", "--bankroll", "-3"],
     "bankroll: -3 is negative; it must be positive"),
    (["kelly", "--win-prob", "0.5", "--net-odds", "1", "--bankroll", "nan"], "bankroll: NaN is not a finite amount"),
    (["kelly", "--win-prob", "0.5", "--net-odds", "1", "--bankroll", "0"], "bankroll: '0' must be more than 0"),
    (["kelly", "--win-prob", "0.5", "--net-odds", "1", "--bankroll", " 10"], "bankroll: ' 10' has spaces around"),
    (["kelly", "--win-prob", "1", "--net-odds", "1", "--bankroll", "100"],
     "--win-prob 1: must be strictly between 0 and 1 (a certain bet is no estimate)"),
    (["kelly", "--win-prob", "0", "--net-odds", "1", "--bankroll", "100"],
     "--win-prob 0: must be strictly between 0 and 1 (a certain bet is no estimate)"),
    (["demo", "--scenario", "daily-loss", "--list-scenarios"], "--list-scenarios names the scenarios and takes no"),
])
def test_kelly_cli_rejects_bad_input_in_one_line(argv, words):
    proc = subprocess.run([sys.executable, "-m", "supervisor.cli", *argv], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"treasury {argv[0]}: error: {words}"), lines
    assert proc.stdout == ""


def test_kelly_cli_json():
    proc = subprocess.run([sys.executable, "-m", "supervisor.cli", "kelly", "--win-prob", "0.55", "--net-odds", "1",
                           "--bankroll", "1000", "--fraction", "quarter", "--json"],
                          capture_output=True, text=True, timeout=60, check=True)
    data = json.loads(proc.stdout)
    assert data["stake_micros"] == 20_000_000 and data["capped"] and data["full_kelly"] == "0.100000"
