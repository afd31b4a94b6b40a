"""`treasury up` end to end: SIGTERM drains and exits cleanly, and a second run on the same data
dir resumes where the first stopped, including a command queued while it was down."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from actors.ledger import read_ledger, read_risk
from runtime.journal import read_journal
from runtime.keys import Keys
from supervisor.deployment import load_keyring

pytestmark = pytest.mark.redis


def treasury(*args, env, timeout=60, check=True):
    return subprocess.run([sys.executable, "-m", "supervisor.cli", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, check=check)


def start_up(env, data_dir):
    proc = subprocess.Popen([sys.executable, "-m", "supervisor.cli", "up", "--data-dir", str(data_dir),
                             "--roles", "casino,risk", "--prefix", env["TEST_PREFIX"], "--shard-count", "8"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    workers_key = f"{env['TEST_PREFIX']}:workers"
    import redis

    client = redis.Redis.from_url(env["REDIS_URL"])
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"treasury up exited: {proc.stderr.read()}")
        if client.hlen(workers_key) >= 2:
            return proc
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("treasury up did not start its workers")


def stop_up(proc):
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(30)
    err = proc.stderr.read()
    assert code == 0, err
    assert "stopped" in err


def test_up_stops_cleanly_and_resumes(tmp_path, redis_url, prefix, rclient):
    env = {**os.environ, "REDIS_URL": redis_url, "TREASURY_DATA_DIR": str(tmp_path), "TEST_PREFIX": prefix}
    env.pop("TREASURY_KEYS", None), env.pop("TREASURY_KEYS_FILE", None)
    keys = Keys(prefix, 8)
    first = start_up(env, tmp_path)
    try:
        out = treasury("agent", "add", "alice", "--capital", "1000", "--prefix", prefix, env=env).stdout
        assert "capital $1,000.00 allocated" in out
        chains = json.loads(treasury("balances", "alice", "--prefix", prefix, "--json", env=env).stdout)
        assert chains["usdc_total_micros"] == 400_000_000 and len(chains["chains"]) == 8  # the reserve, on Base
        bet = treasury("cmd", "--prefix", prefix, "--wait", "--json", "bet", "alice", "--game", "multiplier",
                       "--target", "10", "--win-prob", "0.12", env=env)
        assert json.loads(bet.stdout)["outcome"] == "BetSettled"
    finally:
        stop_up(first)
    assert rclient.hlen(f"{prefix}:workers") == 0  # every worker drained and signed off
    after_first = read_ledger(rclient, keys, "alice")

    # While it is down, a signed command is queued (as any program may publish one).
    queued = treasury("cmd", "--prefix", prefix, "--json", "bet", "alice", "--game", "multiplier", "--target", "10",
                      "--win-prob", "0.12", env=env)
    queued_id = json.loads(queued.stdout)["id"]

    second = start_up(env, tmp_path)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            outcomes = [e for e in read_journal(rclient, keys, "alice") if e.causation == queued_id]
            if outcomes:
                break
            time.sleep(0.1)
        assert [type(e.body).__name__ for e in outcomes][:1] == ["BetSettled"]
        status = json.loads(treasury("status", "--prefix", prefix, "--shard-count", "8", "--json", env=env).stdout)
        assert json.dumps(status).count("alice") >= 1
    finally:
        stop_up(second)
    ledger = read_ledger(rclient, keys, "alice")
    assert ledger.total == after_first.total + outcomes[0].body.pnl  # nothing lost, nothing applied twice
    assert (tmp_path / "keys.json").exists() and len(load_keyring(tmp_path)) == 2


@pytest.mark.parametrize("argv, words", [
    (["pay", "alice", "--to", "bogus", "--amount", "5", "--description", "x y z"],
     "--to 'bogus': must be a casino agent id"),
    (["pay", "alice", "--to", "ag_0123456789ab", "--amount", "-5", "--description", "xyz"],
     "--amount: -5 is negative; it must be positive"),
    (["bet", "alice", "--win-prob", "1.7"], "--win-prob 1.7: must be strictly between 0 and 1"),
    (["bet", "alice", "--fixed-stake", "nan"], "fixed-stake: NaN is not a finite amount"),
    (["resume", "alice", "--reason", "r"], "this command needs a key of scope 'operator'"),
])
def test_bad_commands_are_refused_at_the_cli_in_one_line_and_nothing_is_sent(tmp_path, redis_url, prefix, rclient, argv,
                                                                             words):
    from runtime.keyring import generate_key
    from supervisor.deployment import record_deployment

    keys = Keys(prefix, 8)
    record_deployment(rclient, keys, {"casino": "http://127.0.0.1:9"}, "paper")
    env = {**os.environ, "REDIS_URL": redis_url, "TREASURY_KEYS": generate_key("only-agent", "agent").env_entry()}
    env.pop("TREASURY_KEYS_FILE", None)
    proc = treasury("cmd", "--prefix", prefix, *argv, env=env, check=False)
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and words in proc.stderr
    assert not [k for k in rclient.scan_iter(match=f"{prefix}:*cmd*")]  # nothing was published


def test_up_restarts_its_embedded_redis_from_the_aof_and_halts_nobody(tmp_path):
    """Issue 9, case 6 through `treasury up`: SIGKILL of the embedded redis-server; the supervisor
    starts it again from the AOF on the same port, the agent and a bet placed before are still
    there, one alert records the outage, nobody is halted, and a bet after it settles."""
    import redis

    env = {**os.environ, "TREASURY_DATA_DIR": str(tmp_path)}
    for name in ("REDIS_URL", "TREASURY_KEYS", "TREASURY_KEYS_FILE"):
        env.pop(name, None)
    proc = subprocess.Popen([sys.executable, "-m", "supervisor.cli", "up", "--data-dir", str(tmp_path), "--roles",
                             "casino,risk", "--shard-count", "8"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "redis.url").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        client = redis.Redis.from_url((tmp_path / "redis.url").read_text(), socket_timeout=5)
        while client.hlen("tr:workers") < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        treasury("agent", "add", "alice", "--capital", "1000", env=env)
        bet = ["cmd", "--wait", "--json", "bet", "alice", "--game", "multiplier", "--target", "10",
               "--win-prob", "0.12"]
        assert json.loads(treasury(*bet, env=env).stdout)["outcome"] == "BetSettled"
        os.kill(int(client.info("server")["process_id"]), signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if client.xlen("tr:alerts"):
                    break
            except redis.RedisError:
                pass
            time.sleep(0.2)
        [(_, fields)] = client.xrange("tr:alerts")
        alert = json.loads(fields[b"alert"])
        assert alert["halted"] == [] and "restarted from its AOF" in alert["reason"]
        keys = Keys("tr", 8)
        assert read_risk(client, keys, "alice").state == "ACTIVE"
        assert [type(e.body).__name__ for e in read_journal(client, keys, "alice")].count("BetSettled") == 1
        assert json.loads(treasury(*bet, env=env).stdout)["outcome"] == "BetSettled"
    finally:
        stop_up(proc)
