"""Reconciliation and outside income on real Redis and the sandbox: every silo's venue balance
against the ledger, unknown when unreadable, a difference reported and left to an operator."""

from __future__ import annotations

import pytest

from actors.chain_view import addresses_key
from actors.flows import external_flows
from actors.ledger import read_ledger
from messages.silo_msgs import (
    AdjustLedger,
    FeeBooked,
    IncomeBooked,
    LedgerAdjusted,
    MoveFunds,
    Reconcile,
    ReconciliationChecked,
    SiloTick,
    SiloTransferSent,
)
from tests.kit.rebalancer import usd
from tests.kit.silo import SiloHarness
from venue.errors import VenueUnavailable


@pytest.fixture
def h(redis_url, keys, monkeypatch):
    # These agents hold USDC only, so no price enters a reconciliation: the sandbox's markets walk at
    # most 10 steps per catch-up instead of 5,000 (an hour of clock is 3,600 one-second steps for
    # each of 17 instruments; two simulated days of hourly ticks would spend ~40 s walking prices).
    monkeypatch.setattr("sandbox.prices.MAX_CATCH_UP_STEPS", 10)
    harness = SiloHarness(redis_url, keys)
    yield harness
    harness.close()


def performance(h) -> int:
    """What the breakers measure, computed here from its definition (docs/policy.md): the ledger's
    total less the cumulative external flows, in micro-USD."""
    return read_ledger(h.client, h.keys, h.agent).total - external_flows(h.client, h.keys, h.agent)["total"]


def checks(event: ReconciliationChecked) -> dict:
    return {c.silo: c for c in event.silos}


def reconcile(h) -> ReconciliationChecked:
    h.send(Reconcile(reason="test"), role="silo")
    h.pump()
    return h.journal(ReconciliationChecked)[-1]


def test_clean_after_a_transfer_lands_and_in_flight_while_it_travels(h):
    h.onboard(reserve="500", trading="300", casino="100", referral="100")
    assert reconcile(h).clean
    h.send(MoveFunds(source="reserve", dest="casino", amount=usd("100"), reason="fund escrows"))
    h.pump()
    travelling = checks(reconcile(h))
    assert travelling["casino"].in_flight_micros == usd("100")
    assert travelling["casino"].status == "match" and travelling["wallet"].status == "match"
    h.advance(61_000)
    h.send(SiloTick(), role="silo")
    h.pump()
    done = reconcile(h)
    assert done.clean
    c = checks(done)
    assert c["casino"].venue_micros == c["casino"].ledger_micros == usd("300")
    assert c["wallet"].venue_micros == c["wallet"].ledger_micros == usd("400")


def test_out_of_band_money_is_reported_and_left_until_an_operator_adjusts(h):
    h.onboard(reserve="500", trading="300", casino="100", referral="100")
    base = h.client.hget(addresses_key(h.keys, h.agent), "base").decode()
    h.admin.fund_wallet("base", base, usd("42"))             # the sandbox's admin route: out of band
    before = h.fields()
    found = reconcile(h)
    wallet = checks(found)["wallet"]
    assert not found.clean and found.alerted
    assert (wallet.status, wallet.difference_micros) == ("differs", usd("42"))
    assert h.fields() == before                               # nothing fixed silently
    h.send(SiloTick(), role="silo")
    h.pump()
    assert h.fields() == before
    level = performance(h)
    h.send(AdjustLedger(bucket="reserve", amount=usd("42"), reason="owner topped up the wallet directly"),
           role="reserve")
    h.pump()
    assert performance(h) == level                            # a correction, not a gain: no breaker reads it
    adjusted, = h.journal(LedgerAdjusted)
    assert (adjusted.before, adjusted.after) == (usd("500"), usd("542"))
    assert reconcile(h).clean


