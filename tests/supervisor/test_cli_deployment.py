"""The operator's commands against a running `treasury up` (paper mode, real Redis, the sandbox),
each run as the real command in a subprocess that finds the deployment through `--data-dir`
(issue 13, cases 6, 7, 9 and 10; status and `agent list`)."""

from __future__ import annotations

import json
import re
import time

import pytest

from messages.codec import FIELD, encode
from messages.envelope import random_ids, wrap
from messages.schema import CoinFlip, PlaceBet
from runtime.journal import read_journal
from runtime.keyring import Keyring
from runtime.keys import Keys
from runtime.signing import sign
from tests.supervisor.cli_helpers import clean_env, one_line_error, treasury
from tests.supervisor.test_ownership import Up

pytestmark = pytest.mark.redis


def _json(proc) -> dict:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _publish_signed_with(rclient, keys: Keys, key, agent: str) -> str:
    """A coin-flip bet signed with `key`, published as any program may; returns its message id."""
    now = int(time.time() * 1000)
    env = wrap(PlaceBet(game=CoinFlip(), win_prob=0.6), agent=agent, now_ms=now, new_id=random_ids())
    env = sign(env, key, now_ms=now)
    rclient.xadd(keys.agent_commands(agent, "casino"), {FIELD: encode(env)})
    return env.id


def _outcome(rclient, keys: Keys, agent: str, msg_id: str, timeout_s: float = 20):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = [e for e in read_journal(rclient, keys, agent) if e.causation == msg_id]
        if found:
            return found[0].body
        time.sleep(0.1)
    raise AssertionError(f"no outcome for {msg_id}")


