"""One test per rebalancing rule, with the product's numbers (targets 40/35/15/10 %, drift limit
5 %, $10 minimum move, reserve floor 20 %, big win 20 %, large escrow 10 % of the reserve), run
through the Rebalancer and the bucket actors on real Redis."""

from __future__ import annotations

import pytest

from actors.policy.breakers import reserve_floor
from messages.treasury_msgs import (
    FundsMoved,
    Rebalance,
    RebalanceCompleted,
    RebalancePlanned,
    RebalanceSkipped,
    RebalanceTick,
)
from tests.kit.rebalancer import Harness, usd

try:
    from messages.trading_msgs import PositionsClosedAll
except ModuleNotFoundError:  # pragma: no cover
    PositionsClosedAll = None

pytestmark = pytest.mark.redis


@pytest.fixture
def h(redis_url, keys):
    harness = Harness(redis_url, keys)
    yield harness
    harness.close()


def moves(h: Harness) -> list[tuple[str, str, int]]:
    return [(m.source, m.dest, m.amount) for m in h.journal(FundsMoved)]


def buckets(h: Harness) -> dict[str, int]:
    ledger = h.ledger()
    return {b: ledger.bucket(b) for b in ("reserve", "trading", "casino", "referral")}


# ---------------------------------------------------------------- drift: 5 %, both sides


@pytest.mark.parametrize("casino, reserve, fires", [
    ("200", "350", False),                     # casino exactly 5 % above its 15 %: not beyond the limit
    ("200.000001", "349.999999", True),        # one micro-USD beyond
    ("100", "450", False),                     # casino exactly 5 % below
    ("99.999999", "450.000001", True),         # one micro-USD beyond, below target
])
def test_a_tick_rebalances_on_drift_beyond_5_percent_on_either_side(h, casino, reserve, fires):
    h.open(reserve=reserve, trading="350", casino=casino, referral="100")
    h.mark_run()                               # the schedule is not due: only drift can fire
    h.send(RebalanceTick())
    h.pump()
    if not fires:
        assert h.journal(RebalancePlanned) == [] and h.journal(RebalanceSkipped) == []
        return
    planned, = h.journal(RebalancePlanned)
    assert planned.trigger == "drift"
    assert "casino is" in planned.reason and "(target 15.00 %)" in planned.reason
    assert buckets(h) == {"reserve": usd("400"), "trading": usd("350"), "casino": usd("150"), "referral": usd("100")}
    assert len(h.journal(RebalanceCompleted)) == 1


def test_the_schedule_fires_once_per_interval(h):
    h.open(reserve="400", trading="350", casino="150", referral="100")
    h.send(RebalanceTick())                    # never ran: due, nothing to move
    h.pump()
    skipped, = h.journal(RebalanceSkipped)
    assert skipped.trigger == "schedule" and "nothing to move" in skipped.reason
    h.clock.advance(23 * 3600_000)
    h.send(RebalanceTick())
    h.pump()
    assert len(h.journal(RebalanceSkipped)) == 1
    h.clock.advance(3600_000)
    h.client.hincrby(h.keys.ledger(h.agent), "casino", 5_000_000)  # $5 more: drift, but under the $10 move
    h.send(RebalanceTick())
    h.pump()
    assert len(h.journal(RebalanceSkipped)) == 2


def test_a_tick_that_comes_to_the_same_skip_again_writes_nothing(h):
    h.open(reserve="400", trading="350", casino="150", referral="100")
    h.send(RebalanceTick())
    h.pump()
    assert len(h.journal(RebalanceSkipped)) == 1
    before = {k: h.client.dump(k) for k in sorted(h.client.scan_iter(match=f"{h.keys.prefix}:*"))
              if b":cmd:" not in k}
    for _ in range(3):                         # the schedule is due again every day; nothing has changed
        h.clock.advance(24 * 3600_000)
        h.send(RebalanceTick())
        h.pump()
    after = {k: h.client.dump(k) for k in sorted(h.client.scan_iter(match=f"{h.keys.prefix}:*"))
             if b":cmd:" not in k}
    assert len(h.journal(RebalanceSkipped)) == 1
    assert after == before                     # no journal entry, no applied id, no state written


