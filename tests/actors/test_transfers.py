"""The saga of a move between buckets, on real Redis: each step acknowledged, a failed credit
compensated, a crashed Rebalancer resumed, stalled legs resent then given up, the fence on moves
out of the reserve, and the `handle_transfer` contract every bucket actor relies on."""

from __future__ import annotations

import pytest

from actors.policy.drift import Move
from actors.rebalancer import silo_plan
from actors.transfers import TransferLegs, handle_transfer, open_leg, read_leg
from messages.envelope import seeded_ids, wrap
from messages.schema import CoinFlip, PlaceBet
from messages.treasury_msgs import (
    CompensateLeg,
    CreditLeg,
    DebitLeg,
    FundsDebited,
    FundsMoved,
    FundsReturned,
    LandTransit,
    LegFailed,
    PhysicalTransferIntended,
    Rebalance,
    RebalanceCompensated,
    RebalanceCompleted,
    RebalanceFailed,
    RebalancePlanned,
    RebalanceTick,
    TransitLanded,
)
from runtime.bus import Delivery, HandlerRejected
from tests.kit.rebalancer import AGENT, Harness, usd

pytestmark = pytest.mark.redis

TOTAL = usd("1000")


@pytest.fixture
def h(redis_url, keys):
    harness = Harness(redis_url, keys)
    yield harness
    harness.close()


def casino_surplus(h: Harness) -> None:
    """Casino $50 over its 15 % target, reserve $50 under its 40 %: one move casino -> reserve."""
    h.open(reserve="350", trading="350", casino="200", referral="100")


def reserve_surplus(h: Harness) -> None:
    """Reserve $50 over target, casino $50 under: one move reserve -> casino (through the fence)."""
    h.open(reserve="450", trading="350", casino="100", referral="100")


# ---------------------------------------------------------------- every step, acknowledged


def test_each_step_is_acknowledged_and_the_total_is_conserved_throughout(h):
    casino_surplus(h)
    h.send(Rebalance(trigger="manual", reason="test"))

    assert h.pump_role("rebalancer") == 1
    assert h.stream_types("casino") == ["DebitLeg"]
    assert h.ledger().total == TOTAL and h.pending("rebalancer") == 0

    assert h.pump_role("casino") == 1                           # debit: casino -> reserve:in_transit
    f = h.fields()
    assert (f["casino"], f["reserve:in_transit"], f["reserve"]) == (usd("150"), usd("50"), usd("350"))
    assert h.ledger().total == TOTAL and h.pending("casino") == 0
    assert h.stream_types("rebalancer")[-1] == "FundsDebited"   # the answer to the coordinator
    assert isinstance(h.journal()[-1], FundsDebited)

    assert h.pump_role("rebalancer") == 1
    assert h.stream_types("reserve") == ["CreditLeg"]
    assert h.pump_role("reserve") == 1                          # credit: reserve:in_transit -> reserve
    f = h.fields()
    assert (f["casino"], f["reserve:in_transit"], f["reserve"]) == (usd("150"), 0, usd("400"))
    assert h.stream_types("rebalancer")[-1] == "FundsMoved"

    assert h.pump_role("rebalancer") == 1
    assert h.pump() == 0
    moved, = h.journal(FundsMoved)
    assert (moved.source, moved.dest, moved.amount) == ("casino", "reserve", usd("50"))
    assert "casino is 20.00 % (target 15.00 %)" in moved.reason
    done, = h.journal(RebalanceCompleted)
    assert (done.moves, done.moved, done.held) == (1, usd("50"), 0)
    assert all(h.pending(role) == 0 for role in ("rebalancer", "reserve", "casino"))
    assert h.ledger().total == TOTAL
    # every event of the story shares the request's correlation id
    planned, = h.journal(RebalancePlanned)
    assert planned.saga == moved.saga == done.saga
    # risk was poked at every balance change (debit and credit)
    assert h.stream_types("risk").count("BalancesChanged") == 2


# ---------------------------------------------------------------- a failed credit is compensated


