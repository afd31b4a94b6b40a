"""CasinoBucket on its own, with a scripted venue: the outcomes the real sandbox cannot be made
to produce on demand (a big win, a lost answer) and what the actor does with each."""

from __future__ import annotations

import pytest

from actors.bootstrap import open_treasury
from actors.casino import CasinoBucket
from actors.ledger import read_ledger
from messages.codec import FIELD, decode, encode
from messages.envelope import seeded_ids, wrap
from messages.money import parse_usd
from messages.schema import (
    BetRefused,
    BetRejected,
    BetSettled,
    CoinFlip,
    Multiplier,
    PlaceBet,
    SessionStopped,
    StartSession,
)
from runtime.atomic import AtomicSteps
from runtime.bus import StreamBus, command_client
from runtime.clock import ManualClock
from tests.kit.casino import ScriptedCasino

pytestmark = pytest.mark.redis

AGENT = "scripted"


@pytest.fixture
def casino(redis_url, keys, rclient):
    steps = AtomicSteps(command_client(redis_url), keys)
    ids = seeded_ids(4)
    open_treasury(steps, AGENT, parse_usd("1000"), now_ms=0, new_id=ids)
    venue = ScriptedCasino()
    actor = CasinoBucket.start(steps, ManualClock(0), ids, lambda agent: venue)
    bus = StreamBus(redis_url, keys, "casino", [keys.shard(AGENT)], lambda d: actor.ask(d), block_ms=20,
                    max_deliveries=5, retry_backoff_ms=1)
    bus.ensure_groups()

    def send(body):
        rclient.xadd(keys.agent_commands(AGENT, "casino"),
                     {FIELD: encode(wrap(body, agent=AGENT, now_ms=0, new_id=ids))})
        while bus.poll_once(wait=False):
            pass

    def events(kind):
        return [
            decode(f[FIELD]).body
            for _, f in rclient.xrange(keys.events(AGENT))
            if isinstance(decode(f[FIELD]).body, kind)
        ]

    def commands(role):
        return [decode(f[FIELD]).body for _, f in rclient.xrange(keys.agent_commands(AGENT, role))]

    yield venue, send, events, commands, bus, steps
    actor.stop()


BELIEVER = PlaceBet(game=Multiplier(target=100.0), win_prob=0.05, kelly="full")


def test_a_win_over_20_percent_of_the_bucket_asks_for_a_rebalance(casino):
    venue, send, events, commands, *_ = casino
    venue.script = [("win", 10), ("win", 100)]
    send(BELIEVER)  # $3 × 10: a $27 win is 18 % of the $150 bucket
    assert commands("rebalancer") == []
    send(BELIEVER)  # $3.54 × 100: far beyond 20 %
    [request] = commands("rebalancer")
    assert (request.trigger, request.bucket) == ("big_win", "casino")
    assert request.amount == events(BetSettled)[-1].pnl and request.bucket_before == parse_usd("177")


def test_a_definite_venue_refusal_releases_the_reservation(casino):
    venue, send, events, _, _, steps = casino
    venue.script = [("reject", "kelly_limit_exceeded")]
    send(BELIEVER)
    [failed] = events(BetRejected)
    assert failed.code == "kelly_limit_exceeded"
    ledger = read_ledger(steps.client, steps.keys, AGENT)
    assert ledger.bucket("casino") == parse_usd("150") and ledger.held_by("casino", "reserved") == 0


def test_a_lost_answer_is_looked_up_on_redelivery_and_settled_once(casino):
    venue, send, events, _, bus, steps = casino
    venue.script = [("lost",)]
    send(BELIEVER)  # the venue took it; the actor does not know, so the entry stays pending
    ledger = read_ledger(steps.client, steps.keys, AGENT)
    assert ledger.held_by("casino", "reserved") == parse_usd("3") and events(BetSettled) == []
    bus.drain_own_pending()  # redelivered: the reservation exists, so it looks the bet up first
    assert venue.calls == 1  # never placed a second time
    [settled] = events(BetSettled)
    assert settled.pnl == -parse_usd("3")
    assert read_ledger(steps.client, steps.keys, AGENT).held_by("casino", "reserved") == 0


