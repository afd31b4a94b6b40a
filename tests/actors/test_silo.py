"""The silo role end to end on real Redis and the sandbox: money leaves the wallet, lands in the
casino through the deposit path, fees are booked, and every failure path holds or returns."""

from __future__ import annotations

import pytest

from messages.silo_msgs import (
    ExecuteSiloTransfers,
    FeeBooked,
    HeldReturned,
    MoveFunds,
    SiloTick,
    SiloTransferFailed,
    SiloTransferHeld,
    SiloTransferLanded,
    SiloTransferSent,
    TransferHeldLanded,
)
from messages.treasury_msgs import RebalanceCompleted
from tests.actors.silo_harness import SiloHarness
from tests.actors.test_rebalancer_harness import usd


@pytest.fixture
def h(redis_url, keys):
    harness = SiloHarness(redis_url, keys)
    yield harness
    harness.close()


def test_reserve_to_casino_moves_through_the_deposit_path(h):
    h.onboard(reserve="500", trading="300", casino="100", referral="100")
    wallet0, casino0 = h.wallet_usdc(), h.casino_balance()
    assert (wallet0, casino0) == (usd("500"), usd("200"))
    h.send(MoveFunds(source="reserve", dest="casino", amount=usd("100"), reason="fund escrows"))
    h.pump()
    assert h.journal(RebalanceCompleted)
    sent, = h.journal(SiloTransferSent)
    assert (sent.from_silo, sent.to_silo, sent.amount) == ("wallet", "casino", usd("100"))
    # the wallet paid at once; the casino has not credited it yet; the ledger holds it in transit
    assert h.wallet_usdc() == wallet0 - usd("100")
    assert h.casino_balance() == casino0
    assert h.fields()["casino:in_transit"] == usd("100")
    h.send(SiloTick(), role="silo")
    h.pump()
    assert not h.journal(SiloTransferLanded)           # the casino polls every 60 s
    h.advance(61_000)
    h.send(SiloTick(), role="silo")
    h.pump()
    landed, = h.journal(SiloTransferLanded)
    assert landed.credited == usd("100")
    assert h.casino_balance() == casino0 + usd("100")
    assert h.fields()["casino:in_transit"] == 0 and h.fields()["casino"] == usd("200")
    assert [e.amount for e in h.journal(TransferHeldLanded)] == [usd("100")]
    assert h.transfers()[0].state == "landed"


def test_casino_to_wallet_books_the_withdrawal_fee(h):
    h.onboard(reserve="300", trading="300", casino="300", referral="100")
    casino0, wallet0 = h.casino_balance(), h.wallet_usdc()
    h.send(MoveFunds(source="casino", dest="reserve", amount=usd("50"), reason="take profits"))
    h.pump()
    h.send(SiloTick(), role="silo")
    h.pump()
    fee, = h.journal(FeeBooked)
    assert (fee.bucket, fee.amount) == ("casino", usd("0.50")) and "fee" in fee.reason
    assert h.casino_balance() == casino0 - usd("50.50")
    assert h.wallet_usdc() == wallet0 + usd("50")
    assert h.journal(SiloTransferLanded)
    assert h.fields()["reserve:in_transit"] == 0
    assert h.fields()["casino"] == usd("300") - usd("50") - usd("0.50")
    assert h.ledger().total == usd("1000") - usd("0.50")   # the fee left the treasury


def test_withdrawal_over_the_review_threshold_waits_and_says_so(h):
    h.onboard(reserve="100", trading="100", casino="1500", referral="100")
    h.send(MoveFunds(source="casino", dest="reserve", amount=usd("1200"), reason="bank the win"))
    h.pump()
    held, = h.journal(SiloTransferHeld)
    assert held.why == "review" and "$1,000 review" in held.reason
    h.advance(3 * 3_600_000)                       # no deadline while the casino reviews it
    h.send(SiloTick(), role="silo")
    h.pump()
    assert not h.journal(SiloTransferFailed) and not h.journal(TransferHeldLanded)
    assert h.transfers()[0].state == "review"
    assert h.fields()["reserve:in_transit"] == usd("1200")


def test_trading_to_wallet_has_no_api_and_is_returned(h):
    h.onboard(reserve="100", trading="500", casino="100", referral="100")
    h.send(MoveFunds(source="trading", dest="reserve", amount=usd("100"), reason="derisk"))
    h.pump()
    failed, = h.journal(SiloTransferFailed)
    assert failed.stage == "send" and "no collateral withdrawal" in failed.reason
    returned, = h.journal(HeldReturned)
    assert (returned.source, returned.dest, returned.amount) == ("trading", "reserve", usd("100"))
    fields = h.fields()
    assert fields["reserve:in_transit"] == 0 and fields["trading"] == usd("500")
    # a redelivered poke changes nothing more
    h.send(ExecuteSiloTransfers(reason="again"), role="silo")
    h.pump()
    assert len(h.journal(HeldReturned)) == 1 and h.fields()["trading"] == usd("500")