@pytest.mark.timeout(300)  # some thirty `treasury` commands in a row: more than the 120 s hang guard when loaded
def test_operator_commands_on_a_running_deployment(tmp_path, redis_url, prefix, rclient):
    d = tmp_path / "deploy"
    up = Up(d, clean_env(REDIS_URL=redis_url), "--prefix", prefix, "--shard-count", "8", "--roles",
            "casino,risk,trading")
    env = clean_env()  # no REDIS_URL: every command below finds the deployment through --data-dir
    at = ["--data-dir", str(d), "--prefix", prefix]
    keys = Keys(prefix, 8)
    try:
        up.wait_running()
        assert treasury("agent", "add", "alice", "--capital", "1000", *at, env=env, timeout=120).returncode == 0

        # agent list: venue ids (pay --to takes the casino one), state and total, in micro-USD
        (alice,) = _json(treasury("agent", "list", *at, "--json", env=env))["agents"]
        assert alice["venue_ids"]["casino"].startswith("ag_") and alice["state"] == "ACTIVE"
        assert alice["total_micros"] == 1_000_000_000

        # cmd --wait without --json: one readable line, dollars, no raw event JSON or epoch ms
        bet = treasury("cmd", *at, "--wait", "bet", "alice", "--game", "multiplier", "--target", "10",
                       "--win-prob", "0.12", env=env)
        assert bet.returncode == 0, bet.stderr
        (line,) = bet.stdout.strip().splitlines()
        assert re.match(r"PlaceBet \w+: BetSettled: multiplier stake \$\d+\.\d\d (won|lost), P&L", line), line
        assert "{" not in line and not re.search(r"\d{12,}", line)

        # keys: a key added while up runs is used without a restart; a rotated one's old secret and a
        # revoked key are refused by the running workers
        new = treasury("keys", "new", "--id", "ops2", "--data-dir", str(d), env=env)
        assert new.returncode == 0 and "reloads it within 2 s, no restart needed" in new.stdout
        old_ops2 = Keyring.from_file(d / "keys.json").get("ops2")
        time.sleep(2.5)
        body = _outcome(rclient, keys, "alice", _publish_signed_with(rclient, keys, old_ops2, "alice"))
        assert type(body).__name__ != "CommandRefused", body
        rotated = treasury("keys", "rotate", "--id", "ops2", "--data-dir", str(d), env=env)
        assert rotated.returncode == 0, rotated.stderr
        time.sleep(2.5)
        body = _outcome(rclient, keys, "alice", _publish_signed_with(rclient, keys, old_ops2, "alice"))
        assert type(body).__name__ == "CommandRefused" and "bad_signature" in body.reason
        fresh = treasury("cmd", *at, "--key-id", "ops2", "--wait", "--json", "bet", "alice", "--win-prob", "0.6",
                         env=env)
        assert _json(fresh)["outcome"] != "CommandRefused"
        new_ops2 = Keyring.from_file(d / "keys.json").get("ops2")
        assert treasury("keys", "revoke", "--id", "ops2", "--data-dir", str(d), env=env).returncode == 0
        time.sleep(2.5)
        body = _outcome(rclient, keys, "alice", _publish_signed_with(rclient, keys, new_ops2, "alice"))
        assert type(body).__name__ == "CommandRefused" and "unknown_key" in body.reason
        line = one_line_error(treasury("cmd", *at, "--key-id", "ops2", "pause", "alice", "--reason", "r",
                                       "--until-resumed", env=env))
        assert "no key 'ops2' in the keyring" in line

        # the refusals are dead letters: listed per reason, shown, dropped
        dead = _json(treasury("dead", "list", *at, "--json", env=env))
        assert dead["total"] == 2 and sum(dead["by_reason"].values()) == 2
        first = dead["entries"][0]["entry"]
        shown = _json(treasury("dead", "show", first, *at, "--json", env=env))
        assert shown["agent"] == "alice" and shown["message"]["body"]["type"] == "PlaceBet"
        retry = one_line_error(treasury("dead", "retry", first, *at, env=env))
        assert "no funds are reserved for message" in retry  # refused at the gate: nothing was reserved
        assert _json(treasury("dead", "drop", first, *at, "--json", env=env))["dropped"] == [first]
        assert _json(treasury("dead", "list", *at, "--json", env=env))["total"] == 1

        # trading: open with stop-loss and take-profit, list, close
        opened = _json(treasury("trade", "open", "alice", "--coin", "BTC", "--side", "long", "--win-rate", "0.55",
                                "--win-loss-ratio", "2", "--stop", "0.02", "--leverage", "3", *at, "--wait", "--json",
                                env=env, timeout=90))
        assert opened["outcome"] == "PositionOpened", opened
        assert opened["event"]["margin_micros"] > 0 and "margin" not in opened["event"]
        (position,) = _json(treasury("trade", "list", "alice", *at, "--json", env=env))["positions"]
        assert position["position_id"] == opened["event"]["position_id"]
        assert float(position["stop_loss"]) < float(position["entry_price"]) < float(position["take_profit"])

        # status through --data-dir: workers with uptime and restarts, venues reachable, units named
        status = _json(treasury("status", *at, "--json", env=env))
        assert status["shard_count"] == 8
        workers = status["deployment"]["workers"]
        assert {w["role"] for w in workers} == {"casino", "risk", "trading"}
        assert all(w["uptime_ms"] > 0 and w["restarts"] == 0 and w["last_exit"] == "" for w in workers)
        assert all(v["reachable"] for v in status["deployment"]["venues"])
        (agent,) = status["agents"]
        assert agent["positions"]["count"] == 1 and agent["positions"]["margin_micros"] == position["margin_micros"]

        closed = _json(treasury("trade", "close", "alice", position["position_id"], "--reason", "test over", *at,
                                "--wait", "--json", env=env, timeout=90))
        assert closed["outcome"] == "PositionClosed", closed
        assert _json(treasury("trade", "list", "alice", *at, "--json", env=env))["positions"] == []

        # alerts: what the supervisor raised, readable without redis-cli
        rclient.xadd(f"{prefix}:alerts", {"alert": json.dumps({"at_ms": 1, "reason": "worker x restarted 6 times",
                                                               "halted": ["alice"]})})
        alerts = _json(treasury("alerts", *at, "--json", env=env))
        assert alerts["total"] == 1 and alerts["alerts"][0]["reason"] == "worker x restarted 6 times"
    finally:
        assert up.stop() == 0, up.text
    line = one_line_error(treasury("status", *at, env=env))  # stopped: said so, not a silent default
    assert "no running deployment found" in line
