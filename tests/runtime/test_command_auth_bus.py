"""Every way a command can fail authentication, through the real bus on a real Redis: refused
onto the dead stream and into the journal, and nothing else changes."""

from __future__ import annotations

import msgspec
import pytest

from messages.codec import FIELD, decode, encode
from messages.envelope import seeded_ids, wrap
from messages.schema import BalancesChanged, CommandRefused, SetRisk
from runtime.atomic import AtomicSteps
from runtime.bus import StreamBus, command_client
from runtime.clock import ManualClock
from runtime.command_gate import CommandGate
from runtime.keyring import Keyring, generate_key
from runtime.nonces import RedisNonceStore
from runtime.signing import sign
from tests.kit.bus import CountingHandler

pytestmark = pytest.mark.redis

AGENT = "auth-agent"
NOW = 1_800_000_000_000
AGENT_KEY = generate_key("agent-key", "agent")
OPERATOR_KEY = generate_key("operator-key", "operator")
STRANGER_KEY = generate_key("agent-key", "agent")  # same id, different secret: a forger's key


@pytest.fixture
def setup(redis_url, keys, rclient):
    clock = ManualClock(NOW)
    steps = AtomicSteps(command_client(redis_url), keys)
    gate = CommandGate(Keyring([AGENT_KEY, OPERATOR_KEY]), RedisNonceStore(rclient, keys.prefix, shards=keys.shards),
                       clock)
    handler = CountingHandler(steps)
    bus = StreamBus(redis_url, keys, "risk", [keys.shard(AGENT)], handler, gate=gate, clock=clock, block_ms=50)
    bus.ensure_groups()
    return bus, handler, clock


def pause(n: int = 0):
    return wrap(SetRisk(state="PAUSED", reason="test"), agent=AGENT, now_ms=NOW, new_id=seeded_ids(100 + n))


def publish(rclient, keys, env):
    return rclient.xadd(keys.agent_commands(AGENT, "risk"), {FIELD: encode(env)})


def drain(bus):
    while bus.poll_once(wait=False):
        pass


def refusals(rclient, keys) -> list[str]:
    return [f[b"error"].decode() for _, f in rclient.xrange(keys.dead(keys.shard(AGENT)))]


def journal_rejections(rclient, keys) -> list[str]:
    events = [decode(f[FIELD]) for _, f in rclient.xrange(keys.events(AGENT))]
    return [e.body.reason for e in events if isinstance(e.body, CommandRefused)]


def applied(rclient, keys) -> int:
    return int(rclient.hget(keys.ledger(AGENT), "applied") or 0)


@pytest.mark.parametrize(
    "name, make, code",
    [
        ("unsigned", lambda: pause(), "unsigned"),
        ("malformed", lambda: msgspec.structs.replace(pause(), signature="v1.not-a-signature"), "malformed_signature"),
        ("unknown key", lambda: sign(pause(), generate_key("nobody", "agent"), now_ms=NOW), "unknown_key"),
        ("forged", lambda: sign(pause(), STRANGER_KEY, now_ms=NOW), "bad_signature"),
        (
            "tampered",
            lambda: msgspec.structs.replace(
                sign(pause(), AGENT_KEY, now_ms=NOW), body=SetRisk(state="HALTED", reason="x")
            ),
            "bad_signature",
        ),
        ("expired", lambda: sign(pause(), AGENT_KEY, now_ms=NOW - 120_000, ttl_ms=60_000), "expired"),
        ("too long-lived", lambda: sign(pause(), AGENT_KEY, now_ms=NOW, ttl_ms=3_600_000), "expiry_too_far"),
        (
            "agent key resuming",
            lambda: sign(
                wrap(SetRisk(state="ACTIVE", reason="resume"), agent=AGENT, now_ms=NOW, new_id=seeded_ids(7)),
                AGENT_KEY,
                now_ms=NOW,
            ),
            "insufficient_scope",
        ),
    ],
)
def test_each_failure_mode_is_refused_recorded_and_changes_nothing(setup, rclient, keys, name, make, code):
    bus, handler, _ = setup
    publish(rclient, keys, make())
    drain(bus)
    assert handler.calls == 0 and applied(rclient, keys) == 0
    assert len(refusals(rclient, keys)) == 1 and f"({code})" in refusals(rclient, keys)[0]
    assert len(journal_rejections(rclient, keys)) == 1 and f"({code})" in journal_rejections(rclient, keys)[0]
    assert rclient.xpending(keys.agent_commands(AGENT, "risk"), "g:risk")["pending"] == 0


