"""What the TradingBucket tests share: `Harness`, the driver that feeds the actor real stream
deliveries, sample orders and the book checks. The fixtures (a sandbox with a still clock, one
funded trading agent per test) are in tests/actors/trading/conftest.py.

The sandbox's prices only move when a test pins them (its clock stands still), so every figure
in the tests is exact. The agent's venue collateral is funded with exactly its trading bucket, so
the ledger can be reconciled with the venue's own account after every step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import httpx
import msgspec

from actors.ledger import read_ledger
from actors.trading.book import plans_key, read_positions
from messages.codec import FIELD, decode_entry, encode
from messages.envelope import seeded_ids, wrap
from messages.money import MICRO
from messages.trading_msgs import OpenPosition, PositionClosed, PositionOpened
from runtime.atomic import AtomicSteps
from runtime.bus import Delivery
from runtime.clock import ManualClock
from runtime.journal import read_journal
from venue.client.trading import TradingClient

USD = MICRO
TRADING = 10_000 * USD
"""The trading bucket of every test agent; its venue collateral is the same."""
@dataclass
class Harness:
    """One agent: its treasury in Redis, its venue account, and the actor serving it."""

    agent: str
    venue_agent: str
    steps: AtomicSteps
    actor: object
    clock: ManualClock
    handle: object
    rclient: object
    client: TradingClient
    new_id: object = field(default_factory=lambda: seeded_ids(77, "c"))
    group: str = "g:trading"

    # -- driving the actor -------------------------------------------------------------------

    @property
    def stream(self) -> str:
        return self.steps.keys.agent_commands(self.agent, "trading")

    def deliver(self, body, signed: bool = False) -> Delivery:
        """XADD a command and read it back through the group, as the bus would hand it over.
        `signed`: as if it came from outside with a signature the gate has verified."""
        env = wrap(body, agent=self.agent, now_ms=self.clock.now_ms(), new_id=self.new_id)
        if signed:
            env = msgspec.structs.replace(env, signature="v1.verified-by-the-gate")
        self.rclient.xadd(self.stream, {FIELD: encode(env)})
        reply = self.rclient.xreadgroup(self.group, "tester", {self.stream: ">"}, count=1)
        entry_id, fields = reply[0][1][0]
        return Delivery(self.stream, self.group, entry_id.decode(), decode_entry(fields), 1)

    def send(self, body, signed: bool = False) -> Delivery:
        delivery = self.deliver(body, signed)
        self.actor.ask(delivery)
        return delivery

    def redeliver(self, delivery: Delivery) -> None:
        self.actor.ask(Delivery(delivery.stream, delivery.group, delivery.entry_id, delivery.envelope,
                                delivery.deliveries + 1))

    # -- what happened -----------------------------------------------------------------------

    def events(self, cause: Delivery | None = None, kind: type | None = None) -> list:
        out = []
        for env in read_journal(self.rclient, self.steps.keys, self.agent):
            if cause is not None and env.causation != cause.envelope.id:
                continue
            if kind is not None and not isinstance(env.body, kind):
                continue
            out.append(env.body)
        return out

    def one(self, cause: Delivery, kind: type):
        found = self.events(cause, kind)
        assert len(found) == 1, f"expected one {kind.__name__} for {cause.envelope.id}, got {self.events(cause)}"
        return found[0]

    def ledger(self) -> dict[str, int]:
        view = read_ledger(self.rclient, self.steps.keys, self.agent)
        return {"available": view.available.get("trading", 0), "reserved": view.held_by("trading", "reserved"),
                "margin": view.held_by("trading", "margin"), "bucket": view.bucket("trading"), "total": view.total}

    def positions(self):
        return read_positions(self.rclient, self.steps.keys, self.agent)

    def pending(self) -> int:
        return self.rclient.xpending(self.stream, self.group)["pending"]

    # -- the venue ---------------------------------------------------------------------------

    def set_price(self, coin: str, price: str) -> Decimal:
        r = httpx.post(f"{self.handle.urls['trading']}/_sandbox/price", json={"coin": coin, "price": price})
        r.raise_for_status()
        return Decimal(str(r.json()["price"]))

    def venue_account(self) -> dict:
        r = httpx.get(f"{self.handle.urls['trading']}/_sandbox/account/{self.venue_agent}")
        r.raise_for_status()
        return r.json()

    def venue_rows(self) -> list:
        return self.client.positions(show_all=True).positions

    def set_risk(self, **fields) -> None:
        self.rclient.hset(self.steps.keys.risk(self.agent), mapping=fields)


# ---------------------------------------------------------------- shared checks

OTHER_BUCKETS = 20_000 * USD


def order(**changes) -> OpenPosition:
    fields = dict(coin="BTC", side="long", win_rate="0.55", win_loss_ratio="2", stop_distance="0.02", leverage=5)
    fields.update(changes)
    return OpenPosition(**fields)


def assert_books(h: Harness, *, venue_exact: bool = True) -> None:
    """The books, after any completed message: nothing stays reserved or planned; the trading bucket
    equals its start less every opening fee plus, for every close, what came back less the margin
    posted (`returned − margin` = pnl − closing fee, floored at −margin); the other buckets never
    move; the booked positions carry all of `trading:margin`; and the ledger agrees with the
    venue's own account to the micro (available = free collateral, margin = margin locked)."""
    opened = h.events(kind=PositionOpened)
    closed = h.events(kind=PositionClosed)
    expected = TRADING - sum(e.fee for e in opened) + sum(e.returned - e.margin for e in closed)
    books = h.ledger()
    assert books["reserved"] == 0
    assert books["bucket"] == books["available"] + books["margin"] == expected
    assert books["total"] == OTHER_BUCKETS + expected
    assert books["margin"] == sum(r.margin for r in h.positions().values())
    assert h.rclient.hlen(h.steps.keys.reservations(h.agent)) == 0
    assert h.rclient.hlen(plans_key(h.steps.keys, h.agent)) == 0
    assert h.pending() == 0
    if venue_exact:
        account = h.venue_account()
        assert books["available"] == account["collateral_micros"]
        assert books["margin"] == account["margin_locked_micros"]


def exit_triggers(h: Harness) -> dict[str, list[Decimal]]:
    """The venue's pending stop-loss and take-profit triggers, by type (read at an unchanged price,
    so nothing fires)."""
    data = h.client.request_json("POST", "/v1/trade/check-exits")
    assert data["triggered"] == 0
    out: dict[str, list[Decimal]] = {}
    for row in data["not_yet_triggered"]:
        out.setdefault(row["type"], []).append(Decimal(str(row["trigger_price"])))
    return out
