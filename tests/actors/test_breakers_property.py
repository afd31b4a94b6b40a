"""Property: over random sequences of bets, trades with moving marks, payments out, money in,
operator resumes and clock jumps across UTC days — judged at once or late — RiskGuard's risk state
is exactly the oracle's after every judgement, and its breakers fire exactly when the oracle's do.

The oracle is written here, in money terms, without the policy code: it keeps a high-water mark
and a day-start in dollars and moves both by every external flow, as a fund does with
subscriptions and redemptions:

- every ledger change is an event at its time, with the treasury total after it;
- a flow (payment out, money in) moves the peak and the day-start by its amount; any other change
  is profit or loss, and the peak rises to a new high total;
- the day-start of UTC day d is the total just before d's midnight (the last event before it, or
  nothing at all before the first), moved by the flows since, unless an operator resumed during d:
  then it is the total at the resume, moved by the flows since;
- each event is judged in its own day, when RiskGuard gets to it: more than 5 % below the day-start
  → pause 24 h from the judgement; more than 20 % below the peak → halt; the strictest wins, and
  only if it is stricter than the state at that moment (an expired pause counts as active);
- an expired pause with nothing new firing becomes ACTIVE when judged;
- an operator resume sets both the peak and the day-start to the total, and nothing before it is
  judged any more;
- trading: more than 20 % below the trading bucket's highest judged value (marks included)
  halts trading, once.
"""

from __future__ import annotations

import os
import uuid

import pytest
import redis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from actors.bootstrap import open_treasury
from actors.flows import book_flow
from actors.ledger import read_risk
from actors.risk_guard import RiskGuard
from messages.codec import FIELD, decode, encode
from messages.envelope import seeded_ids, wrap
from messages.schema import BalancesChanged, RiskStateChanged, SetRisk
from runtime.atomic import AtomicSteps
from runtime.bus import StreamBus, command_client
from runtime.clock import DAY_MS, ManualClock
from runtime.keys import Keys

pytestmark = pytest.mark.redis

C = 10_000  # one cent in micro-USD
START = 1_767_312_000_000 + 20 * 3_600_000  # 2026-01-02T20:00Z: four hours before a midnight
EXAMPLES = int(os.environ.get("BREAKER_EXAMPLES", "60"))
"""Sequences tried per run: 60 by default; `BREAKER_EXAMPLES=500 pytest tests/actors/test_breakers_property.py`
for a longer search (the examples are derandomized, so a run is repeatable at any count)."""
RUNS: dict[str, int] = {"examples": 0, "judgements": 0, "pauses": 0, "halts": 0, "trading_halts": 0}


def strictness(state: str, until: int) -> tuple[int, float]:
    """ACTIVE < PAUSED (a later end is stricter, no end the strictest) < HALTED."""
    if state == "PAUSED":
        return 1, float("inf") if until == 0 else float(until)
    return (2, 0.0) if state == "HALTED" else (0, 0.0)


