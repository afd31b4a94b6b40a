"""Case 6 of the breaker cases: a command for an unknown agent is refused as unknown, and nothing is
written under its name. Real Redis, the real bus and casino actor."""

from __future__ import annotations

import pytest

from actors.casino import CasinoBucket
from messages.codec import FIELD, encode
from messages.envelope import seeded_ids, wrap
from messages.money import MICRO
from messages.schema import CoinFlip, PlaceBet
from runtime.bus import StreamBus

pytestmark = pytest.mark.redis
USD = MICRO


# ---------------------------------------------------------------- case 6


def test_case6_a_bet_for_an_unknown_agent_is_refused_as_unknown_and_writes_nothing_under_its_name(
        redis_url, keys, rclient):
    from runtime.atomic import AtomicSteps
    from runtime.bus import command_client
    from runtime.clock import ManualClock

    steps = AtomicSteps(command_client(redis_url), keys)

    def no_venue(agent):
        raise AssertionError("the venue must not be asked for an unknown agent")

    actor = CasinoBucket.start(steps, ManualClock(), seeded_ids(5), no_venue)
    bus = StreamBus(redis_url, keys, "casino", [keys.shard("nosuchagent")], lambda d: actor.ask(d), block_ms=20)
    bus.ensure_groups()
    try:
        env = wrap(PlaceBet(game=CoinFlip(), win_prob=0.6), agent="nosuchagent", now_ms=1, new_id=seeded_ids(6))
        rclient.xadd(keys.agent_commands("nosuchagent", "casino"), {FIELD: encode(env)})
        while bus.poll_once(wait=False):
            pass
        dead = rclient.xrange(keys.dead(keys.shard("nosuchagent")))
        assert len(dead) == 1 and b"unknown agent 'nosuchagent'" in dead[0][1][b"error"]
        assert [k for k in rclient.scan_iter(match=f"{keys.prefix}:*nosuchagent*")] == []
    finally:
        actor.stop()
        bus.close()


