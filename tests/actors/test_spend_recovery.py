"""Issue 9, cases 3 and 4: a spend the treasury cannot prove it never sent is looked up at the
venue before it is placed; a spend whose outcome stays unknown is parked with its funds reserved
(never dead-lettered by a count before its look-up ran), resolved by itself once the venue answers,
alerted past a deadline; and a command verified once stays verified on redelivery."""

from __future__ import annotations

import json

import pytest
import redis

from actors.bootstrap import open_treasury
from actors.casino import CasinoBucket
from actors.ledger import read_ledger
from messages.codec import FIELD, decode, encode
from messages.envelope import seeded_ids, wrap
from messages.money import parse_usd
from messages.schema import BetRejected, BetSettled, CommandRefused, Multiplier, PlaceBet, SetRisk
from runtime.atomic import AtomicSteps, reserved_at, reserved_at_many
from runtime.bus import StreamBus, command_client
from runtime.clock import ManualClock
from runtime.command_gate import CommandGate
from runtime.keyring import Keyring, generate_key
from runtime.keys import Keys
from runtime.nonces import RedisNonceStore
from runtime.signing import sign
from supervisor.status import collect_deployment
from tests.kit.casino import ScriptedCasino

pytestmark = pytest.mark.redis

AGENT = "recovering"
KEY = generate_key("rec-agent", "agent")
BET = PlaceBet(game=Multiplier(target=100.0), win_prob=0.05, kelly="full")  # a $3 stake on $150


class Rig:
    """CasinoBucket behind a real bus (and, with `gated`, the command gate) on `url`."""

    def __init__(self, url: str, keys: Keys, *, gated: bool = False, clock: ManualClock | None = None):
        self.client = redis.Redis.from_url(url)
        self.keys = keys
        self.clock = clock or ManualClock(1_000_000)
        self.steps = AtomicSteps(command_client(url), keys)
        self.ids = seeded_ids(9)
        open_treasury(self.steps, AGENT, parse_usd("1000"), now_ms=self.clock.now_ms(), new_id=self.ids)
        self.venue = ScriptedCasino()
        self.actor = CasinoBucket.start(self.steps, self.clock, self.ids, lambda agent: self.venue)
        gate = None
        if gated:
            gate = CommandGate(Keyring([KEY]), RedisNonceStore(self.client, keys.prefix, shards=keys.shards),
                               self.clock, accepted_at=lambda env: reserved_at(self.client, keys, env.agent, env.id),
                               accepted_at_many=lambda envs: reserved_at_many(self.client, keys, envs))
        self.bus = StreamBus(url, keys, "casino", [keys.shard(AGENT)], lambda d: self.actor.ask(d), block_ms=20,
                             max_deliveries=5, retry_backoff_ms=1, clock=self.clock, gate=gate)
        self.bus.ensure_groups()

    def send(self, body, *, signed_ttl_ms: int | None = None):
        env = wrap(body, agent=AGENT, now_ms=self.clock.now_ms(), new_id=self.ids)
        if signed_ttl_ms is not None:
            env = sign(env, KEY, now_ms=self.clock.now_ms(), ttl_ms=signed_ttl_ms)
        role = "risk" if isinstance(body, SetRisk) else "casino"
        self.client.xadd(self.keys.agent_commands(AGENT, role), {FIELD: encode(env)})
        if role == "casino":
            while self.bus.poll_once(wait=False):
                pass
        return env

    def events(self, kind):
        return [b for b in (decode(f[FIELD]).body for _, f in self.client.xrange(self.keys.events(AGENT)))
                if isinstance(b, kind)]

    def reserved(self) -> int:
        return read_ledger(self.client, self.keys, AGENT).held_by("casino", "reserved")

    def dead(self) -> int:
        return self.client.xlen(self.keys.dead(self.keys.shard(AGENT)))

    def parked(self) -> dict:
        raw = self.client.hgetall(self.keys.parked(self.keys.shard(AGENT), "casino"))
        return {k.decode(): json.loads(v) for k, v in raw.items()}

    def stop(self):
        self.actor.stop()


@pytest.fixture
def rig(redis_url, keys):
    r = Rig(redis_url, keys)
    yield r
    r.stop()


def test_an_unknown_outcome_is_parked_not_dead_lettered_and_resolves_when_the_venue_answers(rig):
    rig.venue.script = [("lost",)]
    env = rig.send(BET)  # the venue took it, the answer was lost
    rig.venue.down = True  # and now the venue cannot even be asked
    rig.bus.park_alert_ms = 0  # alert at once when parked (the deadline is 10 min by default)
    for _ in range(8):  # far past max_deliveries (5)
        rig.bus.drain_own_pending()
    assert rig.dead() == 0 and rig.events(CommandRefused) == []  # never dead-lettered with money in flight
    assert rig.reserved() == parse_usd("3")
    [parked] = rig.parked().values()
    assert parked["msg_id"] == env.id and "unreachable" in parked["error"] and parked["alerted"]
    alerts = [json.loads(f[b"alert"]) for _, f in rig.client.xrange(rig.keys.alerts())]
    assert len(alerts) == 1 and env.id in alerts[0]["reason"] and "reserved" in alerts[0]["reason"]
    [shown] = collect_deployment(rig.client, rig.keys, now_ms=rig.clock.now_ms())["parked"]  # treasury status
    assert (shown["msg_id"], shown["role"], shown["alerted"]) == (env.id, "casino", True)

    rig.venue.down = False  # the venue answers again: the next retry looks it up and books it
    rig.bus.drain_own_pending()
    [settled] = rig.events(BetSettled)
    assert rig.venue.calls == 1 and settled.pnl == -parse_usd("3")
    assert rig.reserved() == 0 and rig.parked() == {} and rig.dead() == 0
    assert len(rig.events(BetSettled)) + len(rig.events(BetRejected)) + len(rig.events(CommandRefused)) == 1


