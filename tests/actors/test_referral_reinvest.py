"""Reinvesting referral income: when (quarterly, or above $100), how (70/30 exact), and what is skipped."""

from __future__ import annotations

import pytest

from actors.bootstrap import open_treasury
from actors.referral import ReferralBucket, ReferralVenues, state_key
from actors.transfers import open_leg, read_leg
from messages.codec import FIELD, decode
from messages.envelope import seeded_ids, wrap
from messages.referral_msgs import MoveReferralIncome, ReinvestReferrals
from messages.schema import SetRisk
from messages.treasury_msgs import DebitLeg
from runtime.journal import read_journal
from tests.kit.referral import deliver, ledger, pending, redeliver

pytestmark = pytest.mark.redis

DAY_MS = 24 * 3600 * 1000
AGENT = "rio"


@pytest.fixture
def actor(steps, clock):
    ref = ReferralBucket.start(steps, clock, seeded_ids(3, "e"), lambda _agent: ReferralVenues())
    yield ref
    ref.stop()


def treasury(steps, clock, rclient, keys, income: int, *, referral: int | None = None, held: dict | None = None,
             last_reinvest_ms: int | None = None) -> None:
    """A treasury whose referral bucket holds `income` of swept, not yet reinvested commissions."""
    buckets = {"reserve": 400_000_000, "trading": 350_000_000, "casino": 150_000_000,
               "referral": income if referral is None else referral}
    open_treasury(steps, AGENT, sum(buckets.values()), now_ms=clock.now_ms(), new_id=seeded_ids(2, "o"),
                  buckets=buckets)
    fields = {"income": income, **{f"at:{k}": v for k, v in (held or {}).items()}}
    if last_reinvest_ms is not None:
        fields["last_reinvest_ms"] = last_reinvest_ms
    rclient.hset(state_key(keys, AGENT), mapping=fields)


def reinvest(actor, rclient, keys, clock, seed: int):
    env = wrap(ReinvestReferrals(), agent=AGENT, now_ms=clock.now_ms(), new_id=seeded_ids(seed, "c"))
    delivery = deliver(rclient, keys, "referral", env)
    actor.ask(delivery)
    return delivery


def journal(rclient, keys, name: str) -> list:
    return [e.body for e in read_journal(rclient, keys, AGENT) if type(e.body).__name__ == name]


def moves_sent(rclient, keys) -> list[MoveReferralIncome]:
    return [decode(f[FIELD]).body for _, f in rclient.xrange(keys.agent_commands(AGENT, "rebalancer"))]


@pytest.mark.parametrize("income", [100_000_001, 123_456_789, 333_333_333_333, 1_000_000_007])
def test_income_above_the_threshold_is_split_70_30_exactly(steps, clock, actor, rclient, keys, income):
    treasury(steps, clock, rclient, keys, income, last_reinvest_ms=clock.now_ms())  # the quarter is not over
    reinvest(actor, rclient, keys, clock, 1)

    trading = income * 3_000 // 10_000  # trading's 30 % floored; the remainder is the reserve's
    [done] = journal(rclient, keys, "ReferralReinvested")
    assert (done.amount, done.to_reserve, done.to_trading) == (income, income - trading, trading)
    assert done.to_reserve + done.to_trading == income
    [move] = moves_sent(rclient, keys)
    assert (move.to_reserve, move.to_trading) == (income - trading, trading)
    state = {k.decode(): v.decode() for k, v in rclient.hgetall(state_key(keys, AGENT)).items()}
    assert int(state["income"]) == 0 and int(state["last_reinvest_ms"]) == clock.now_ms()
    assert pending(rclient, keys, AGENT, "referral") == 0


def test_a_reinvestment_is_made_once(steps, clock, actor, rclient, keys):
    treasury(steps, clock, rclient, keys, 150_000_000)
    first = reinvest(actor, rclient, keys, clock, 1)
    actor.ask(redeliver(first))
    reinvest(actor, rclient, keys, clock, 2)
    assert len(moves_sent(rclient, keys)) == 1
    [skip] = journal(rclient, keys, "ReferralReinvestSkipped")
    assert skip.reason == "below_minimum" and skip.income == 0


def test_not_due_until_the_quarter_is_over(steps, clock, actor, rclient, keys):
    treasury(steps, clock, rclient, keys, 100_000_000, last_reinvest_ms=clock.now_ms())  # exactly $100: not above
    reinvest(actor, rclient, keys, clock, 1)
    [skip] = journal(rclient, keys, "ReferralReinvestSkipped")
    assert skip.reason == "not_due" and skip.income == 100_000_000
    clock.advance(90 * DAY_MS - 1)
    reinvest(actor, rclient, keys, clock, 2)
    assert [s.reason for s in journal(rclient, keys, "ReferralReinvestSkipped")] == ["not_due", "not_due"]
    clock.advance(1)
    reinvest(actor, rclient, keys, clock, 3)
    [done] = journal(rclient, keys, "ReferralReinvested")
    assert (done.to_reserve, done.to_trading) == (70_000_000, 30_000_000)


