"""The breaker cases of the risk issue, each with the figures it was reported with, through the real
bus, the real Lua steps and RiskGuard on a real Redis (signed commands go through the real gate)."""

from __future__ import annotations

import argparse
from decimal import Decimal

import pytest

from actors.bootstrap import open_treasury
from actors.ledger import read_ledger, read_risk
from actors.risk_guard import RiskGuard
from messages.codec import FIELD, decode, encode
from messages.envelope import seeded_ids, wrap
from messages.money import parse_usd
from messages.schema import BalancesChanged, CommandRefused, RiskStateChanged, SetRisk
from runtime.atomic import AtomicSteps
from runtime.bus import StreamBus, command_client
from runtime.clock import DAY_MS, ManualClock
from runtime.command_gate import CommandGate
from runtime.keyring import Keyring, generate_key
from runtime.nonces import RedisNonceStore
from runtime.signing import sign

pytestmark = pytest.mark.redis

AGENT = "case-agent"
MIDNIGHT = 1_767_312_000_000  # 2026-01-02T00:00Z
AGENT_KEY = generate_key("agent-key", "agent")
OPERATOR_KEY = generate_key("operator-key", "operator")
USD = parse_usd


class Guard:
    """One agent's treasury, RiskGuard behind the real gate, and ways to move money at a given time."""

    def __init__(self, redis_url, keys, rclient, buckets: dict[str, int], start_ms: int):
        self.clock = ManualClock(start_ms)
        self.keys, self.rclient = keys, rclient
        self.steps = AtomicSteps(command_client(redis_url), keys)
        self.ids = seeded_ids(11)
        open_treasury(self.steps, AGENT, sum(buckets.values()), now_ms=start_ms, new_id=self.ids, buckets=buckets)
        self.actor = RiskGuard.start(self.steps, self.clock, self.ids)
        gate = CommandGate(Keyring([AGENT_KEY, OPERATOR_KEY]),
                           RedisNonceStore(rclient, keys.prefix, shards=keys.shards), self.clock)
        self.bus = StreamBus(redis_url, keys, "risk", [keys.shard(AGENT)], lambda d: self.actor.ask(d),
                             gate=gate, clock=self.clock, block_ms=20)
        self.bus.ensure_groups()

    def change(self, at_ms: int, *deltas: tuple[str, str], judge: bool = True):
        """Commit ledger changes at `at_ms` with the poke in the same step (as every actor does)."""
        c = self.steps.new_commit(AGENT)
        for fld, usd in deltas:
            c.incr(self.keys.ledger(AGENT), fld, USD(usd) if not usd.startswith("-") else -USD(usd[1:]),
                   minimum=-(1 << 60))
        c.emit(self.keys.agent_commands(AGENT, "risk"),
               wrap(BalancesChanged(cause="test"), agent=AGENT, now_ms=at_ms, new_id=self.ids))
        self.steps.commit(c, self.ids(), at_ms)
        return self.drain() if judge else None

    def drain(self):
        while self.bus.poll_once(wait=False):
            pass
        return read_risk(self.rclient, self.keys, AGENT)

    def command(self, body, key=OPERATOR_KEY):
        now = self.clock.now_ms()
        env = sign(wrap(body, agent=AGENT, now_ms=now, new_id=self.ids), key, now_ms=now)
        self.rclient.xadd(self.keys.agent_commands(AGENT, "risk"), {FIELD: encode(env)})
        return self.drain()

    def poke(self):
        self.rclient.xadd(self.keys.agent_commands(AGENT, "risk"), {FIELD: encode(
            wrap(BalancesChanged(cause="tick"), agent=AGENT, now_ms=self.clock.now_ms(), new_id=self.ids))})
        return self.drain()

    def events(self, kind):
        return [decode(f[FIELD]).body for _, f in self.rclient.xrange(self.keys.events(AGENT))
                if isinstance(decode(f[FIELD]).body, kind)]


@pytest.fixture
def make_guard(redis_url, keys, rclient):
    made = []

    def make(buckets: dict[str, str], start_ms: int = MIDNIGHT + 9 * 3_600_000) -> Guard:
        g = Guard(redis_url, keys, rclient, {b: USD(v) for b, v in buckets.items()}, start_ms)
        made.append(g)
        return g

    yield make
    for g in made:
        g.actor.stop()
        g.bus.close()


BUCKETS_1000 = {"reserve": "400", "trading": "350", "casino": "150", "referral": "100"}


# ---------------------------------------------------------------- case 1: unrealized losses


