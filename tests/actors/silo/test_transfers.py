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
from tests.kit.rebalancer import usd
from tests.kit.silo import SiloHarness


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


def test_a_closed_transfer_leaves_the_index_after_a_week_a_younger_one_stays(h):
    from actors.silo.records import CLOSED_RETENTION_MS
    from messages.silo_msgs import Reconcile, ReconciliationChecked

    h.onboard(reserve="300", trading="300", casino="300", referral="100")
    h.send(MoveFunds(source="casino", dest="reserve", amount=usd("50"), reason="take profits"))
    h.pump()
    h.send(SiloTick(), role="silo")
    h.pump()
    assert [t.state for t in h.transfers()] == ["landed"]
    h.advance(3 * 86_400_000)
    h.send(MoveFunds(source="reserve", dest="casino", amount=usd("20"), reason="fund escrows"))
    h.pump()                                               # sent; the casino has not credited it yet
    h.advance(CLOSED_RETENTION_MS - 3 * 86_400_000 - 60_000)
    h.send(SiloTick(), role="silo")                        # the deposit lands; the first is 1 min short of a week
    h.pump()
    assert [t.state for t in h.transfers()] == ["landed", "landed"]
    h.advance(120_000)
    h.send(SiloTick(), role="silo")
    h.pump()
    assert [(t.from_silo, t.state) for t in h.transfers()] == [("wallet", "landed")]  # the first went
    h.send(Reconcile(reason="after pruning"), role="silo")
    h.pump()
    assert h.journal(ReconciliationChecked)[-1].clean
    assert len(h.journal(SiloTransferLanded)) == 2          # the journal keeps both stories


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


# ---------------------------------------------------------------- failure paths


class LosingWallet:
    """A wallet client whose send answer is lost: `apply` says whether the venue took the send
    first (the dangerous case), `meanwhile` runs between the two (money arriving, say)."""

    def __init__(self, url, *, apply: bool, times: int = 1, meanwhile=None):
        from venue.client.wallet import WalletClient

        self.inner = WalletClient(url)
        self.apply, self.times, self.meanwhile = apply, times, meanwhile
        self.posts = 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def set_api_key(self, key):
        self.inner.set_api_key(key)

    def send(self, *args, **kwargs):
        from venue.errors import VenueUnavailable

        self.posts += 1
        if self.times <= 0:
            return self.inner.send(*args, **kwargs)
        self.times -= 1
        if self.apply:
            self.inner.send(*args, **kwargs)
        if self.meanwhile:
            self.meanwhile()
        raise VenueUnavailable("wallet", "read timed out", code="timeout")


def sends_to(h, address: str) -> int:
    import httpx

    rows = httpx.get(h.sandbox.urls["wallet"] + "/_sandbox/transfers", params={"chain": "base"}).json()["transfers"]
    return sum(1 for r in rows if r["kind"] == "transfer" and r["to"].lower() == address.lower())


def casino_address(h) -> str:
    from venue.client.casino import CasinoClient

    return CasinoClient(h.sandbox.urls["casino"], h.creds()["casino_key"]).deposit_address("base").address


def test_lost_send_answer_is_looked_up_and_not_resent(redis_url, keys):
    wallet = LosingWallet("http://unused", apply=True)
    h = SiloHarness(redis_url, keys, clients={"wallet": wallet})
    try:
        wallet.inner = type(wallet.inner)(h.sandbox.urls["wallet"])
        h.onboard(reserve="500", trading="300", casino="100", referral="100")
        wallet0 = h.wallet_usdc()
        h.send(MoveFunds(source="reserve", dest="casino", amount=usd("100"), reason="fund escrows"))
        h.pump()
        sent, = h.journal(SiloTransferSent)
        assert sent.found is True                          # proven by the look-up, not by the answer
        assert wallet.posts == 1 and sends_to(h, casino_address(h)) == 1
        assert h.wallet_usdc() == wallet0 - usd("100")
        h.advance(61_000)
        h.send(SiloTick(), role="silo")
        h.pump()
        assert h.journal(SiloTransferLanded) and wallet.posts == 1
    finally:
        h.close()


def test_lost_send_that_never_happened_is_sent_again_once_proven_absent(redis_url, keys):
    wallet = LosingWallet("http://unused", apply=False)
    h = SiloHarness(redis_url, keys, clients={"wallet": wallet})
    try:
        wallet.inner = type(wallet.inner)(h.sandbox.urls["wallet"])
        h.onboard(reserve="500", trading="300", casino="100", referral="100")
        wallet0 = h.wallet_usdc()
        h.send(MoveFunds(source="reserve", dest="casino", amount=usd("100"), reason="fund escrows"))
        h.pump()
        sent, = h.journal(SiloTransferSent)
        assert sent.found is False and wallet.posts == 2
        assert sends_to(h, casino_address(h)) == 1 and h.wallet_usdc() == wallet0 - usd("100")
        assert h.transfers()[0].text("lookup").startswith("absent")
    finally:
        h.close()