class Oracle:
    """The model described in the module docstring; money in micro-USD, time in ms."""

    def __init__(self, buckets: dict[str, int], now: int):
        self.b = dict(buckets)
        self.unrealized = 0
        self.events: list[tuple[int, int, int]] = []  # (time, total after, cumulative flows after), in order
        self.flows = 0
        self.peak = 0
        self.resumed: tuple[int, int, int] | None = None  # (day, total, flows) at the last resume
        self.state, self.until = "ACTIVE", 0
        self.pending: list[int] = []  # events not judged yet
        self.trading_peak = self.trading
        self.trading_halted = False
        self.fired = {"pause": 0, "halt": 0}
        self.record(now, flow=self.total)  # the capital came in from outside

    @property
    def total(self) -> int:
        return sum(self.b.values()) + self.unrealized

    @property
    def trading(self) -> int:
        return self.b["trading"] + self.unrealized

    def record(self, now: int, flow: int) -> None:
        self.flows += flow
        self.events.append((now, self.total, self.flows))
        self.pending.append(len(self.events) - 1)

    def day_start(self, index: int) -> int:
        at, _, flows = self.events[index]
        day = at // DAY_MS
        if self.resumed is not None and self.resumed[0] == day:
            return self.resumed[1] + (flows - self.resumed[2])
        before = [e for e in self.events[:index] if e[0] < day * DAY_MS]
        if not before:
            return flows  # nothing before the first event: all that is held came in as flows
        return before[-1][1] + (flows - before[-1][2])

    def judge(self, now: int) -> None:
        want = None
        for index in self.pending:
            _, total, flows = self.events[index]
            flow = flows - (self.events[index - 1][2] if index > 0 else 0)
            self.peak = self.peak + flow if flow else max(self.peak, total)
            start = self.day_start(index)
            if start > 0 and (start - total) * 10_000 > start * 500:
                want = max(want or ("ACTIVE", 0), ("PAUSED", now + DAY_MS), key=lambda s: strictness(*s))
            if self.peak > 0 and (self.peak - total) * 10_000 > self.peak * 2_000:
                want = ("HALTED", 0)
        self.pending = []
        expired = self.state == "PAUSED" and self.until != 0 and self.until <= now
        current = ("ACTIVE", 0) if expired else (self.state, self.until)
        if want is not None and strictness(*want) > strictness(*current):
            self.state, self.until = want
            self.fired["pause" if want[0] == "PAUSED" else "halt"] += 1
        elif expired:
            self.state, self.until = "ACTIVE", 0
        self.trading_peak = max(self.trading_peak, self.trading)
        if not self.trading_halted and (self.trading_peak - self.trading) * 10_000 > self.trading_peak * 2_000:
            self.trading_halted = True

    def resume(self, now: int) -> None:
        if self.pending:  # the re-checks queued before the resume run first
            self.judge(now)
        if self.state == "ACTIVE":
            return  # nothing to resume: refused, and the day's start and the peak stay where they were
        self.state, self.until = "ACTIVE", 0
        self.peak = self.total
        self.resumed = (now // DAY_MS, self.total, self.flows)


money = st.one_of(st.integers(1, 8_000), st.sampled_from([5_000, 12_000, 15_000])).map(lambda cents: cents * C)
ops = st.lists(st.one_of(
    st.tuples(st.just("bet"), st.booleans(), money),             # casino win or loss
    st.tuples(st.just("mark"), st.one_of(st.integers(-40_000, 8_000),  # open positions marked
                                         st.sampled_from([-21_000, -28_000, -35_000])).map(lambda c: c * C)),
    st.tuples(st.just("close")),                                 # positions closed: the mark is realized
    st.tuples(st.just("pay"), money),                            # an escrow payment out of the reserve
    st.tuples(st.just("deposit"), money),                        # money paid in to the casino bucket
    st.tuples(st.just("resume")),
    st.tuples(st.just("jump"), st.integers(0, 30 * 3_600_000)),  # up to 30 h: crosses midnights
    st.tuples(st.just("near_midnight"), st.integers(-1_200_000, 1_200_000)),  # to the next midnight ± 20 min
    st.tuples(st.just("judge")),
), min_size=1, max_size=30)


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(script=ops, lag=st.lists(st.sampled_from([True, True, False]), min_size=30, max_size=30))
# every breaker is reached at least once, whatever the generated sequences happen to reach
@example(script=[("bet", False, 60_000_000), ("judge",)], lag=[True] * 30)             # a 6 % day: paused
@example(script=[("mark", -350_000_000), ("judge",)], lag=[True] * 30)                 # −35 %: halted
@example(script=[("mark", -100_000_000), ("close",), ("judge",)], lag=[False] * 30)  # trading −29 %
def breakers_fire_exactly_when_the_oracle_says(redis_url, script, lag):
    keys = Keys(prefix=f"p{uuid.uuid4().hex[:10]}", shards=2)
    client = redis.Redis.from_url(redis_url)
    steps = AtomicSteps(command_client(redis_url), keys)
    clock = ManualClock(START)
    ids = seeded_ids(1)
    agent = "prop"
    buckets = {"reserve": 400_000_000, "trading": 350_000_000, "casino": 150_000_000, "referral": 100_000_000}
    open_treasury(steps, agent, sum(buckets.values()), now_ms=START, new_id=ids, buckets=buckets)
    oracle = Oracle(buckets, START)
    actor = RiskGuard.start(steps, clock, ids)
    bus = StreamBus(redis_url, keys, "risk", [keys.shard(agent)], lambda d: actor.ask(d), block_ms=5)
    bus.ensure_groups()
    ledger, risk_stream = keys.ledger(agent), keys.agent_commands(agent, "risk")

    def poke(c):
        c.emit(risk_stream, wrap(BalancesChanged(cause="p"), agent=agent, now_ms=clock.now_ms(), new_id=ids))

    def judge():
        client.xadd(risk_stream, {FIELD: encode(wrap(BalancesChanged(cause="tick"), agent=agent,
                                                     now_ms=clock.now_ms(), new_id=ids))})
        while bus.poll_once(wait=False):
            pass
        oracle.judge(clock.now_ms())
        RUNS["judgements"] += 1
        risk = read_risk(client, keys, agent)
        assert (risk.state, risk.until_ms) == (oracle.state, oracle.until), (script, oracle.events)
        assert ("trading" in risk.halted_buckets) == oracle.trading_halted

    try:
        for step, op in enumerate(script):
            now = clock.now_ms()
            c = steps.new_commit(agent)
            kind = op[0]
            if kind == "bet":
                delta = op[2] if op[1] else -min(op[2], oracle.b["casino"])
                if delta == 0:
                    continue
                c.incr(ledger, "casino", delta)
                oracle.b["casino"] += delta
                poke(c)
                steps.commit(c, ids(), now)
                oracle.record(now, 0)
            elif kind == "mark":
                value = max(op[1], -oracle.b["trading"])
                c.hset(ledger, "trading:unrealized", value)
                oracle.unrealized = value
                poke(c)
                steps.commit(c, ids(), now)
                oracle.record(now, 0)
            elif kind == "close":
                c.incr(ledger, "trading", oracle.unrealized, minimum=0).hset(ledger, "trading:unrealized", 0)
                oracle.b["trading"] += oracle.unrealized
                oracle.unrealized = 0
                poke(c)
                steps.commit(c, ids(), now)
                oracle.record(now, 0)
            elif kind in ("pay", "deposit"):
                bucket = "reserve" if kind == "pay" else "casino"
                amount = -min(op[1], oracle.b["reserve"]) if kind == "pay" else op[1]
                if amount == 0:
                    continue
                book_flow(c, keys, agent, bucket=bucket, amount_micros=amount,
                          source="escrow_payment" if kind == "pay" else "deposit", now_ms=now, new_id=ids,
                          ref=f"f{step}")
                oracle.b[bucket] += amount
                steps.commit(c, ids(), now)
                oracle.record(now, amount)
            elif kind == "resume":
                client.xadd(risk_stream, {FIELD: encode(wrap(SetRisk(state="ACTIVE", reason="r"), agent=agent,
                                                             now_ms=now, new_id=ids))})
                while bus.poll_once(wait=False):
                    pass
                oracle.resume(now)
                continue
            elif kind == "jump":
                clock.advance(op[1])
                continue
            elif kind == "near_midnight":
                clock.set(max(now, (now // DAY_MS + 1) * DAY_MS + op[1]))
                continue
            if kind == "judge" or not lag[step]:
                judge()
        judge()
        fired = [decode(f[FIELD]).body for _, f in client.xrange(keys.events(agent))]
        fired = [e for e in fired if isinstance(e, RiskStateChanged) and e.breaker in ("daily_loss",
                                                                                         "treasury_drawdown")]
        assert sum(e.state == "PAUSED" for e in fired) == oracle.fired["pause"]
        assert sum(e.state == "HALTED" for e in fired) == oracle.fired["halt"]
        RUNS["examples"] += 1
        RUNS["pauses"] += oracle.fired["pause"]
        RUNS["halts"] += oracle.fired["halt"]
        RUNS["trading_halts"] += oracle.trading_halted
    finally:
        actor.stop()
        bus.close()
        doomed = list(client.scan_iter(match=f"{keys.prefix}:*", count=1000))
        if doomed:
            client.delete(*doomed)
        client.close()


def test_breakers_fire_exactly_when_the_oracle_says_and_every_breaker_fires(redis_url):
    """The property over every generated sequence; then the examples really reached pauses, halts
    and trading halts (a property that never fires a breaker would prove nothing). Prints the counts."""
    for name in RUNS:
        RUNS[name] = 0
    breakers_fire_exactly_when_the_oracle_says(redis_url)
    print(f"\nbreaker property: {RUNS}")
    assert RUNS["examples"] >= EXAMPLES // 2
    assert RUNS["pauses"] > 0 and RUNS["halts"] > 0 and RUNS["trading_halts"] > 0, RUNS
