"""The supervisor: keeps one deployment's worker processes alive, and escalates when it cannot.

It starts `workers_per_role` processes for every role (each leasing its share of the shards),
watches their heartbeats, restarts a dead or hung worker with exponential backoff, and when a
worker slot restarts more than `max_restarts` times within `restart_window_s` it halts every
treasury of the deployment (a committed HALT, so the fence stops all spending at once) and
raises an alert. Stopping it (SIGTERM, Ctrl-C) lets every worker finish its batch and exit.

Redis going away is not a worker fault: while Redis does not answer, heartbeats are not judged
(workers cannot write them) and nothing is escalated; an embedded redis-server that died is
started again from its AOF (with backoff), an external one is waited for. Once Redis answers
again the workers get `heartbeat_stale_ms` to beat before they are judged again, restarts in that
grace do not count towards escalation, and an alert records the outage.
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
from runtime.redis_client import make_client
from supervisor.embedded_redis import EmbeddedRedis
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
    """How often the worker processes are looked at (a local wait, no Redis call): an exit is seen within it."""
    redis_every_s: float = 1.0
    """How often Redis is asked (the heartbeats, which also tell whether it answers): workers beat
    once a second, so reading them more often finds nothing new. While Redis does not answer, or
    the embedded server's process is gone, it is asked on every check."""
    ticks: bool = True
    redis_restart_backoff_s: float = 1.0


