"""Breaker cases through the escrow manager: a payment is an outflow and the counterparty books what it
received (case 2); status agrees with RiskGuard with money in escrow (case 7). Real Redis, sandbox."""

from __future__ import annotations

import pytest

from actors.bootstrap import open_treasury
from actors.casino import CasinoBucket, casino_client_factory
from actors.ledger import read_ledger
from actors.risk_guard import RiskGuard
from messages.codec import FIELD, decode, encode
from messages.envelope import seeded_ids, wrap
from messages.escrow_msgs import CreateEscrow, EscrowCreated, ReleaseEscrow
from messages.flow_msgs import FlowBooked, ScanIncoming
from messages.money import MICRO
from messages.schema import BalancesChanged, RiskStateChanged
from runtime.bus import Delivery
from supervisor.status import collect_agents
from tests.kit.bus import drain_risk
from tests.kit.escrow import AGENT

pytestmark = pytest.mark.redis
USD = MICRO


# ---------------------------------------------------------------- case 2 through the escrow manager


def test_case2_an_escrow_payment_is_an_outflow_and_the_counterparty_books_what_it_received(world):
    w = world
    guard = RiskGuard.start(w.steps, w.clock, seeded_ids(8))
    escrow = w.start_actor()
    try:
        # bob: a treasury agent of this deployment whose casino account is the counterparty's
        w.admin.credit(w.counterparty_id, 75 * USD - w.venue_balance(w.counterparty_id))  # bob's casino silo
        open_treasury(w.steps, "bob", 500 * USD, now_ms=w.clock.now_ms(), new_id=seeded_ids(9),
                      buckets={"reserve": 200 * USD, "trading": 175 * USD, "casino": 75 * USD, "referral": 50 * USD})
        w.client.hset(w.keys.credentials("bob"), mapping={"casino_key": w.counterparty_key})
        bob_before = read_ledger(w.client, w.keys, "bob").total
        casino_bob = CasinoBucket.start(w.steps, w.clock, seeded_ids(10),
                                        casino_client_factory(w.client, w.keys, w.sandbox.urls["casino"]))

        created = [e for e in w.journal(w.send(escrow, CreateEscrow(counterparty=w.counterparty_id, amount=25 * USD,
                                                                    description="dataset delivery")).id)
                   if isinstance(e, EscrowCreated)][0]
        w.send(escrow, ReleaseEscrow(escrow_id=created.escrow_id, proof="delivered"))
        risk = drain_risk(w, AGENT, guard)
        assert w.ledger().total == 475 * USD  # 5 % of $500 left as a payment
        assert risk.state == "ACTIVE" and not [e for e in w.journal() if isinstance(e, RiskStateChanged)]
        assert risk.peak == 475 * USD and risk.day_start == 475 * USD
        paid = [e for e in w.journal() if isinstance(e, FlowBooked)]
        assert [(f.source, f.amount_micros) for f in paid] == [("escrow_payment", -25 * USD)]

        for n in range(2):  # the scan runs twice: bob's $24.75 is booked once
            scan = wrap(ScanIncoming(), agent="bob", now_ms=w.clock.now_ms(), new_id=seeded_ids(20 + n))
            w.client.xadd(w.keys.agent_commands("bob", "casino"), {FIELD: encode(scan)})
            entry = w.client.xrange(w.keys.agent_commands("bob", "casino"))[-1][0].decode()
            casino_bob.ask(Delivery(w.keys.agent_commands("bob", "casino"), "g:casino", entry, scan, 1))
        bob = read_ledger(w.client, w.keys, "bob")
        assert bob.total == bob_before + 24_750_000
        assert bob.available["casino"] == w.venue_balance(w.counterparty_id)
        received = [decode(f[FIELD]).body for _, f in w.client.xrange(w.keys.events("bob"))
                    if isinstance(decode(f[FIELD]).body, FlowBooked)]
        assert [(f.source, f.amount_micros, f.ref) for f in received] == [
            ("escrow_received", 24_750_000, f"escrow-received:{created.escrow_id}")]
        bob_risk = drain_risk(w, "bob", guard)
        assert bob_risk.peak == bob.total  # the high-water mark moved with the inflow: no "gain"
        casino_bob.stop()
    finally:
        guard.stop()


# ---------------------------------------------------------------- case 7


def test_case7_status_and_riskguard_agree_with_money_in_escrow(world):
    w = world
    guard = RiskGuard.start(w.steps, w.clock, seeded_ids(8))
    escrow = w.start_actor()
    try:
        for amount in (20, 40):  # $60 in open escrows
            w.send(escrow, CreateEscrow(counterparty=w.counterparty_id, amount=amount * USD, description="work"))
        risk = drain_risk(w, AGENT, guard)
        w.client.xadd(w.keys.agent_commands(AGENT, "risk"), {FIELD: encode(
            wrap(BalancesChanged(cause="tick"), agent=AGENT, now_ms=w.clock.now_ms(), new_id=seeded_ids(3)))})
        risk = drain_risk(w, AGENT, guard)
        status = collect_agents(w.client, w.keys, [AGENT], now_ms=w.clock.now_ms())[0]
        assert status["total"] == read_ledger(w.client, w.keys, AGENT).total == 500 * USD
        assert int(w.client.hget(w.keys.risk(AGENT), "total")) == status["total"]
        reserve = {b["bucket"]: b for b in status["buckets"]}["reserve"]
        assert reserve["total"] == 400 * USD and reserve["held"]["locked"] == 60 * USD
        assert risk.state == "ACTIVE"
    finally:
        guard.stop()


