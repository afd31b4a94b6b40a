"""SIGKILL a worker in the middle of a run: the supervisor restarts it, and every command sent
reaches exactly one terminal event, with no bet placed twice and none lost."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from actors.ledger import read_ledger
from messages.codec import FIELD, encode
from messages.envelope import seeded_ids, wrap
from messages.money import parse_usd
from messages.schema import BetRefused, BetRejected, BetSettled, CommandRefused, Multiplier, PlaceBet
from runtime.atomic import AtomicSteps
from runtime.bus import command_client
from runtime.journal import read_journal
from runtime.keyring import generate_key
from runtime.signing import sign
from sandbox.runner import start_sandbox
from supervisor.paper import open_paper_casino_agent
from supervisor.supervise import Supervisor, SupervisorConfig
from venue.client import SandboxAdmin
from venue.client.casino import CasinoClient

pytestmark = pytest.mark.redis

AGENT = "kill-test"
TERMINAL = (BetSettled, BetRefused, BetRejected, CommandRefused)


def wait_until(predicate, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_sigkilled_worker_is_restarted_and_every_command_ends_exactly_once(redis_url, keys, rclient):
    steps = AtomicSteps(command_client(redis_url), keys)
    key = generate_key("kill-test-key", "agent")
    ids = seeded_ids(11)
    with start_sandbox(seed=11) as sandbox:
        casino_url = sandbox.urls["casino"]
        now = int(time.time() * 1000)
        open_paper_casino_agent(steps, AGENT, parse_usd("100000"), casino_url, now_ms=now, new_id=ids)
        supervisor = Supervisor(redis_url, keys, ["casino", "risk"], {"casino": casino_url},
                                env={"TREASURY_KEYS": key.env_entry()},
                                config=SupervisorConfig(heartbeat_stale_ms=3000, base_backoff_s=0.2))
        stop = threading.Event()
        runner = threading.Thread(target=supervisor.run, args=(stop,))
        runner.start()
        sent: list[str] = []
        try:
            casino_slot = next(s for s in supervisor.slots if s.role == "casino")
            wait_until(lambda: casino_slot.process is not None, 20, "the casino worker")
            for i in range(120):
                now = int(time.time() * 1000)
                bet = PlaceBet(game=Multiplier(target=10.0), win_prob=0.12, kelly="quarter")
                env = sign(wrap(bet, agent=AGENT, now_ms=now, new_id=ids), key, now_ms=now, ttl_ms=120_000)
                rclient.xadd(keys.agent_commands(AGENT, "casino"), {FIELD: encode(env)})
                sent.append(env.id)
                if i in (30, 80):  # kill it twice while bets are in flight
                    wait_until(lambda i=i: _terminal_count(rclient, keys) >= i - 10, 30, "bets to flow")
                    os.kill(casino_slot.process.pid, signal.SIGKILL)
            wait_until(lambda: _terminal_count(rclient, keys) >= len(sent), 90, "every command's outcome")
        finally:
            stop.set()
            runner.join(60)

        journal = read_journal(rclient, keys, AGENT)
        outcomes: dict[str, list[str]] = {}
        for event in journal:
            if isinstance(event.body, TERMINAL):
                outcomes.setdefault(event.causation, []).append(type(event.body).__name__)
        assert sorted(outcomes) == sorted(sent)
        assert all(len(v) == 1 for v in outcomes.values()), {k: v for k, v in outcomes.items() if len(v) > 1}
        assert len(casino_slot.restarts) >= 2

        settled = [e.body for e in journal if isinstance(e.body, BetSettled)]
        admin = SandboxAdmin(casino_url)
        summary = admin.idempotency_summary()
        assert summary["keys_succeeded_more_than_once"] == []  # nothing was bet twice at the venue
        for msg_id in outcomes:
            placed = admin.idempotency(msg_id)["successes"]
            assert placed == (1 if outcomes[msg_id] == ["BetSettled"] else 0), msg_id
        ledger = read_ledger(rclient, keys, AGENT)
        assert ledger.held_by("casino", "reserved") == 0 and rclient.hlen(keys.reservations(AGENT)) == 0
        casino_key = rclient.hget(keys.credentials(AGENT), "casino_key").decode()
        assert CasinoClient(casino_url, casino_key).balance().balance == ledger.bucket("casino")
        assert ledger.total == parse_usd("100000") + sum(b.pnl for b in settled)


def _terminal_count(client, keys) -> int:
    return sum(1 for e in read_journal(client, keys, AGENT) if isinstance(e.body, TERMINAL))
