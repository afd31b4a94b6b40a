"""Record a run's inputs and outputs, and replay them through the real actors.

`Recorder` is what a recorded run (`treasury demo --scenario NAME --record FILE`) writes into: its
inputs (clock settings, onboarding, commands as they went onto the streams), every venue answer
the actors got, and at the end every journal event. `replay()` starts a fresh embedded Redis,
builds the recorded roles' actors in this process (`InlineRoles`), answers their venue requests
from the record (`PlaybackTransport`), feeds the inputs in order, and returns the journal events
they produce. `verify()` compares them with the recorded ones byte for byte and names the first
difference. The record format is described in `supervisor/replay_format.py`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import msgspec

from messages.codec import FIELD, decode
from messages.envelope import Envelope, seeded_ids
from runtime.atomic import AtomicSteps
from runtime.bus import command_client
from runtime.clock import RedisClock
from runtime.keyring import Keyring, SigningKey
from runtime.keys import Keys
from supervisor.embedded_redis import EmbeddedRedis
from supervisor.inline_roles import InlineRoles
from supervisor.replay_format import (
    FORMAT,
    VERSION,
    ClockSet,
    Command,
    Header,
    KeyEntry,
    Onboard,
    Output,
    Record,
    Recording,
    b64,
)
from supervisor.replay_venue import PlaybackTransport, RecordingTransport
from venue.client.base import routed_through


def onboarding_ids(seed: int):
    """The ids onboarding draws, the same in a recorded run and its replay."""
    return seeded_ids(seed, prefix="onb")


def onboard_paper_agent(steps: AtomicSteps, keys: Keys, venues: dict[str, str], entry: Onboard, *, now_ms: int,
                        seed: int) -> None:
    """Register the agent at the venues, open its treasury and fund the paper silos (one input)."""
    from actors.onboarding import onboard_agent
    from supervisor.paper import fund_paper_silos

    onboard_agent(steps, entry.agent, entry.capital_micros, venues=venues, now_ms=now_ms,
                  new_id=onboarding_ids(seed), buckets=entry.buckets)
    steps.client.sadd(keys.agents(), entry.agent)
    fund_paper_silos(steps, entry.agent, venues, casino_float=entry.casino_float_micros)


def journal_entries(client, keys: Keys) -> list[tuple[str, bytes]]:
    """Every agent's journal, agents in name order, events in journal order: (agent, raw event)."""
    out = []
    for agent in sorted(a.decode() for a in client.smembers(keys.agents())):
        for _, fields in client.xrange(keys.events(agent)):
            out.append((agent, fields[FIELD]))
    return out


class Recorder:
    """Collects a run's record as it happens; `transport` records the venue exchanges."""

    def __init__(self, header: Header) -> None:
        self.header = header
        self.records: list[Record] = []
        self._lock = threading.Lock()
        self.transport = RecordingTransport(sink=self.add)

    def add(self, record: Record) -> None:
        with self._lock:
            self.records.append(record)

    def clock(self, ms: int) -> None:
        self.add(ClockSet(ms))

    def onboard(self, entry: Onboard) -> None:
        self.add(entry)

    def command(self, role: str, entry: bytes) -> None:
        self.add(Command(role, b64(entry)))

    def finish(self, client, keys: Keys) -> Recording:
        for agent, raw in journal_entries(client, keys):
            self.add(Output(b64(raw), agent))
        return Recording(self.header, list(self.records))


def make_header(*, scenario: str, seed: int, agent: str, roles: list[str], keys: Keys, venues: dict[str, str],
                signing_keys: list[SigningKey]) -> Header:
    return Header(format=FORMAT, version=VERSION, scenario=scenario, seed=seed, agent=agent, roles=list(roles),
                  prefix=keys.prefix, shards=keys.shards, venues=dict(venues),
                  keys=[KeyEntry(k.key_id, k.scope, k.reveal_hex()) for k in signing_keys])


@dataclass
class ReplayResult:
    """What a replay produced: the journal events (raw, and the agent of each), the inputs fed,
    the venue answers served and left unused, divergences from the record, and the wall time."""

    events: list[tuple[str, bytes]]
    inputs: int
    venue_served: int
    venue_unused: int
    divergences: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def decoded(self) -> list[Envelope]:
        return [decode(raw) for _, raw in self.events]