def test_a_failed_credit_is_compensated_back_to_the_source(h):
    reserve_surplus(h)
    h.send(Rebalance(trigger="manual", reason="test"))
    h.pump_role("rebalancer")
    h.pump_role("reserve")                                      # debited, in transit to the casino
    assert h.fields()["casino:in_transit"] == usd("50")
    h.set_risk(halt__casino="casino session stopped")          # the casino bucket is halted meanwhile
    h.pump()

    failed, = h.journal(LegFailed)
    assert (failed.stage, failed.code) == ("credit", "bucket_halted")
    returned, = h.journal(FundsReturned)
    assert (returned.source, returned.amount) == ("reserve", usd("50"))
    outcome, = h.journal(RebalanceCompensated)
    assert outcome.returned == usd("50") and outcome.moves_done == 0
    assert "bucket_halted" in outcome.reason
    f = h.fields()
    assert (f["reserve"], f["casino"], f["casino:in_transit"]) == (usd("450"), usd("100"), 0)
    assert h.ledger().total == TOTAL
    assert h.journal(FundsMoved) == []


# ---------------------------------------------------------------- a crashed Rebalancer resumes


def test_a_rebalancer_that_crashed_mid_saga_resumes_from_its_pending_answers(h):
    casino_surplus(h)
    h.send(Rebalance(trigger="manual", reason="test"))
    h.pump_role("rebalancer")
    h.pump_role("casino")                                       # money in transit, answer waiting

    def crash(delivery):
        raise RuntimeError("worker killed")

    h.buses["rebalancer"].handler = crash
    h.pump_role("rebalancer")                                   # taken, never acknowledged
    assert h.pending("rebalancer") == 1
    assert h.fields()["reserve:in_transit"] == usd("50")

    h.restart_rebalancer()                                      # same consumer name: drains its pending entries
    assert h.buses["rebalancer"].drain_own_pending() == 1
    h.pump()
    assert len(h.journal(RebalanceCompleted)) == 1
    f = h.fields()
    assert (f["casino"], f["reserve"], f["reserve:in_transit"]) == (usd("150"), usd("400"), 0)
    assert h.pending("rebalancer") == 0


def test_a_lost_answer_is_recovered_by_the_tick_from_the_saga_hash(h):
    casino_surplus(h)
    h.send(Rebalance(trigger="manual", reason="test"))
    h.pump_role("rebalancer")
    h.pump_role("casino")
    stream = h.keys.agent_commands(AGENT, "rebalancer")
    lost = h.client.xrange(stream)[-1][0]
    h.client.xdel(stream, lost)                                  # the FundsDebited answer is gone
    h.restart_rebalancer(consumer="another-worker")
    assert h.pump() == 0                                        # nothing happens by itself...
    h.clock.advance(60_000)
    h.send(RebalanceTick())                                     # ...until the tick finds the stalled saga
    h.pump()
    assert len(h.journal(RebalanceCompleted)) == 1
    assert h.fields()["reserve"] == usd("400") and h.ledger().total == TOTAL


def test_a_credit_that_never_comes_is_resent_then_compensated_and_the_late_credits_do_nothing(h):
    reserve_surplus(h)
    h.send(Rebalance(trigger="manual", reason="test"))
    live = ("rebalancer", "reserve")                            # the casino's worker is down
    h.pump(live)
    assert h.fields()["casino:in_transit"] == usd("50")
    for _ in range(3):
        h.clock.advance(60_000)
        h.send(RebalanceTick())
        h.pump(live)
    assert h.stream_types("casino").count("CreditLeg") == 3     # first send + 2 resends
    outcome, = h.journal(RebalanceCompensated)
    assert "credit did not come" in h.journal(FundsReturned)[0].reason
    assert outcome.returned == usd("50")
    h.pump()                                                    # the casino comes back: its 3 credits are stale
    f = h.fields()
    assert (f["reserve"], f["casino"], f["casino:in_transit"]) == (usd("450"), usd("100"), 0)
    assert h.journal(FundsMoved) == [] and h.pending("casino") == 0


def test_a_debit_that_never_comes_is_resent_then_cancelled(h):
    casino_surplus(h)
    h.send(Rebalance(trigger="manual", reason="test"))
    live = ("rebalancer", "reserve")
    h.pump(live)
    for _ in range(3):
        h.clock.advance(60_000)
        h.send(RebalanceTick())
        h.pump(live)
    failed, = h.journal(RebalanceFailed)
    assert failed.stage == "debit" and "did not answer" in failed.reason
    h.pump()                                                    # the casino's late debits find no token
    assert h.fields()["casino"] == usd("200") and h.journal(FundsDebited) == []
    assert h.ledger().total == TOTAL


