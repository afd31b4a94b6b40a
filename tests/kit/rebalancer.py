"""A single-threaded harness for rebalancing tests: the Rebalancer, the ReserveBucket and stand-in
casino, referral and trading actors, each fed by its own StreamBus on real Redis, pumped in a
fixed order so every run is the same. (The rebalancer, transfer and referral reinvest tests use it.)
"""

from __future__ import annotations

from actors.bootstrap import open_treasury
from actors.ledger import read_ledger
from actors.rebalancer import Rebalancer
from actors.reserve import ReserveBucket
from actors.transfers import handle_transfer
from messages.codec import FIELD, encode
from messages.envelope import seeded_ids, wrap
from messages.money import parse_usd
from runtime.atomic import AtomicSteps
from runtime.bus import Delivery, HandlerRejected, StreamBus, command_client
from runtime.clock import ManualClock
from runtime.journal import read_journal

try:
    from messages.trading_msgs import CloseAllPositions, PositionsClosedAll
except ModuleNotFoundError:  # pragma: no cover
    CloseAllPositions = PositionsClosedAll = None

AGENT = "rb-agent"
ROLES = ("rebalancer", "reserve", "trading", "casino", "referral")


def usd(text: str) -> int:
    return parse_usd(text)


class LegsOnlyBucket:
    """A bucket actor that only takes part in transfers (stands in for casino and referral)."""

    def __init__(self, steps, clock, new_id):
        self.steps, self.clock, self.new_id = steps, clock, new_id

    def __call__(self, delivery: Delivery) -> None:
        if not handle_transfer(self, delivery):
            raise HandlerRejected(f"stand-in bucket does not handle {delivery.envelope.type}")


class FakeTrading(LegsOnlyBucket):
    """Transfer legs, plus `CloseAllPositions`: every position closes at `pnl` (margin back to the
    available balance), answered by `PositionsClosedAll` in the journal and to the rebalancer."""

    def __init__(self, steps, clock, new_id, pnl: int = 0):
        super().__init__(steps, clock, new_id)
        self.pnl = pnl
        self.closes = 0

    def __call__(self, delivery: Delivery) -> None:
        body = delivery.envelope.body
        if CloseAllPositions is None or not isinstance(body, CloseAllPositions):
            return super().__call__(delivery)
        self.closes += 1
        env, k = delivery.envelope, self.steps.keys
        margin = int(self.steps.client.hget(k.ledger(env.agent), "trading:margin") or 0)
        commit = self.steps.new_commit(env.agent)
        commit.incr(k.ledger(env.agent), "trading:margin", -margin).incr(
            k.ledger(env.agent), "trading", margin + self.pnl
        )
        done = PositionsClosedAll(reason=body.reason, closed=1 if margin else 0, pnl=self.pnl, fees=0)
        for stream in (k.events(env.agent), k.agent_commands(env.agent, "rebalancer")):
            commit.emit(stream, wrap(done, agent=env.agent, now_ms=self.clock.now_ms(), new_id=self.new_id, cause=env))
        commit.ack(delivery.stream, delivery.group, delivery.entry_id)
        self.steps.commit(commit, env.id, self.clock.now_ms())


