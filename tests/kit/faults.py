"""A busy treasury for fault trials: a private redis-server (AOF, fsync always), the sandbox venue,
a supervisor with casino and risk workers, several paper agents and a seeded stream of signed bets
and pauses — plus the checks every trial must pass afterwards (`violations`).

The checks are written from the outside, from the journal, the ledger, Redis's reservations and the
sandbox's own records, independently of the code they check:
- every command sent has exactly one terminal event;
- no venue spend applied twice (the sandbox's idempotency records, by client seed / key);
- every bet the venue took is booked: the ledger's casino bucket equals the venue balance and the
  ledger total equals capital + the P&L of the settled bets (no flows in these runs);
- no reservation left (ledger `casino:reserved` and the reservations hash are empty);
- no spend after a committed pause: every bet sent after the pause was seen committed is refused.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from actors.ledger import read_ledger, read_risk
from messages.codec import FIELD, encode
from messages.envelope import Envelope, seeded_ids, wrap
from messages.money import parse_usd
from messages.schema import (
    BetRefused,
    BetRejected,
    BetSettled,
    CommandRefused,
    Multiplier,
    PlaceBet,
    RiskStateChanged,
    SetRisk,
)
from runtime.atomic import AtomicSteps
from runtime.bus import command_client
from runtime.journal import read_journal
from runtime.keyring import generate_key
from runtime.keys import Keys
from runtime.signing import sign
from sandbox.runner import start_sandbox
from supervisor.embedded_redis import EmbeddedRedis
from supervisor.paper import open_paper_casino_agent
from supervisor.supervise import Supervisor, SupervisorConfig
from venue.client import SandboxAdmin
from venue.client.casino import CasinoClient

TERMINAL = (BetSettled, BetRefused, BetRejected, CommandRefused)
CAPITAL = parse_usd("100000")
TTL_MS = 240_000  # long-lived signatures (the gate allows 5 min at most): outages must not expire them


def retrying(fn, timeout_s: float = 60.0):
    """Call `fn` until Redis answers (it may be restarting)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return fn()
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@dataclass
class Sent:
    envelope: Envelope  # unsigned: a publisher that retries signs the same command again
    after_pause: bool = False


