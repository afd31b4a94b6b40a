"""The planner that weighs cost: pure functions, and the Rebalancer's plans on real Redis."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from actors.ledger import LedgerView
from actors.policy.drift import Move
from actors.silo.planning import assign_legs, cover_transfers, transfer_fees, weigh_moves
from actors.silo.reconcile import SILOS, expected_by_silo
from actors.silo.records import HeldLeg, Transfer
from messages.silo_msgs import MoveFunds, Reconcile
from messages.treasury_msgs import RebalancePlanned, RebalanceSkipped, RebalanceTick, SetPolicy
from tests.kit.rebalancer import usd
from tests.kit.silo import SiloHarness

HOME = {"reserve": "wallet", "trading": "trading", "casino": "casino", "referral": "casino"}


def test_fees_known_in_advance():
    assert transfer_fees("casino", "wallet", usd("10")) == usd("0.50")
    assert transfer_fees("casino", "trading", usd("10")) == usd("0.50")   # one casino hop
    assert transfer_fees("wallet", "casino", usd("10")) == 0


def test_a_move_whose_fee_exceeds_the_share_is_dropped_with_why():
    moves = [Move("casino", "reserve", usd("20"), ""), Move("casino", "reserve", usd("30"), "")]
    _, keep, _, why = weigh_moves(moves, [usd("20"), usd("30")], ["casino", "casino"], HOME, {}, 200)
    assert keep == [False, True]              # $0.50 is 2.5 % of $20, 1.67 % of $30
    assert "exceed 2.00 %" in why[0]


def test_a_destination_surplus_stands_in_for_the_transfer():
    moves = [Move("reserve", "casino", usd("50"), "")]
    holds, keep, used, why = weigh_moves(moves, [usd("50")], ["wallet"], HOME, {"casino": usd("30")}, None)
    assert holds == [usd("20")] and keep == [True] and used == {"casino": usd("30")}
    assert "skipped" in why[0]
    assert cover_transfers([("wallet", "casino", usd("50"))], used) == [("wallet", "casino", usd("20"))]
    assert cover_transfers([("wallet", "casino", usd("50"))], {"casino": usd("50")}) == []


legs = st.lists(st.tuples(st.sampled_from(["reserve", "trading", "casino", "referral"]), st.integers(1, 10**9)),
                min_size=0, max_size=6)
transfers = st.lists(st.tuples(st.sampled_from(["wallet", "casino", "trading"]), st.integers(1, 10**9)),
                     min_size=0, max_size=4)


@settings(max_examples=200, deadline=None)
@given(legs, transfers)
def test_assign_legs_carries_each_transfer_from_held_legs_into_its_silo_never_more(held_spec, xfer_spec):
    held = [HeldLeg(i, "x", dest, amount) for i, (dest, amount) in enumerate(held_spec)]
    xfers = [("src", dst, amount) for dst, amount in xfer_spec]
    carried = assign_legs(held, xfers, HOME)
    # oracle: per destination silo, what the transfers get is the held money into that silo, handed
    # out in transfer order until it runs out
    pool = {s: sum(g.held for g in held if HOME[g.dest] == s) for s in ("wallet", "casino", "trading")}
    for (_, dst, amount), parts in zip(xfers, carried, strict=True):
        want = min(amount, pool[dst])
        pool[dst] -= want
        assert sum(p.held for p in parts) == want
        assert all(HOME[p.dest] == dst for p in parts)
    for g in held:
        assert sum(p.held for parts in carried for p in parts if p.leg == g.leg) <= g.held


# ---------------------------------------------------------------- the Rebalancer's plans


def test_drift_move_whose_fee_is_too_large_a_share_is_dropped(redis_url, keys):
    h = SiloHarness(redis_url, keys)
    try:
        h.onboard(reserve="300", trading="350", casino="250", referral="100")
        h.send(SetPolicy(settings={"max_transfer_fee_bp": 20}))       # 0.2 %: the $0.50 on $100 is 0.5 %
        h.pump()
        h.mark_run()
        h.send(RebalanceTick())
        h.pump()
        skipped, = h.journal(RebalanceSkipped)
        assert "exceed 0.20 %" in skipped.reason and "casino -> reserve" in skipped.reason
        assert h.fields()["casino"] == usd("250")
    finally:
        h.close()


def test_transfer_skipped_when_the_destination_silo_already_holds_the_money(redis_url, keys):
    h = SiloHarness(redis_url, keys)
    try:
        h.onboard(reserve="500", trading="300", casino="100", referral="100")
        h.admin.credit(h.creds()["casino_agent_id"], usd("60"))   # the casino silo holds $60 beyond its buckets
        h.send(Reconcile(reason="before moving"), role="silo")
        h.pump()
        h.send(MoveFunds(source="reserve", dest="casino", amount=usd("100"), reason="fund escrows"))
        h.pump()
        planned, = h.journal(RebalancePlanned)
        assert planned.moves[0].hold == usd("40")
        assert any("transfer of $60.00 skipped" in d for d in planned.dropped)
        (t,) = h.transfers()
        assert (t.from_silo, t.to_silo, t.amount) == ("wallet", "casino", usd("40"))
        assert h.fields()["casino"] == usd("160") and h.fields()["casino:in_transit"] == usd("40")
    finally:
        h.close()


# ---------------------------------------------------------------- reconciliation arithmetic

states = st.sampled_from(["pending", "sending", "sent", "review", "unknown", "landed", "returned"])
routes = st.sampled_from([("wallet", "casino"), ("casino", "wallet"), ("wallet", "trading"), ("casino", "trading")])


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["reserve", "trading", "casino", "referral"]), st.integers(0, 10**9),
                       min_size=4, max_size=4),
       st.integers(0, 10**8), st.integers(0, 10**8), st.integers(0, 10**8),
       st.lists(st.tuples(routes, states, st.integers(1, 10**8), st.integers(0, 1), st.booleans()), max_size=5))
def test_reconciliation_figures_add_up_to_the_ledger(buckets, locked, parked, spent, spec):
    """Whatever the transfers' states, the silos' ledger figures plus what is in flight are the
    ledger total less what is locked at the escrow service: money is placed, never made."""
    ledger = LedgerView(available=dict(buckets), held={"reserve": {"locked": locked}})
    transfers = []
    for n, ((src, dst), state, amount, hop, place) in enumerate(spec):
        fields = {"hop": str(hop if (src, dst) == ("casino", "trading") else 0)}
        if place:
            fields["place_bucket"] = "reserve"
        transfers.append(Transfer(id=str(n), saga="s", from_silo=src, to_silo=dst, amount=amount, legs=[],
                                  state=state, fields=fields))
    expected, in_flight, _ = expected_by_silo(ledger, transfers, parked, spent)
    assert sum(expected[s] for s in SILOS) + sum(in_flight.values()) == ledger.total - locked
    moving = sum(t.amount for t in transfers if t.state not in ("pending", "landed", "returned"))
    assert sum(in_flight.values()) == moving


def test_an_open_positions_unrealized_pnl_is_not_a_difference_at_the_trading_venue():
    """The venue's trading figure is collateral plus posted margin; the ledger's trading bucket also
    carries the open positions' mark (`unrealized`). A position marked at -$1.27 is no difference."""
    from actors.silo.reconcile import compare

    ledger = LedgerView(available={"reserve": usd("400"), "trading": usd("314.94"), "casino": usd("150"),
                                   "referral": usd("100")},
                        held={"trading": {"margin": usd("35"), "unrealized": -usd("1.27")}})
    expected, in_flight, notes = expected_by_silo(ledger, [])
    assert expected["trading"] == usd("349.94")  # what the venue holds: collateral $314.94 + margin $35.00
    assert "unrealized P&L of -$1.27" in notes["trading"]
    venue = {"wallet": usd("400"), "casino": usd("250"), "trading": usd("349.94")}
    checks = {c.silo: c for c in compare(venue, expected, in_flight, notes, 10_000)}
    assert checks["trading"].status == "match", checks["trading"]