def test_a_bucket_worker_that_crashed_after_the_fence_finishes_its_debit(h):
    reserve_surplus(h)
    h.send(Rebalance(trigger="manual", reason="test"))
    h.pump_role("rebalancer")
    from messages.codec import decode_entry
    (_, fields), = h.client.xrange(h.keys.agent_commands(AGENT, "reserve"))
    debit = decode_entry(fields)
    h.steps.reserve(AGENT, debit.id, "reserve", usd("50"), usd("50"), h.clock.now_ms())  # fenced, then killed
    assert h.fields()["reserve:reserved"] == usd("50")
    h.pump()
    f = h.fields()
    assert (f["reserve"], f["reserve:reserved"], f["casino"]) == (usd("400"), 0, usd("150"))
    assert not h.client.hlen(h.keys.reservations(AGENT))


# ---------------------------------------------------------------- the risk state


def test_a_move_out_of_the_reserve_is_refused_by_the_fence_once_paused(h):
    reserve_surplus(h)
    h.send(Rebalance(trigger="manual", reason="test"))
    h.pump_role("rebalancer")                                   # planned while ACTIVE
    h.set_risk(state="PAUSED", reason="daily loss")
    h.pump()
    failed, = h.journal(LegFailed)
    assert (failed.stage, failed.code) == ("debit", "paused")
    outcome, = h.journal(RebalanceFailed)
    assert "PAUSED" in outcome.reason
    assert h.fields()["reserve"] == usd("450") and h.fields()["reserve:reserved"] == 0


def test_a_move_into_the_reserve_is_allowed_while_halted(h):
    casino_surplus(h)
    h.set_risk(state="HALTED", reason="drawdown")
    h.send(Rebalance(trigger="manual", reason="test"))
    h.pump()
    assert len(h.journal(RebalanceCompleted)) == 1
    assert h.fields()["reserve"] == usd("400")


# ---------------------------------------------------------------- physical silos


def test_a_cross_silo_credit_waits_in_transit_until_its_deposit_lands(redis_url, keys):
    h = Harness(redis_url, keys, hold_physical=True)
    try:
        reserve_surplus(h)                                      # wallet (reserve) -> casino balance
        h.send(Rebalance(trigger="manual", reason="test"))
        h.pump()
        f = h.fields()
        assert (f["casino"], f["casino:in_transit"], f["reserve"]) == (usd("100"), usd("50"), usd("400"))
        assert h.ledger().bucket("casino") == usd("150") and h.ledger().total == TOTAL
        intent, = h.journal(PhysicalTransferIntended)
        assert (intent.from_silo, intent.to_silo, intent.amount) == ("wallet", "casino", usd("50"))
        assert "casino deposit address" in intent.route
        done, = h.journal(RebalanceCompleted)
        assert done.held == usd("50")
        h.send(LandTransit(saga=done.saga, leg=0, bucket="casino", amount=usd("50"), reason="deposit seen"), "casino")
        h.pump()
        assert h.journal(TransitLanded)[0].amount == usd("50")
        f = h.fields()
        assert (f["casino"], f["casino:in_transit"]) == (usd("150"), 0)
        h.send(LandTransit(saga=done.saga, leg=0, bucket="casino", amount=usd("1"), reason="again"), "casino")
        h.pump()
        assert h.journal(LegFailed)[-1].code == "not_held" and h.fields()["casino"] == usd("150")
    finally:
        h.close()


def test_silo_plan_nets_flows_and_holds_only_the_net_inflow():
    moves = [Move("casino", "reserve", usd("50"), "r"), Move("referral", "reserve", usd("30"), "r"),
             Move("reserve", "trading", usd("60"), "r")]
    holds, transfers = silo_plan(moves)
    # casino silo sends 80, wallet nets +20, trading receives 60
    assert holds == [usd("20"), 0, usd("60")]
    assert transfers == [("casino", "trading", usd("60")), ("casino", "wallet", usd("20"))]
    assert silo_plan([Move("casino", "referral", usd("40"), "r")]) == ([0], [])


