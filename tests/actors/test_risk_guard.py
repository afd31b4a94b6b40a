"""RiskGuard's breakers with the guide's numbers, through the real bus and Lua steps."""

from __future__ import annotations

import pytest

from actors.bootstrap import open_treasury
from actors.ledger import read_risk
from actors.risk_guard import RiskGuard
from messages.codec import FIELD, decode, encode
from messages.envelope import seeded_ids, wrap
from messages.money import parse_usd
from messages.schema import (
    BalancesChanged,
    BreakerFired,
    BucketHalted,
    BucketResumed,
    ResumeBucket,
    RiskStateChanged,
    SetRisk,
)
from runtime.atomic import AtomicSteps
from runtime.bus import StreamBus, command_client
from runtime.clock import DAY_MS, ManualClock

pytestmark = pytest.mark.redis

AGENT = "guarded"
START = 1_767_258_000_000  # 2026-01-01T09:00Z


@pytest.fixture
def guard(redis_url, keys):
    clock = ManualClock(START)
    steps = AtomicSteps(command_client(redis_url), keys)
    ids = seeded_ids(3)
    open_treasury(steps, AGENT, parse_usd("1000"), now_ms=START, new_id=ids)
    actor = RiskGuard.start(steps, clock, ids)
    bus = StreamBus(redis_url, keys, "risk", [keys.shard(AGENT)], lambda d: actor.ask(d), block_ms=20)
    bus.ensure_groups()

    class Guard:
        def lose(self, bucket: str, usd: str):
            """Take money out of a bucket as a loss would, then let RiskGuard judge."""
            c = steps.new_commit(AGENT)
            c.incr(keys.ledger(AGENT), bucket, -parse_usd(usd))
            steps.commit(c, ids(), clock.now_ms())
            return self.poke()

        def move(self, source: str, dest: str, usd: str):
            c = steps.new_commit(AGENT)
            c.incr(keys.ledger(AGENT), source, -parse_usd(usd)).incr(keys.ledger(AGENT), dest, parse_usd(usd))
            steps.commit(c, ids(), clock.now_ms())
            return self.poke()

        def send(self, body):
            steps.client.xadd(keys.agent_commands(AGENT, "risk"),
                              {FIELD: encode(wrap(body, agent=AGENT, now_ms=clock.now_ms(), new_id=ids))})
            while bus.poll_once(wait=False):
                pass
            return read_risk(steps.client, keys, AGENT)

        def poke(self):
            return self.send(BalancesChanged(cause="test"))

        def events(self, kind):
            return [decode(f[FIELD]).body for _, f in steps.client.xrange(keys.events(AGENT))
                    if isinstance(decode(f[FIELD]).body, kind)]

        def commands(self, role):
            return [decode(f[FIELD]).body for _, f in steps.client.xrange(keys.agent_commands(AGENT, role))]

    g = Guard()
    g.clock, g.steps, g.keys = clock, steps, keys
    yield g
    actor.stop()


def test_daily_loss_of_exactly_5_percent_does_not_pause_but_one_micro_more_does(guard):
    assert guard.lose("casino", "50").state == "ACTIVE"
    risk = guard.lose("casino", "0.000001")
    assert (risk.state, risk.breaker) == ("PAUSED", "daily_loss")
    assert risk.until_ms == START + DAY_MS
    assert guard.steps.reserve(AGENT, "bet-1", "casino", 10_000, 10**9, guard.clock.now_ms()).status == "paused"


def test_a_daily_pause_resumes_by_itself_after_24_hours(guard):
    guard.lose("casino", "60")
    guard.clock.advance(DAY_MS - 1)
    assert guard.poke().state == "PAUSED"
    guard.clock.advance(1)
    assert guard.steps.reserve(AGENT, "bet-2", "casino", 10_000, 10**9, guard.clock.now_ms()).status == "ok"
    risk = guard.poke()
    assert (risk.state, risk.breaker) == ("ACTIVE", "pause_expired")
    assert risk.day_start == parse_usd("940")  # a new UTC day starts from today's total


def test_total_drawdown_over_20_percent_halts_until_an_operator_resumes(guard):
    for day in range(5):  # 4.9 % a day stays under the daily limit; the peak stays $1000
        guard.clock.advance(DAY_MS)
        guard.lose("reserve" if day % 2 else "trading", "40")
    assert guard.poke().state == "ACTIVE"  # down exactly $200 = 20.00 %: at the limit, not beyond
    guard.clock.advance(DAY_MS)
    risk = guard.lose("reserve", "0.01")
    assert (risk.state, risk.breaker) == ("HALTED", "treasury_drawdown") and risk.until_ms == 0
    guard.clock.advance(30 * DAY_MS)
    assert guard.poke().state == "HALTED"  # no expiry
    assert guard.send(SetRisk(state="ACTIVE", reason="reviewed")).state == "ACTIVE"
    assert [e.state for e in guard.events(RiskStateChanged)] == ["HALTED", "ACTIVE"]


