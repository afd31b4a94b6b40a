"""One policy source: an operator's `SetPolicy`, applied by the Rebalancer, changes the numbers
every actor applies — the casino's bet cap and session stop, RiskGuard's daily loss and drawdown —
and their refusal texts quote the effective numbers. Real bus, real Lua steps, real Redis."""

from __future__ import annotations

import pytest

from actors.bootstrap import open_treasury
from actors.casino import CasinoBucket
from actors.ledger import read_ledger, read_risk
from actors.policy.effective import effective_policy
from actors.rebalancer import Rebalancer
from actors.risk_guard import RiskGuard
from messages.codec import FIELD, decode, encode
from messages.envelope import seeded_ids, wrap
from messages.money import parse_usd
from messages.schema import (
    BalancesChanged,
    BetRefused,
    BetSettled,
    CoinFlip,
    PlaceBet,
    RiskStateChanged,
    SessionStopped,
    StartSession,
)
from messages.treasury_msgs import PolicyChanged, PolicyRefused, SetPolicy
from runtime.atomic import AtomicSteps
from runtime.bus import StreamBus, command_client
from runtime.clock import ManualClock
from venue.client.types import BetResult

pytestmark = pytest.mark.redis

AGENT = "overridden"
START = 1_767_258_000_000  # 2026-01-01T09:00Z


class LosingCasino:
    """A venue that takes every bet and loses it (so the ledger's movement is known exactly)."""

    def __init__(self):
        self.placed: list[int] = []

    def max_stake(self, game, params):
        return None  # no venue Kelly line: only the treasury's own cap applies

    def place_bet_once(self, game, amount, params, *, client_seed, idempotency_key, attempts=3, since_ms=None):
        self.placed.append(amount)
        return BetResult(bet_id=f"bet-{len(self.placed)}", game=game, amount_bet=amount, amount_won=0, won=False,
                         payout_multiplier="0", roll="0.99", new_balance=0, client_seed=client_seed)

    def lookup_bet(self, client_seed, *, since_ms):
        from venue.client.lookup import Lookup, Presence

        return Lookup(Presence.ABSENT, since_ms)


@pytest.fixture
def treasury(redis_url, keys, rclient):
    clock = ManualClock(START)
    steps = AtomicSteps(command_client(redis_url), keys)
    ids = seeded_ids(41)
    open_treasury(steps, AGENT, parse_usd("1000"), now_ms=START, new_id=ids)
    venue = LosingCasino()
    actors = {
        "rebalancer": Rebalancer.start(steps, clock, ids),
        "risk": RiskGuard.start(steps, clock, ids),
        "casino": CasinoBucket.start(steps, clock, ids, lambda agent: venue),
    }
    buses = {role: StreamBus(redis_url, keys, role, [keys.shard(AGENT)], (lambda a: lambda d: a.ask(d))(actor),
                             block_ms=20) for role, actor in actors.items()}
    for bus in buses.values():
        bus.ensure_groups()

    class Treasury:
        def send(self, role, body):
            rclient.xadd(keys.agent_commands(AGENT, role),
                         {FIELD: encode(wrap(body, agent=AGENT, now_ms=clock.now_ms(), new_id=ids))})
            self.pump()

        def pump(self):
            busy = True
            while busy:
                busy = False
                for role in ("rebalancer", "casino", "risk"):  # the rebalancer's legs are not needed here
                    while buses[role].poll_once(wait=False):
                        busy = True

        def lose(self, usd: str):
            """Take money out of the casino bucket as a loss would, then let RiskGuard judge."""
            c = steps.new_commit(AGENT)
            c.incr(keys.ledger(AGENT), "casino", -parse_usd(usd))
            steps.commit(c, ids(), clock.now_ms())
            self.send("risk", BalancesChanged(cause="test"))
            return read_risk(rclient, keys, AGENT)

        def events(self, kind):
            return [decode(f[FIELD]).body for _, f in rclient.xrange(keys.events(AGENT))
                    if isinstance(decode(f[FIELD]).body, kind)]

    t = Treasury()
    t.venue = venue
    yield t
    for actor in actors.values():
        actor.stop()