def test_an_adjustment_that_would_go_negative_is_refused(h):
    from messages.silo_msgs import AdjustRefused

    h.onboard(reserve="500", trading="300", casino="100", referral="100")
    h.send(AdjustLedger(bucket="casino", amount=-usd("101"), reason="typo"), role="casino")
    h.pump()
    refused, = h.journal(AdjustRefused)
    assert "negative" in refused.reason and h.fields()["casino"] == usd("100")


def test_an_adjustment_of_nothing_is_not_a_command():
    import msgspec

    with pytest.raises(ValueError, match="adjusts nothing"):
        AdjustLedger(bucket="casino", amount=0, reason="typo")
    with pytest.raises(msgspec.ValidationError, match="adjusts nothing"):  # as a signed command would arrive
        msgspec.msgpack.decode(msgspec.msgpack.encode({"bucket": "casino", "amount": 0, "reason": "typo"}),
                               type=AdjustLedger)


class BlindCasino:
    """A casino client whose balance cannot be read."""

    def __init__(self, url):
        from venue.client.casino import CasinoClient

        self.inner = CasinoClient(url)

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def set_api_key(self, key):
        self.inner.set_api_key(key)

    def balance(self):
        raise VenueUnavailable("casino", "503 from upstream", code="unavailable", status=503)


def test_an_unreadable_silo_is_unknown_not_zero(redis_url, keys):
    blind = BlindCasino("http://unused")
    h = SiloHarness(redis_url, keys, clients={"casino": blind})
    try:
        blind.inner = type(blind.inner)(h.sandbox.urls["casino"])
        h.onboard(reserve="500", trading="300", casino="100", referral="100")
        found = reconcile(h)
        casino = checks(found)["casino"]
        assert casino.status == "unknown" and casino.venue_micros is None and casino.difference_micros is None
        assert "unknown" in casino.note
        assert casino.ledger_micros == usd("200")
        assert not found.clean and not found.alerted
        assert checks(found)["wallet"].status == "match"
    finally:
        h.close()


def test_outside_deposit_is_booked_as_income_once(h):
    h.onboard(reserve="500", trading="300", casino="100", referral="100")
    h.send(SiloTick(), role="silo")            # the first look only records what is there
    h.pump()
    assert not h.journal(IncomeBooked)
    level = performance(h)
    h.admin.credit(h.creds()["casino_agent_id"], usd("25"))   # another agent pays us at the casino
    for _ in range(2):
        h.send(SiloTick(), role="silo")
        h.pump()
    income, = h.journal(IncomeBooked)
    assert (income.bucket, income.amount) == ("casino", usd("25"))
    assert h.fields()["casino"] == usd("125")
    assert performance(h) == level            # money paid in is a flow, not a casino win
    assert reconcile(h).clean


class LosingCasino(BlindCasino):
    """The casino takes the withdrawal; its answer is lost."""

    lost = 0

    def balance(self):
        return self.inner.balance()

    def withdraw(self, *args, **kwargs):
        self.inner.withdraw(*args, **kwargs)
        self.lost += 1
        raise VenueUnavailable("casino", "read timed out", code="timeout")


def test_lost_withdrawal_answer_is_found_in_the_withdrawals_list(redis_url, keys):
    casino = LosingCasino("http://unused")
    h = SiloHarness(redis_url, keys, clients={"casino": casino})
    try:
        casino.inner = type(casino.inner)(h.sandbox.urls["casino"])
        h.onboard(reserve="300", trading="300", casino="300", referral="100")
        casino0 = h.casino_balance()
        h.send(MoveFunds(source="casino", dest="reserve", amount=usd("50"), reason="take profits"))
        h.pump()
        sent, = h.journal(SiloTransferSent)
        assert sent.found is True and casino.lost == 1
        assert len(casino.inner.withdrawals()) == 1 and h.casino_balance() == casino0 - usd("50.50")
        fee, = h.journal(FeeBooked)
        assert fee.amount == usd("0.50")
        assert reconcile(h).clean
    finally:
        h.close()


