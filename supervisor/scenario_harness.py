"""What every `treasury demo --scenario` story runs on: Redis, the sandbox over HTTP, the worker
processes of the roles it needs, one onboarded agent, a shared simulated clock, and helpers to
send signed commands and wait until every actor has finished with them.

A story sends one command at a time and waits for the whole system to be quiet (every consumer
group of the agent's shard caught up) before the next, so the same seed always tells the same
story, whatever the machine's speed.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from typing import Iterator

import msgspec

from actors.chain_view import addresses_key
from actors.ledger import read_ledger, read_risk
from actors.rebalancer import HOME_SILO
from messages.codec import FIELD, encode
from messages.envelope import Envelope, seeded_ids, wrap
from messages.escrow_msgs import EscrowRefunded, EscrowRefused, EscrowReleased
from messages.schema import BetRefused, BreakerFired, BucketHalted, RiskStateChanged, SessionStopped
from runtime.atomic import AtomicSteps
from runtime.bus import command_client
from runtime.clock import RedisClock
from runtime.journal import group_caught_up, read_journal
from runtime.keyring import Keyring, generate_key
from runtime.keys import DEFAULT_SHARDS, Keys
from runtime.signing import sign
from supervisor.inline_roles import InlineRoles
from supervisor.processes import redis_for_run, spawn_worker
from supervisor.replay import Recorder, make_header, onboard_paper_agent
from supervisor.replay_format import Onboard, Recording
from venue.client.base import routed_through

AGENT = "scenario-agent"
SESSION_MONEY = frozenset({"budget", "pnl"})
"""The casino session hash's micro-USD fields."""
START_MS = 1_767_258_000_000  # 2026-01-01T09:00:00Z
SETTLE_POLL_S = 0.02
"""How long `ScenarioRun.settle` waits between two looks at the consumer groups (tests look more often)."""