# ---------------------------------------------------------------- $10 minimum move


@pytest.mark.parametrize("casino, referral, expected", [
    ("159.99", "90.01", []),                                               # $9.99 off: left alone
    ("160", "90", [("casino", "referral", usd("10"))]),                  # $10 off: moved
])
def test_a_move_under_10_dollars_is_not_made(h, casino, referral, expected):
    h.open(reserve="400", trading="350", casino=casino, referral=referral)
    h.send(Rebalance(trigger="manual", reason="operator"))
    h.pump()
    assert moves(h) == expected
    if not expected:
        assert "nothing to move" in h.journal(RebalanceSkipped)[0].reason


# ---------------------------------------------------------------- reserve first


def test_the_reserve_is_topped_up_before_any_other_bucket_receives(h):
    # two givers (casino, referral) and two takers (reserve, trading): through the reserve
    h.open(reserve="300", trading="250", casino="250", referral="200")
    h.send(Rebalance(trigger="manual", reason="operator"))
    h.pump()
    done = moves(h)
    assert done == [("casino", "reserve", usd("100")), ("referral", "reserve", usd("100")),
                    ("reserve", "trading", usd("100"))]
    assert buckets(h) == {"reserve": usd("400"), "trading": usd("350"), "casino": usd("150"), "referral": usd("100")}


# ---------------------------------------------------------------- reserve floor: emergency, even while paused


def test_the_reserve_floor_breaker_tops_the_reserve_up_even_while_paused(h):
    h.open(reserve="150", trading="400", casino="250", referral="200")
    assert reserve_floor(usd("150"), usd("1000")) is not None            # 15 % < the 20 % floor
    h.set_risk(state="PAUSED", reason="daily loss", until_ms=h.clock.now_ms() + 86_400_000)
    h.send(
        Rebalance(trigger="reserve_floor", reason="reserve $150.00 is 15.00 % of the total, below its 20.00 % floor")
    )
    h.pump()
    planned, = h.journal(RebalancePlanned)
    assert planned.state == "PAUSED" and "after the reserve_floor breaker" in planned.reason
    assert [m[1] for m in moves(h)] == ["reserve", "reserve", "reserve"]
    assert buckets(h)["reserve"] == usd("400")
    assert reserve_floor(buckets(h)["reserve"], usd("1000")) is None


def test_while_paused_no_money_leaves_the_reserve(h):
    h.open(reserve="450", trading="350", casino="100", referral="100")
    h.set_risk(state="PAUSED", reason="daily loss", until_ms=h.clock.now_ms() + 86_400_000)
    h.send(Rebalance(trigger="manual", reason="operator"))
    h.pump()
    skipped, = h.journal(RebalanceSkipped)
    assert "treasury is PAUSED, only moves into the reserve" in skipped.reason
    assert buckets(h)["reserve"] == usd("450")


# ---------------------------------------------------------------- open positions are closed first


@pytest.mark.skipif(PositionsClosedAll is None, reason="messages.trading_msgs (CloseAllPositions, "
                                                        "PositionsClosedAll) is not installed yet")
def test_trading_positions_are_closed_before_trading_money_moves(h):
    h.open(reserve="300", trading="350", casino="150", referral="100")
    h.client.hset(h.keys.ledger(h.agent), "trading:margin", usd("100"))  # trading: $350 free + $100 in positions
    h.send(Rebalance(trigger="manual", reason="operator"))
    h.pump(("rebalancer", "reserve", "casino", "referral"))               # trading's worker not yet run
    planned, = h.journal(RebalancePlanned)
    assert planned.close_positions_first
    assert h.stream_types("trading") == ["CloseAllPositions"]
    assert moves(h) == [] and h.fields()["trading:margin"] == usd("100")
    h.pump()                                                             # trading closes, answers, moves follow
    assert h.trading.closes == 1
    journal = h.journal()
    closed_at = next(i for i, b in enumerate(journal) if isinstance(b, PositionsClosedAll))
    moved_at = next(i for i, b in enumerate(journal) if isinstance(b, FundsMoved))
    assert closed_at < moved_at
    assert moves(h) == [("trading", "reserve", usd("100"))]
    assert buckets(h)["trading"] == usd("350") and h.fields()["trading:margin"] == 0