def test_case1_three_longs_14_percent_under_water_are_marked_and_trip_both_breakers(make_guard):
    """$2,016 unrealized on a $9,980 trading bucket (20.2 %) and a $30,090 total (6.7 %)."""
    from actors.trading.book import PositionRecord
    from actors.trading.marks import book_unrealized

    longs = [PositionRecord(position_id=f"p{i}", coin="BTC", side="long", entry_price="100000", notional=USD("4800"),
                            margin=USD("960"), leverage=5, fee_open=0, stop_loss="80000", take_profit="140000",
                            opened_by="m", opened_ms=0) for i in range(3)]
    unrealized = book_unrealized(longs, {"BTC": Decimal("86000")})  # 14 % under the entry; stops at 80 000
    assert unrealized == -USD("2016")
    g = make_guard({"reserve": "12036", "trading": "9980", "casino": "4514", "referral": "3560"})
    g.change(g.clock.now_ms(), ("trading", "-2880"), ("trading:margin", "2880"))  # margin posted: not a loss
    assert g.poke().state == "ACTIVE"
    g.clock.advance(60_000)
    c = g.steps.new_commit(AGENT)  # the trading actor's mark, as `TradingBucket._mark` writes it
    c.hset(g.keys.ledger(AGENT), "trading:unrealized", unrealized)
    c.hset(g.keys.marks(AGENT), "at_ms", g.clock.now_ms()).hset(g.keys.marks(AGENT), "open", 3)
    g.steps.commit(c, "mark-1", g.clock.now_ms())
    risk = g.poke()
    assert read_ledger(g.rclient, g.keys, AGENT).bucket("trading") == USD("9980") - USD("2016")
    assert "trading" in risk.halted_buckets and "20.2004" in risk.halted_buckets["trading"]
    assert risk.state == "PAUSED" and risk.breaker == "daily_loss" and "6.6999 %" in risk.reason
    granted = g.steps.reserve(AGENT, "casino-bet", "casino", USD("1"), USD("100"), g.clock.now_ms())
    assert not granted.granted and granted.status == "paused"


def test_case1_a_stale_mark_is_unknown_and_fails_closed_for_new_spends(make_guard):
    g = make_guard(BUCKETS_1000)
    now = g.clock.now_ms()
    g.rclient.hset(g.keys.marks(AGENT), mapping={"at_ms": now, "open": 1})
    assert g.steps.reserve(AGENT, "b1", "casino", USD("1"), USD("3"), now + 60_000).granted  # 60 s: still known
    refused = g.steps.reserve(AGENT, "b2", "casino", USD("1"), USD("3"), now + 60_001)
    assert refused.status == "marks_stale" and not refused.granted
    g.rclient.hset(g.keys.marks(AGENT), mapping={"open": 0})  # nothing open: nothing to mark
    assert g.steps.reserve(AGENT, "b3", "casino", USD("1"), USD("3"), now + 10 * 60_000).granted


def test_case1_the_trading_actor_marks_open_positions_at_the_venue_price():
    """Pure check of the marking rule the actor applies: floored, a short gains when the price falls,
    and a position never counts below minus its margin (isolated: it is liquidated first)."""
    from actors.trading.book import PositionRecord
    from actors.trading.marks import book_unrealized

    def pos(side, margin="100"):
        return PositionRecord(position_id="p", coin="ETH", side=side, entry_price="3000", notional=USD("1000"),
                              margin=USD(margin), leverage=10, fee_open=0, stop_loss="1", take_profit="1",
                              opened_by="m", opened_ms=0)
    assert book_unrealized([pos("long")], {"ETH": Decimal("2970")}) == -USD("10")
    assert book_unrealized([pos("short")], {"ETH": Decimal("2970")}) == USD("10")
    assert book_unrealized([pos("long")], {"ETH": Decimal("2999.999")}) == -334  # −333.33… floored
    assert book_unrealized([pos("long", margin="50")], {"ETH": Decimal("2000")}) == -USD("50")


# ---------------------------------------------------------------- case 2: flows are not P&L


def test_case2_paying_6_dollars_out_of_100_is_an_outflow_not_a_daily_loss(make_guard):
    from actors.flows import book_flow

    g = make_guard({"reserve": "40", "trading": "35", "casino": "15", "referral": "10"})
    now = g.clock.now_ms()
    g.change(now, ("reserve", "-6"), ("reserve:locked", "6"))  # the escrow is created: $6 locked
    c = g.steps.new_commit(AGENT)  # released: the $6 leaves, booked as the escrow manager books it
    c.incr(g.keys.ledger(AGENT), "reserve:locked", -USD("6"))
    book_flow(c, g.keys, AGENT, bucket="reserve", amount_micros=-USD("6"), source="escrow_payment",
              ref="escrow-paid:esc_1", apply_to=None, now_ms=now, new_id=g.ids)
    g.steps.commit(c, "release-1", now)
    risk = g.drain()
    assert risk.state == "ACTIVE" and g.events(RiskStateChanged) == []
    assert risk.peak == USD("94") and risk.day_start == USD("94")  # both moved by the flow
    risk = g.change(now, ("casino", "-4.70"))  # a real loss of 5 % of the $94: at the limit
    assert risk.state == "ACTIVE"
    assert g.change(now, ("casino", "-0.000001")).state == "PAUSED"


