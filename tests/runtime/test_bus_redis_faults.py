"""Issue 9, case 5: the bus rides out every transient Redis fault and repairs what it can; only a
configuration error ends it. Each fault is made for real on a private server of each version the
project runs on (the embedded 6.2 build and a system Redis 7)."""

from __future__ import annotations

import threading
import time

import redis

from messages.codec import FIELD, encode
from messages.envelope import seeded_ids, wrap
from messages.schema import BalancesChanged
from runtime.atomic import AtomicSteps
from runtime.bus import StreamBus, command_client
from runtime.keys import Keys
from tests.kit.bus import CountingHandler

AGENT = "agent-1"


class RunningBus:
    """A bus serving in a thread; remembers how its loop ended."""

    def __init__(self, url: str, keys: Keys, **kw):
        kw.setdefault("block_ms", 200)
        self.client = redis.Redis.from_url(url)
        self.handler = CountingHandler(AtomicSteps(command_client(url), keys))
        # short socket timeouts, so a stall of a second or two outlasts them
        clients = (redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5),
                   redis.Redis.from_url(url, socket_timeout=kw["block_ms"] / 1000 + 0.5, socket_connect_timeout=0.5))
        self.bus = StreamBus(url, keys, "casino", [keys.shard(AGENT)], self.handler, clients=clients,
                             claim_every_ms=100, **kw)
        self.keys = keys
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.ids = seeded_ids(7)
        self.sent: list[str] = []

    def _run(self) -> None:
        try:
            self.bus.run(self.stop)
        except BaseException as exc:  # noqa: BLE001 - recorded for the test to look at
            self.error = exc

    def __enter__(self) -> RunningBus:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(15)

    def publish(self, n: int) -> None:
        for _ in range(n):
            env = wrap(BalancesChanged(cause="x"), agent=AGENT, now_ms=1, new_id=self.ids)
            _retry(lambda env=env: self.client.xadd(self.keys.agent_commands(AGENT, "casino"), {FIELD: encode(env)}))
            self.sent.append(env.id)

    def applied(self) -> dict[str, int]:
        raw = _retry(lambda: self.client.hgetall(self.keys.ledger(AGENT)))
        return {k.decode(): int(v) for k, v in raw.items()}

    def wait_all_applied(self, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.error is None:
            if self.applied().get("applied", 0) >= len(self.sent):
                break
            time.sleep(0.05)
        assert self.error is None, f"the bus loop ended: {self.error!r}"
        assert self.thread.is_alive()
        applied = self.applied()
        assert applied.get("applied") == len(self.sent), applied
        assert all(applied[f"id:{i}"] == 1 for i in self.sent)


def _retry(fn, timeout_s: float = 30):
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return fn()
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def admin(server) -> redis.Redis:
    return redis.Redis(port=server.port, socket_timeout=10)


def test_bus_rides_out_a_stall_longer_than_its_socket_timeout(own_redis):
    keys = Keys("stall", 4)
    with RunningBus(own_redis.url, keys) as bus:
        bus.publish(5)
        bus.wait_all_applied()
        admin(own_redis).execute_command("CLIENT", "PAUSE", 2000, "ALL")  # every command waits 2 s
        bus.publish(5)  # queued behind the pause
        bus.wait_all_applied()


def test_bus_rides_out_a_redis_restart_from_its_aof(own_redis):
    keys = Keys("restart", 4)
    with RunningBus(own_redis.url, keys) as bus:
        bus.publish(5)
        bus.wait_all_applied()
        own_redis.kill()
        time.sleep(1.0)  # the bus meets refused connections for a while
        own_redis.restart()
        bus.publish(5)
        bus.wait_all_applied()


def test_bus_rides_out_busy_scripts(own_redis):
    keys = Keys("busy", 4)
    server = admin(own_redis)
    threshold = "busy-reply-threshold" if own_redis.version == "7" else "lua-time-limit"
    server.config_set(threshold, 100)
    with RunningBus(own_redis.url, keys) as bus:
        bus.publish(3)
        bus.wait_all_applied()
        # a read-only script spinning for a while: every other client gets BUSY until it is killed
        spinner = threading.Thread(target=lambda: _swallow(lambda: redis.Redis(port=own_redis.port).eval(
            "local t = redis.call('TIME') while true do end", 0)), daemon=True)
        spinner.start()
        time.sleep(0.3)
        time.sleep(1.0)
        server.script_kill()
        spinner.join(5)
        bus.publish(3)
        bus.wait_all_applied()


def _swallow(fn):
    try:
        fn()
    except redis.RedisError:
        pass


def test_bus_rides_out_readonly_during_a_failover(own_redis):
    keys = Keys("readonly", 4)
    server = admin(own_redis)
    with RunningBus(own_redis.url, keys) as bus:
        bus.publish(3)
        bus.wait_all_applied()
        server.execute_command("REPLICAOF", "127.0.0.1", 1)  # demoted: writes answer READONLY
        time.sleep(1.0)
        server.execute_command("REPLICAOF", "NO", "ONE")  # promoted again
        bus.publish(3)
        bus.wait_all_applied()


def test_bus_recreates_a_stream_deleted_while_it_blocks(own_redis):
    keys = Keys("deleted", 4)
    with RunningBus(own_redis.url, keys, block_ms=2000) as bus:
        bus.publish(3)
        bus.wait_all_applied()
        time.sleep(0.3)  # blocked in XREADGROUP now
        admin(own_redis).delete(keys.agent_commands(AGENT, "casino"))  # Redis 7: "UNBLOCKED ... no longer exists"
        time.sleep(0.3)
        bus.publish(3)
        bus.wait_all_applied()


def test_bus_recreates_a_destroyed_group(own_redis):
    keys = Keys("nogroup", 4)
    stream = keys.agent_commands(AGENT, "casino")
    with RunningBus(own_redis.url, keys) as bus:
        bus.publish(3)
        bus.wait_all_applied()
        admin(own_redis).xgroup_destroy(stream, "g:casino")  # NOGROUP on the next read
        time.sleep(0.5)
        bus.publish(3)
        bus.wait_all_applied()


def test_claims_of_deleted_entries_are_acknowledged(own_redis):
    keys = Keys("claimdel", 4)
    url = own_redis.url
    stream = keys.agent_commands(AGENT, "casino")
    client = redis.Redis.from_url(url)
    ids = seeded_ids(3)
    envs = [wrap(BalancesChanged(cause="x"), agent=AGENT, now_ms=1, new_id=ids) for _ in range(4)]
    entry_ids = [client.xadd(stream, {FIELD: encode(e)}) for e in envs]
    client.xgroup_create(stream, "g:casino", id="0")
    client.xreadgroup("g:casino", "dead-consumer", {stream: ">"})  # taken, never acknowledged
    client.xdel(stream, entry_ids[1])  # deleted while pending (trimmed, or removed by hand)
    handler = CountingHandler(AtomicSteps(command_client(url), keys))
    rescuer = StreamBus(url, keys, "casino", [keys.shard(AGENT)], handler, consumer="rescuer", claim_idle_ms=0)
    rescuer.claim_stale()
    rescuer.claim_stale()
    assert client.hget(keys.ledger(AGENT), "applied") == b"3"
    assert client.xpending(stream, "g:casino")["pending"] == 0  # 6.2 keeps deleted ids pending unless acked


def test_a_configuration_error_ends_the_loop(own_redis):
    keys = Keys("config", 4)
    server = admin(own_redis)
    with RunningBus(own_redis.url, keys) as bus:
        bus.publish(2)
        bus.wait_all_applied()
        server.config_set("requirepass", "s3cret")
        server.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")  # reconnect: NOAUTH
        bus.thread.join(15)
    assert isinstance(bus.error, redis.AuthenticationError), repr(bus.error)