def test_a_replay_is_refused_but_the_original_applies_once(setup, rclient, keys):
    bus, handler, _ = setup
    env = sign(pause(), AGENT_KEY, now_ms=NOW)
    publish(rclient, keys, env)
    publish(rclient, keys, env)  # someone who saw it on the bus publishes it again
    drain(bus)
    assert applied(rclient, keys) == 1 and handler.calls == 1
    assert len(refusals(rclient, keys)) == 1 and "(replayed)" in refusals(rclient, keys)[0]


def test_redelivery_of_the_same_entry_after_a_crash_is_not_a_replay(setup, rclient, keys):
    bus, handler, _ = setup
    env = sign(pause(), AGENT_KEY, now_ms=NOW)
    publish(rclient, keys, env)
    handler.fail_on = {env.id}  # the worker dies before committing: the entry stays pending
    drain(bus)
    assert applied(rclient, keys) == 0
    handler.fail_on = set()
    assert bus.drain_own_pending() == 1  # the same entry again: its nonce claim is its own
    assert applied(rclient, keys) == 1 and refusals(rclient, keys) == []


def test_operator_key_may_resume_and_internal_pokes_need_no_signature(setup, rclient, keys):
    bus, handler, _ = setup
    resume = wrap(SetRisk(state="ACTIVE", reason="reviewed"), agent=AGENT, now_ms=NOW, new_id=seeded_ids(9))
    publish(rclient, keys, sign(resume, OPERATOR_KEY, now_ms=NOW))
    publish(rclient, keys, wrap(BalancesChanged(cause="bet"), agent=AGENT, now_ms=NOW, new_id=seeded_ids(10)))
    drain(bus)
    assert applied(rclient, keys) == 2 and refusals(rclient, keys) == []


def test_a_batch_claims_nonces_as_one_by_one_would(setup, rclient, keys):
    """One XREADGROUP batch is gated together (every nonce claimed in one round trip): a forgery
    carrying a good command's nonce is refused without burning it, the good command applies once,
    and a replay later in the same batch is refused."""
    bus, handler, _ = setup
    good = sign(pause(1), AGENT_KEY, now_ms=NOW, nonce="n" * 32)
    forged = sign(pause(2), STRANGER_KEY, now_ms=NOW, nonce="n" * 32)
    publish(rclient, keys, forged)
    publish(rclient, keys, good)
    publish(rclient, keys, good)
    assert bus.poll_once(block_ms=20) == 3
    assert applied(rclient, keys) == 1 and handler.calls == 1
    codes = [r.split("(")[1].split(")")[0] for r in refusals(rclient, keys)]
    assert codes == ["bad_signature", "replayed"]


def test_an_entry_left_pending_after_its_batch_was_gated_applies_on_redelivery(setup, rclient, keys):
    bus, handler, _ = setup
    envs = [sign(pause(10 + i), AGENT_KEY, now_ms=NOW) for i in range(3)]
    for env in envs:
        publish(rclient, keys, env)
    handler.fail_on = {envs[1].id}  # the middle one fails before its commit: it stays pending
    assert bus.poll_once(block_ms=20) == 3
    assert applied(rclient, keys) == 2
    handler.fail_on = set()
    assert bus.drain_own_pending() == 1  # its nonce was claimed with the batch, in its own name
    assert applied(rclient, keys) == 3 and refusals(rclient, keys) == []
    assert rclient.xpending(keys.agent_commands(AGENT, "risk"), "g:risk")["pending"] == 0
