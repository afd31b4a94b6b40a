"""Under a real `treasury up` (its own data directory, embedded Redis, sandbox, every default role):
a rebalance after `set-policy` moves reserve money to the casino across silos; `status` shows it in
transit, then it lands and the casino bucket holds it (probe item 1). Slow: the deposit is credited
on the silo role's next 60-second tick, so this is a soak test (`pytest -m soak`)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.supervisor.cli_helpers import clean_env, treasury

pytestmark = [pytest.mark.soak]


def _status(env) -> dict:
    proc = treasury("status", "--no-probe", "--json", "--agent", "carol", env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["agents"][0]


def test_a_rebalance_under_up_lands_and_status_shows_the_transit(tmp_path: Path):
    env = clean_env(TREASURY_DATA_DIR=str(tmp_path))
    up = subprocess.Popen([sys.executable, "-m", "supervisor.cli", "up", "--data-dir", str(tmp_path)], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        for line in up.stdout:
            lines.append(line)
            if line.startswith("running"):
                break
        assert any(line.startswith("workers") and "silo" in line for line in lines), lines  # a default role
        sandbox = next(line.split("at ")[-1].strip() for line in lines if line.startswith("sandbox"))
        added = treasury("agent", "add", "carol", "--capital", "2500.50", env=env)
        assert added.returncode == 0, added.stderr
        if sandbox.startswith("http"):
            httpx.post(f"{sandbox}/wallet/_sandbox/deposit-delay", json={"delay_ms": 0})
        policy = treasury("cmd", "--wait", "--operator", "set-policy", "carol", "casino_target_bp=2500",
                          "reserve_target_bp=3000", env=env)
        assert policy.returncode == 0, policy.stdout + policy.stderr
        moved = treasury("cmd", "--wait", "--operator", "rebalance", "carol", "--reason", "new targets", env=env)
        assert moved.returncode == 0 and "RebalanceCompleted" in moved.stdout, moved.stdout + moved.stderr

        during = _status(env)
        buckets = {b["bucket"]: b for b in during["buckets"]}
        assert buckets["reserve"]["available_micros"] == 750_150_000
        assert during["in_transit"]["amount_micros"] == 250_050_000  # shown while it travels
        assert during["in_transit"]["items"][0]["to_silo"] == "casino"

        deadline = time.monotonic() + 150  # the sandbox's 60 s deposit delay, then the silo tick
        while time.monotonic() < deadline:
            after = _status(env)
            if after["in_transit"]["amount_micros"] == 0:
                break
            time.sleep(2)
        assert after["in_transit"] == {"count": 0, "amount_micros": 0, "items": [], "by_bucket_micros": {}}
        casino = {b["bucket"]: b for b in after["buckets"]}["casino"]
        assert casino["available_micros"] == 375_075_000 + 250_050_000
        types = [e["type"] for e in after["journal"]["events"]]
        assert "SiloTransferLanded" in types and "TransferHeldLanded" in types
    finally:
        up.send_signal(signal.SIGTERM)
        try:
            up.wait(60)
        except subprocess.TimeoutExpired:
            up.kill()