def replay(recording: Recording, progress: Callable[[int, int], None] | None = None) -> ReplayResult:
    """Run the record's inputs through the real actors on a fresh embedded Redis (venue answers
    played back from the record). `progress(done, total)` is called after each input. Raises
    `ValueError` for a record naming an unknown role."""
    h = recording.header
    keyring = Keyring([SigningKey(key_id=k.id, secret=bytes.fromhex(k.secret_hex), scope=k.scope)  # type: ignore[arg-type]
                       for k in h.keys])
    playback = PlaybackTransport(recording.exchanges)
    started = time.perf_counter()
    inputs = 0
    with EmbeddedRedis(appendonly=False) as url:
        client = command_client(url)
        keys = Keys(h.prefix, h.shards)
        steps = AtomicSteps(client, keys)
        clock = RedisClock(client, f"{keys.prefix}:clock")
        with routed_through(playback):
            roles = InlineRoles(url, keys, h.roles, h.venues, clock, keyring, h.seed)
            todo = recording.inputs
            try:
                for record in todo:
                    inputs += 1
                    if progress is not None:
                        progress(inputs, len(todo))
                    if isinstance(record, ClockSet):
                        clock.set(record.ms)
                    elif isinstance(record, Onboard):
                        onboard_paper_agent(steps, keys, h.venues, record, now_ms=clock.now_ms(), seed=h.seed)
                    elif isinstance(record, Command):
                        client.xadd(keys.agent_commands(h.agent, record.role), {FIELD: record.entry})
                        roles.drain()
            finally:
                roles.stop()
        events = journal_entries(client, keys)
        client.close()
    return ReplayResult(events, inputs, playback.served, playback.unused(), list(playback.divergences),
                        time.perf_counter() - started)


@dataclass
class Verdict:
    """`same` when every event matches byte for byte; else the first difference, in words."""

    same: bool
    recorded: int
    replayed: int
    first_difference: str | None = None


def verify(recording: Recording, result: ReplayResult) -> Verdict:
    recorded = [(r.agent, r.event) for r in recording.records if isinstance(r, Output)]
    replayed = result.events
    for n, (want, got) in enumerate(zip(recorded, replayed, strict=False)):
        if want != got:
            return Verdict(False, len(recorded), len(replayed), _describe(n, want, got))
    if len(recorded) != len(replayed):
        n = min(len(recorded), len(replayed))
        extra = recorded[n] if len(recorded) > n else replayed[n]
        side = "recorded only" if len(recorded) > n else "replayed only"
        env = decode(extra[1])
        return Verdict(False, len(recorded), len(replayed),
                       f"event {n}: {side}: {env.type} for {extra[0]} ({len(recorded)} recorded, "
                       f"{len(replayed)} replayed)")
    return Verdict(True, len(recorded), len(replayed))


def _describe(n: int, want: tuple[str, bytes], got: tuple[str, bytes]) -> str:
    if want[0] != got[0]:
        return f"event {n}: agent {want[0]!r} recorded, {got[0]!r} replayed"
    a, b = decode(want[1]), decode(got[1])
    if a.type != b.type:
        return f"event {n}: {a.type} recorded, {b.type} replayed"
    da, db = _flat(msgspec.to_builtins(a)), _flat(msgspec.to_builtins(b))
    for name in sorted(set(da) | set(db)):
        if da.get(name) != db.get(name):
            return f"event {n} ({a.type}): {name} recorded {da.get(name)!r}, replayed {db.get(name)!r}"
    return f"event {n} ({a.type}): same fields, different bytes"


def _flat(value, prefix: str = "") -> dict:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(value, list):
        out = {}
        for i, v in enumerate(value):
            out.update(_flat(v, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


def summarise_event(env: Envelope) -> str:
    """One line per event for `treasury replay` without --json."""
    from messages.money import format_usd
    from supervisor.status_json import label_message

    def shown(name: str, value) -> str:  # money (labelled from the schema) in dollars, never raw micro-USD
        if name.endswith("_micros") and isinstance(value, int) and not isinstance(value, bool):
            return f"{name.removesuffix('_micros')}={format_usd(value)}"
        return f"{name}={value}"

    body = {k: v for k, v in label_message(env.body).items() if k != "type" and not isinstance(v, (dict, list))}
    fields = ", ".join(shown(k, v) for k, v in list(body.items())[:5])
    line = f"{env.created_ms} {env.agent} {env.type} {fields}"
    return line if len(line) <= 200 else line[:199] + "…"


__all__ = ["Recorder", "ReplayResult", "Verdict", "make_header", "onboard_paper_agent", "replay", "verify"]