class ScenarioRun:
    """One story's run. `inline` runs the roles in this process, deterministically (InlineRoles);
    `record` (a scenario name) also records the run for `treasury replay` (see `recording()`)."""

    def __init__(self, url: str, keys: Keys, sandbox, seed: int, *, inline: bool = False, record: str | None = None):
        self.url, self.keys, self.sandbox, self.seed = url, keys, sandbox, seed
        self.inline = inline or record is not None
        self.record_as = record
        self.recorder: Recorder | None = None
        self.inline_roles: InlineRoles | None = None
        self.client = command_client(url)
        self.steps = AtomicSteps(self.client, keys)
        self.clock = RedisClock(self.client, keys.clock())
        self.clock.set(START_MS)
        self.new_id = seeded_ids(seed, prefix="cmd")
        self.key = generate_key("scenario-key", "agent")
        self.operator = generate_key("scenario-operator", "operator")
        self._nonce = 0
        self.workers = []
        self.roles: list[str] = []
        self.story: list[str] = []
        self.capital = 0
        self.paper_float = 0  # money credited to the casino silo beyond the casino bucket (the reserve's float)

    # ------------------------------------------------------------------ set-up

    def start_workers(self, roles: list[str]) -> None:
        if self.inline:
            self._start_inline(roles)
            return
        env = {"TREASURY_KEYS": f"{self.key.env_entry()},{self.operator.env_entry()}"}
        venues = [a for name, u in self.sandbox.urls.items() for a in ("--venue", f"{name}={u}")]
        self.roles = list(roles)
        for role in roles:
            self.workers.append(spawn_worker(role, self.url, prefix=self.keys.prefix, shard_count=self.keys.shards,
                                             casino_url=self.sandbox.urls["casino"],
                                             clock=f"redis:{self.keys.prefix}:clock", env=env, extra=venues))

    def _start_inline(self, roles: list[str]) -> None:
        self.roles = list(roles)
        keyring = Keyring([self.key, self.operator])
        if self.record_as is not None:
            self.recorder = Recorder(make_header(scenario=self.record_as, seed=self.seed, agent=AGENT, roles=roles,
                                                 keys=self.keys, venues=self.sandbox.urls,
                                                 signing_keys=[self.key, self.operator]))
            self.recorder.clock(self.clock.now_ms())
        with self._recording_venues():
            self.inline_roles = InlineRoles(self.url, self.keys, roles, self.sandbox.urls, self.clock, keyring,
                                            self.seed)

    def _recording_venues(self) -> contextlib.AbstractContextManager:
        """Venue clients made inside the block send through the recorder (when recording)."""
        return routed_through(self.recorder.transport) if self.recorder else contextlib.nullcontext()

    def onboard(self, capital: int, buckets: dict[str, int] | None = None, *, casino_float: int = 0) -> None:
        """Register at the venues, open the treasury, and fund the venue silos as deposits would."""
        self.capital = capital
        entry = Onboard(AGENT, capital, buckets, casino_float)
        if self.recorder:
            self.recorder.onboard(entry)
        with self._recording_venues():
            onboard_paper_agent(self.steps, self.keys, self.sandbox.urls, entry, now_ms=self.clock.now_ms(),
                                seed=self.seed)
        self.paper_float = casino_float

    # ------------------------------------------------------------------ driving

    def send(self, role: str, body, *, operator: bool = False) -> list[Envelope]:
        """Publish one signed command, wait until every actor is done, return what it caused."""
        now = self.clock.now_ms()
        self._nonce += 1
        env = sign(wrap(body, agent=AGENT, now_ms=now, new_id=self.new_id), self.operator if operator else self.key,
                   now_ms=now, nonce=f"scenario{self.seed:06d}n{self._nonce:010d}")
        entry = encode(env)
        if self.recorder:
            self.recorder.command(role, entry)
        self.client.xadd(self.keys.agent_commands(AGENT, role), {FIELD: entry})
        self.settle()
        return [e for e in self.journal() if e.correlation == env.correlation and e.id != env.id]

    def settle(self, timeout_s: float = 60.0) -> None:
        """Wait until every running role's group on the agent's shard has handled everything, twice in
        a row. (A role the story does not run keeps its messages queued, as it would while down.)"""
        if self.inline_roles is not None:
            with self._recording_venues():
                self.inline_roles.drain()
            return
        shard = self.keys.shard(AGENT)
        streams = [(self.keys.commands(shard, role), f"g:{role}") for role in self.roles]
        deadline = time.monotonic() + timeout_s
        quiet = 0
        while quiet < 2:
            if time.monotonic() > deadline:
                raise TimeoutError("the actors did not settle")
            if all(group_caught_up(self.client, s, g) for s, g in streams):
                quiet += 1
            else:
                quiet = 0
            time.sleep(SETTLE_POLL_S)

    def advance(self, ms: int) -> None:
        now = self.clock.advance(ms)
        if self.recorder:
            self.recorder.clock(now)

    def recording(self) -> Recording:
        """The record of this run so far, journal events included (only when recording)."""
        if self.recorder is None:
            raise RuntimeError("this run is not being recorded")
        return self.recorder.finish(self.client, self.keys)

    def journal(self) -> list[Envelope]:
        return read_journal(self.client, self.keys, AGENT)

    def say(self, line: str) -> None:
        self.story.append(line)

    # ------------------------------------------------------------------ the summary

    def summary(self, name: str) -> dict:
        ledger = read_ledger(self.client, self.keys, AGENT)
        risk = read_risk(self.client, self.keys, AGENT)
        journal = self.journal()
        extra = {}
        if "silo" in self.roles:
            from supervisor.silo_report import silo_report

            extra["silo"] = silo_report(self.client, self.keys, AGENT, journal)
        return extra | {
            "scenario": name,
            "seed": self.seed,
            "agent": AGENT,
            "capital_micros": self.capital,
            "risk": {"state": risk.state, "breaker": risk.breaker, "reason": risk.reason},
            "buckets_risk": {b: ("HALTED: " + risk.halted_buckets[b]) if b in risk.halted_buckets else "ACTIVE"
                             for b in sorted(ledger.available)},
            "casino_session": self._session(),
            "breakers_fired": breakers_fired(journal),
            "balances_micros": {b: ledger.bucket(b) for b in sorted(ledger.available)},
            "held_micros": {b: dict(sorted(k.items())) for b, k in sorted(ledger.held.items()) if any(k.values())},
            "conservation": self.conservation(ledger),
            "story": self.story,
            "journal_events": len(journal),
        }

    def _session(self) -> dict | None:
        """The casino session hash, its money (`budget`, `pnl`) as `*_micros` integers."""
        raw = {k.decode(): v.decode() for k, v in sorted(self.client.hgetall(self.keys.session(AGENT)).items())}
        return {(f"{k}_micros" if k in SESSION_MONEY else k): (int(v) if k in SESSION_MONEY else v)
                for k, v in raw.items()} or None

    def conservation(self, ledger) -> dict:
        """The ledger against the venue silos that hold its money, and the in-flight amounts."""
        from venue.client import SandboxAdmin
        from venue.client.casino import CasinoClient

        creds = {k.decode(): v.decode() for k, v in self.client.hgetall(self.keys.credentials(AGENT)).items()}
        casino_venue = CasinoClient(self.sandbox.urls["casino"], creds["casino_key"]).balance().balance
        # Each silo holds the buckets whose home it is (the referral bucket's commissions land in the
        # casino balance); the casino silo also holds what is left of the reserve's float there
        # (escrows are funded from it and sit at the escrow service until released or refunded).
        # Rebalanced money whose physical transfer between silos is still pending sits where it was.
        pending = self._pending_transfers()
        homed = {silo: sum(ledger.bucket(b) for b, home in HOME_SILO.items() if home == silo)
                 for silo in ("casino", "trading")}
        casino_ledger = homed["casino"] + self._float_left(ledger) + pending.get("casino", 0)
        silos = {"casino": {"venue_micros": casino_venue, "ledger_micros": casino_ledger}}
        if "trading_agent_id" in creds:
            account = SandboxAdmin(self.sandbox.urls["casino"]).trading_account(creds["trading_agent_id"])
            silos["trading"] = {"venue_micros": account["collateral_micros"] + account["margin_locked_micros"],
                                "ledger_micros": homed["trading"] + pending.get("trading", 0)}
        base = self.client.hget(addresses_key(self.keys, AGENT), "base")
        if base is not None:
            admin = SandboxAdmin(self.sandbox.urls["casino"])
            reserve_ledger = ledger.bucket("reserve") - self.paper_float + pending.get("wallet", 0)
            silos["wallet"] = {"venue_micros": admin.wallet_usdc("base", base.decode()),
                               "ledger_micros": reserve_ledger}
        in_flight = sum(ledger.held_by(b, k) for b in ledger.held for k in ("reserved", "in_transit"))
        return {"ledger_total_micros": ledger.total, "in_flight_micros": in_flight, "silos": silos,
                "silos_match": all(s["venue_micros"] == s["ledger_micros"] for s in silos.values())}

    def _pending_transfers(self) -> dict[str, int]:
        """Per silo: money the ledger has moved away but that has not physically left it yet (+),
        less money moved in that has not physically arrived (−)."""
        net: dict[str, int] = {}
        raw = self.client.hgetall(self.keys.silo_intents(AGENT))
        for value in raw.values():
            src, dst, amount, status = value.decode().split("|")
            if status == "pending":
                net[src] = net.get(src, 0) + int(amount)
            if status in ("pending", "sent"):  # sent: in flight, in neither silo
                net[dst] = net.get(dst, 0) - int(amount)
        return net

    def _float_left(self, ledger) -> int:
        """The reserve float at the casino, less what escrows took out of it: still locked, paid out,
        or kept as the fee of a refund."""
        gone = 0
        for env in self.journal():
            if isinstance(env.body, EscrowReleased):
                gone += env.body.amount
            elif isinstance(env.body, EscrowRefunded):
                gone += env.body.fee
        return self.paper_float - ledger.held_by("reserve", "locked") - gone

    def close(self) -> dict:
        if self.inline_roles is not None:
            self.inline_roles.stop()
        codes = {w.role: w.terminate() for w in self.workers}
        self.client.close()
        return codes


