"""ReserveBucket: the writer of the reserve's transfer legs.

The reserve never bets, trades or pays anyone by itself; what changes its balance is money moved
in or out by a rebalance, above all the emergency top-up after the reserve-floor breaker. So
this actor only carries out transfer legs (`actors/transfers.py`): it debits the reserve when a
move leaves it (through the fence, so not while PAUSED or HALTED), and credits it when a move
arrives (in every risk state: a move into the reserve only makes the treasury safer).
"""

from __future__ import annotations

import pykka

from actors.transfers import TransferLegs, handle_transfer
from messages.envelope import IdFactory
from supervisor.atomic import AtomicSteps
from supervisor.bus import Delivery, HandlerRejected
from supervisor.clock import Clock


class ReserveBucket(pykka.ThreadingActor):
    def __init__(self, steps: AtomicSteps, clock: Clock, new_id: IdFactory):
        super().__init__()
        self.steps = steps
        self.clock = clock
        self.new_id = new_id
        self._legs = TransferLegs(steps, clock, new_id)

    def on_receive(self, message):
        if isinstance(message, Delivery):
            return self.handle(message)
        if isinstance(message, tuple) and message and message[0] == "control":
            return None  # nothing to stop: the fence refuses moves out of the reserve once PAUSED
        raise TypeError(f"ReserveBucket cannot handle {type(message).__name__}")

    def handle(self, delivery: Delivery) -> None:
        if handle_transfer(self._legs, delivery):
            return None
        raise HandlerRejected(f"the reserve role does not handle {delivery.envelope.type}")


def build(steps: AtomicSteps, clock: Clock, new_id: IdFactory, venues: dict[str, str]) -> pykka.ActorRef:
    return ReserveBucket.start(steps, clock, new_id)