def test_a_credited_deposit_not_yet_landed_is_not_a_difference():
    from actors.silo.reconcile import compare

    expected = {"wallet": 100, "casino": 250, "trading": 0}
    in_flight = {"wallet": 0, "casino": 50 + 30, "trading": 0}
    venue = {"wallet": 100, "casino": 250 + 30, "trading": 0}
    checks = {c.silo: c for c in compare(venue, expected, in_flight, {}, 0, {"casino": [50, 30]})}
    assert checks["casino"].status == "match" and "already credited" in checks["casino"].note
    venue["casino"] = 250 + 20                    # no subset of the transfers explains $20
    checks = {c.silo: c for c in compare(venue, expected, in_flight, {}, 0, {"casino": [50, 30]})}
    assert checks["casino"].status == "differs" and checks["casino"].difference_micros == 20


def test_a_surplus_covers_one_transfer_only(redis_url, keys):
    h = SiloHarness(redis_url, keys)
    try:
        h.onboard(reserve="500", trading="300", casino="100", referral="100")
        h.admin.credit(h.creds()["casino_agent_id"], usd("60"))
        h.send(Reconcile(reason="before moving"), role="silo")
        h.pump()
        for amount in ("50", "50"):
            h.send(MoveFunds(source="reserve", dest="casino", amount=usd(amount), reason="fund escrows"))
            h.pump()
        first, second = h.journal(RebalancePlanned)
        assert (first.moves[0].hold, second.moves[0].hold) == (0, usd("40"))   # $50 covered, then $10 of $50
        assert [t.amount for t in h.transfers()] == [usd("40")]
    finally:
        h.close()


def test_moves_out_of_the_trading_silo_are_not_planned_the_others_are():
    from actors.rebalancer import physically_possible
    from actors.silo.planning import impossible_transfer

    assert impossible_transfer("trading", "wallet") and impossible_transfer("trading", "casino")
    assert impossible_transfer("wallet", "trading") is None and impossible_transfer("casino", "trading") is None
    assert impossible_transfer("casino", "wallet") is None and impossible_transfer("trading", "trading") is None
    moves = [Move("trading", "reserve", usd("50"), "r"), Move("casino", "reserve", usd("150"), "r"),
             Move("reserve", "trading", usd("20"), "r"), Move("trading", "referral", usd("10"), "r")]
    kept, dropped = physically_possible(moves)
    assert kept == [moves[1], moves[2]]
    assert dropped == ["trading -> reserve $50.00: the trading -> wallet transfer has no API (the trading venue "
                       "has no collateral withdrawal API)",
                       "trading -> referral $10.00: the trading -> wallet transfer has no API (the trading venue "
                       "has no collateral withdrawal API)"]
