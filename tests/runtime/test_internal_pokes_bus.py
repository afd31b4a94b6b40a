"""Internal pokes carry no operator authority (issue 9, case 7): through the real bus and the real
Rebalancer on a real Redis, an unsigned `Rebalance(trigger="operator")` added straight to the
rebalancer's stream is refused by the gate, while the pokes the actors send themselves still pass
unsigned and an operator-signed request is obeyed."""

from __future__ import annotations

import pytest

from actors.bootstrap import open_treasury
from actors.rebalancer import Rebalancer
from messages.codec import FIELD, decode, encode
from messages.envelope import seeded_ids, wrap
from messages.money import parse_usd
from messages.schema import CommandRefused
from messages.treasury_msgs import Rebalance, RebalancePlanned, RebalanceSkipped
from runtime.atomic import AtomicSteps
from runtime.bus import StreamBus, command_client
from runtime.clock import ManualClock
from runtime.command_gate import CommandGate
from runtime.keyring import Keyring, generate_key
from runtime.nonces import RedisNonceStore
from runtime.signing import sign

pytestmark = pytest.mark.redis

AGENT = "poked"
NOW = 1_800_000_000_000
AGENT_KEY = generate_key("agent-key", "agent")
OPERATOR_KEY = generate_key("operator-key", "operator")


@pytest.fixture
def rebalancer(redis_url, keys, rclient):
    clock = ManualClock(NOW)
    steps = AtomicSteps(command_client(redis_url), keys)
    ids = seeded_ids(77)
    open_treasury(steps, AGENT, parse_usd("1000"), now_ms=NOW, new_id=ids)
    actor = Rebalancer.start(steps, clock, ids)
    gate = CommandGate(Keyring([AGENT_KEY, OPERATOR_KEY]), RedisNonceStore(rclient, keys.prefix, shards=keys.shards),
                       clock)
    bus = StreamBus(redis_url, keys, "rebalancer", [keys.shard(AGENT)], lambda d: actor.ask(d), gate=gate,
                    clock=clock, block_ms=20)
    bus.ensure_groups()

    def send(env):
        rclient.xadd(keys.agent_commands(AGENT, "rebalancer"), {FIELD: encode(env)})
        while bus.poll_once(wait=False):
            pass
        return [decode(f[FIELD]) for _, f in rclient.xrange(keys.events(AGENT))]

    yield send, ids
    actor.stop()


def outcomes(events, env):
    return [type(e.body) for e in events if e.causation == env.id]


def test_an_unsigned_operator_rebalance_is_refused_by_the_gate(rebalancer, rclient, keys):
    send, ids = rebalancer
    env = wrap(Rebalance(trigger="operator", reason="forged"), agent=AGENT, now_ms=NOW, new_id=ids)
    events = send(env)
    assert outcomes(events, env) == [CommandRefused]
    [refused] = [e.body for e in events if e.causation == env.id]
    assert "(unsigned)" in refused.reason
    assert not [e for e in events if isinstance(e.body, (RebalancePlanned, RebalanceSkipped))]
    [(_, dead)] = rclient.xrange(keys.dead(keys.shard(AGENT)))
    assert b"(unsigned)" in dead[b"error"]


def test_an_agent_signed_operator_rebalance_is_refused_for_its_scope(rebalancer):
    send, ids = rebalancer
    env = sign(wrap(Rebalance(trigger="operator", reason="agent"), agent=AGENT, now_ms=NOW, new_id=ids), AGENT_KEY,
               now_ms=NOW)
    events = send(env)
    [refused] = [e.body for e in events if e.causation == env.id]
    assert isinstance(refused, CommandRefused) and "(insufficient_scope)" in refused.reason


def test_an_operator_signed_rebalance_is_obeyed(rebalancer):
    send, ids = rebalancer
    env = sign(wrap(Rebalance(trigger="operator", reason="check"), agent=AGENT, now_ms=NOW, new_id=ids), OPERATOR_KEY,
               now_ms=NOW)
    assert outcomes(send(env), env) in ([RebalanceSkipped], [RebalancePlanned])


def test_an_actors_own_unsigned_poke_still_passes(rebalancer):
    send, ids = rebalancer
    env = wrap(Rebalance(trigger="drift", reason="internal poke"), agent=AGENT, now_ms=NOW, new_id=ids)
    [kind] = outcomes(send(env), env)
    assert kind is RebalanceSkipped  # the Rebalancer re-checked the trigger: no drift at the targets
