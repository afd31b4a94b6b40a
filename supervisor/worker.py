"""A worker process: hosts one role's actor for every agent of its shards, fed by the bus.

Run as `python -m supervisor.worker --role casino --redis-url URL ...` (the supervisor and the
demo start it that way). SIGTERM or SIGINT finishes the batch in hand, then exits 0.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time

import pykka

from actors.pool import ActorPool
from messages.envelope import random_ids
from messages.errors import ConfigError, TreasuryError
from runtime.atomic import AtomicSteps, reserved_at, reserved_at_many
from runtime.bus import StreamBus, command_client
from runtime.clock import Clock, RedisClock, SystemClock
from runtime.command_gate import CommandGate
from runtime.control import ControlListener
from runtime.keyring import KeyFileWatch, Keyring
from runtime.keys import DEFAULT_SHARDS, Keys
from runtime.leases import ShardLeases
from runtime.nonces import RedisNonceStore
from runtime.signals import stop_on_signals
from supervisor.logs import configure_logging
from supervisor.roles import ROLE_MODULES, build_actor

log = logging.getLogger("treasury.worker")

HEARTBEAT_MS = 1000

BUS_BLOCK_MS = 5000
"""The longest an idle bus's read of its command streams waits. New entries end it at once, and so
do new shards and a stop (`StreamBus.wake`): it is only how often an idle worker asks again."""

LEASE_ROUNDS = 5
"""Lease rounds (renew, rebalance, take over: `ShardLeases.refresh`) per lease length, on the
heartbeat thread and never more often than it beats: every 2 s for the default 10 s leases. A
round costs the Redis server a script over every shard of the role, so it is not run on each beat."""

ACTORS_PER_ROLE = {"casino": 4}
"""Roles whose actor runs as several instances, each serving its own agents (`actors.pool`): a
bet waiting on its venue does not hold up other agents' bets. Every other role: one actor."""


def make_clock(spec: str, client) -> Clock:
    """`system`, or `redis:<key>` for a simulated clock shared by every process of a run."""
    if spec == "system":
        return SystemClock()
    if spec.startswith("redis:"):
        return RedisClock(client, spec.removeprefix("redis:"))
    raise ValueError(f"unknown clock {spec!r} (use system or redis:<key>)")


def make_gate(client, keys: Keys, clock: Clock) -> CommandGate:
    """Commands must be signed by a key from TREASURY_KEYS / TREASURY_KEYS_FILE."""
    keyring = Keyring.from_env()
    if not len(keyring):
        raise ConfigError("no command keys configured (TREASURY_KEYS or TREASURY_KEYS_FILE); "
                          "use --allow-unsigned only on a private Redis")
    return CommandGate(keyring, RedisNonceStore(client, keys.prefix, shards=keys.shards), clock,
                       accepted_at=lambda env: reserved_at(client, keys, env.agent, env.id),
                       accepted_at_many=lambda envs: reserved_at_many(client, keys, envs))


