"""Shared set-up for the EscrowManager tests: a real Redis, a sandbox on loopback, two casino agents.
`World` is here; the `world` fixture that builds it is in tests/actors/escrow/conftest.py.

The treasury agent opens with a $400 reserve and a $100 casino bucket; the sandbox casino balance
holds the casino bucket plus a $200 reserve float (paper mode: a simulated deposit), so escrows
have reserve money to draw on. Commands are XADDed to the escrow role's stream and delivered to
the actor as the bus would (`send`), and can be delivered again (`redeliver`) as after a crash.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from actors.escrow.manager import EscrowManager
from actors.escrow.store import escrows_key, load_escrows
from actors.escrow.venue import escrow_venue_factory
from actors.ledger import read_ledger
from messages.codec import FIELD, encode
from messages.envelope import Envelope, seeded_ids, wrap
from messages.money import MICRO
from runtime.atomic import AtomicSteps
from runtime.bus import Delivery
from runtime.clock import ManualClock
from runtime.journal import read_journal
from venue.client import EscrowClient, SandboxAdmin

USD = MICRO
AGENT = "esc-agent"
RESERVE = 400 * USD
CASINO_BUCKET = 100 * USD
FLOAT = 200 * USD
FAST = {"backoff_s": 0.001, "max_backoff_s": 0.01}
GROUP = "g:escrow"


@dataclass
class World:
    steps: AtomicSteps
    keys: object
    client: object
    sandbox: object
    admin: SandboxAdmin
    clock: ManualClock
    creator_id: str
    creator_key: str
    counterparty_id: str
    counterparty_key: str
    new_id: object = field(default_factory=lambda: seeded_ids(42, prefix="c"))
    actors: list = field(default_factory=list)
    venues: list = field(default_factory=list)

    # ---------------------------------------------------------------- the actor

    def start_actor(self, venue_for=None, steps=None):
        venue_for = venue_for or self.venue_factory()
        ref = EscrowManager.start(steps or self.steps, self.clock, seeded_ids(len(self.actors) + 7, prefix="e"),
                                  venue_for)
        self.actors.append(ref)
        return ref

    def venue_factory(self):
        return escrow_venue_factory(self.client, self.keys, self.sandbox.urls["escrow"], self.sandbox.urls["casino"],
                                    **FAST)

    # ---------------------------------------------------------------- commands

    def enqueue(self, body) -> Envelope:
        """XADD a command to the escrow role's stream, for a bus to deliver."""
        env = wrap(body, agent=AGENT, now_ms=self.clock.now_ms(), new_id=self.new_id)
        self.client.xadd(self.keys.agent_commands(AGENT, "escrow"), {FIELD: encode(env)})
        return env

    def publish(self, body) -> Delivery:
        """XADD a command and read it as the bus's consumer group would: a Delivery to hand over."""
        env = self.enqueue(body)
        stream = self.keys.agent_commands(AGENT, "escrow")
        reply = self.client.xreadgroup(GROUP, "test", {stream: ">"}, count=1)
        entry_id = reply[0][1][0][0].decode()
        return Delivery(stream, GROUP, entry_id, env, 1)

    def send(self, actor, body) -> Envelope:
        delivery = self.publish(body)
        actor.ask(delivery)
        return delivery.envelope

    def redeliver(self, actor, delivery: Delivery) -> None:
        again = Delivery(delivery.stream, delivery.group, delivery.entry_id, delivery.envelope, delivery.deliveries + 1)
        actor.ask(again)

    # ---------------------------------------------------------------- what to look at

    def ledger(self):
        return read_ledger(self.client, self.keys, AGENT)

    def journal(self, causation: str | None = None):
        events = read_journal(self.client, self.keys, AGENT)
        return [e.body for e in events if causation is None or e.causation == causation]

    def escrows(self):
        return {r.escrow_id: r for r in load_escrows(self.client, self.keys, AGENT)}

    def venue_escrows(self) -> list:
        return self.sandbox.ctx.store.all("SELECT * FROM escrows WHERE creator_id = ? ORDER BY created_ms, id",
                                          (self.creator_id,))

    def venue_balance(self, agent_id: str | None = None) -> int:
        from sandbox.casino import balance_of

        return balance_of(self.sandbox.ctx, agent_id or self.creator_id)

    def escrow_client(self, key: str) -> EscrowClient:
        client = EscrowClient(self.sandbox.urls["escrow"], key, casino_url=self.sandbox.urls["casino"], **FAST)
        self.venues.append(client)
        return client

    def pending(self) -> int:
        return self.client.xpending(self.keys.agent_commands(AGENT, "escrow"), GROUP)["pending"]

    def risk_commands(self) -> int:
        return self.client.xlen(self.keys.agent_commands(AGENT, "risk"))

    def escrows_key(self) -> str:
        return escrows_key(self.keys, AGENT)


