"""Bets racing a PAUSE from other processes: once the pause commits, not one more bet is reserved."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import pytest

from actors.bootstrap import open_treasury
from messages.codec import FIELD, encode
from messages.envelope import seeded_ids, wrap
from messages.money import parse_usd
from messages.schema import SetRisk
from runtime.atomic import AtomicSteps
from runtime.bus import command_client
from runtime.keyring import generate_key
from runtime.signing import sign
from supervisor.processes import spawn_worker

pytestmark = pytest.mark.redis

AGENT = "racer"

BETTOR = textwrap.dedent("""
    import json, sys
    from runtime.keys import Keys
    from runtime.atomic import AtomicSteps
    from runtime.bus import command_client
    url, prefix, name, after_pause = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    steps = AtomicSteps(command_client(url), Keys(prefix=prefix, shards=4))
    granted, refused, i = [], {}, 0
    while refused.get("paused", 0) < after_pause and i < 200000:
        i += 1
        r = steps.reserve("racer", f"{name}-{i}", "casino", 10_000, 10**12, 0)
        if r.granted:
            granted.append(r.seq)
        else:
            refused[r.status] = refused.get(r.status, 0) + 1
    print(json.dumps({"granted": granted, "refused": refused}))
""")


def test_no_bet_is_reserved_after_the_pause_commits(redis_url, keys, rclient):
    steps = AtomicSteps(command_client(redis_url), keys)
    open_treasury(steps, AGENT, parse_usd("1000000"), now_ms=0, new_id=seeded_ids(1),
                  buckets={"casino": parse_usd("1000000")})
    key = generate_key("racer-key", "agent")
    risk_worker = spawn_worker("risk", redis_url, prefix=keys.prefix, shard_count=keys.shards,
                               env={"TREASURY_KEYS": key.env_entry()})
    bettors = [subprocess.Popen([sys.executable, "-c", BETTOR, redis_url, keys.prefix, f"b{n}", "300"],
                                stdout=subprocess.PIPE, text=True) for n in range(2)]
    try:
        while rclient.hlen(keys.reservations(AGENT)) < 300:  # both bettors are in full flight
            time.sleep(0.005)
        pause = sign(wrap(SetRisk(state="PAUSED", reason="operator pause during a race"), agent=AGENT,
                          now_ms=int(time.time() * 1000), new_id=seeded_ids(2)), key, now_ms=int(time.time() * 1000))
        rclient.xadd(keys.agent_commands(AGENT, "risk"), {FIELD: encode(pause)})
        results = [json.loads(b.communicate(timeout=60)[0]) for b in bettors]
    finally:
        risk_worker.terminate()
        for b in bettors:
            b.kill()

    changed = [f for _, f in rclient.xrange(keys.events(AGENT)) if b"seq" in f]
    assert len(changed) == 1
    pause_seq = int(changed[0][b"seq"])
    granted = [seq for r in results for seq in r["granted"]]
    assert len(granted) >= 300
    assert max(granted) < pause_seq, "a bet was reserved after the pause committed"
    assert all(r["refused"].get("paused", 0) >= 300 for r in results)
    stored = [int(v.split(b"|")[2]) for v in rclient.hvals(keys.reservations(AGENT))]
    assert sorted(stored) == sorted(granted)
    ledger = {k.decode(): int(v) for k, v in rclient.hgetall(keys.ledger(AGENT)).items()}
    assert ledger["casino:reserved"] == 10_000 * len(granted)
    assert ledger["casino"] + ledger["casino:reserved"] == parse_usd("1000000")
