"""What every role's actor shares: its tools, how messages reach its handlers, and how it commits.

Each actor serves one role for every agent of its worker's shards. It receives bus deliveries
(`Delivery`, dispatched by `handle` through the class's `handlers` table) and, from the worker's
control listener, every ACTIVE / PAUSED / HALTED broadcast: written at once into `self.controls`
(a `ControlView` the listener thread updates directly, read before each spend, so queued spends
are refused as soon as the broadcast lands) and told as a `ControlChanged` message, which
`on_control` may act on. The fence, not this view, is the authority: a spend the broadcast has
not reached is still refused there.

Every change an actor makes goes through one commit with the stream ack; the helpers that build
and run those (`_emit`, `_commit`, `_ack_only`, `_deny`) come from `actors.commits.Committer`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import pykka

from actors.commits import Committer
from actors.silo.legs import handle_silo_leg
from actors.transfers import handle_transfer
from messages.base import Message
from messages.codec import decode
from messages.envelope import Envelope, IdFactory
from messages.schema import RetrySpend, RiskControl
from runtime.atomic import AtomicSteps
from runtime.bus import Delivery, HandlerRejected, UnknownAgent
from runtime.clock import Clock
from runtime.control import ControlChanged, ControlView
from runtime.durability import suffix_loss_possible
from runtime.keys import Keys


@dataclass(frozen=True)
class Wave:
    """Deliveries of different agents handed to one actor together (`actors.pool.ActorPool.submit_wave`);
    the actor answers each one's outcome, in order: None, or the exception its handling raised."""

    deliveries: list[Delivery]


