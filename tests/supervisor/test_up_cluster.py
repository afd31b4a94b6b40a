"""A whole deployment on a real Redis Cluster of three masters (started here from the system
redis-server; skipped when it cannot be started): `treasury up --redis-url redis+cluster://...`
with its supervisor, scheduler and workers, an agent onboarded at start and one by `agent add`,
a bet with `cmd --wait`, `status` (from the agent set, then from a SCAN of every node) and
`reconcile`; the ledger holds exactly the capital plus the bet's P&L. And a dead-lettered entry
naming an agent of another shard (another slot) is dead-lettered and journaled, not refused
with CROSSSLOT."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from actors.ledger import read_ledger
from messages.codec import FIELD, encode
from messages.envelope import seeded_ids, wrap
from messages.money import parse_usd
from messages.schema import BalancesChanged
from runtime.bus import HandlerRejected, StreamBus
from runtime.keys import Keys
from runtime.redis_client import make_client, slot_of
from tests.supervisor.cli_helpers import stop_up, treasury

ROLES = "casino,risk"
PREFIX = "tr"
SHARDS = 8


@pytest.fixture(scope="module")
def cluster_url():
    from supervisor.embedded_cluster import LocalCluster

    try:
        cluster = LocalCluster(3)
        url = cluster.start()
    except Exception as exc:  # no redis-server, no cluster support, no free ports: not this machine
        pytest.skip(f"cannot start a Redis Cluster here: {exc}")
    yield url
    cluster.stop()


def test_a_deployment_runs_on_a_cluster_onboards_bets_and_conserves_money(cluster_url, tmp_path):
    client = make_client(cluster_url)
    keys = Keys(PREFIX, SHARDS)
    env = {k: v for k, v in os.environ.items()
           if k not in ("REDIS_URL", "TREASURY_KEYS", "TREASURY_KEYS_FILE", "TREASURY_DATA_DIR")}
    agents_file = tmp_path / "agents.json"
    agents_file.write_text(json.dumps({"agents": [{"name": "bob", "capital": 200}]}))
    data = tmp_path / "data"
    proc = subprocess.Popen([sys.executable, "-m", "supervisor.cli", "up", "--redis-url", cluster_url,
                             "--data-dir", str(data), "--roles", ROLES, "--prefix", PREFIX,
                             "--shard-count", str(SHARDS), "--agents", str(agents_file)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while client.hlen(keys.workers()) < len(ROLES.split(",")):
            if proc.poll() is not None:
                raise AssertionError(f"treasury up exited: {proc.stderr.read() if proc.stderr else ''}")
            assert time.monotonic() < deadline, "treasury up did not start its workers"
            time.sleep(0.1)
        where = ("--data-dir", str(data))  # the CLI finds the cluster URL in the data dir's redis.url
        assert (data / "redis.url").read_text().strip() == cluster_url

        added = treasury("agent", "add", "alice", "--capital", "1000", *where, env=env)
        assert added.returncode == 0 and "capital $1,000.00 allocated" in added.stdout, added.stderr
        assert keys.shard("alice") != keys.shard("bob")  # two shards; on 3 masters, two slots at least

        bet = treasury("cmd", *where, "--wait", "--json", "--timeout", "30",
                       "bet", "alice", "--game", "coin_flip", "--fixed-stake", "1.50", env=env)
        assert bet.returncode == 0, bet.stdout + bet.stderr
        outcome = json.loads(bet.stdout)
        assert outcome["outcome"] == "BetSettled"
        pnl = outcome["event"]["pnl_micros"]

        # money is conserved: the capital plus the bet's P&L, nothing held back
        ledger = read_ledger(client, keys, "alice")
        assert ledger.total == parse_usd("1000") + int(pnl)
        assert read_ledger(client, keys, "bob").total == parse_usd("200")

        status = treasury("status", *where, "--json", env=env)
        assert status.returncode == 0, status.stderr
        snap = json.loads(status.stdout)
        assert snap["agents_source"] == "set"
        by_agent = {a["agent"]: a for a in snap["agents"]}
        assert set(by_agent) == {"alice", "bob"}
        assert by_agent["alice"]["total_micros"] == ledger.total
        assert not by_agent["alice"]["errors"] and not by_agent["bob"]["errors"]
        assert {w["role"] for w in snap["deployment"]["workers"]} == set(ROLES.split(","))
        assert snap["deployment"]["dead"] == []

        reconciled = treasury("reconcile", "alice", *where, env=env)
        assert reconciled.returncode == 0 and "clean" in reconciled.stdout, reconciled.stdout + reconciled.stderr

        # the scheduler ran against the cluster (its windows are stored, one slot each)
        deadline = time.monotonic() + 15
        while client.get(keys.schedule("risk")) is None:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "the scheduler never stored a window"
            time.sleep(0.2)

        # without the agent set, status finds the agents by a SCAN that visits every master
        client.delete(keys.agents())
        scanned = json.loads(treasury("status", *where, "--json", env=env).stdout)
        assert scanned["agents_source"] == "scan"
        assert {a["agent"] for a in scanned["agents"]} == {"alice", "bob"}

        assert proc.poll() is None, "the supervisor stopped"
    finally:
        stop_up(proc)
        client.close()
    assert proc.returncode == 0


def test_an_entry_naming_an_agent_of_another_slot_is_dead_lettered_and_journaled(cluster_url):
    client = make_client(cluster_url)
    keys = Keys("dl", 8)
    agent = "ag-dead"
    other = next(s for s in range(keys.shards)
                 if slot_of(keys.dead(s)) != slot_of(keys.events(agent)))

    def reject(delivery):
        raise HandlerRejected("wrong shard")

    bus = StreamBus(None, keys, "casino", [other], reject, clients=(client, client), block_ms=1)
    try:
        bus.ensure_groups()
        env = wrap(BalancesChanged(cause="x"), agent=agent, now_ms=1, new_id=seeded_ids(1))
        stream = keys.commands(other, "casino")
        client.xadd(stream, {FIELD: encode(env)})
        bus.poll_once()
        dead = client.xrange(keys.dead(other))
        assert [d[1][b"msg_id"].decode() for d in dead] == [env.id]
        assert client.xpending(stream, "g:casino")["pending"] == 0
        assert client.xlen(keys.events(agent)) == 1
    finally:
        client.close()


@pytest.mark.parametrize("url, words", [
    ("http://127.0.0.1:6379", "expected a URL starting with redis://"),
    ("redis+cluster://127.0.0.1:7000/3", "a Redis Cluster has only database 0, not '3'"),
    ("redis://127.0.0.1:1/0", "--redis-url: cannot reach Redis at redis://127.0.0.1:1/0"),  # before the sandbox
])
def test_up_refuses_a_redis_url_it_cannot_use_in_one_line_before_anything_starts(tmp_path, url, words):
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    data = tmp_path / "data"
    refused = treasury("up", "--redis-url", url, "--data-dir", str(data), env=env)
    assert refused.returncode == 2 and refused.stdout == ""
    assert len(refused.stderr.strip().splitlines()) == 1 and words in refused.stderr
    assert not data.exists()