def test_many_deliveries_without_an_attempt_do_not_dead_letter_a_spend_before_its_look_up(rig):
    rig.venue.script = [("lost",)]
    rig.send(BET)
    stream = rig.keys.agent_commands(AGENT, "casino")
    for _ in range(6):  # six workers died holding it before their handler ran
        rig.client.xreadgroup("g:casino", rig.bus.consumer, {stream: "0"})
    rig.bus.drain_own_pending()  # delivered 8 times now: the look-up runs, and finds the bet
    assert rig.dead() == 0 and rig.venue.calls == 1
    assert len(rig.events(BetSettled)) == 1 and rig.reserved() == 0


def test_a_redelivered_bet_reserved_before_a_pause_and_never_placed_is_released(rig):
    rig.venue.script = [("lost",)]
    rig.send(BET)
    rig.venue.placed.clear()  # the venue did not take it after all (the connection died first)
    rig.client.hset(rig.keys.risk(AGENT), mapping={"state": "PAUSED", "until_ms": 0, "reason": "operator"})
    rig.bus.drain_own_pending()
    [failed] = rig.events(BetRejected)
    assert failed.code == "paused" and "since it was reserved" in failed.reason
    assert rig.venue.calls == 1 and rig.reserved() == 0


def test_a_spend_verified_once_stays_verified_after_its_signature_expires(redis_url, keys):
    rig = Rig(redis_url, keys, gated=True)
    try:
        rig.venue.script = [("lost",)]
        env = rig.send(BET, signed_ttl_ms=60_000)  # taken by the venue; the answer lost
        rig.clock.advance(70_000)  # a 70 s outage: the signature has expired since
        rig.bus.drain_own_pending()
        assert rig.dead() == 0 and rig.events(CommandRefused) == []
        [settled] = rig.events(BetSettled)
        assert rig.venue.calls == 1 and rig.reserved() == 0
        # a command never accepted before is still judged now: expired means refused
        late = sign(wrap(BET, agent=AGENT, now_ms=rig.clock.now_ms() - 120_000, new_id=rig.ids), KEY,
                    now_ms=rig.clock.now_ms() - 120_000, ttl_ms=60_000)
        rig.client.xadd(keys.agent_commands(AGENT, "casino"), {FIELD: encode(late)})
        while rig.bus.poll_once(wait=False):
            pass
        [rejected] = rig.events(CommandRefused)
        assert "expired" in rejected.reason and env.id != late.id
    finally:
        rig.stop()


def test_on_a_redis_that_may_lose_writes_every_bet_is_looked_up_before_it_is_placed(tmp_path):
    """Case 3: the venue took a bet whose reservation, applied id and acknowledgement were lost with
    the last second of an `everysec` AOF; the command comes back as if new (first delivery)."""
    from supervisor.embedded_redis import EmbeddedRedis

    with EmbeddedRedis(data_dir=tmp_path / "everysec", appendfsync="everysec") as url:
        rig = Rig(url, Keys("lossy", 4))
        try:
            env = wrap(BET, agent=AGENT, now_ms=rig.clock.now_ms(), new_id=seeded_ids(9))
            # what the venue remembers of the attempt Redis forgot
            rig.venue.placed[env.id] = rig.venue._result(env.id, "multiplier", parse_usd("3"), False, 0)
            rig.client.xadd(rig.keys.agent_commands(AGENT, "casino"), {FIELD: encode(env)})
            while rig.bus.poll_once(wait=False):
                pass
            [settled] = rig.events(BetSettled)
            assert rig.venue.calls == 0  # looked up, found, booked: not placed a second time
            assert settled.stake == parse_usd("3") and rig.reserved() == 0
        finally:
            rig.stop()


def test_on_a_redis_that_fsyncs_every_write_a_first_delivery_is_placed_without_a_look_up(tmp_path):
    from supervisor.embedded_redis import EmbeddedRedis

    with EmbeddedRedis(data_dir=tmp_path / "always", appendfsync="always") as url:
        rig = Rig(url, Keys("durable", 4))
        try:
            looked_up = []
            find = rig.venue.lookup_bet
            rig.venue.lookup_bet = lambda seed, *, since_ms: looked_up.append(seed) or find(seed, since_ms=since_ms)
            rig.venue.script = [("lose",)]
            rig.send(BET)
            assert looked_up == [] and rig.venue.calls == 1 and len(rig.events(BetSettled)) == 1
        finally:
            rig.stop()
