"""The actor base: every role dispatches through its `handlers` table, and what no table names is
dead-lettered at once with the role in the reason."""

from __future__ import annotations

import inspect

import pytest

from actors.base import TreasuryActor
from actors.casino import CasinoBucket
from actors.escrow.manager import EscrowManager
from actors.rebalancer import Rebalancer
from actors.referral import ReferralBucket
from actors.reserve import ReserveBucket
from actors.risk_guard import RiskGuard
from actors.trading.actor import TradingBucket
from actors.transfers import TransferLegs
from messages.envelope import seeded_ids, wrap
from messages.schema import BalancesChanged, CoinFlip, PlaceBet
from runtime.bus import Delivery, HandlerRejected

ACTORS = [CasinoBucket, EscrowManager, Rebalancer, ReferralBucket, ReserveBucket, RiskGuard, TradingBucket]


@pytest.mark.parametrize("cls", [*ACTORS, TransferLegs], ids=lambda c: c.__name__)
def test_every_handler_named_in_a_table_takes_the_delivery_and_the_body(cls):
    for body_type, name in cls.handlers.items():
        method = getattr(cls, name)
        params = list(inspect.signature(method).parameters)
        assert params[:1] == ["self"] and len(params) == 3, (body_type.__name__, name, params)


@pytest.mark.parametrize("cls", ACTORS, ids=lambda c: c.__name__)
def test_every_actor_class_documents_itself(cls):
    """`help(cls)` starts with the class's own docstring, not pykka's."""
    assert cls.__doc__ and cls.__doc__ != TreasuryActor.__bases__[1].__doc__
    assert "pykka" not in (cls.__doc__ or "").split("\n")[0].lower()


def test_a_body_no_table_names_is_rejected_with_the_role():
    class Casinoish(TreasuryActor):
        role = "casino"
        handlers = {PlaceBet: "bet"}

        def bet(self, delivery, body):
            self.seen.append(body)

    actor = Casinoish.__new__(Casinoish)
    actor.seen = []
    ids = seeded_ids(3)
    bet = PlaceBet(game=CoinFlip(side="heads"), win_prob=0.5, kelly="half")
    actor.handle(Delivery("s", "g", "1-0", wrap(bet, agent="a", now_ms=1, new_id=ids), 1))
    assert actor.seen == [bet]
    poke = Delivery("s", "g", "2-0", wrap(BalancesChanged(cause="x"), agent="a", now_ms=1, new_id=ids), 1)
    with pytest.raises(HandlerRejected, match="the casino role does not handle BalancesChanged"):
        actor.handle(poke)