def test_a_bet_cap_override_refuses_the_bet_and_quotes_the_effective_cap(treasury):
    treasury.send("rebalancer", SetPolicy(settings={"max_bet_bp": 100}))
    assert treasury.events(PolicyChanged)
    treasury.send("casino", PlaceBet(game=CoinFlip(), fixed_stake=parse_usd("2.50")))
    [refused] = treasury.events(BetRefused)
    assert refused.code == "over_cap"
    assert "1.00 %" in refused.reason and "$1.50" in refused.reason and "$2.50" in refused.reason
    assert treasury.venue.placed == [] and treasury.events(BetSettled) == []
    treasury.send("casino", PlaceBet(game=CoinFlip(), fixed_stake=parse_usd("1.50")))  # at the cap: placed
    assert treasury.venue.placed == [parse_usd("1.50")]


def test_a_daily_loss_override_pauses_at_its_own_limit(treasury):
    treasury.send("rebalancer", SetPolicy(settings={"daily_loss_bp": 10}))
    assert treasury.lose("1.00").state == "ACTIVE"  # exactly 0.10 % of the $1,000 day start: inside the limit
    assert treasury.lose("0.51").state == "PAUSED"  # 0.151 %
    [changed] = treasury.events(RiskStateChanged)
    assert changed.breaker == "daily_loss" and "0.10 %" in changed.reason and "0.151 %" in changed.reason


def test_a_drawdown_override_halts_at_its_own_limit(treasury):
    treasury.send("rebalancer", SetPolicy(settings={"treasury_drawdown_bp": 100}))
    assert treasury.lose("10.00").state == "ACTIVE"  # 1 % below the peak: at the limit
    assert treasury.lose("0.01").state == "HALTED"
    [changed] = treasury.events(RiskStateChanged)
    assert changed.breaker == "treasury_drawdown" and "1.00 %" in changed.reason


def test_a_session_stop_override_stops_the_session_at_its_own_limit(treasury):
    treasury.send("rebalancer", SetPolicy(settings={"casino_session_stop_bp": 1000}))
    treasury.send("casino", StartSession(budget=parse_usd("20")))
    treasury.send("casino", PlaceBet(game=CoinFlip(), fixed_stake=parse_usd("2.50")))  # lost: 12.5 % of $20
    [stopped] = treasury.events(SessionStopped)
    assert "10.00 %" in stopped.reason and stopped.remaining == parse_usd("17.50")


@pytest.mark.parametrize("settings, words", [
    ({"max_bet_percent": 1}, "unknown policy setting 'max_bet_percent'"),
    ({"max_bet_bp": 0}, "max_bet_bp: 0 must be in [1, 10000]"),
    ({"daily_loss_bp": "ten"}, "daily_loss_bp"),
])
def test_an_unknown_or_out_of_range_setting_is_refused_and_changes_nothing(treasury, keys, rclient, settings, words):
    before = effective_policy(rclient, keys, AGENT)
    treasury.send("rebalancer", SetPolicy(settings=settings))
    [refused] = treasury.events(PolicyRefused)
    assert words in refused.reason
    assert treasury.events(PolicyChanged) == [] and rclient.exists(keys.policy(AGENT)) == 0
    assert effective_policy(rclient, keys, AGENT) == before
    assert read_ledger(rclient, keys, AGENT).bucket("casino") == parse_usd("150")


def test_an_unloadable_override_hash_fails_closed(treasury, keys, rclient):
    """A hash the validating handler did not write: the bet is not judged by it, nothing is spent."""
    rclient.hset(keys.policy(AGENT), "max_bet_bp", "lots")
    treasury.send("casino", PlaceBet(game=CoinFlip(), fixed_stake=parse_usd("1.00")))
    assert treasury.venue.placed == [] and treasury.events(BetSettled) == []
    ledger = read_ledger(rclient, keys, AGENT)
    assert ledger.bucket("casino") == parse_usd("150") and ledger.held_by("casino", "reserved") == 0
