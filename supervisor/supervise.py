"""The supervisor: keeps one deployment's worker processes alive, and escalates when it cannot.

It starts `workers_per_role` processes for every role (each leasing its share of the shards),
watches their heartbeats, restarts a dead or hung worker with exponential backoff, and when a
worker slot restarts more than `max_restarts` times within `restart_window_s` it halts every
treasury of the deployment (a committed HALT, so the fence stops all spending at once) and
raises an alert. Stopping it (SIGTERM, Ctrl-C) lets every worker finish its batch and exit.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections import deque
from dataclasses import dataclass, field

import redis

from actors.ledger import read_risk
from messages.envelope import random_ids, wrap
from messages.schema import RiskControl, RiskStateChanged
from runtime.atomic import AtomicSteps
from runtime.clock import Clock, SystemClock
from runtime.keys import Keys
from supervisor.processes import WorkerProcess, spawn_worker
from supervisor.scheduler import Scheduler

log = logging.getLogger("treasury.supervisor")


@dataclass
class WorkerSlot:
    """One place for a worker: the process in it now, and its restart history."""

    role: str
    index: int
    consumer: str
    process: WorkerProcess | None = None
    restarts: deque = field(default_factory=deque)
    backoff_s: float = 0.0
    restart_at: float | None = None
    escalated: bool = False
    last_exit: str = ""
    started_at: float = 0.0
    started_ms: int = 0
    restarts_total: int = 0


@dataclass(frozen=True)
class SupervisorConfig:
    workers_per_role: int = 1
    heartbeat_stale_ms: int = 5_000
    hung_ms: int = 60_000
    max_restarts: int = 5
    restart_window_s: float = 60.0
    base_backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    check_every_s: float = 0.25
    ticks: bool = True


class Supervisor:
    def __init__(self, redis_url: str, keys: Keys, roles: list[str], venues: dict[str, str], *,
                 env: dict[str, str] | None = None, clock_spec: str = "system",
                 config: SupervisorConfig = SupervisorConfig(), clock: Clock | None = None):
        self.redis_url = redis_url
        self.keys = keys
        self.roles = roles
        self.venues = venues
        self.env = env or {}
        self.clock_spec = clock_spec
        self.config = config
        self.clock = clock or SystemClock()
        self.client = redis.Redis.from_url(redis_url, socket_timeout=10)
        self.steps = AtomicSteps(self.client, keys)
        self.new_id = random_ids()
        host = socket.gethostname()
        self.slots = [WorkerSlot(role, i, f"{role}-{host}-{i}") for role in roles
                      for i in range(config.workers_per_role)]
        self.alerts: list[dict] = []
        self.scheduler = Scheduler(self.client, keys, self.clock, roles) if config.ticks else None

    # ------------------------------------------------------------------ lifecycle

    def start(self, on_spawn=None) -> None:
        """Start every slot's worker; `on_spawn(slot)` after each (a progress bar)."""
        for slot in self.slots:
            self._spawn(slot)
            if on_spawn is not None:
                on_spawn(slot)

    def run(self, stop, on_spawn=None) -> None:
        """Start every worker, then watch them until `stop` (a threading.Event) is set."""
        self.start(on_spawn)
        try:
            while not stop.wait(self.config.check_every_s):
                self.check_once()
                if self.scheduler is not None:
                    try:
                        self.scheduler.run_once()
                    except redis.RedisError as exc:
                        log.warning("scheduler: %s", exc)
        finally:
            self.shutdown()

    def shutdown(self) -> dict[str, int | None]:
        codes = {}
        for slot in self.slots:
            if slot.process is not None:
                codes[slot.consumer] = slot.process.terminate()
                slot.process = None
        try:
            self.client.delete(self.slots_key)
        except redis.RedisError as exc:
            log.warning("cannot clear %s: %s", self.slots_key, exc)
        return codes

    @property
    def slots_key(self) -> str:
        """`<prefix>:supervisor`: consumer → the slot's start time, restarts and last exit (JSON), for
        `treasury status`; deleted when the supervisor stops."""
        return self.keys.supervisor()

    def publish_slot(self, slot: WorkerSlot) -> None:
        """Write one slot's state to `slots_key` (on every start and exit, not on a timer)."""
        info = {"role": slot.role, "pid": slot.process.pid if slot.process else None,
                "started_ms": slot.started_ms if slot.process else 0, "restarts": slot.restarts_total,
                "restarts_in_window": len(slot.restarts), "last_exit": slot.last_exit,
                "escalated": slot.escalated, "supervisor_pid": os.getpid()}
        try:
            self.client.hset(self.slots_key, slot.consumer, json.dumps(info))
        except redis.RedisError as exc:
            log.warning("cannot publish worker slot %s: %s", slot.consumer, exc)

    # ------------------------------------------------------------------ watching

    def check_once(self) -> None:
        now = time.monotonic()
        beats = self._heartbeats()
        for slot in self.slots:
            proc = slot.process
            if proc is not None and not proc.alive():
                slot.last_exit = f"exited with {proc.process.returncode}"
                self._schedule_restart(slot, now)
            elif proc is not None:
                problem = self._hung(slot, beats.get(slot.consumer))
                if problem:
                    log.warning("worker %s (pid %s) %s: killing it", slot.consumer, proc.pid, problem)
                    proc.process.kill()
                    proc.process.wait(5)
                    slot.last_exit = problem
                    self._schedule_restart(slot, now)
            if slot.process is None and slot.restart_at is not None and now >= slot.restart_at:
                self._spawn(slot)

    def _hung(self, slot: WorkerSlot, beat: dict | None) -> str:
        if slot.process is None or time.monotonic() - slot.started_at < self.config.heartbeat_stale_ms / 1000:
            return ""
        if beat is None:
            return "sent no heartbeat"
        age = self.clock.now_ms() - int(beat.get("heartbeat_ms", 0))
        if age > self.config.heartbeat_stale_ms:
            return f"heartbeat {age} ms old"
        if int(beat.get("loop_age_ms", 0)) > self.config.hung_ms:
            return f"bus loop stuck for {beat['loop_age_ms']} ms"
        return ""

    def _heartbeats(self) -> dict[str, dict]:
        try:
            raw = self.client.hgetall(self.keys.workers())
        except redis.RedisError as exc:
            log.warning("cannot read heartbeats: %s", exc)
            return {}
        return {k.decode(): json.loads(v) for k, v in raw.items()}

    def _schedule_restart(self, slot: WorkerSlot, now: float) -> None:
        slot.process = None
        slot.restarts_total += 1
        slot.restarts.append(now)
        while slot.restarts and now - slot.restarts[0] > self.config.restart_window_s:
            slot.restarts.popleft()
        slot.backoff_s = min(self.config.max_backoff_s,
                             self.config.base_backoff_s * (2 ** (len(slot.restarts) - 1)))
        slot.restart_at = now + slot.backoff_s
        log.warning("worker %s %s; restart %d in %.1f s", slot.consumer, slot.last_exit, len(slot.restarts),
                    slot.backoff_s)
        if len(slot.restarts) > self.config.max_restarts and not slot.escalated:
            slot.escalated = True
            self.escalate(slot)
        self.publish_slot(slot)

    def _spawn(self, slot: WorkerSlot) -> None:
        try:
            slot.process = spawn_worker(
                slot.role,
                self.redis_url,
                prefix=self.keys.prefix,
                shard_count=self.keys.shards,
                casino_url=self.venues.get("casino", ""),
                clock=self.clock_spec,
                shards="auto",
                consumer=slot.consumer,
                env=self.env,
                extra=[a for name, url in self.venues.items() for a in ("--venue", f"{name}={url}")],
            )
            slot.started_at = time.monotonic()
            slot.started_ms = self.clock.now_ms()
            slot.restart_at = None
            self.publish_slot(slot)
        except Exception as exc:  # noqa: BLE001 - a failed start counts as a crash
            slot.process = None
            slot.last_exit = f"failed to start: {exc}"
            self._schedule_restart(slot, time.monotonic())

    # ------------------------------------------------------------------ escalation

    def escalate(self, slot: WorkerSlot) -> None:
        """Too many restarts: halt every treasury of the deployment and raise an alert."""
        reason = (f"supervisor: worker {slot.consumer} ({slot.role}) restarted {len(slot.restarts)} times in "
                  f"{self.config.restart_window_s:g} s (last: {slot.last_exit}); halted for manual review")
        halted = [agent for agent in self.agents() if self.halt(agent, reason)]
        alert = {"at_ms": self.clock.now_ms(), "role": slot.role, "worker": slot.consumer, "reason": reason,
                 "halted": halted}
        self.alerts.append(alert)
        self.client.xadd(self.keys.alerts(), {"alert": json.dumps(alert)}, maxlen=10_000, approximate=True)
        log.error("ALERT %s", reason)

    def agents(self) -> list[str]:
        return sorted(m.decode() for m in self.client.smembers(self.keys.agents()))

    def halt(self, agent: str, reason: str) -> bool:
        """Commit HALTED through the fence's keys (as RiskGuard would), journal and broadcast it."""
        risk = read_risk(self.client, self.keys, agent)
        if not risk.known or risk.state == "HALTED":
            return False
        k, now = self.keys, self.clock.now_ms()
        commit = self.steps.new_commit(agent)
        commit.next_seq(k.risk(agent))
        for name, value in (("state", "HALTED"), ("reason", reason), ("breaker", "supervisor"), ("until_ms", 0)):
            commit.hset(k.risk(agent), name, value)
        changed = RiskStateChanged(state="HALTED", previous=risk.state, breaker="supervisor", reason=reason,
                                   total=int(self.client.hget(k.risk(agent), "total") or risk.peak), peak=risk.peak,
                                   day_start=risk.day_start)
        event = wrap(changed, agent=agent, now_ms=now, new_id=self.new_id)
        commit.emit(k.events(agent), event)
        commit.emit(k.control(k.shard(agent)), wrap(RiskControl(state="HALTED", reason=reason), agent=agent,
                                                      now_ms=now, new_id=self.new_id, cause=event), maxlen=10_000)
        return self.steps.commit(commit, f"halt:{event.id}", now).applied