class Harness:
    def __init__(self, redis_url, keys, *, hold_physical: bool = False, stall_ms: int = 60_000, max_resends: int = 2,
                 trading_pnl: int = 0, agent: str = AGENT):
        self.url, self.keys, self.agent = redis_url, keys, agent
        self.client = command_client(redis_url)
        self.steps = AtomicSteps(self.client, keys)
        self.clock = ManualClock()
        self.ids = seeded_ids(11, prefix="h")
        self.rebalancer_args = dict(hold_physical=hold_physical, stall_ms=stall_ms, max_resends=max_resends)
        self.rebalancer = Rebalancer.start(self.steps, self.clock, seeded_ids(12, prefix="r"), **self.rebalancer_args)
        self.reserve = ReserveBucket.start(self.steps, self.clock, seeded_ids(13, prefix="v"))
        self.trading = FakeTrading(self.steps, self.clock, seeded_ids(14, prefix="t"), pnl=trading_pnl)
        handlers = {
            "rebalancer": lambda d: self.rebalancer.ask(d),
            "reserve": lambda d: self.reserve.ask(d),
            "trading": self.trading,
            "casino": LegsOnlyBucket(self.steps, self.clock, seeded_ids(15, prefix="c")),
            "referral": LegsOnlyBucket(self.steps, self.clock, seeded_ids(16, prefix="f")),
        }
        self.buses = {role: self._bus(role, handlers[role]) for role in ROLES}

    def _bus(self, role, handler, consumer: str | None = None) -> StreamBus:
        bus = StreamBus(self.url, self.keys, role, [self.keys.shard(self.agent)], handler, block_ms=1,
                        consumer=consumer or f"{role}-test", clock=self.clock, new_id=seeded_ids(17, prefix="b"),
                        max_deliveries=3, retry_backoff_ms=0)
        bus.ensure_groups()
        return bus

    # ------------------------------------------------------------------ set-up

    def open(self, **buckets: str) -> dict[str, int]:
        parts = {name: usd(amount) for name, amount in buckets.items()}
        open_treasury(self.steps, self.agent, sum(parts.values()), now_ms=self.clock.now_ms(), new_id=self.ids,
                      buckets=parts)
        return parts

    def set_risk(self, **fields) -> None:
        self.client.hset(self.keys.risk(self.agent), mapping={k.replace("__", ":"): v for k, v in fields.items()})

    def mark_run(self) -> None:
        """The scheduled rebalance ran just now (so only drift can trigger a tick)."""
        self.client.hset(self.keys.rebalance(self.agent), "last_run_ms",
                         self.clock.now_ms())

    # ------------------------------------------------------------------ driving

    def send(self, body, role: str = "rebalancer"):
        env = wrap(body, agent=self.agent, now_ms=self.clock.now_ms(), new_id=self.ids)
        self.client.xadd(self.keys.agent_commands(self.agent, role), {FIELD: encode(env)})
        return env

    def pump_role(self, role: str) -> int:
        # Not blocking: every entry is written before the pump reads, and a blocking read of an
        # empty stream only returns at Redis's next cron tick (up to 100 ms at hz 10).
        return self.buses[role].poll_once(wait=False)

    def pump(self, roles=ROLES, max_rounds: int = 100) -> int:
        """Deliver until no listed role has anything left; returns how many entries were handled."""
        total = 0
        for _ in range(max_rounds):
            handled = sum(self.pump_role(role) for role in roles)
            total += handled
            if not handled:
                return total
        raise AssertionError("the saga did not settle")

    def restart_rebalancer(self, consumer: str = "rebalancer-test") -> None:
        """A new Rebalancer actor and bus (what a restarted worker has): no memory carried over."""
        self.rebalancer.stop()
        self.buses["rebalancer"].close()
        self.rebalancer = Rebalancer.start(self.steps, self.clock, seeded_ids(22, prefix="q"), **self.rebalancer_args)
        self.buses["rebalancer"] = self._bus("rebalancer", lambda d: self.rebalancer.ask(d), consumer)

    # ------------------------------------------------------------------ reading

    def ledger(self):
        return read_ledger(self.client, self.keys, self.agent)

    def fields(self) -> dict[str, int]:
        raw = self.client.hgetall(self.keys.ledger(self.agent))
        return {k.decode(): int(v) for k, v in raw.items()}

    def journal(self, *types):
        bodies = [e.body for e in read_journal(self.client, self.keys, self.agent)]
        return [b for b in bodies if not types or isinstance(b, types)]

    def pending(self, role: str) -> int:
        return self.client.xpending(self.keys.agent_commands(self.agent, role), f"g:{role}")["pending"]

    def stream_types(self, role: str) -> list[str]:
        from messages.codec import decode_entry
        return [decode_entry(f).type for _, f in self.client.xrange(self.keys.agent_commands(self.agent, role))]

    def close(self) -> None:
        for bus in self.buses.values():
            bus.close()
        for ref in (self.rebalancer, self.reserve):
            if ref.is_alive():
                ref.stop()
        self.client.close()
