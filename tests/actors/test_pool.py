"""`actors.pool.ActorPool.submit_wave`: a wave split between all the actors while their venue is
slow, between `FAST_VENUE_SHARES` of them while it is fast, each delivery's outcome in its own
place either way."""

from __future__ import annotations

import zlib

import pykka
import pytest

from actors.base import VenuePace, Wave
from actors.pool import FAST_VENUE_S, FAST_VENUE_SHARES, ActorPool
from messages.envelope import seeded_ids, wrap
from messages.schema import BalancesChanged
from runtime.bus import Delivery
from runtime.control import ControlView

AGENTS = [f"pool-{i}" for i in range(12)]
ACTORS = FAST_VENUE_SHARES + 2


class Recorder(pykka.ThreadingActor):
    """Answers a wave with an error for agents named in `fail`, None otherwise; logs what it got."""

    def __init__(self, name: str, log: list, fail: set[str]):
        super().__init__()
        self.name, self.log, self.fail = name, log, fail
        self.controls = ControlView()
        self.venue_pace = VenuePace()

    def on_receive(self, message):
        assert isinstance(message, Wave)
        self.log.append((self.name, [d.envelope.agent for d in message.deliveries]))
        return [RuntimeError(d.envelope.agent) if d.envelope.agent in self.fail else None
                for d in message.deliveries]


@pytest.fixture
def pool():
    log: list = []
    fail = {"pool-3", "pool-7"}
    pool = ActorPool([Recorder.start(f"actor-{i}", log, fail) for i in range(ACTORS)])
    yield pool, log, fail
    pool.stop()


def deliveries() -> list[Delivery]:
    ids = seeded_ids(3)
    return [Delivery("s", "g", f"{i}-0", wrap(BalancesChanged(cause="t"), agent=a, now_ms=1, new_id=ids), 1)
            for i, a in enumerate(AGENTS)]


def outcomes(parts) -> list[str | None]:
    out: list[str | None] = []
    for part in parts:
        try:
            part.get(timeout=5)
            out.append(None)
        except RuntimeError as exc:
            out.append(str(exc))
    return out


def expected(fail) -> list[str | None]:
    return [a if a in fail else None for a in AGENTS]


def test_a_venue_not_yet_timed_splits_the_wave_by_agent(pool):
    pool, log, fail = pool
    assert not pool.venue_is_fast()
    assert outcomes(pool.submit_wave(deliveries())) == expected(fail)
    by_actor = {name: agents for name, agents in log}
    assert sorted(a for agents in by_actor.values() for a in agents) == sorted(AGENTS)
    for name, agents in by_actor.items():  # every agent on its own actor, as `route` says
        assert {f"actor-{zlib.crc32(a.encode()) % ACTORS}" for a in agents} == {name}
    assert len(by_actor) > FAST_VENUE_SHARES


def test_a_fast_venue_shares_the_wave_between_fewer_actors(pool):
    pool, log, fail = pool
    for pace in pool.paces:
        pace.observe(FAST_VENUE_S / 10)
    assert pool.venue_is_fast()
    assert outcomes(pool.submit_wave(deliveries())) == expected(fail)
    by_actor = {name: agents for name, agents in log}
    assert len(log) == len(by_actor) == FAST_VENUE_SHARES
    for name, agents in by_actor.items():
        assert {f"actor-{zlib.crc32(a.encode()) % FAST_VENUE_SHARES}" for a in agents} == {name}
    assert sorted(a for agents in by_actor.values() for a in agents) == sorted(AGENTS)


def test_one_slow_actor_splits_waves_again(pool):
    pool, log, fail = pool
    for pace in pool.paces:
        pace.observe(FAST_VENUE_S / 10)
    for _ in range(10):  # its venue calls have slowed down (a venue over HTTP, a slow answer)
        pool.paces[1].observe(FAST_VENUE_S * 20)
    assert not pool.venue_is_fast()
    assert outcomes(pool.submit_wave(deliveries())) == expected(fail)
    assert len(log) > FAST_VENUE_SHARES


def test_the_pace_follows_the_latest_calls():
    pace = VenuePace()
    assert pace.calls == 0
    pace.observe(0.010)
    assert pace.seconds == pytest.approx(0.010)
    for _ in range(40):
        pace.observe(0.0001)
    assert pace.seconds < FAST_VENUE_S and pace.calls == 41


def test_one_actor_is_one_share_whatever_the_pace():
    log: list = []
    pool = ActorPool([Recorder.start("only", log, set())])
    try:
        pool.paces[0].observe(0.0)
        assert not pool.venue_is_fast()  # nothing to choose between
        assert outcomes(pool.submit_wave(deliveries())) == [None] * len(AGENTS)
        assert log == [("only", AGENTS)]
    finally:
        pool.stop()