@dataclass
class BusyRun:
    """Start with `with BusyRun(tmp_path, seed) as run:`; `run.violations()` after the trial."""

    data_dir: Path
    seed: int
    agents: tuple[str, ...] = ("fa", "fb", "fc")
    stale_ms: int = 3000
    supervisor_in_process: bool = True
    prefix: str = "ft"
    sent: dict[str, Sent] = field(default_factory=dict)
    paused: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.ids = seeded_ids(self.seed, "f")
        self.key = generate_key("fault-agent", "agent")
        self.keys = Keys(self.prefix, 8)
        self.redis = EmbeddedRedis(data_dir=self.data_dir / "redis")
        self.stop = threading.Event()
        self.supervisor: Supervisor | None = None
        self.supervisor_proc: subprocess.Popen | None = None
        self._runner: threading.Thread | None = None

    # ------------------------------------------------------------------ set-up

    def __enter__(self) -> BusyRun:
        self.url = self.redis.start()
        self.client = redis.Redis.from_url(self.url, socket_timeout=10)
        self._sandbox_cm = start_sandbox(seed=self.seed, state_path=str(self.data_dir / "sandbox.sqlite3"))
        self.sandbox = self._sandbox_cm.__enter__()
        self.casino_url = self.sandbox.urls["casino"]
        self.admin = SandboxAdmin(self.casino_url)
        steps = AtomicSteps(command_client(self.url), self.keys)
        for agent in self.agents:
            open_paper_casino_agent(steps, agent, CAPITAL, self.casino_url, now_ms=int(time.time() * 1000),
                                    new_id=self.ids)
        self.start_supervisor()
        return self

    def __exit__(self, *exc) -> None:
        self.stop_supervisor()
        self._sandbox_cm.__exit__(None, None, None)
        self.redis.stop()

    def config(self) -> SupervisorConfig:
        return SupervisorConfig(heartbeat_stale_ms=self.stale_ms, base_backoff_s=0.2, ticks=False)

    def start_supervisor(self) -> None:
        env = {"TREASURY_KEYS": self.key.env_entry()}
        if self.supervisor_in_process:
            self.stop = threading.Event()
            self.supervisor = Supervisor(self.url, self.keys, ["casino", "risk"], {"casino": self.casino_url},
                                         env=env, config=self.config(), redis_server=self.redis)
            self._runner = threading.Thread(target=self.supervisor.run, args=(self.stop,), daemon=True)
            self._runner.start()
        else:
            self.supervisor_proc = subprocess.Popen(
                [sys.executable, "-m", "tests.kit.run_supervisor", self.url, self.prefix, self.casino_url,
                 str(self.stale_ms)], env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, start_new_session=True)

    def stop_supervisor(self) -> None:
        if self._runner is not None:
            self.stop.set()
            self._runner.join(60)
            self._runner = None
        if self.supervisor_proc is not None and self.supervisor_proc.poll() is None:
            self.supervisor_proc.terminate()
            self.supervisor_proc.wait(60)

    def worker_pids(self) -> list[int]:
        """The pids of the live workers: from the supervisor's slots, or (supervisor in its own
        process) from the heartbeats of processes that still exist."""
        import json

        if self.supervisor is not None and self._runner is not None:
            return [s.process.pid for s in self.supervisor.slots if s.process is not None and s.process.alive()]
        beats = retrying(lambda: self.client.hgetall(self.keys.workers()))
        pids = []
        for value in beats.values():
            pid = json.loads(value)["pid"]
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                continue
            pids.append(pid)
        return pids

    # ------------------------------------------------------------------ load

    def publish(self, envelope: Envelope) -> None:
        signed = sign(envelope, self.key, now_ms=int(time.time() * 1000), ttl_ms=TTL_MS)
        role = "risk" if isinstance(envelope.body, SetRisk) else "casino"
        retrying(lambda: self.client.xadd(self.keys.agent_commands(envelope.agent, role), {FIELD: encode(signed)}))

    def bet(self) -> str:
        agent = self.rng.choice(self.agents)
        body = PlaceBet(game=Multiplier(target=self.rng.choice([2.0, 5.0, 10.0])), win_prob=None,
                        fixed_stake=parse_usd(self.rng.choice(["1", "5", "20", "50"])))
        env = wrap(body, agent=agent, now_ms=int(time.time() * 1000), new_id=self.ids)
        self.sent[env.id] = Sent(env, after_pause=agent in self.paused)
        self.publish(env)
        return env.id

    def pause(self, agent: str) -> str:
        """An agent-signed pause; returns once it is committed (later bets of `agent` must be refused)."""
        now = int(time.time() * 1000)
        env = wrap(SetRisk(state="PAUSED", reason="fault trial", until_ms=now + 86_400_000), agent=agent,
                   now_ms=now, new_id=self.ids)
        self.publish(env)
        self.wait(lambda: read_risk(self.client, self.keys, agent).state == "PAUSED", 60, f"the pause of {agent}")
        self.paused.add(agent)
        return env.id

    def republish_unfinished(self) -> int:
        """What a retrying publisher does after losing track (a lost suffix may have taken its entry):
        sign every command without a terminal event again, same message id, fresh nonce."""
        done = self.terminal()
        missing = [s.envelope for mid, s in self.sent.items() if mid not in done]
        for env in missing:
            self.publish(env)
        return len(missing)

    # ------------------------------------------------------------------ observation

    def wait(self, predicate, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if predicate():
                    return
            except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
                pass
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}")

    def journal(self, agent: str):
        return retrying(lambda: read_journal(self.client, self.keys, agent))

    def terminal(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for agent in self.agents:
            for event in self.journal(agent):
                if isinstance(event.body, TERMINAL) and event.causation in self.sent:
                    out.setdefault(event.causation, []).append(type(event.body).__name__)
        return out

    def wait_all_terminal(self, timeout_s: float = 120) -> None:
        self.wait(lambda: len(self.terminal()) >= len(self.sent), timeout_s, "every command's outcome")

    # ------------------------------------------------------------------ the checks

    def violations(self) -> list[str]:
        found: list[str] = []
        outcomes = self.terminal()
        for msg_id in self.sent:
            got = outcomes.get(msg_id, [])
            if len(got) != 1:
                found.append(f"command {msg_id}: {len(got)} terminal events {got}")
        summary = self.admin.idempotency_summary()
        if summary["keys_succeeded_more_than_once"]:
            found.append(f"venue spends applied twice: {summary['keys_succeeded_more_than_once']}")
        for agent in self.agents:
            ledger = read_ledger(self.client, self.keys, agent)
            if ledger.held_by("casino", "reserved") or self.client.hlen(self.keys.reservations(agent)):
                found.append(f"{agent}: reservation left ({ledger.held_by('casino', 'reserved')} micro-USD)")
            journal = self.journal(agent)
            settled = [e for e in journal if isinstance(e.body, BetSettled)]
            pnl = sum(e.body.pnl for e in settled)
            if ledger.total != CAPITAL + pnl:
                found.append(f"{agent}: ledger total {ledger.total} != capital + P&L {CAPITAL + pnl}")
            casino_key = self.client.hget(self.keys.credentials(agent), "casino_key").decode()
            venue_balance = CasinoClient(self.casino_url, casino_key).balance().balance
            if venue_balance != ledger.bucket("casino"):
                found.append(f"{agent}: casino bucket {ledger.bucket('casino')} != venue balance {venue_balance}")
            for event in settled:
                if self.sent.get(event.causation, Sent(event)).after_pause:
                    found.append(f"{agent}: bet {event.causation} settled after a committed pause")
            venue_bets = {e.causation: 0 for e in settled}
            for msg_id in venue_bets:
                if self.admin.idempotency(msg_id)["successes"] != 1:
                    found.append(f"{agent}: settled bet {msg_id} not taken exactly once by the venue")
        for msg_id, s in self.sent.items():
            if outcomes.get(msg_id) != ["BetSettled"] and isinstance(s.envelope.body, PlaceBet):
                if self.admin.idempotency(msg_id)["successes"]:
                    found.append(f"bet {msg_id} taken by the venue but ended {outcomes.get(msg_id)}")
        return found

    def risk_states(self) -> dict[str, str]:
        return {a: read_risk(self.client, self.keys, a).state for a in self.agents}

    def risk_changes(self, agent: str) -> list[str]:
        return [e.body.state for e in self.journal(agent) if isinstance(e.body, RiskStateChanged)]