def test_case2_an_inflow_is_not_a_gain_and_is_booked_once(make_guard):
    from actors.flows import book_flow

    g = make_guard(BUCKETS_1000)
    now = g.clock.now_ms()
    for _ in range(2):  # the same payment seen twice (a rescan): booked once
        c = g.steps.new_commit(AGENT)
        book_flow(c, g.keys, AGENT, bucket="casino", amount_micros=USD("24.75"), source="escrow_received",
                  ref="escrow-received:esc_2", now_ms=now, new_id=g.ids)
        g.steps.commit(c, g.ids(), now)
    risk = g.drain()
    assert read_ledger(g.rclient, g.keys, AGENT).total == USD("1024.75")
    assert risk.peak == USD("1024.75")  # the high-water mark moved with the deposit, not as a gain
    # a loss of 20 % of 1024.75 = 204.95 is at the limit; before, the peak was the $1,000 opening
    g.change(now + DAY_MS, ("casino", "-150"), ("reserve", "-54.95"))
    assert read_risk(g.rclient, g.keys, AGENT).state == "PAUSED"  # the daily loss, not a halt
    assert g.change(now + 2 * DAY_MS + 1, ("reserve", "-0.000001")).state in ("PAUSED", "HALTED")
    assert read_risk(g.rclient, g.keys, AGENT).state == "HALTED"


# ---------------------------------------------------------------- case 3: a resume holds


def test_case3_an_operator_resume_after_a_drawdown_halt_holds_until_a_new_loss(make_guard):
    g = make_guard(BUCKETS_1000)
    risk = g.change(g.clock.now_ms(), ("reserve", "-200.01"))  # $1,000 → $799.99
    assert risk.state == "HALTED" and risk.breaker == "treasury_drawdown"
    g.clock.advance(3_600_000)
    risk = g.command(SetRisk(state="ACTIVE", reason="reviewed"))
    assert risk.state == "ACTIVE"
    assert g.poke().state == "ACTIVE"  # the hourly re-check: no new loss, no halt
    resumed = [e for e in g.events(RiskStateChanged) if e.state == "ACTIVE"][-1]
    assert resumed.old_peak == USD("1000") and resumed.peak == USD("799.99")
    g.clock.advance(DAY_MS)
    assert g.poke().state == "ACTIVE"
    # the next 20 % is measured from the resumed level: exactly 20 % of $799.99 does not halt (the
    # daily loss pauses), one micro more does (a breaker may make a pause stricter)
    assert g.change(g.clock.now_ms(), ("casino", "-100"), ("reserve", "-59.998")).state == "PAUSED"
    assert g.change(g.clock.now_ms(), ("reserve", "-0.000001")).state == "HALTED"


# ---------------------------------------------------------------- case 4: the day boundary


def test_case4_a_loss_at_2350_judged_at_0005_counts_in_its_own_day(make_guard):
    g = make_guard(BUCKETS_1000)
    at = MIDNIGHT + DAY_MS - 10 * 60_000  # 23:50
    g.change(at, ("casino", "-60"), judge=False)  # RiskGuard is behind
    g.clock.set(MIDNIGHT + DAY_MS + 5 * 60_000)  # 00:05 the next day
    risk = g.drain()
    assert risk.state == "PAUSED" and risk.breaker == "daily_loss" and "6.00 %" in risk.reason


def test_case4_a_loss_that_is_the_first_event_after_midnight_is_not_part_of_the_day_start(make_guard):
    g = make_guard(BUCKETS_1000)
    g.clock.set(MIDNIGHT + DAY_MS + 60_000)
    g.change(MIDNIGHT + DAY_MS + 60_000, ("casino", "-60"))  # 00:01, first thing in the new day
    risk = read_risk(g.rclient, g.keys, AGENT)
    assert risk.state == "PAUSED" and risk.day_start == USD("1000")