def test_trading_drawdown_halts_trading_and_asks_to_close_every_position(guard):
    guard.lose("trading", "70")  # $350 → $280: exactly 20 % below the peak
    assert "trading" not in guard.poke().halted_buckets
    guard.clock.advance(DAY_MS)  # a new day, so the daily-loss breaker stays out of it
    risk = guard.lose("trading", "0.000001")
    assert risk.state == "ACTIVE" and "trading" in risk.halted_buckets
    assert guard.steps.reserve(AGENT, "t-1", "trading", 10_000, 10**9, guard.clock.now_ms()).status == "bucket_halted"
    assert guard.steps.reserve(AGENT, "c-1", "casino", 10_000, 10**9, guard.clock.now_ms()).status == "ok"
    [halted] = guard.events(BucketHalted)
    assert halted.breaker == "trading_drawdown"
    closes = [c for c in guard.commands("trading") if type(c).__name__ == "CloseAllPositions"]
    assert len(closes) == 1
    guard.lose("trading", "1")
    assert len([c for c in guard.commands("trading") if type(c).__name__ == "CloseAllPositions"]) == 1  # once
    risk = guard.send(ResumeBucket(bucket="trading", reason="reviewed"))
    assert "trading" not in risk.halted_buckets and len(guard.events(BucketResumed)) == 1


def test_reserve_under_its_floor_asks_for_one_emergency_rebalance(guard):
    guard.move("reserve", "casino", "200")  # reserve $200 of $1000: exactly at the 20 % floor
    assert guard.commands("rebalancer") == []
    guard.move("reserve", "casino", "0.000001")
    guard.poke()
    requests = guard.commands("rebalancer")
    assert [type(r).__name__ for r in requests] == ["Rebalance"] and requests[0].trigger == "reserve_floor"
    assert guard.events(BreakerFired)[0].breaker == "reserve_floor"
    guard.clock.advance(3600 * 1000)
    guard.poke()
    assert len(guard.commands("rebalancer")) == 2  # asked again after an hour without a fix


def test_a_rebalance_out_of_trading_is_not_a_trading_drawdown(guard):
    from actors.transfers import record_net_transfer

    c = guard.steps.new_commit(AGENT)  # the transfer legs move $100 from trading to the reserve
    ledger = guard.keys.ledger(AGENT)
    c.incr(ledger, "trading", -parse_usd("100")).incr(ledger, "reserve", parse_usd("100"))
    record_net_transfer(c, guard.keys.flows(AGENT), "trading", "reserve", parse_usd("100"))
    guard.steps.commit(c, "move-1", guard.clock.now_ms())
    risk = guard.poke()
    assert "trading" not in risk.halted_buckets  # $350 → $250 by transfer: no trading loss at all
    # the peak moves with the transfer, as a high-water mark with a redemption: $350 − $100 = $250
    guard.lose("trading", "50")  # a real loss of $50: exactly 20 % of the $250 flow-adjusted peak
    assert "trading" not in guard.poke().halted_buckets
    risk = guard.lose("trading", "0.000001")
    assert "trading" in risk.halted_buckets


def test_the_value_series_keeps_about_two_days_however_long_an_agent_trades(guard):
    """An agent that bets every four hours for two weeks: the series RiskGuard reads stays at about
    two days of points, and the day's loss is still measured from the right midnight afterwards."""
    from actors.ledger import read_ledger

    series = guard.keys.values(AGENT)
    sizes = []
    for step in range(14 * 6):
        guard.clock.advance(4 * 3_600_000)
        c = guard.steps.new_commit(AGENT)
        c.incr(guard.keys.ledger(AGENT), "casino", parse_usd("1.5") if step % 3 else -parse_usd("2"))
        guard.steps.commit(c, f"bet-{step}", guard.clock.now_ms())
        assert guard.poke().state == "ACTIVE"
        sizes.append(guard.steps.client.zcard(series))
    assert max(sizes[-5 * 6:]) <= 3 * 6 + 2   # bounded: at most the points of the last three days
    assert max(sizes[-5 * 6:]) == max(sizes[-10 * 6:-5 * 6])  # and flat

    # the day's start is still the value at the last midnight: 5 % of it is allowed, a micro more pauses
    guard.clock.set((guard.clock.now_ms() // DAY_MS + 1) * DAY_MS + 60_000)
    start = read_ledger(guard.steps.client, guard.keys, AGENT).total

    def lose(micros):
        c = guard.steps.new_commit(AGENT)
        c.incr(guard.keys.ledger(AGENT), "casino", -micros)
        guard.steps.commit(c, f"loss-{micros}", guard.clock.now_ms())
        return guard.poke().state

    assert start * 5 % 100 == 0 and lose(start * 5 // 100) == "ACTIVE"
    assert lose(1) == "PAUSED"