def test_a_payment_from_another_agent_is_income_once(h):
    from venue.client.casino import CasinoClient

    h.onboard(reserve="500", trading="300", casino="100", referral="100")
    h.send(SiloTick(), role="silo")
    h.pump()
    payer = CasinoClient(h.sandbox.urls["casino"])
    payer.register()
    h.admin.credit(payer.balance().agent_id, usd("30"))
    level = performance(h)
    payer.pay(h.creds()["casino_agent_id"], usd("12"), "for the dataset", idempotency_key="p1")
    for _ in range(2):
        h.send(SiloTick(), role="silo")
        h.pump()
    income, = h.journal(IncomeBooked)
    assert performance(h) == level
    assert income.amount == usd("12") and income.ref.startswith("ledger:") and "payment_received" in income.reason
    assert h.fields()["casino"] == usd("112")
    assert reconcile(h).clean


def test_reserve_money_parked_at_the_casino_and_brought_home(h):
    from messages.silo_msgs import PlaceFunds, SiloTransferLanded

    h.onboard(reserve="500", trading="300", casino="100", referral="100")
    casino0, wallet0 = h.casino_balance(), h.wallet_usdc()
    h.send(PlaceFunds(bucket="reserve", silo="casino", amount=usd("100"), reason="escrow float"), role="silo")
    h.pump()
    assert h.wallet_usdc() == wallet0 - usd("100") and h.fields()["reserve"] == usd("500")
    assert checks(reconcile(h))["casino"].in_flight_micros == usd("100")
    assert reconcile(h).clean
    h.advance(61_000)
    h.send(SiloTick(), role="silo")
    h.pump()
    assert h.casino_balance() == casino0 + usd("100")
    done = reconcile(h)
    assert done.clean and checks(done)["casino"].ledger_micros == usd("300")
    h.send(PlaceFunds(bucket="reserve", silo="wallet", amount=usd("60"), reason="back home"), role="silo")
    h.pump()
    assert len(h.journal(SiloTransferLanded)) == 2
    fee, = h.journal(FeeBooked)
    assert fee.bucket == "reserve" and fee.amount == usd("0.50")
    assert h.fields()["reserve"] == usd("499.50") and h.wallet_usdc() == wallet0 - usd("40")
    assert reconcile(h).clean
    # more than is parked cannot come home: refused, nothing sent
    h.send(PlaceFunds(bucket="reserve", silo="wallet", amount=usd("41"), reason="too much"), role="silo")
    h.pump()
    assert len(h.journal(SiloTransferLanded)) == 2 and reconcile(h).clean


def test_a_scheduled_reconciliation_that_finds_what_it_found_last_time_writes_nothing(h):
    """An idle agent reconciled every hour for two days: one `ReconciliationChecked` in the journal
    (the journal is never trimmed, so an unchanged answer is not written again); a change, or an
    operator's own `reconcile`, is journaled."""
    h.onboard(reserve="500", trading="300", casino="100", referral="100")
    journal_len = h.client.xlen(h.keys.events(h.agent))
    for _ in range(48):
        h.advance(3_600_001)
        h.send(SiloTick(), role="silo")
        h.pump()
    assert len(h.journal(ReconciliationChecked)) == 1
    assert h.client.xlen(h.keys.events(h.agent)) == journal_len + 1
    base = h.client.hget(addresses_key(h.keys, h.agent), "base").decode()
    h.admin.fund_wallet("base", base, usd("5"))             # something changes: journaled at the next one
    h.advance(3_600_001)
    h.send(SiloTick(), role="silo")
    h.pump()
    assert [c.clean for c in h.journal(ReconciliationChecked)] == [True, False]
    alerts = h.client.xlen(f"{h.keys.prefix}:alerts")
    assert alerts == 1
    for _ in range(3):                                        # the same difference: alerted once
        h.advance(3_600_001)
        h.send(SiloTick(), role="silo")
        h.pump()
    assert h.client.xlen(f"{h.keys.prefix}:alerts") == alerts and len(h.journal(ReconciliationChecked)) == 2
    reconcile(h)                                              # asked for: always answered in the journal
    assert len(h.journal(ReconciliationChecked)) == 3