class Supervisor:
    def __init__(self, redis_url: str, keys: Keys, roles: list[str], venues: dict[str, str], *,
                 env: dict[str, str] | None = None, clock_spec: str = "system",
                 config: SupervisorConfig = SupervisorConfig(), clock: Clock | None = None,
                 redis_server: EmbeddedRedis | None = None):
        self.redis_url = redis_url
        self.keys = keys
        self.roles = roles
        self.venues = venues
        self.env = env or {}
        self.clock_spec = clock_spec
        self.config = config
        self.clock = clock or SystemClock()
        self.client = make_client(redis_url, socket_timeout=10)  # a redis+cluster:// URL: a cluster client
        self.probe = make_client(redis_url, socket_timeout=2, socket_connect_timeout=1)
        self.redis_server = redis_server  # the embedded server to bring back if it dies, else None
        self.redis_down_since: float | None = None
        self.redis_outages = 0
        self._redis_restart_at = 0.0
        self._judge_after = 0.0  # after an outage: heartbeats not judged, restarts not counted
        self._next_redis_check = 0.0
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
                try:
                    self.check_once()
                except redis.RedisError as exc:  # Redis went away mid-check: judged on the next one
                    log.warning("supervisor check: %s", exc)
                    continue
                if self.scheduler is not None and self.redis_down_since is None:
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
        """Restart exited workers; every `redis_every_s`, also read the heartbeats and kill hung ones."""
        now = time.monotonic()
        beats: dict[str, dict] | None = None  # None: heartbeats not read (nor judged) this time
        server_gone = self.redis_server is not None and not self.redis_server.alive()
        if now >= self._next_redis_check or self.redis_down_since is not None or server_gone:
            self._next_redis_check = now + self.config.redis_every_s
            beats = self._read_heartbeats(now)
            if beats is None:
                return
        for slot in self.slots:
            proc = slot.process
            if proc is not None and not proc.alive():
                slot.last_exit = f"exited with {proc.process.returncode}"
                self._schedule_restart(slot, now)
            elif proc is not None and beats is not None:
                problem = self._hung(slot, beats.get(slot.consumer))
                if problem:
                    log.warning("worker %s (pid %s) %s: killing it", slot.consumer, proc.pid, problem)
                    proc.process.kill()
                    proc.process.wait(5)
                    slot.last_exit = problem
                    self._schedule_restart(slot, now)
            if slot.process is None and slot.restart_at is not None and now >= slot.restart_at:
                self._spawn(slot)

    # ------------------------------------------------------------------ Redis outages

    def _read_heartbeats(self, now: float) -> dict[str, dict] | None:
        """The workers' heartbeats, read on the probe's connection (short timeouts): one round trip
        that also tells whether Redis answers. None while it does not: an embedded server is then
        brought back, and nobody is judged."""
        try:
            raw = self.probe.hgetall(self.keys.workers())
        except redis.RedisError as exc:
            self._redis_unanswered(now, exc)
            return None
        if self.redis_down_since is not None:
            self._redis_back(now)
        return {k.decode(): json.loads(v) for k, v in raw.items()}

    def _redis_unanswered(self, now: float, exc: redis.RedisError) -> None:
        if self.redis_down_since is None:
            self.redis_down_since = now
            log.error("Redis does not answer (%s): heartbeats not judged until it is back", exc)
        self._revive_redis(now)

    def _revive_redis(self, now: float) -> None:
        server = self.redis_server
        if server is None or server.alive() or now < self._redis_restart_at:
            return  # external Redis: wait for it; embedded and alive: it is loading its AOF
        log.warning("the embedded redis-server died: starting it again from its AOF")
        try:
            server.restart()
        except Exception as exc:  # noqa: BLE001 - try again after a pause
            log.error("restarting the embedded redis-server failed: %s", exc)
            self._redis_restart_at = now + self.config.redis_restart_backoff_s

    def _redis_back(self, now: float) -> None:
        down_s = now - (self.redis_down_since or now)
        self.redis_down_since = None
        self.redis_outages += 1
        self._judge_after = time.monotonic() + self.config.heartbeat_stale_ms / 1000
        alert = {"at_ms": self.clock.now_ms(), "role": "redis", "worker": "",
                 "reason": f"Redis was unreachable for {down_s:.1f} s"
                           + (" (embedded server restarted from its AOF)" if self.redis_server else "")
                           + "; workers resumed, nothing halted", "halted": []}
        self.alerts.append(alert)
        self.client.xadd(self.keys.alerts(), {"alert": json.dumps(alert)}, maxlen=10_000, approximate=True)
        log.warning("ALERT %s", alert["reason"])

    def _hung(self, slot: WorkerSlot, beat: dict | None) -> str:
        if time.monotonic() < self._judge_after:
            return ""  # Redis just came back: the workers have not had the time to beat yet
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

    def _schedule_restart(self, slot: WorkerSlot, now: float) -> None:
        slot.process = None
        slot.restarts_total += 1
        if now < self._judge_after:  # it died of the Redis outage, not of itself: restart, count nothing
            slot.restart_at = now + self.config.base_backoff_s
            log.warning("worker %s %s after a Redis outage; restarting it", slot.consumer, slot.last_exit)
            self.publish_slot(slot)
            return
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
        """Too many restarts: raise an alert and, unless the cause is known and contained, halt
        every treasury of the deployment.

        Not halted for: a crash loop traced to one stream entry (the worker's bus names the
        redelivered entry it holds in `<prefix>:suspects`, and sets it aside after `max_crashes`
        deaths), and an unreachable Redis (an outage is ridden out, not escalated; nothing can be
        committed then anyway). The alert still goes out in both cases.
        """
        try:
            self._escalate(slot)
        except redis.RedisError as exc:
            log.error("escalation of %s deferred: Redis unreachable (%s); nothing halted", slot.consumer, exc)
            slot.escalated = False  # judged again once Redis answers

    def _escalate(self, slot: WorkerSlot) -> None:
        reason = (f"supervisor: worker {slot.consumer} ({slot.role}) restarted {len(slot.restarts)} times in "
                  f"{self.config.restart_window_s:g} s (last: {slot.last_exit})")
        suspect = self.client.hget(self.keys.suspects(), slot.consumer)
        if suspect is not None:
            cause = f"traced to entry {suspect.decode()}, which the worker sets aside; nothing halted"
            halted: list[str] = []
        else:
            reason += "; halted for manual review"
            cause = ""
            halted = [agent for agent in self.agents() if self.halt(agent, reason)]
        alert = {"at_ms": self.clock.now_ms(), "role": slot.role, "worker": slot.consumer,
                 "reason": f"{reason}; {cause}" if cause else reason, "halted": halted}
        self.alerts.append(alert)
        self.client.xadd(self.keys.alerts(), {"alert": json.dumps(alert)}, maxlen=10_000, approximate=True)
        log.error("ALERT %s", alert["reason"])

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
