"""Issue case 3, end to end against the sandbox casino: a bet whose answer was lost and whose
look-up cannot run is parked (pending, its stake reserved), more than 200 other bets follow, and
the retry looks it up and settles it — one bet at the venue, one in the ledger, never a second
one, although the bet is no longer on the export's first page."""

from __future__ import annotations

import httpx
import pytest

from actors.bootstrap import open_treasury
from actors.casino import CasinoBucket
from actors.ledger import read_ledger
from messages.codec import FIELD, decode, encode
from messages.envelope import seeded_ids, wrap
from messages.money import parse_usd
from messages.schema import BetSettled, CoinFlip, PlaceBet
from runtime.atomic import AtomicSteps
from runtime.bus import StreamBus, command_client
from runtime.clock import ManualClock
from sandbox import ManualClock as VenueClock
from sandbox import start_sandbox
from venue.client import CasinoClient, SandboxAdmin

pytestmark = pytest.mark.redis

AGENT = "retry-window"
BETS_BETWEEN = 205


class Network(httpx.BaseTransport):
    """The real HTTP transport, with two switches: lose the answer of the next bet carrying a
    given client seed (the venue handled it), and make the bet export unreachable."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.lose_answer_of: str | None = None
        self.export_down = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.export_down and request.url.path.endswith("/bets/export.csv"):
            raise httpx.ConnectError("unreachable")
        response = self.inner.handle_request(request)
        if self.lose_answer_of and request.method == "POST" and self.lose_answer_of.encode() in request.content:
            response.read()
            self.lose_answer_of = None
            raise httpx.ReadTimeout("the answer never came back")
        return response


@pytest.fixture
def world(redis_url, keys, rclient):
    handle = start_sandbox(seed=31, clock=VenueClock())
    network = Network()
    casino = CasinoClient(handle.urls["casino"], transport=network, backoff_s=0.0, max_backoff_s=0.0,
                          sleep=lambda s: None, retries=0, now_ms=handle.ctx.clock.now_ms)
    reg = casino.register()
    SandboxAdmin(handle.root_url).credit(reg.agent_id, 10_000_000_000)
    steps = AtomicSteps(command_client(redis_url), keys)
    ids = seeded_ids(9)
    open_treasury(steps, AGENT, parse_usd("20000"), now_ms=0, new_id=ids)
    actor = CasinoBucket.start(steps, ManualClock(0), ids, lambda agent: casino)
    bus = StreamBus(redis_url, keys, "casino", [keys.shard(AGENT)], lambda d: actor.ask(d), block_ms=20,
                    max_deliveries=3, retry_backoff_ms=1)
    bus.ensure_groups()

    def send(body):
        env = wrap(body, agent=AGENT, now_ms=0, new_id=ids)
        rclient.xadd(keys.agent_commands(AGENT, "casino"), {FIELD: encode(env)})
        while bus.poll_once(wait=False):
            pass
        return env

    def settled():
        return [decode(f[FIELD]).body for _, f in rclient.xrange(keys.events(AGENT))
                if isinstance(decode(f[FIELD]).body, BetSettled)]

    yield handle, network, send, settled, bus, steps
    actor.stop()
    casino.close()
    handle.stop()


def test_a_retry_after_more_than_200_bets_finds_the_bet_and_never_bets_twice(world, keys, rclient):
    handle, network, send, settled, bus, steps = world
    bet = PlaceBet(game=CoinFlip(), win_prob=0.5, kelly="full", fixed_stake=parse_usd("1"))
    store = handle.ctx.store

    # the bet lands at the venue, its answer is lost, and the look-up cannot reach the export
    network.export_down = True
    network.lose_answer_of = "m"  # every envelope id of seeded_ids starts with "m": the first bet sent
    lost = send(bet)
    for _ in range(5):  # the worker's retries while the export stays down: the bet is parked
        bus.drain_own_pending()
    stream = keys.agent_commands(AGENT, "casino")
    assert rclient.xlen(keys.dead(keys.shard(AGENT))) == 0, "a spend with its money in limbo is never dead-lettered"
    assert rclient.xpending(stream, bus.group)["pending"] == 1
    assert store.scalar("SELECT COUNT(*) FROM casino_bets WHERE client_seed = ?", (lost.id,)) == 1
    assert settled() == []
    assert read_ledger(steps.client, steps.keys, AGENT).held_by("casino", "reserved") == parse_usd("1")

    # the venue is reachable again; more than 200 bets go through (the history page holds 200)
    network.export_down = False
    for _ in range(BETS_BETWEEN):
        handle.ctx.clock.advance(1_000)
        send(bet)
    assert len(settled()) == BETS_BETWEEN

    # the parked bet is tried again (the worker's park timer): the look-up pages the export back to
    # the bet's time, finds it, settles it — and never places it again
    bus.drain_own_pending()
    assert rclient.xpending(stream, bus.group)["pending"] == 0
    assert store.scalar("SELECT COUNT(*) FROM casino_bets WHERE client_seed = ?", (lost.id,)) == 1
    assert store.scalar("SELECT COUNT(*) FROM casino_bets") == BETS_BETWEEN + 1
    assert len(settled()) == BETS_BETWEEN + 1
    assert read_ledger(steps.client, steps.keys, AGENT).held_by("casino", "reserved") == 0
