"""ReserveBucket: the writer of the reserve's transfer legs.

The reserve never bets, trades or pays anyone by itself; what changes its balance is money moved
in or out by a rebalance, above all the emergency top-up after the reserve-floor breaker. So
this actor only carries out transfer legs (`actors/transfers.py`): it debits the reserve when a
move leaves it (through the fence, so not while PAUSED or HALTED), and credits it when a move
arrives (in every risk state: a move into the reserve only makes the treasury safer).
"""

from __future__ import annotations

import pykka

from actors.base import TreasuryActor
from messages.envelope import IdFactory
from runtime.atomic import AtomicSteps
from runtime.clock import Clock


class ReserveBucket(TreasuryActor):
    """Broadcasts need no action: the fence refuses moves out of the reserve once PAUSED."""

    role = "reserve"
    transfer_legs = True


def build(steps: AtomicSteps, clock: Clock, new_id: IdFactory, venues: dict[str, str]) -> pykka.ActorRef:
    return ReserveBucket.start(steps, clock, new_id)