def test_unknown_outcome_is_held_and_never_resent(redis_url, keys):
    from actors.chain_view import addresses_key

    holder = {}

    def money_arrives():  # someone pays the wallet while our answer is lost: the balance proves nothing
        base = holder["h"].client.hget(addresses_key(holder["h"].keys, holder["h"].agent), "base").decode()
        holder["h"].admin.fund_wallet("base", base, usd("7"))

    wallet = LosingWallet("http://unused", apply=True, meanwhile=money_arrives)
    h = SiloHarness(redis_url, keys, clients={"wallet": wallet})
    holder["h"] = h
    try:
        wallet.inner = type(wallet.inner)(h.sandbox.urls["wallet"])
        h.onboard(reserve="500", trading="300", casino="100", referral="100")
        h.send(MoveFunds(source="reserve", dest="casino", amount=usd("100"), reason="fund escrows"))
        h.pump()
        held, = h.journal(SiloTransferHeld)
        assert held.why == "unknown" and "never resent" in held.reason
        for _ in range(3):
            h.advance(10 * 60_000)
            h.send(SiloTick(), role="silo")
            h.pump()
        assert wallet.posts == 1 and sends_to(h, casino_address(h)) == 1
        assert len(h.journal(SiloTransferHeld)) == 1
        assert h.transfers()[0].state == "unknown"
        assert not h.journal(HeldReturned)            # held, not returned on a guess
        alerts = h.client.xrange(f"{h.keys.prefix}:alerts")
        assert any(b"never resent" in fields[b"alert"] for _, fields in alerts)
    finally:
        h.close()


def test_deposit_never_seen_is_returned_after_the_deadline_with_an_alert(h):
    h.onboard(reserve="500", trading="300", casino="100", referral="100")
    h.admin.set_deposit_delay("casino", 10 * 3_600_000)    # the casino's poll never comes in time
    h.send(MoveFunds(source="reserve", dest="casino", amount=usd("100"), reason="fund escrows"))
    h.pump()
    assert h.journal(SiloTransferSent)
    h.advance(29 * 60_000)
    h.send(SiloTick(), role="silo")
    h.pump()
    assert not h.journal(SiloTransferFailed)
    h.advance(2 * 60_000)
    h.send(SiloTick(), role="silo")
    h.pump()
    failed, = h.journal(SiloTransferFailed)
    assert failed.stage == "deposit" and "deadline" in failed.reason
    returned, = h.journal(HeldReturned)
    assert (returned.source, returned.amount) == ("reserve", usd("100"))
    fields = h.fields()
    assert fields["casino:in_transit"] == 0 and fields["reserve"] == usd("500") and fields["casino"] == usd("100")
    alerts = h.client.xrange(f"{h.keys.prefix}:alerts")
    assert any(b"deadline" in f[b"alert"] for _, f in alerts)


# ---------------------------------------------------------------- an operator's move is whole or refused


def _refusals(h):
    from messages.schema import CommandRefused

    return [e for e in h.journal(CommandRefused) if e.command == "MoveFunds"]


def test_a_move_of_more_than_the_source_holds_is_refused_whole_and_moves_nothing(h):
    from messages.treasury_msgs import RebalancePlanned

    h.onboard(reserve="500", trading="300", casino="100", referral="100")
    before = h.fields()
    h.send(MoveFunds(source="casino", dest="trading", amount=usd("99999"), reason="too much"))
    h.pump()
    refused, = _refusals(h)
    assert "casino has only $100.00 available, less than the $99,999.00 asked for" in refused.reason
    assert not h.journal(RebalancePlanned) and not h.journal(RebalanceCompleted)
    assert h.fields() == before


def test_a_move_that_would_take_the_reserve_under_its_floor_is_refused(h):
    from messages.treasury_msgs import RebalancePlanned

    h.onboard(reserve="500", trading="300", casino="100", referral="100")
    before = h.fields()
    h.send(MoveFunds(source="reserve", dest="casino", amount=usd("301"), reason="under the floor"))
    h.pump()
    refused, = _refusals(h)
    assert "would take reserve under floor" in refused.reason and "at most $300.00 can leave" in refused.reason
    assert not h.journal(RebalancePlanned) and h.fields() == before
    h.send(MoveFunds(source="reserve", dest="casino", amount=usd("300"), reason="down to the floor exactly"))
    h.pump()
    assert len(_refusals(h)) == 1 and h.journal(RebalanceCompleted)


def test_move_problem_rules():
    from actors.policy.operator_moves import move_problem, reserve_floor_micros

    avail = {"reserve": usd("500"), "casino": usd("100")}
    bal = {"reserve": usd("500"), "trading": usd("300"), "casino": usd("100"), "referral": usd("100")}
    assert move_problem("casino", "reserve", usd("100"), avail, bal) is None
    assert "only $100.00 available" in move_problem("casino", "reserve", usd("100.01"), avail, bal)
    assert reserve_floor_micros(usd("1000")) == usd("200")
    assert move_problem("reserve", "casino", usd("300"), avail, bal) is None
    assert "under floor" in move_problem("reserve", "casino", usd("300") + 1, avail, bal)
    assert move_problem("trading", "reserve", usd("1"), {"trading": usd("1")}, bal) is None  # into the reserve