# ---------------------------------------------------------------- a win of more than 20 % of its bucket


@pytest.mark.parametrize("win, fires", [("30", False), ("30.000001", True)])
def test_a_win_of_more_than_20_percent_of_the_bucket_triggers_a_rebalance(h, win, fires):
    # the casino bucket had $150 before the win; the win is now in it
    h.open(reserve="400", trading="350", casino=str(150 + float(win)), referral="100")
    h.mark_run()
    h.send(Rebalance(trigger="big_win", reason="bet won", bucket="casino", amount=usd(win),
                     bucket_before=usd("150")))
    h.pump()
    if not fires:
        skipped, = h.journal(RebalanceSkipped)
        assert "is 20.00 % of the casino bucket's $150.00, within 20.00 %" in skipped.reason
        return
    planned, = h.journal(RebalancePlanned)
    assert "beyond 20.00 %" in planned.reason
    # the win's excess leaves the casino, the reserve served first ($3 for referral is under $10: left)
    assert moves(h) == [("casino", "reserve", usd("15.000001")), ("casino", "trading", usd("10.5"))]


# ---------------------------------------------------------------- before a large escrow


@pytest.mark.parametrize("escrow, fires", [("36", False), ("36.000001", True)])
def test_the_reserve_is_topped_up_before_an_escrow_of_more_than_10_percent_of_it(h, escrow, fires):
    h.open(reserve="360", trading="390", casino="150", referral="100")
    h.send(Rebalance(trigger="before_escrow", reason="escrow for a data purchase", amount=usd(escrow)))
    h.pump()
    if not fires:
        assert "within 10.00 %" in h.journal(RebalanceSkipped)[0].reason
        assert moves(h) == []
        return
    assert moves(h) == [("trading", "reserve", usd("40"))]
    assert buckets(h)["reserve"] == usd("400")


# ---------------------------------------------------------------- one saga at a time


def test_a_second_request_while_a_saga_runs_is_skipped_with_its_reason(h):
    h.open(reserve="350", trading="350", casino="200", referral="100")
    h.send(Rebalance(trigger="manual", reason="first"))
    h.pump_role("rebalancer")
    h.send(Rebalance(trigger="manual", reason="second"))
    h.pump_role("rebalancer")
    skipped, = h.journal(RebalanceSkipped)
    assert "still running" in skipped.reason
    h.pump()
    assert len(h.journal(RebalanceCompleted)) == 1


@pytest.mark.skipif(PositionsClosedAll is None, reason="messages.trading_msgs is not installed yet")
def test_a_lost_positions_closed_answer_is_made_up_by_the_tick_and_replanned(redis_url, keys):
    h = Harness(redis_url, keys, trading_pnl=-usd("20"))     # the positions close at a $20 loss
    try:
        h.open(reserve="300", trading="350", casino="150", referral="100")
        h.client.hset(h.keys.ledger(h.agent), "trading:margin", usd("100"))
        h.send(Rebalance(trigger="manual", reason="operator"))
        h.pump(("rebalancer",))
        h.pump_role("trading")                                           # closed; its answer is lost
        stream = h.keys.agent_commands(h.agent, "rebalancer")
        h.client.xdel(stream, h.client.xrange(stream)[-1][0])
        h.send(RebalanceTick())                                          # not stalled: margin is 0, carry on
        h.pump()
        first, second = h.journal(RebalancePlanned)
        assert first.close_positions_first and not second.close_positions_first
        assert second.before["trading"] == usd("430")                   # replanned on the $980 after the loss
        from actors.policy.drift import plan_rebalance
        expected = plan_rebalance(second.before, reason="x").moves
        assert moves(h) == [(m.source, m.dest, m.amount) for m in expected]
        assert [m.source for m in expected] == ["trading"] and buckets(h) == second.after
    finally:
        h.close()


