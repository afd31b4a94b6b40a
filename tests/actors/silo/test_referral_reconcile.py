"""Referral commissions paid out to the wallet, seen by reconciliation, on real Redis, the sandbox,
the real ReferralBucket and the silo actor. Wallet and trading commissions are referral income
(the referral bucket's home is the casino balance), but they are paid out to the treasury's own
address: asked for, they are in no silo; paid, they are in the wallet. Neither is a difference."""

from __future__ import annotations

import pytest

from actors.chain_view import addresses_key
from actors.referral import build
from messages.envelope import seeded_ids, wrap
from messages.referral_msgs import ReferralSwept, SweepReferrals
from tests.kit.escrow_silo import EscrowSiloHarness
from tests.kit.rebalancer import usd
from tests.kit.referral import deliver

WEEK_MS = 7 * 24 * 3_600_000


@pytest.fixture
def h(redis_url, keys):
    harness = EscrowSiloHarness(redis_url, keys)
    yield harness
    harness.close()


def sweep(h, actor, seed: int) -> ReferralSwept:
    env = wrap(SweepReferrals(), agent=h.agent, now_ms=h.clock.now_ms(), new_id=seeded_ids(seed, "w"))
    actor.ask(deliver(h.client, h.keys, "referral", env))
    return h.journal(ReferralSwept)[-1]


def test_a_wallet_commission_asked_for_paid_and_counted_is_never_a_difference(h):
    h.onboard(reserve="500", trading="300", casino="100", referral="100")
    actor = build(h.steps, h.clock, seeded_ids(61, "e"), h.sandbox.urls)
    try:
        wallet_id = h.creds()["wallet_agent_id"]
        h.sandbox.ctx.store.execute(
            "INSERT INTO wallet_referral_earnings(id, referrer_id, referred_id, swap_id, fee_micros, "
            "commission_micros, created_ms) VALUES ('re_1', ?, 'ag_other', 'swap_1', ?, ?, ?)",
            (wallet_id, usd("24"), usd("2.40"), h.clock.now_ms()))
        asked = sweep(h, actor, 1)
        assert asked.withdrawals == {"wallet": usd("2.40")} and h.fields()["referral:in_transit"] == usd("2.40")
        found = h.reconcile()
        assert all(c.status == "match" for c in found.values()), found
        assert found["wallet"].in_flight_micros == usd("2.40")

        # the wallet service pays it: USDC arrives at the treasury's address before any sweep counts it
        h.sandbox.ctx.store.execute("UPDATE wallet_referral_withdrawals SET status = 'completed' "
                                    "WHERE referrer_id = ?", (wallet_id,))
        base = h.client.hget(addresses_key(h.keys, h.agent), "base").decode()
        h.admin.fund_wallet("base", base, usd("2.40"))
        found = h.reconcile()
        assert all(c.status == "match" for c in found.values()), found

        h.advance(WEEK_MS + 60_000)
        landed = sweep(h, actor, 2)
        assert landed.landed == {"wallet": usd("2.40")} and h.fields()["referral"] == usd("102.40")
        found = h.reconcile()
        assert all(c.status == "match" and c.difference_micros == 0 for c in found.values()), found
        assert found["wallet"].ledger_micros == found["wallet"].venue_micros
    finally:
        actor.stop()


def test_an_escrow_referral_commission_is_referral_income_booked_once(h):
    """An agent that registered with this agent's referral code pays someone through escrow: on
    the release the escrow service credits this agent's casino balance 15 % of its fee
    (`escrow_referral_commission: <id>`). The silo role books it once as referral income, and the
    casino silo matches (it differed by the commission, unbooked, before)."""
    from messages.silo_msgs import IncomeBooked, SiloTick
    from tests.kit.escrow_silo import FAST
    from venue.client import CasinoClient, EscrowClient

    h.onboard(reserve="500", trading="300", casino="100", referral="100")
    h.send(SiloTick(), role="silo")  # watching starts: what is there now was booked at opening
    h.pump()
    urls = h.sandbox.urls
    with CasinoClient(urls["casino"], h.creds()["casino_key"], **FAST) as mine:
        code = mine.referral_code().referral_code
    with CasinoClient(urls["casino"], **FAST) as referred:
        payer = referred.register(referral_code=code)
    h.admin.credit(payer.agent_id, usd("100"))
    with EscrowClient(urls["escrow"], payer.api_key.reveal(), casino_url=urls["casino"], **FAST) as escrow:
        created = escrow.create(h.counterparty, usd("40"), "a referred agent's job", idempotency_key="k1")
        escrow.release(created.escrow_id)
    commission = usd("0.06")  # 15 % of the $0.40 fee
    assert h.casino_balance() == usd("200") + commission
    for _ in range(2):  # a second look books nothing more
        h.send(SiloTick(), role="silo")
        h.pump()
    income, = h.journal(IncomeBooked)
    assert income.bucket == "referral" and income.amount == commission
    assert h.fields()["referral"] == usd("100") + commission
    found = h.reconcile()
    assert all(c.status == "match" and c.difference_micros == 0 for c in found.values()), found