def test_under_the_minimum_move_it_waits(steps, clock, actor, rclient, keys):
    treasury(steps, clock, rclient, keys, 8_000_000)  # $8: due (first quarter) but under the $10 minimum move
    reinvest(actor, rclient, keys, clock, 1)
    [skip] = journal(rclient, keys, "ReferralReinvestSkipped")
    assert skip.reason == "below_minimum" and skip.income == 8_000_000
    assert moves_sent(rclient, keys) == []


def test_a_paused_treasury_reinvests_nothing(steps, clock, actor, rclient, keys):
    treasury(steps, clock, rclient, keys, 500_000_000)
    rclient.hset(keys.risk(AGENT), mapping={"state": "PAUSED", "reason": "daily loss", "until_ms": 0})
    reinvest(actor, rclient, keys, clock, 1)
    [skip] = journal(rclient, keys, "ReferralReinvestSkipped")
    assert skip.reason == "risk_state" and "PAUSED" in skip.detail
    assert moves_sent(rclient, keys) == []


def test_the_move_says_where_the_income_sits(steps, clock, actor, rclient, keys):
    treasury(steps, clock, rclient, keys, 123_456_789, held={"casino": 50_000_000, "chain": 30_000_000})
    reinvest(actor, rclient, keys, clock, 1)
    [move] = moves_sent(rclient, keys)
    assert move.held_at == {"casino": 50_000_000, "chain": 30_000_000, "unknown": 43_456_789}


def test_only_income_in_hand_is_reinvested(steps, clock, actor, rclient, keys):
    # The rebalancer moved money out of the referral bucket since the sweep counted $200 of income.
    treasury(steps, clock, rclient, keys, 200_000_000, referral=120_000_000)
    reinvest(actor, rclient, keys, clock, 1)
    [done] = journal(rclient, keys, "ReferralReinvested")
    assert done.amount == 120_000_000


def test_the_bucket_carries_out_the_rebalancers_legs(steps, clock, actor, rclient, keys):
    treasury(steps, clock, rclient, keys, 0, referral=90_000_000)
    commit = steps.new_commit(AGENT)
    open_leg(commit, keys, AGENT, "saga1", 0, "referral", "reserve", 25_000_000)
    steps.commit(commit, "plan-saga1", clock.now_ms())
    leg = DebitLeg(saga="saga1", leg=0, source="referral", dest="reserve", amount=25_000_000, reason="drift")
    actor.ask(deliver(rclient, keys, "referral", wrap(leg, agent=AGENT, now_ms=clock.now_ms(),
                                                      new_id=seeded_ids(9, "c"))))
    book = ledger(rclient, keys, AGENT)
    assert book["referral"] == 65_000_000 and book["reserve:in_transit"] == 25_000_000
    assert read_leg(rclient, keys, AGENT, "saga1", 0).debited
    assert pending(rclient, keys, AGENT, "referral") == 0


def test_unknown_commands_are_rejected(steps, clock, actor, rclient, keys):
    from runtime.bus import HandlerRejected

    treasury(steps, clock, rclient, keys, 0)
    env = wrap(SetRisk(state="PAUSED", reason="x"), agent=AGENT, now_ms=clock.now_ms(), new_id=seeded_ids(4, "c"))
    with pytest.raises(HandlerRejected):
        actor.ask(deliver(rclient, keys, "referral", env))


def test_the_reinvestment_moves_through_the_rebalancers_saga(redis_url, keys):
    """End to end on the rebalancing harness: ReinvestReferrals → MoveReferralIncome → the saga's
    legs, the referral legs carried out by the real ReferralBucket."""
    from tests.kit.rebalancer import Harness

    h = Harness(redis_url, keys, agent=AGENT)
    actor = ReferralBucket.start(h.steps, h.clock, seeded_ids(21, "e"), lambda _agent: ReferralVenues())
    try:
        h.buses["referral"].close()
        h.buses["referral"] = h._bus("referral", lambda d: actor.ask(d))
        h.open(reserve="400", trading="350", casino="150", referral="223.456789")
        h.client.hset(state_key(keys, AGENT), mapping={"income": 123_456_789, "at:chain": 123_456_789})
        h.send(ReinvestReferrals(), role="referral")
        h.pump()
        f = h.fields()
        assert f["referral"] == 100_000_000  # the allocated capital stays; the income left
        assert f["reserve"] == 400_000_000 + 86_419_753 and f["trading"] == 350_000_000 + 37_037_036
        assert h.ledger().total == 1_123_456_789
        assert all(h.pending(role) == 0 for role in ("referral", "rebalancer", "reserve", "trading"))
        done = [b for b in h.journal() if type(b).__name__ == "RebalanceCompleted"]
        assert len(done) == 1 and done[0].moved == 123_456_789
    finally:
        actor.stop()
        h.close()