class Worker:
    def __init__(self, role: str, url: str, keys: Keys, shards: list[int], venues: dict[str, str], clock_spec: str,
                 consumer: str | None = None, claim_idle_ms: int = 30_000, allow_unsigned: bool = False,
                 lease_shards: bool = False, lease_ms: int = 10_000):
        self.role, self.url, self.keys, self.shards = role, url, keys, shards
        self.client = command_client(url)
        self.clock = make_clock(clock_spec, self.client)
        self.steps = AtomicSteps(self.client, keys)
        gate = None if allow_unsigned else make_gate(self.client, keys, self.clock)  # before any thread starts
        self.gate = gate
        self.key_watch = KeyFileWatch() if gate is not None else None
        size = ACTORS_PER_ROLE.get(role, 1)
        self.actors = ActorPool.start(lambda: build_actor(role, self.steps, self.clock, random_ids(), venues), size)
        self.actors.feed_controls_directly()
        self.bus = StreamBus(url, keys, role, shards, self._dispatch, consumer=consumer, claim_idle_ms=claim_idle_ms,
                             clock=self.clock, gate=gate, submit_wave=self.actors.submit_wave if size > 1 else None,
                             block_ms=BUS_BLOCK_MS)
        # every worker hears every shard's broadcasts: leased shards move, the fan-out must not miss one
        self.control = ControlListener(url, keys, range(keys.shards), self._on_control) if role != "risk" else None
        self.stop_event = threading.Event()
        self.leases = (ShardLeases(self.client, keys.prefix, role, keys.shards, self.bus.consumer, lease_ms)
                       if lease_shards else None)

    def _dispatch(self, delivery) -> None:
        self.actors.ask(delivery, timeout=120)

    def _on_control(self, agent, control) -> None:
        # at once into the actors' views (read before each spend, so queued spends are refused now),
        # then to the agent's actor's mailbox for reactions that take a commit
        self.actors.control(agent, control)

    def heartbeat(self) -> None:
        key = self.keys.workers()
        parent = int(os.environ.get("TREASURY_PARENT_PID", "0"))
        lease_every_s = max(HEARTBEAT_MS, self.leases.lease_ms // LEASE_ROUNDS if self.leases else 0) / 1000
        next_round = time.monotonic() + lease_every_s  # `run` made the first round
        while not self.stop_event.wait(HEARTBEAT_MS / 1000):
            if parent and os.getppid() != parent:
                log.warning("the supervisor (pid %d) is gone: draining and exiting", parent)
                self.stop_event.set()
                break
            if time.monotonic() >= next_round - HEARTBEAT_MS / 2000:  # half a beat early: no round skipped by jitter
                next_round = time.monotonic() + lease_every_s
                self.refresh_leases()
            self.reload_keys()
            self.beat(key)
        self.bus.wake()  # stopping: the bus's idle read ends now, not when its block runs out

    def reload_keys(self) -> None:
        """Swap in the key file's keys when it changed (`treasury keys new|rotate|revoke`)."""
        if self.key_watch is None or self.gate is None:
            return
        ring = self.key_watch.poll()
        if ring is not None:
            self.gate.keyring = ring
            log.info("key file changed: %d keys now trusted (%s)", len(ring), ", ".join(ring.key_ids()))
        elif self.key_watch.last_error:
            log.warning("key file changed but cannot be used, keeping the old keys: %s", self.key_watch.last_error)
            self.key_watch.last_error = ""

    def loop_age_ms(self) -> int:
        """How long the bus loop has been stuck (an idle blocking read is not)."""
        return int(self.bus.stalled_s() * 1000)

    def refresh_leases(self) -> None:
        if self.leases is None:
            return
        if self.loop_age_ms() > self.leases.lease_ms // 2:
            return  # the bus is stuck: let the leases lapse so another worker takes the shards over
        try:
            gained, lost = self.leases.refresh(SystemClock().now_ms())
        except Exception as exc:  # noqa: BLE001 - unreachable Redis: serve nothing we cannot renew
            log.warning("lease refresh failed: %s", exc)
            self.leases.owned.clear()
            gained, lost = set(), {-1}
        if gained or lost:
            self.shards = sorted(self.leases.owned)
            self.bus.request_shards(self.shards)

    def beat(self, key: str | None = None) -> None:
        key = key or self.keys.workers()
        shards = self.shards
        info = {"pid": os.getpid(), "role": self.role,
                "shards": [shards[0], shards[-1], len(shards)] if shards else [None, None, 0],
                "consumer": self.bus.consumer, "heartbeat_ms": SystemClock().now_ms(),
                "loop_age_ms": self.loop_age_ms(),
                "processed": self.bus.processed, "dead_lettered": self.bus.dead_lettered}
        try:
            self.client.hset(key, self.bus.consumer, json.dumps(info))
        except Exception as exc:  # noqa: BLE001 - a missed beat is not fatal
            log.warning("heartbeat failed: %s", exc)

    def run(self) -> int:
        if self.leases is not None:
            self.shards = []
            self.bus.streams = {}
            self.refresh_leases()
        # no Redis call before the threads start: a worker (re)started while Redis is away must come
        # up whole (bus, heartbeat, control listener) and wait for it; the bus creates its groups
        threads = [threading.Thread(target=self.heartbeat, name="heartbeat", daemon=True)]
        if self.control:
            threads.append(
                threading.Thread(target=self.control.run, args=(self.stop_event,), name="control", daemon=True)
            )
        for t in threads:
            t.start()
        self.beat()
        try:
            self.bus.run(self.stop_event)
        finally:
            self.stop_event.set()
            self.actors.stop(timeout=30)
            try:
                if self.leases is not None:
                    self.leases.release_all()
                self.client.hdel(self.keys.workers(), self.bus.consumer)
            except Exception as exc:  # noqa: BLE001 - leases lapse and the heartbeat ages by itself
                log.warning("could not release leases or heartbeat at exit: %s", exc)
            self.bus.close()
        return 0


def parse_shards(spec: str, total: int) -> list[int]:
    """`all`, `3`, `0-15` or `0,5,9`."""
    if spec == "all":
        return list(range(total))
    shards: list[int] = []
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        shards.extend(range(int(lo), int(hi or lo) + 1))
    return shards


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="treasury-worker")
    p.add_argument("--role", required=True, choices=sorted(ROLE_MODULES))
    p.add_argument("--redis-url", required=True)
    p.add_argument("--prefix", default="tr")
    p.add_argument("--shard-count", type=int, default=DEFAULT_SHARDS)
    p.add_argument("--shards", default="all", help="all, auto (leased, shared with other workers), 3, 0-15 or 0,5,9")
    p.add_argument("--lease-ms", type=int, default=10_000)
    p.add_argument("--casino-url", default="")
    p.add_argument("--venue", action="append", default=[], metavar="NAME=URL",
                   help="a venue service's base URL (casino, escrow, faucet, trading, wallet); repeatable")
    p.add_argument("--clock", default="system")
    p.add_argument("--consumer", default=None)
    p.add_argument("--claim-idle-ms", type=int, default=30_000)
    p.add_argument("--allow-unsigned", action="store_true", help="accept unsigned commands (private Redis only)")
    args = p.parse_args(argv)
    configure_logging(args.role)
    keys = Keys(args.prefix, args.shard_count)
    auto = args.shards == "auto"
    try:
        worker = Worker(
            args.role,
            args.redis_url,
            keys,
            [] if auto else parse_shards(args.shards, args.shard_count),
            {"casino": args.casino_url, **dict(v.split("=", 1) for v in args.venue)},
            args.clock,
            args.consumer,
            args.claim_idle_ms,
            args.allow_unsigned,
            lease_shards=auto,
            lease_ms=args.lease_ms,
        )
    except TreasuryError as exc:
        pykka.ActorRegistry.stop_all()
        print(f"treasury worker {args.role}: error: {exc}", file=sys.stderr)
        return 2

    stop_on_signals(worker.stop_event)
    print(
        json.dumps({"ready": True, "role": args.role, "pid": os.getpid(), "consumer": worker.bus.consumer}), flush=True
    )
    return worker.run()


if __name__ == "__main__":
    sys.exit(main())
