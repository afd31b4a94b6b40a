"""The control broadcast acts: a spending actor refuses its queued spends as soon as PAUSED or
HALTED lands in its view, without waiting for its mailbox or the fence; what was reserved
before is still settled."""

from __future__ import annotations

import pytest

from actors.bootstrap import open_treasury
from actors.casino import CasinoBucket
from actors.ledger import read_ledger
from messages.codec import FIELD, decode, encode
from messages.envelope import seeded_ids, wrap
from messages.money import parse_usd
from messages.schema import BetRefused, BetSettled, Multiplier, PlaceBet, RiskControl
from runtime.atomic import AtomicSteps
from runtime.bus import StreamBus, command_client
from runtime.clock import ManualClock
from runtime.control import ControlChanged, ControlView
from tests.actors.test_casino_actor import ScriptedCasino

pytestmark = pytest.mark.redis

AGENT = "ctl-agent"
BET = PlaceBet(game=Multiplier(target=2.0), win_prob=0.6, kelly="quarter")
HALT = RiskControl(state="HALTED", reason="drawdown 20 %")


@pytest.fixture
def world(redis_url, keys, rclient):
    steps = AtomicSteps(command_client(redis_url), keys)
    ids = seeded_ids(9)
    open_treasury(steps, AGENT, parse_usd("1000"), now_ms=0, new_id=ids)
    venue = ScriptedCasino()
    clock = ManualClock(0)
    actor = CasinoBucket.start(steps, clock, ids, lambda agent: venue)
    view: ControlView = actor.proxy().controls.get()
    view.fed_directly = True  # as in a worker: the listener thread writes the view
    bus = StreamBus(redis_url, keys, "casino", [keys.shard(AGENT)], lambda d: actor.ask(d), block_ms=20,
                    retry_backoff_ms=1)
    bus.ensure_groups()

    def publish(n):
        for _ in range(n):
            rclient.xadd(keys.agent_commands(AGENT, "casino"), {FIELD: encode(wrap(BET, agent=AGENT, now_ms=0,
                                                                                   new_id=ids))})

    def events(kind):
        bodies = (decode(f[FIELD]).body for _, f in rclient.xrange(keys.events(AGENT)))
        return [b for b in bodies if isinstance(b, kind)]

    yield venue, view, bus, publish, events, steps, actor
    actor.stop()


def test_a_halt_landing_mid_batch_refuses_every_queued_bet_before_the_fence(world, rclient, keys):
    venue, view, bus, publish, events, steps, _ = world
    fence_before = int(rclient.hget(keys.risk(AGENT), "fence_seq") or 0)

    class HaltDuringFirstBet(ScriptedCasino):
        def place_bet_once(self, *a, **kw):
            view.update(AGENT, HALT)  # the listener thread, while the actor is busy with this bet
            return super().place_bet_once(*a, **kw)

    busy = HaltDuringFirstBet()
    busy.script = [("lose",)] * 5
    venue.place_bet_once = busy.place_bet_once
    publish(5)
    while bus.poll_once(wait=False):
        pass
    assert len(events(BetSettled)) == 1  # the bet in hand was placed before the halt: settled
    refused = events(BetRefused)
    assert [r.code for r in refused] == ["halted"] * 4 and all(r.fence_seq is None for r in refused)
    assert busy.calls == 1
    assert int(rclient.hget(keys.risk(AGENT), "fence_seq") or 0) == fence_before + 1  # only the first bet's
    assert read_ledger(steps.client, keys, AGENT).held_by("casino", "reserved") == 0


def test_a_bet_reserved_before_a_crash_is_still_looked_up_and_settled_when_halted(world):
    venue, view, bus, publish, events, steps, _ = world
    venue.script = [("lost",)]
    publish(1)
    bus.poll_once(block_ms=20)  # placed at the venue, the answer lost: pending, funds reserved
    view.update(AGENT, HALT)
    bus.drain_own_pending()
    assert venue.calls == 1 and len(events(BetSettled)) == 1 and events(BetRefused) == []
    assert read_ledger(steps.client, steps.keys, AGENT).held_by("casino", "reserved") == 0


def test_resume_lets_bets_through_again(world):
    venue, view, bus, publish, events, *_ = world
    view.update(AGENT, HALT)
    view.update(AGENT, RiskControl(state="ACTIVE", reason="operator resumed"))
    venue.script = [("lose",)]
    publish(1)
    while bus.poll_once(wait=False):
        pass
    assert len(events(BetSettled)) == 1


def test_the_typed_message_updates_an_actor_no_listener_feeds(world):
    venue, view, bus, publish, events, _, actor = world
    view.fed_directly = False  # e.g. a test harness: only the mailbox carries broadcasts
    actor.ask(ControlChanged(AGENT, RiskControl(state="PAUSED", reason="cool-off", until_ms=60_000)))
    publish(1)
    while bus.poll_once(wait=False):
        pass
    assert [r.code for r in events(BetRefused)] == ["paused"] and venue.calls == 0


def test_the_view_keeps_only_blocked_agents_and_honours_a_pause_end():
    view = ControlView()
    view.update("a", RiskControl(state="PAUSED", reason="p", until_ms=1_000))
    view.update("b", RiskControl(state="HALTED", reason="h"))
    view.update("c", RiskControl(state="ACTIVE", reason="ok"))
    assert len(view) == 2
    assert view.blocking("a", 999).state == "PAUSED" and view.blocking("a", 1_000) is None
    assert view.blocking("b", 10**15).state == "HALTED" and view.blocking("c", 0) is None
    view.update("b", RiskControl(state="ACTIVE", reason="resumed"))
    assert len(view) == 1 and view.blocking("b", 0) is None