def test_a_session_down_half_stops_and_sends_the_rest_to_the_reserve(casino):
    venue, send, events, commands, *_ = casino
    send(StartSession(budget=parse_usd("10")))
    venue.script = [("lose",)] * 10
    bet = PlaceBet(game=CoinFlip(), win_prob=0.6, kelly="full")  # f* ≈ 19.6 % of the session
    while not events(SessionStopped):
        send(bet)
    [stopped] = events(SessionStopped)
    assert stopped.budget == parse_usd("10") and stopped.remaining < parse_usd("5")
    [request] = commands("rebalancer")
    assert (request.trigger, request.amount) == ("casino_session", stopped.remaining)
    send(bet)
    assert events(BetRefused)[-1].code == "session_stopped"


def test_an_unknown_look_up_never_bets_again_and_keeps_the_stake_reserved(casino, keys, rclient):
    venue, send, events, _, bus, steps = casino
    venue.script = [("lost",)]
    send(BELIEVER)
    venue.unknown = True
    for _ in range(12):  # every redelivery: reservation found, look-up UNKNOWN, no bet
        bus.drain_own_pending()
    assert rclient.xlen(keys.dead(keys.shard(AGENT))) == 0, "parked with its stake reserved, never dead-lettered"
    assert venue.calls == 1 and events(BetSettled) == []
    assert read_ledger(steps.client, steps.keys, AGENT).held_by("casino", "reserved") == parse_usd("3")


def test_stakes_are_sized_under_the_venues_own_kelly_limit(casino):
    """The venue refuses stakes above its Kelly limit (×50 at p 0.05 → "exceeds Kelly limit of
    $1.53"): the actor sizes under the smaller of its cap and the venue's."""
    venue, send, events, *_ = casino
    venue.venue_cap = parse_usd("1.53")
    venue.script = [("lose",)]
    send(PlaceBet(game=Multiplier(target=50.0), win_prob=0.05, kelly="full"))
    [settled] = events(BetSettled)
    assert settled.stake == parse_usd("1.53")
    venue.script = [("lose",)]
    send(PlaceBet(game=CoinFlip(), win_prob=0.5, kelly="full", fixed_stake=parse_usd("2.50")))
    refused = events(BetRefused)[-1]
    assert refused.code == "over_cap"
    assert "exceeds the venue's Kelly limit (GET /kelly/limits) of $1.53" in refused.reason
    assert venue.calls == 1


@pytest.mark.parametrize("win_prob", [1e-320, 5e-324, 0.1 + 1e-17 * 3])
def test_a_probability_no_bet_can_be_sized_with_is_refused_once_with_its_reason(casino, win_prob):
    """A subnormal estimate passes the message schema (0 ≤ p ≤ 1) but cannot be sized exactly: it is
    refused at once, with the sizing's own words, never retried until its signature expires."""
    venue, send, events, _, bus, _ = casino
    send(PlaceBet(game=CoinFlip(), win_prob=win_prob, kelly="half"))
    refused = events(BetRefused)
    if win_prob > 1e-300:  # an ordinary float: sized, and refused for having no edge
        assert [r.code for r in refused] == ["no_edge"]
    else:
        assert [r.code for r in refused] == ["bad_input"] and "too large or too precise" in refused[0].reason
    assert venue.calls == 0 and bus.dead_lettered == 0


def test_a_busy_agent_reads_its_casino_ledger_before_bets_push_a_payout_out_of_its_50_rows(casino):
    """`GET /auth/ledger` answers the newest 50 rows and each bet writes up to two: every 20th
    reservation asks for a `ScanIncoming` (escrow payouts) and a `SiloTick` (payments from other
    agents, the silo role's income watch) in its own settle commit, besides the scheduled ticks."""
    from actors.casino import SCAN_EVERY_RESERVATIONS
    from messages.flow_msgs import ScanIncoming
    from messages.silo_msgs import SiloTick

    venue, send, events, commands, *_ = casino
    for _ in range(2 * SCAN_EVERY_RESERVATIONS + 5):
        venue.script = [("lose",)]
        send(PlaceBet(game=CoinFlip(), win_prob=0.5, kelly="full", fixed_stake=parse_usd("0.10")))
    assert len(events(BetSettled)) == 2 * SCAN_EVERY_RESERVATIONS + 5
    assert sum(isinstance(c, ScanIncoming) for c in commands("casino")) == 2
    assert sum(isinstance(c, SiloTick) for c in commands("silo")) == 2
    assert venue.scans == 2  # and each was carried out
