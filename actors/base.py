"""What every role's actor shares: its tools, and how messages reach its handler.

Each actor serves one role for every agent of its worker's shards. It receives bus deliveries
(`Delivery`, answered by `handle`) and, from the worker's control listener, the latest
ACTIVE / PAUSED / HALTED broadcast per agent (`("control", agent, RiskControl)`), which it keeps
and may act on (`on_control`); the fence, not this cache, decides whether a spend may start.
"""

from __future__ import annotations

import pykka

from messages.envelope import IdFactory
from messages.keys import Keys
from messages.schema import RiskControl
from supervisor.atomic import AtomicSteps
from supervisor.bus import Delivery, HandlerRejected
from supervisor.clock import Clock


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

    def unhandled(self, delivery: Delivery) -> HandlerRejected:
        """The error for a message this role does not handle: dead-lettered at once."""
        return HandlerRejected(f"the {self.role} role does not handle {delivery.envelope.type}")