def breakers_fired(journal: list[Envelope]) -> list[dict]:
    """Every breaker that acted, in order, with its reason — from the journal alone."""
    fired = []
    for env in journal:
        body = env.body
        manual = body.breaker in ("operator", "pause_expired") or body.breaker.startswith("key ") \
            if isinstance(body, RiskStateChanged) else True
        if isinstance(body, RiskStateChanged) and not manual:
            fired.append({"breaker": body.breaker, "action": body.state, "reason": body.reason})
        elif isinstance(body, BucketHalted):
            fired.append({"breaker": body.breaker, "action": f"halt {body.bucket}", "reason": body.reason})
        elif isinstance(body, BreakerFired):
            fired.append({"breaker": body.breaker, "action": body.action, "reason": body.reason})
        elif isinstance(body, SessionStopped):
            fired.append({"breaker": body.breaker, "action": "stop session", "reason": body.reason})
        elif isinstance(body, BetRefused) and body.code == "over_cap":
            fired.append({"breaker": "bet_size", "action": "reject", "reason": body.reason})
        elif isinstance(body, EscrowRefused) and body.code == "escrow_overcommit":
            fired.append({"breaker": "escrow_lock", "action": "reject", "reason": body.reason})
    return fired


@contextlib.contextmanager
def scenario_run(seed: int, roles: list[str], *, inline: bool = False, record: str | None = None
                 ) -> Iterator[ScenarioRun]:
    from sandbox.runner import start_sandbox

    with redis_for_run() as (url, embedded), start_sandbox(seed=seed) as sandbox:
        # On a shared Redis every run gets its own prefix (never part of the summary).
        keys = Keys("tr" if embedded else f"scn-{seed}-{uuid.uuid4().hex[:10]}", DEFAULT_SHARDS)
        run = ScenarioRun(url, keys, sandbox, seed, inline=inline, record=record)
        try:
            run.start_workers(roles)
            yield run
        finally:
            run.close()
            if not embedded:
                forget_prefix(url, keys.prefix)


def forget_prefix(url: str, prefix: str) -> None:
    """A run on a shared Redis leaves nothing behind."""
    client = command_client(url)
    for batch in _batches(client.scan_iter(match=f"{prefix}:*", count=1000), 500):
        client.delete(*batch)
    client.close()


def _batches(items, size):
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def to_builtins(obj):
    return msgspec.to_builtins(obj)
