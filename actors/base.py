"""What every role's actor shares: its tools, and how messages reach its handler.

Each actor serves one role for every agent of its worker's shards. It receives bus deliveries
(`Delivery`, answered by `handle`) and, from the worker's control listener, the latest
ACTIVE / PAUSED / HALTED broadcast per agent (`("control", agent, RiskControl)`), which it keeps
and may act on (`on_control`); the fence, not this cache, decides whether a spend may start.
"""

from __future__ import annotations

import pykka

from messages.codec import decode
from messages.envelope import Envelope, IdFactory
from messages.schema import RetrySpend, RiskControl
from runtime.atomic import AtomicSteps
from runtime.bus import Delivery, HandlerRejected
from runtime.clock import Clock
from runtime.keys import Keys


class TreasuryActor(pykka.ThreadingActor):
    role = ""
    """The role name, for refusals of messages the role does not handle."""

    def __init__(self, steps: AtomicSteps, clock: Clock, new_id: IdFactory):
        super().__init__()
        self.steps = steps
        self.keys: Keys = steps.keys
        self.client = steps.client
        self.clock = clock
        self.new_id = new_id
        self.control: dict[str, RiskControl] = {}

    def on_receive(self, message):
        if isinstance(message, Delivery):
            if isinstance(message.envelope.body, RetrySpend):
                return self.retry_spend(message, message.envelope.body)
            return self.handle(message)
        if isinstance(message, tuple) and message and message[0] == "control":
            _, agent, control = message
            self.control[agent] = control
            return self.on_control(agent, control)
        raise TypeError(f"{type(self).__name__} cannot handle {type(message).__name__}")

    def handle(self, delivery: Delivery) -> None:
        raise NotImplementedError

    def on_control(self, agent: str, control: RiskControl) -> None:
        """React to a broadcast (stop a loop, close positions); nothing by default."""

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


def find_dead(client, keys: Keys, agent: str, message_id: str, scan: int = 10_000) -> Envelope | None:
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
