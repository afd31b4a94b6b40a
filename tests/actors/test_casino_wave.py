"""Bets of different agents handled as one wave (`CasinoBucket.handle_wave`): their reads, fence
calls and commits share round trips, yet each bet ends as it would alone: its own commit
acknowledges its own entry, a bet that failed leaves its entry pending with its funds reserved,
and nothing is placed twice."""

from __future__ import annotations

import uuid

import pytest
import redis

from actors.bootstrap import open_treasury
from actors.casino import CasinoBucket
from actors.ledger import read_ledger
from messages.codec import FIELD, decode, encode
from messages.envelope import seeded_ids, wrap
from messages.money import parse_usd
from messages.schema import BetRefused, BetRejected, BetSettled, Multiplier, PlaceBet
from runtime.atomic import AtomicSteps, FenceStatus, _script
from runtime.bus import Delivery, UnknownAgent, command_client
from runtime.clock import ManualClock
from tests.kit.casino import ScriptedCasino
from venue.errors import VenueUnavailable

pytestmark = pytest.mark.redis

BET = PlaceBet(game=Multiplier(target=100.0), win_prob=0.05, kelly="full")  # $3 of a $150 bucket
GROUP = "g:casino"


@pytest.fixture
def wave(redis_url, keys, rclient):
    steps = AtomicSteps(command_client(redis_url), keys)
    ids = seeded_ids(11)
    venues: dict[str, ScriptedCasino] = {}
    for agent in ("w-win", "w-lost", "w-reject", "w-broke"):
        open_treasury(steps, agent, parse_usd("1000"), now_ms=0, new_id=ids)
        venues[agent] = ScriptedCasino()
    venues["w-nobody"] = ScriptedCasino()  # no treasury state: unknown
    actor = CasinoBucket(steps, ManualClock(0), ids, lambda agent: venues[agent])  # called in this thread

    last: dict[str, str] = {}  # agent -> its latest entry (agents of one shard share a stream)

    def deliver(bodies: dict[str, PlaceBet]) -> list[Delivery]:
        out = []
        for agent, body in bodies.items():
            stream = keys.agent_commands(agent, "casino")
            if not rclient.exists(stream):
                rclient.xgroup_create(stream, GROUP, id="0", mkstream=True)
            env = wrap(body, agent=agent, now_ms=0, new_id=ids)
            rclient.xadd(stream, {FIELD: encode(env)})
            [(_, [(entry_id, _)])] = rclient.xreadgroup(GROUP, "c", {stream: ">"}, count=1)
            out.append(Delivery(stream, GROUP, entry_id.decode(), env, 1))
            last[agent] = entry_id.decode()
        return out

    def pending(agent: str) -> int:
        """1 if the agent's latest entry is still pending, else 0."""
        entry = last[agent]
        return len(rclient.xpending_range(keys.agent_commands(agent, "casino"), GROUP, min=entry, max=entry, count=1))

    def events(agent: str, kind) -> list:
        bodies = (decode(f[FIELD]).body for _, f in rclient.xrange(keys.events(agent)))
        return [b for b in bodies if isinstance(b, kind)]

    return actor, steps, venues, deliver, pending, events


def test_a_wave_shares_its_round_trips_and_each_bet_ends_on_its_own(wave, keys, rclient, monkeypatch):
    actor, steps, venues, deliver, pending, events = wave
    venues["w-win"].script = [("win", 100)]
    venues["w-lost"].script = [("lost",)]
    venues["w-reject"].script = [("reject", "kelly_limit_exceeded")]
    broke = PlaceBet(game=Multiplier(target=2.0), win_prob=0.5, kelly="full", fixed_stake=parse_usd("900"))
    deliveries = deliver({"w-win": BET, "w-lost": BET, "w-reject": BET, "w-broke": broke, "w-nobody": BET})
    pipelines = 0
    real = steps.client.pipeline

    def counted(*args, **kwargs):
        nonlocal pipelines
        pipelines += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(steps.client, "pipeline", counted)
    outcomes = dict(zip([d.envelope.agent for d in deliveries], actor.handle_wave(deliveries), strict=True))
    assert pipelines == 3  # one read, one of fence calls, one of commits: for the whole wave

    assert outcomes["w-win"] is None and pending("w-win") == 0
    [settled] = events("w-win", BetSettled)
    assert settled.pnl == parse_usd("3") * 99

    assert isinstance(outcomes["w-lost"], VenueUnavailable)  # placed, answer lost: nothing committed
    assert pending("w-lost") == 1 and events("w-lost", BetSettled) == []
    assert read_ledger(steps.client, keys, "w-lost").held_by("casino", "reserved") == parse_usd("3")

    assert outcomes["w-reject"] is None and pending("w-reject") == 0
    assert [e.code for e in events("w-reject", BetRejected)] == ["kelly_limit_exceeded"]
    assert read_ledger(steps.client, keys, "w-reject").held_by("casino", "reserved") == 0

    assert outcomes["w-broke"] is None and pending("w-broke") == 0  # the fence refused it: no venue call
    [refused] = events("w-broke", BetRefused)
    assert refused.code in (FenceStatus.OVER_CAP, FenceStatus.INSUFFICIENT) and venues["w-broke"].calls == 0

    assert isinstance(outcomes["w-nobody"], UnknownAgent) and pending("w-nobody") == 1
    assert not rclient.exists(keys.events("w-nobody"))  # nothing written under an unknown name

    # the lost bet redelivered (alone, or in the next wave): looked up, settled once, never placed again
    redelivered = next(d for d in deliveries if d.envelope.agent == "w-lost")
    again = [Delivery(redelivered.stream, GROUP, redelivered.entry_id, redelivered.envelope, 2)]
    assert actor.handle_wave(again) == [None]
    assert venues["w-lost"].calls == 1 and pending("w-lost") == 0
    assert [e.pnl for e in events("w-lost", BetSettled)] == [-parse_usd("3")]
    assert read_ledger(steps.client, keys, "w-lost").held_by("casino", "reserved") == 0