def test_case4_the_order_of_the_rechecks_does_not_matter(make_guard):
    g = make_guard(BUCKETS_1000)
    g.change(MIDNIGHT + DAY_MS - 60_000, ("casino", "-30"), judge=False)  # 23:59: −3 % in day 1
    g.change(MIDNIGHT + DAY_MS + 60_000, ("casino", "-30"), judge=False)  # 00:01: −3.09 % in day 2
    g.clock.set(MIDNIGHT + DAY_MS + 120_000)
    assert g.poke().state == "ACTIVE"  # neither day lost more than 5 %
    risk = g.change(MIDNIGHT + DAY_MS + 180_000, ("casino", "-19.4"))  # day 2: 49.40 of 970 = 5.09 %
    assert risk.state == "PAUSED" and risk.day_start == USD("970")


# ---------------------------------------------------------------- case 5: pauses that pause


@pytest.mark.parametrize("hours", ["-1", "0", "nan", "1e309", "inf", "721", "x"])
def test_case5_bad_pause_durations_are_one_line_errors(hours):
    """(End to end through `treasury cmd`: tests/supervisor/test_up_resume.py.)"""
    from messages.errors import ConfigError
    from supervisor.commands import add_cmd_arguments

    parser = argparse.ArgumentParser(prog="treasury cmd")
    add_cmd_arguments(parser)
    args = parser.parse_args(["pause", "bob", "--reason", "r", "--hours", hours])
    with pytest.raises(ConfigError) as refused:
        args.build(args)
    assert "--hours" in str(refused.value) and "\n" not in str(refused.value)


def test_case5_a_pause_needs_an_end_or_the_explicit_until_resumed_flag():
    from messages.errors import ConfigError
    from supervisor.commands import add_cmd_arguments

    parser = argparse.ArgumentParser(prog="treasury cmd")
    add_cmd_arguments(parser)
    with pytest.raises(ConfigError, match="--until-resumed"):
        parser.parse_args(["pause", "bob", "--reason", "r"]).build(parser.parse_args(["pause", "bob", "--reason", "r"]))
    args = parser.parse_args(["pause", "bob", "--reason", "r", "--until-resumed"])
    assert args.build(args).until_ms is None
    args = parser.parse_args(["pause", "bob", "--reason", "r", "--hours", "1.5"])
    assert args.build(args).until_ms is not None


def test_case5_riskguard_refuses_a_pause_that_ends_in_the_past_or_beyond_30_days(make_guard):
    g = make_guard(BUCKETS_1000)
    now = g.clock.now_ms()
    for until in (now - 3_600_000, now, now + 30 * DAY_MS + 1):
        assert g.command(SetRisk(state="PAUSED", reason="r", until_ms=until), key=AGENT_KEY).state == "ACTIVE"
    assert len(g.events(CommandRefused)) == 3
    assert g.command(SetRisk(state="PAUSED", reason="r", until_ms=now + 3_600_000), key=AGENT_KEY).state == "PAUSED"
    assert not g.steps.reserve(AGENT, "bet", "casino", USD("1"), USD("3"), now + 1).granted


# ---------------------------------------------------------------- issue 9 case 1: authority


def test_the_agent_key_cannot_lift_an_operator_only_halt_with_a_short_pause(make_guard):
    g = make_guard(BUCKETS_1000)
    assert g.command(SetRisk(state="HALTED", reason="operator halt")).state == "HALTED"
    now = g.clock.now_ms()
    risk = g.command(SetRisk(state="PAUSED", reason="short", until_ms=now + 1_500), key=AGENT_KEY)
    assert risk.state == "HALTED"
    rejected = g.events(CommandRefused)[-1]
    assert "relaxes" in rejected.reason and "operator" in rejected.reason
    g.clock.advance(2_000)
    assert g.poke().state == "HALTED"  # nothing expired: the halt holds
    assert not g.steps.reserve(AGENT, "bet", "casino", USD("1"), USD("3"), g.clock.now_ms()).granted


def test_an_agent_may_lengthen_a_pause_but_not_shorten_it(make_guard):
    g = make_guard(BUCKETS_1000)
    now = g.clock.now_ms()
    assert g.command(SetRisk(state="PAUSED", reason="2h", until_ms=now + 7_200_000), key=AGENT_KEY).state == "PAUSED"
    g.command(SetRisk(state="PAUSED", reason="1s", until_ms=now + 1_000), key=AGENT_KEY)
    assert read_risk(g.rclient, g.keys, AGENT).until_ms == now + 7_200_000
    g.command(SetRisk(state="PAUSED", reason="no end", until_ms=None), key=AGENT_KEY)
    assert read_risk(g.rclient, g.keys, AGENT).until_ms == 0
    g.clock.advance(3 * 3_600_000)
    assert g.poke().state == "PAUSED"  # a pause until resumed has no end to pass
    assert g.command(SetRisk(state="ACTIVE", reason="ok")).state == "ACTIVE"  # the operator may