# ---------------------------------------------------------------- the handle_transfer contract


def _delivery(keys, role, body, n=1):
    env = wrap(body, agent=AGENT, now_ms=0, new_id=seeded_ids(100 + n))
    return Delivery(keys.agent_commands(AGENT, role), f"g:{role}", f"0-{n}", env, 1)


def test_handle_transfer_contract(h, keys):
    casino_surplus(h)
    legs = TransferLegs(h.steps, h.clock, seeded_ids(5))
    assert handle_transfer(legs, _delivery(keys, "casino", PlaceBet(game=CoinFlip()))) is False
    debit = DebitLeg(saga="s1", leg=0, source="casino", dest="reserve", amount=usd("20"), reason="r")
    with pytest.raises(HandlerRejected, match="not a planned move"):
        handle_transfer(legs, _delivery(keys, "casino", debit))   # no saga recorded it

    commit = h.steps.new_commit(AGENT)
    open_leg(commit, keys, AGENT, "s1", 0, "casino", "reserve", usd("20"))
    h.steps.commit(commit, "open-s1", 0)
    with pytest.raises(HandlerRejected, match="arrived on"):
        handle_transfer(legs, _delivery(keys, "reserve", debit, 2))  # the reserve may not debit the casino
    forged = DebitLeg(saga="s1", leg=0, source="casino", dest="reserve", amount=usd("200"), reason="r")
    with pytest.raises(HandlerRejected, match="does not match"):
        handle_transfer(legs, _delivery(keys, "casino", forged, 3))
    early = CreditLeg(saga="s1", leg=0, source="casino", dest="reserve", amount=usd("20"), reason="r")
    assert handle_transfer(legs, _delivery(keys, "reserve", early, 4)) is True   # not debited: only acked
    assert h.fields()["reserve"] == usd("350")

    assert handle_transfer(h.trading, _delivery(keys, "casino", debit, 5)) is True  # any bucket actor object
    assert handle_transfer(legs, _delivery(keys, "casino", debit, 6)) is True       # a resend: token spent
    facts = read_leg(h.client, keys, AGENT, "s1", 0)
    assert (facts.token, facts.transit, facts.debited) == (0, usd("20"), True)
    assert h.fields()["casino"] == usd("180")
    assert handle_transfer(legs, _delivery(keys, "reserve", early, 7)) is True
    back = CompensateLeg(saga="s1", leg=0, source="casino", dest="reserve", amount=usd("20"), reason="r")
    assert handle_transfer(legs, _delivery(keys, "casino", back, 8)) is True       # too late: credit won
    assert h.journal(LegFailed)[-1].code == "already_credited"
    f = h.fields()
    assert (f["casino"], f["reserve"], f["reserve:in_transit"]) == (usd("180"), usd("370"), 0)
    assert h.ledger().total == TOTAL


def test_a_debit_its_source_can_no_longer_fund_fails_the_saga_with_nothing_moved(h):
    casino_surplus(h)
    h.send(Rebalance(trigger="manual", reason="test"))
    h.pump_role("rebalancer")                                   # planned: casino -> reserve $50
    h.steps.reserve(AGENT, "bet-1", "casino", usd("180"), usd("1000"), h.clock.now_ms())  # a bet takes the money
    h.pump()
    failed, = h.journal(LegFailed)
    assert (failed.stage, failed.code) == ("debit", "insufficient")
    outcome, = h.journal(RebalanceFailed)
    assert "casino has $20.00 available, the move needs $50.00" in outcome.reason
    assert h.fields()["casino"] == usd("20") and h.ledger().total == TOTAL


def test_money_held_by_bets_is_not_planned_out_of_its_bucket(h):
    casino_surplus(h)
    h.steps.reserve(AGENT, "bet-1", "casino", usd("170"), usd("1000"), h.clock.now_ms())  # $30 left available
    h.send(Rebalance(trigger="manual", reason="test"))
    h.pump()
    planned, = h.journal(RebalancePlanned)
    assert [(m.source, m.amount) for m in planned.moves] == [("casino", usd("30"))]
    assert "trimmed from $50.00 to $30.00" in planned.dropped[0]
    assert h.fields()["casino"] == 0 and h.fields()["casino:reserved"] == usd("170")