@pytest.mark.skipif(PositionsClosedAll is None, reason="messages.trading_msgs is not installed yet")
def test_positions_that_never_close_end_the_saga_without_moving_trading_money(h):
    h.open(reserve="300", trading="350", casino="150", referral="100")
    h.client.hset(h.keys.ledger(h.agent), "trading:margin", usd("100"))
    h.send(Rebalance(trigger="manual", reason="operator"))
    live = ("rebalancer", "reserve", "casino", "referral")              # the trading worker is down
    h.pump(live)
    for _ in range(3):
        h.clock.advance(60_000)
        h.send(RebalanceTick())
        h.pump(live)
    assert h.stream_types("trading").count("CloseAllPositions") == 3
    from messages.treasury_msgs import RebalanceFailed
    failed, = h.journal(RebalanceFailed)
    assert failed.stage == "close_positions" and "positions still open ($100.00 margin)" in failed.reason
    assert moves(h) == [] and h.fields()["trading"] == usd("350")


# ---------------------------------------------------------------- referral income, moved for the referral actor


def test_referral_income_is_moved_reserve_first_drawing_wallet_money_before_the_casino_balance(redis_url, keys):
    from messages.referral_msgs import MoveReferralIncome
    from messages.treasury_msgs import PhysicalTransferIntended

    h = Harness(redis_url, keys, hold_physical=True)
    try:
        h.open(reserve="400", trading="350", casino="150", referral="200")
        h.send(MoveReferralIncome(to_reserve=usd("70"), to_trading=usd("30"), held_at={"chain": usd("50"),
                                  "casino": usd("50")}, reason="quarterly reinvest"))
        h.pump()
        planned, = h.journal(RebalancePlanned)
        assert [(m.dest, m.amount, m.hold) for m in planned.moves] == [
            ("reserve", usd("50"), 0),               # already on the treasury's address: nothing physical
            ("reserve", usd("20"), usd("20")),       # in the casino balance: waits for a casino withdrawal
            ("trading", usd("30"), usd("30")),       # in the casino balance: waits for a deposit on Hyperliquid
        ]
        intents = {(i.from_silo, i.to_silo): i.amount for i in h.journal(PhysicalTransferIntended)}
        assert intents == {("casino", "trading"): usd("30"), ("casino", "wallet"): usd("20")}
        f = h.fields()
        assert (f["referral"], f["reserve"], f["reserve:in_transit"], f["trading"], f["trading:in_transit"]) == (
            usd("100"), usd("450"), usd("20"), usd("350"), usd("30"))
        assert h.ledger().total == usd("1100")
    finally:
        h.close()


# ---------------------------------------------------------------- the operator's policy


def test_an_operators_policy_change_is_validated_stored_and_used(h):
    from messages.treasury_msgs import PolicyChanged, PolicyRefused, SetPolicy

    h.open(reserve="340", trading="350", casino="210", referral="100")  # casino 6 % over its target
    h.mark_run()
    h.send(SetPolicy(settings={"drift_bp": 1000}))                    # operator: tolerate 10 %
    h.send(SetPolicy(settings={"reserve_floor_bp": 4500}))            # above the reserve target: refused
    h.send(RebalanceTick())
    h.pump()
    changed, = h.journal(PolicyChanged)
    assert changed.policy == {"drift_bp": 1000}
    refused, = h.journal(PolicyRefused)
    assert "reserve_floor_bp 4500 is above the reserve target" in refused.reason
    assert h.journal(RebalancePlanned) == []                           # 6 % is within the new 10 %
    h.send(SetPolicy(settings={"drift_bp": 500}))
    h.send(RebalanceTick())
    h.pump()
    assert len(h.journal(RebalanceCompleted)) == 1 and buckets(h)["casino"] == usd("150")


def test_a_stopped_casino_session_sends_its_remainder_to_the_reserve_not_a_refill(h):
    # the session lost: the casino is now under its target, yet its remainder goes to the reserve
    h.open(reserve="400", trading="350", casino="60", referral="100")
    h.send(Rebalance(trigger="casino_session", reason="casino session down 60 %", bucket="casino",
                     amount=usd("60")))
    h.pump()
    assert moves(h) == [("casino", "reserve", usd("60"))]
    assert buckets(h)["casino"] == 0 and buckets(h)["reserve"] == usd("460")
