"""Escrows seen by reconciliation, on real Redis, the sandbox and the real EscrowManager and silo
actor: money that leaves the casino balance for an escrow, comes back on a refund or goes to the
counterparty on a release is counted where it is, whether the escrow was paid from parked reserve
money or from money at the casino that was not parked (an unbooked surplus such as the casino's
first-deposit match). An escrow never creates a difference, and never hides one."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from messages.escrow_msgs import (
    CreateEscrow,
    DisputeEscrow,
    EscrowCreated,
    EscrowRefunded,
    EscrowRefused,
    EscrowReleased,
    ReleaseEscrow,
    SyncEscrows,
)
from messages.silo_msgs import PlaceFunds
from runtime.keys import Keys
from tests.kit.escrow_silo import EscrowSiloHarness
from tests.kit.rebalancer import usd

TOLERANCE = 10_000


@pytest.fixture
def h(redis_url, keys):
    harness = EscrowSiloHarness(redis_url, keys)
    yield harness
    harness.close()


def differences(h) -> dict[str, int]:
    return {silo: c.difference_micros for silo, c in h.reconcile().items()}


def pay(h, amount: str):
    h.send(CreateEscrow(counterparty=h.counterparty, amount=usd(amount), description="dataset delivery"), role="escrow")
    h.pump()
    return h.journal(EscrowCreated, EscrowRefused)[-1]


def park(h, amount: str) -> None:
    h.send(PlaceFunds(bucket="reserve", silo="casino", amount=usd(amount), reason="escrow float"), role="silo")
    h.pump()
    h.advance(61_000)  # the casino credits the deposit; the next silo message lands it
    h.reconcile()


def test_escrow_paid_from_unparked_casino_money_reconciles_through_release(h):
    """The probe's fault: an escrow funded from casino money that was not parked (here a $25 credit
    nothing booked, as the real casino's first-deposit match is), then released. The casino's
    difference is that unbooked $25 before, during and after; the wallet matches throughout (it
    showed +$25 after the release, the casino −$25 against what it showed before)."""
    h.onboard(reserve="500", trading="300", casino="100", referral="100")
    h.admin.credit(h.creds()["casino_agent_id"], usd("25"))
    before = differences(h)
    assert before == {"wallet": 0, "casino": usd("25"), "trading": 0}
    created = pay(h, "25")
    assert isinstance(created, EscrowCreated)
    assert differences(h) == before
    h.send(ReleaseEscrow(escrow_id=created.escrow_id, proof="sha256:abc"), role="escrow")
    h.pump()
    assert isinstance(h.journal(EscrowReleased)[-1], EscrowReleased)
    assert h.fields()["reserve"] == usd("475")
    assert differences(h) == before


def test_escrow_refunded_at_timeout_and_a_dispute_reconcile(h):
    """A refund (amount − fee back in the casino balance) and a disputed escrow (money at the
    escrow service), both paid from parked money and from money that was not parked."""
    h.onboard(reserve="500", trading="300", casino="100", referral="100")
    park(h, "30")
    h.admin.credit(h.creds()["casino_agent_id"], usd("20"))
    before = differences(h)
    assert before == {"wallet": 0, "casino": usd("20"), "trading": 0}
    first, second = pay(h, "40"), pay(h, "10")
    assert isinstance(first, EscrowCreated) and isinstance(second, EscrowCreated)
    h.send(DisputeEscrow(escrow_id=second.escrow_id, reason="not delivered"), role="escrow")
    h.pump()
    assert differences(h) == before
    h.advance(25 * 3_600_000)
    h.send(SyncEscrows(), role="escrow")
    h.pump()
    refunded, = h.journal(EscrowRefunded)
    assert refunded.escrow_id == first.escrow_id and refunded.fee == usd("0.40")
    assert differences(h) == before


def test_an_escrow_does_not_take_the_referral_buckets_money(h):
    """The casino balance also holds the referral bucket (its commissions land there): an escrow
    may take only what is beyond every casino-homed bucket, so with nothing parked it is refused
    and the referral bucket's money stays where the ledger says it is."""
    h.onboard(reserve="500", trading="300", casino="100", referral="100")
    refused = pay(h, "25")
    assert isinstance(refused, EscrowRefused) and refused.code == "insufficient_balance"
    assert "referral" in refused.reason
    assert h.casino_balance() == usd("200")
    assert all(c.status == "match" for c in h.reconcile().values())


# ---------------------------------------------------------------- property

KINDS = ("park",            # park $n of the reserve at the casino
         "surplus",         # an unbooked credit of $n at the casino (a bonus)
         "pay", "pay",      # CreateEscrow of $n (may be refused)
         "release", "release",  # release the n-th open escrow
         "dispute",         # dispute the n-th open escrow
         "timeout")         # 25 h pass, the sync books the refunds
OPS = st.lists(st.tuples(st.sampled_from(KINDS), st.integers(1, 40)), min_size=1, max_size=8)


