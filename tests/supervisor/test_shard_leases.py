"""Several workers of one role share the shards through leases: each shard has one holder at a
time (per-agent order kept), the load is split, and a dead worker's shards are taken over."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from messages.codec import FIELD, encode
from messages.envelope import seeded_ids, wrap
from messages.money import parse_usd
from messages.schema import BetRefused, BetRejected, BetSettled, Multiplier, PlaceBet
from runtime import leases
from runtime.atomic import AtomicSteps
from runtime.bus import command_client
from runtime.journal import read_journal
from runtime.keyring import generate_key
from runtime.keys import Keys
from runtime.signing import sign
from sandbox.runner import start_sandbox
from supervisor.paper import open_paper_casino_agent
from supervisor.processes import spawn_worker

pytestmark = pytest.mark.redis

SHARDS = 8
AGENTS = [f"lease-agent-{i}" for i in range(10)]
TERMINAL = (BetSettled, BetRefused, BetRejected)


def outcomes_in_order(client, keys, agent):
    return [e.causation for e in read_journal(client, keys, agent) if isinstance(e.body, TERMINAL)]


def wait_for(predicate, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def lease_holders(client, keys):
    held = leases.lease_holders(client, keys.prefix, "casino")
    return {s: held.get(s, "") for s in range(SHARDS)}


def test_two_workers_split_the_shards_keep_order_and_take_over(redis_url, prefix, rclient):
    keys = Keys(prefix, SHARDS)
    steps = AtomicSteps(command_client(redis_url), keys)
    key = generate_key("lease-key", "agent")
    ids = seeded_ids(5)
    with start_sandbox(seed=5) as sandbox:
        casino = sandbox.urls["casino"]
        for agent in AGENTS:
            open_paper_casino_agent(
                steps, agent, parse_usd("10000"), casino, now_ms=int(time.time() * 1000), new_id=ids
            )
        common = dict(prefix=prefix, shard_count=SHARDS, casino_url=casino, env={"TREASURY_KEYS": key.env_entry()},
                      shards="auto", extra=["--lease-ms", "2000"])
        workers = [spawn_worker("casino", redis_url, consumer=f"casino-{i}", **common) for i in range(2)]
        workers.append(spawn_worker("risk", redis_url, prefix=prefix, shard_count=SHARDS,
                                    env={"TREASURY_KEYS": key.env_entry()}))
        sent: dict[str, list[str]] = {a: [] for a in AGENTS}

        def send(rounds):
            for _ in range(rounds):
                for agent in AGENTS:
                    now = int(time.time() * 1000)
                    bet = PlaceBet(game=Multiplier(target=10.0), win_prob=0.12, kelly="quarter")
                    env = sign(wrap(bet, agent=agent, now_ms=now, new_id=ids), key, now_ms=now, ttl_ms=120_000)
                    rclient.xadd(keys.agent_commands(agent, "casino"), {FIELD: encode(env)})
                    sent[agent].append(env.id)

        def all_done():
            return all(len(outcomes_in_order(rclient, keys, a)) == len(sent[a]) for a in AGENTS)

        try:
            wait_for(lambda: set(lease_holders(rclient, keys).values()) == {"casino-0", "casino-1"}, 20,
                     "both workers to hold leases")
            holders = lease_holders(rclient, keys)
            assert sorted(list(holders.values()).count(w) for w in ("casino-0", "casino-1")) == [4, 4]
            send(6)
            wait_for(all_done, 60, "every bet's outcome")
            def processed():
                beats = {k.decode(): json.loads(v) for k, v in rclient.hgetall(f"{prefix}:workers").items()}
                return [beats[w]["processed"] for w in ("casino-0", "casino-1")]

            wait_for(lambda: sum(processed()) == 60, 10, "heartbeats to report the work")
            assert min(processed()) > 0  # both workers served their shards' agents

            os.kill(workers[0].pid, signal.SIGKILL)  # casino-0 dies holding its leases
            send(4)
            wait_for(lambda: set(lease_holders(rclient, keys).values()) == {"casino-1"}, 20,
                     "casino-1 to take every shard over")
            wait_for(all_done, 60, "the dead worker's agents to be served")
        finally:
            for w in workers:
                w.terminate()
        for agent in AGENTS:
            assert outcomes_in_order(rclient, keys, agent) == sent[agent], f"{agent}: commands applied out of order"