def test_a_redis_error_on_a_shared_round_trip_leaves_every_open_bet_pending(wave, keys, monkeypatch):
    actor, steps, venues, deliver, pending, events = wave
    for agent in ("w-win", "w-lost"):
        venues[agent].script = [("win", 2)]
    deliveries = deliver({"w-win": BET, "w-lost": BET})

    def no_commits(items):
        raise redis.ConnectionError("connection reset")

    monkeypatch.setattr(steps, "commit_many", no_commits)
    outcomes = actor.handle_wave(deliveries)
    assert all(isinstance(o, redis.ConnectionError) for o in outcomes)
    for agent in ("w-win", "w-lost"):  # placed, not settled: pending, funds still reserved
        assert pending(agent) == 1 and events(agent, BetSettled) == []
        assert read_ledger(steps.client, keys, agent).held_by("casino", "reserved") == parse_usd("3")
    monkeypatch.undo()
    again = [Delivery(d.stream, GROUP, d.entry_id, d.envelope, 2) for d in deliveries]
    assert actor.handle_wave(again) == [None, None]  # looked up at the venue, settled once each
    for agent in ("w-win", "w-lost"):
        assert venues[agent].calls == 1 and pending(agent) == 0 and len(events(agent, BetSettled)) == 1


def test_fence_and_commit_calls_in_a_pipeline_load_a_script_redis_does_not_know(redis_url, keys):
    steps = AtomicSteps(command_client(redis_url), keys)
    open_treasury(steps, "w-fresh", parse_usd("1000"), now_ms=0, new_id=seeded_ids(3))
    # a copy of each script under a sha this server has never seen: the first EVALSHA gets NOSCRIPT
    tag = f"\n-- {uuid.uuid4().hex}\n"
    steps._reserve = steps.client.register_script(_script("reserve.lua") + tag)
    steps._commit = steps.client.register_script(_script("commit.lua") + tag)
    [first, second] = steps.reserve_many([("w-fresh", "m-1", "casino", 100, 10**9, 0),
                                          ("w-fresh", "m-1", "casino", 100, 10**9, 0)])
    assert first.status is FenceStatus.OK and second.status is FenceStatus.ALREADY_RESERVED  # in order, once
    commit = steps.new_commit("w-fresh").incr(keys.ledger("w-fresh"), "casino:reserved", -100)
    [done] = steps.commit_many([(commit, "m-1", 0)])
    assert done.status == "ok"
    assert read_ledger(steps.client, keys, "w-fresh").held_by("casino", "reserved") == 0


def test_an_error_reply_on_one_agents_keys_ends_that_bet_alone(wave, keys, rclient):
    actor, steps, venues, deliver, pending, events = wave
    venues["w-win"].script = [("win", 2)]
    rclient.set(keys.session("w-lost"), "not a hash")  # HGETALL answers WRONGTYPE for this agent only
    outcomes = actor.handle_wave(deliver({"w-win": BET, "w-lost": BET}))
    assert outcomes[0] is None and pending("w-win") == 0 and len(events("w-win", BetSettled)) == 1
    assert isinstance(outcomes[1], redis.ResponseError) and pending("w-lost") == 1
    assert venues["w-lost"].calls == 0
    assert read_ledger(steps.client, keys, "w-lost").held_by("casino", "reserved") == 0


def test_the_actor_times_its_venue_calls_for_its_pool(wave):
    """What `ActorPool.venue_is_fast` reads: each bet placed at the venue counts in the pace."""
    actor, steps, venues, deliver, pending, events = wave
    venues["w-win"].script = [("win", 100)]
    venues["w-lost"].script = [("lose",)]
    venues["w-reject"].script = [("lost",)]  # no answer: a failed call counts as well
    assert actor.venue_pace.calls == 0
    outcomes = actor.handle_wave(deliver({"w-win": BET, "w-lost": BET, "w-reject": BET}))
    assert outcomes[:2] == [None, None] and isinstance(outcomes[2], VenueUnavailable)
    assert actor.venue_pace.calls == 3 and 0 < actor.venue_pace.seconds < 5