@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(start=st.sampled_from([0, 10, 40]), ops=OPS)
@example(start=25, ops=[("pay", 25), ("release", 1)])  # the probe's sequence
@example(start=0, ops=[("park", 30), ("surplus", 20), ("pay", 40), ("pay", 10), ("dispute", 2), ("timeout", 1)])
def test_reconciliation_stays_clean_over_any_sequence_of_escrows(redis_url, prefix, start, ops):
    """`start`: an unbooked credit at the casino before anything else (the first-deposit match).
    Whatever escrows do, reconciliation reports only what nothing booked (the unbooked credits
    the sequence made at the casino), and the oracle, written from the venues' own records and not
    from the reconcile code, agrees that the ledger accounts for every dollar: the reserve's money
    is in the wallet, in the casino beyond the casino-homed buckets and the unbooked credits, or at
    the escrow service; the casino holds its buckets, the unbooked credits, the parked money, less
    what the escrow service debited, plus what it credited back."""
    import uuid

    keys = Keys(prefix=f"{prefix}:{uuid.uuid4().hex[:6]}", shards=4)
    h = EscrowSiloHarness(redis_url, keys)
    try:
        h.onboard(reserve="500", trading="300", casino="100", referral="100")
        wallet0 = h.wallet_usdc()
        surplus, parked = usd(str(start)), 0
        if start:
            h.admin.credit(h.creds()["casino_agent_id"], surplus)
        for kind, n in ops:
            if kind == "park":
                park(h, str(n))
                parked += usd(str(n))
            elif kind == "surplus":
                h.admin.credit(h.creds()["casino_agent_id"], usd(str(n)))
                surplus += usd(str(n))
            elif kind == "pay":
                pay(h, str(n))
            elif kind in ("release", "dispute"):
                closed = {r.escrow_id for r in h.journal(EscrowReleased, EscrowRefunded)}
                open_ids = sorted(e.escrow_id for e in h.journal(EscrowCreated) if e.escrow_id not in closed)
                if open_ids:
                    escrow_id = open_ids[n % len(open_ids)]
                    body = (ReleaseEscrow(escrow_id=escrow_id, proof="delivered") if kind == "release"
                            else DisputeEscrow(escrow_id=escrow_id, reason="not delivered"))
                    h.send(body, role="escrow")
                    h.pump()
            else:
                h.advance(25 * 3_600_000)
                h.send(SyncEscrows(), role="escrow")
                h.pump()

            # the oracle: venue records against the ledger, no reconcile code involved
            venue, ledger = h.venue_view(), h.ledger()
            homed_at_casino = ledger.bucket("casino") + ledger.bucket("referral")
            assert venue.wallet == wallet0 - parked
            assert venue.casino == homed_at_casino + surplus + parked - venue.escrow_debits + venue.escrow_credits
            reserve_at_casino = venue.casino - homed_at_casino - surplus
            assert abs(venue.wallet + reserve_at_casino + venue.escrowed - ledger.bucket("reserve")) <= TOLERANCE
            # and reconciliation says the same: the wallet matches, the casino is off by the unbooked credits
            found = h.reconcile()
            assert found["wallet"].status == "match", (ops, found)
            assert found["trading"].status == "match", (ops, found)
            assert abs(found["casino"].difference_micros - surplus) <= TOLERANCE, (ops, found)
    finally:
        h.close()


def test_parked_money_an_escrow_spent_cannot_be_brought_home(h):
    """$50 parked, a $30 escrow released: $20 of the reserve is left at the casino. Bringing home
    $30 would take the casino bucket's money: refused, nothing sent; $20 comes home, and the books
    stay clean. (The casino's withdrawal fee is taken on top, from the casino balance, and booked
    to the reserve: its position there is then −$0.50, which reconciliation counts.)"""
    from messages.silo_msgs import SiloTransferLanded

    h.onboard(reserve="500", trading="300", casino="100", referral="100")
    park(h, "50")
    created = pay(h, "30")
    assert isinstance(created, EscrowCreated)
    h.send(ReleaseEscrow(escrow_id=created.escrow_id, proof="delivered"), role="escrow")
    h.pump()
    landed = len(h.journal(SiloTransferLanded))
    h.send(PlaceFunds(bucket="reserve", silo="wallet", amount=usd("30"), reason="too much"), role="silo")
    h.pump()
    assert h.casino_balance() == usd("220") and len(h.journal(SiloTransferLanded)) == landed
    h.send(PlaceFunds(bucket="reserve", silo="wallet", amount=usd("20"), reason="the rest"), role="silo")
    h.pump()
    assert len(h.journal(SiloTransferLanded)) == landed + 1
    assert h.casino_balance() == usd("199.50")  # the casino's $0.50 withdrawal fee, booked to the reserve
    assert all(c.status == "match" for c in h.reconcile().values())