class VenuePace:
    """How long this actor's venue calls take: an exponentially weighted mean, in seconds, of the
    latest calls (`observe`). Written by the actor's thread, read by its pool's (a float
    assignment: no lock needed); `calls` is 0 until the first one."""

    WEIGHT = 0.2
    """The newest call's weight in the mean."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0

    def observe(self, seconds: float) -> None:
        self.seconds = seconds if self.calls == 0 else self.seconds + self.WEIGHT * (seconds - self.seconds)
        self.calls += 1


class TreasuryActor(Committer, pykka.ThreadingActor):
    """Base of the role actors (a pykka actor: one thread, one message at a time).

    Subclasses set `role`, fill `handlers` (message body type -> name of the method called as
    `method(delivery, body)`) and set `transfer_legs` when the role's bucket takes part in
    rebalancing moves (its `DebitLeg`/`CreditLeg`/... are applied by `actors.transfers`).
    A body type with no handler is dead-lettered at once (`HandlerRejected`).
    """

    role: ClassVar[str] = ""
    """The role name (the stream the actor consumes), for refusals of messages it does not handle."""

    handlers: ClassVar[Mapping[type[Message], str]] = {}
    """Body type -> handler method name; each handler is called as `method(delivery, body)`."""

    transfer_legs: ClassVar[bool] = False
    """True for bucket actors: transfer legs addressed to the bucket are applied before `handlers`."""

    checks_agent_itself: ClassVar[frozenset[type[Message]]] = frozenset()
    """Body types whose handler raises `UnknownAgent` itself, from its first read and before it
    writes anything (the existence of the risk hash, in the same round trip as its state): for
    these, `on_receive` does not spend a round trip on the check."""

    def __init__(self, steps: AtomicSteps, clock: Clock, new_id: IdFactory):
        super().__init__()
        self.steps = steps
        self.keys: Keys = steps.keys
        self.client = steps.client
        self.clock = clock
        self.new_id = new_id
        self.controls = ControlView()
        self.venue_pace = VenuePace()
        """The pace of this actor's venue calls (a spending role observes them): its pool splits a
        wave between its actors only while the venue is slow enough for that to pay."""
        self._lossy: bool | None = None

    def must_look_up(self, delivery: Delivery, reserved_before: bool) -> bool:
        """Whether a spend must be looked up at the venue before it is placed: whenever the treasury
        cannot prove it never sent it. The fence's reservation is written before any venue call, so
        on a Redis that fsyncs every write a reservation made just now (none before, not applied)
        proves the spend never left; a reservation found already there proves nothing; and on a
        Redis that may lose a suffix of acknowledged writes (`runtime.durability`) nothing does —
        the reservation, its applied id and the delivery count may all have been lost while the
        command survived. `delivery` is for the reader; the proof does not depend on its count."""
        return reserved_before or self.redis_may_lose_writes()

    def redis_may_lose_writes(self) -> bool:
        """`runtime.durability.suffix_loss_possible`, asked once per actor."""
        if self._lossy is None:
            self._lossy = suffix_loss_possible(self.client)
        return self._lossy

    def on_receive(self, message):
        if isinstance(message, Delivery):
            agent = message.envelope.agent
            if type(message.envelope.body) not in self.checks_agent_itself and not self.agent_known(agent):
                raise unknown_agent(agent)
            if isinstance(message.envelope.body, RetrySpend):
                return self.retry_spend(message, message.envelope.body)
            return self.handle(message)
        if isinstance(message, Wave):
            return self.handle_wave(message.deliveries)
        if isinstance(message, ControlChanged):
            if not self.controls.fed_directly:  # else the listener wrote it (and maybe newer ones) already
                self.controls.update(message.agent, message.control)
            return self.on_control(message.agent, message.control)
        raise TypeError(f"{type(self).__name__} cannot handle {type(message).__name__}")

    def handle_wave(self, deliveries: Sequence[Delivery]) -> list[Exception | None]:
        """Each delivery (of different agents) handled as if it came alone; the outcome of each, in
        order: None, or the exception it raised. A role may share round trips across the wave."""
        return [self._outcome(d) for d in deliveries]

    def _outcome(self, delivery: Delivery) -> Exception | None:
        try:
            self.on_receive(delivery)
        except Exception as exc:  # noqa: BLE001 - the delivery's outcome, concluded by the bus
            return exc
        return None

    def agent_known(self, agent: str) -> bool:
        """Whether this treasury serves `agent` (its risk hash exists): one round trip."""
        return bool(self.client.exists(self.keys.risk(agent)))

    def handle(self, delivery: Delivery) -> None:
        """Apply one delivery: a transfer leg or a silo leg (`actors/silo/legs.py`: land, return,
        fee, income, adjustment) when `transfer_legs`, else the body's handler."""
        if self.transfer_legs and (handle_transfer(self, delivery) or handle_silo_leg(self, delivery)):
            return None
        body = delivery.envelope.body
        name = self.handlers.get(type(body))
        if name is None:
            raise self.unhandled(delivery)
        return getattr(self, name)(delivery, body)

    def on_control(self, agent: str, control: RiskControl) -> None:
        """React to a broadcast with a commit (close positions, stop a session); nothing by default."""

    def spend_blocked(self, agent: str) -> RiskControl | None:
        """The broadcast PAUSED / HALTED that forbids this agent's spend now, if one has landed."""
        return self.controls.blocking(agent, self.clock.now_ms())

    def retry_spend(self, delivery: Delivery, cmd: RetrySpend) -> None:
        """Run a dead-lettered spend again, if and only if its funds are still reserved.

        The original command comes back from the dead stream; its handler then commits under the
        original message id (so it can apply at most once) and acknowledges this retry's entry.
        A command that never reserved anything (refused by the gate, say) is not retried.
        """
        agent = delivery.envelope.agent
        if not self.client.hexists(self.keys.reservations(agent), cmd.message_id):
            raise HandlerRejected(f"no funds are reserved for {cmd.message_id}: nothing to retry")
        original = find_dead(self.client, self.keys, agent, cmd.message_id)
        if original is None:
            raise HandlerRejected(f"{cmd.message_id} is not on the dead stream of agent {agent}")
        if original.agent != agent:
            raise HandlerRejected(f"{cmd.message_id} belongs to another agent")
        return self.handle(Delivery(delivery.stream, delivery.group, delivery.entry_id, original, 1))

    def unhandled(self, delivery: Delivery) -> HandlerRejected:
        """The error for a message this role does not handle: dead-lettered at once."""
        return HandlerRejected(f"the {self.role} role does not handle {delivery.envelope.type}")


def unknown_agent(agent: str) -> UnknownAgent:
    """The error for a message whose agent this treasury does not serve (dead-lettered, nothing written)."""
    return UnknownAgent(f"unknown agent {agent!r}: this treasury does not serve it (nothing done)")


def find_dead(client: Any, keys: Keys, agent: str, message_id: str, scan: int = 10_000) -> Envelope | None:
    """The newest dead-lettered command with this message id, from the agent's shard's dead stream."""
    stream = keys.dead(keys.shard(agent))
    last = "+"
    seen = 0
    while seen < scan:
        page = client.xrevrange(stream, max=last, count=500)
        if not page:
            return None
        for _entry_id, fields in page:
            if fields.get(b"msg_id", b"").decode() == message_id and fields.get(b"raw"):
                return decode(fields[b"raw"])
        seen += len(page)
        last_id = page[-1][0].decode()
        ms, _, sq = last_id.partition("-")
        last = f"{ms}-{int(sq) - 1}" if int(sq) > 0 else f"{int(ms) - 1}"
    return None
