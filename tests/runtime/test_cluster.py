"""The treasury on a real Redis Cluster: three masters on loopback, started here from the system
redis-server (skipped when it cannot be started), bets through gate -> bus -> casino actor with
two consumers sharing the shards by lease, one of them dying with entries in hand; every bet is
settled exactly once. And every Lua script call site keeps its keys in one slot."""

from __future__ import annotations

import ast
import pathlib
from collections import defaultdict

import pytest

from actors.bootstrap import open_treasury
from actors.casino import CasinoBucket
from actors.ledger import read_ledger
from messages.codec import FIELD, decode, encode
from messages.envelope import seeded_ids, wrap
from messages.money import parse_usd
from messages.schema import BetSettled, Multiplier, PlaceBet
from runtime.atomic import AtomicSteps
from runtime.bus import StreamBus, command_client
from runtime.clock import ManualClock
from runtime.command_gate import CommandGate
from runtime.keyring import Keyring, generate_key
from runtime.keys import Keys
from runtime.leases import ShardLeases
from runtime.nonces import RedisNonceStore
from runtime.redis_client import is_cluster, is_cluster_url, make_client, plain_url, slot_of
from runtime.signing import sign
from runtime.trim import StreamTrimmer
from tests.kit.casino import ScriptedCasino
from tests.kit.slots import CrossSlotScript

ROOT = pathlib.Path(__file__).resolve().parents[2]
NOW = 1_700_000_000_000
BET = PlaceBet(game=Multiplier(target=2.0), win_prob=0.6, kelly="quarter")


# ---------------------------------------------------------------- one slot per script call


def _script_call_sites() -> list[str]:
    """`path:line` of every register_script / eval / evalsha call in the product code."""
    sites = []
    for folder in ("messages", "venue", "runtime", "sandbox", "actors", "supervisor"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                        and node.func.attr in ("register_script", "eval", "evalsha", "eval_ro", "evalsha_ro"):
                    sites.append(f"{path.relative_to(ROOT)}:{node.func.attr}")
    return sorted(sites)


def test_every_lua_script_is_one_the_slot_guard_and_the_cluster_test_cover():
    # A new script (or a raw EVAL, which the guard does not see) must be added here knowingly:
    # its keys must share one hash tag, and tests/kit/slots.py checks every call of it in every test.
    assert _script_call_sites() == [
        "runtime/atomic.py:register_script",
        "runtime/atomic.py:register_script",
        "runtime/leases.py:register_script",
        "runtime/trim.py:register_script",
    ]


@pytest.mark.redis
def test_the_guard_refuses_a_script_call_across_slots(rclient, prefix):
    script = rclient.register_script("return #KEYS")
    assert script(keys=[f"{prefix}:{{1}}:a", f"{prefix}:{{1}}:b"]) == 2
    with pytest.raises(CrossSlotScript):
        script(keys=[f"{prefix}:{{1}}:a", f"{prefix}:{{2}}:b"])


@pytest.mark.redis
def test_the_keys_of_each_atomic_step_share_one_slot(rclient, prefix):
    keys = Keys(prefix, 16)
    steps = AtomicSteps(rclient, keys)
    agent = "agent-slot"
    open_treasury(steps, agent, parse_usd("100"), now_ms=NOW, new_id=seeded_ids(1))  # commit.lua, checked
    steps.reserve(agent, "m1", "casino", 1_000_000, 10_000_000, NOW)  # reserve.lua, checked
    leases = ShardLeases(rclient, prefix, "casino", 16, "w1")
    assert slot_of(keys.leases("casino")) == slot_of(keys.members("casino"))
    leases.refresh()  # leases.lua, checked
    StreamTrimmer(rclient).trim([keys.commands(s, "casino") for s in range(3)])  # trim.lua, one key a call
    agent_keys = [getattr(keys, name)(agent) for name in ("events", "risk", "ledger", "reservations", "applied",
                                                           "flows", "values", "marks", "session", "policy")]
    assert {slot_of(k) for k in agent_keys + [keys.agent_commands(agent, r) for r in ("casino", "risk")]} \
        == {slot_of(keys.dead(keys.shard(agent)))}


# ---------------------------------------------------------------- URLs


def test_a_cluster_url_names_the_seed_node_and_only_database_0():
    assert is_cluster_url("redis+cluster://127.0.0.1:7000")
    assert not is_cluster_url("redis://127.0.0.1:6379/15")
    assert plain_url("redis+cluster://h:7000/0") == "redis://h:7000"
    assert plain_url("rediss+cluster://h:7000") == "rediss://h:7000"
    assert not is_cluster(make_client("redis://127.0.0.1:1/0"))  # plain: nothing connects yet
    from messages.errors import ConfigError

    with pytest.raises(ConfigError):
        plain_url("redis+cluster://h:7000/3")


# ---------------------------------------------------------------- a real cluster


@pytest.fixture(scope="module")
def cluster_url():
    from supervisor.embedded_cluster import LocalCluster

    try:
        cluster = LocalCluster(3)
        url = cluster.start()
    except Exception as exc:  # noqa: BLE001 - no redis-server / redis-cli / ports: nothing to test on
        pytest.skip(f"cannot start a Redis Cluster here: {exc}")
    yield url
    cluster.stop()


@pytest.mark.redis
def test_bets_through_two_workers_on_a_cluster_settle_exactly_once(cluster_url):
    client = command_client(cluster_url)
    assert is_cluster(client) and len(client.get_primaries()) == 3
    keys = Keys("cl", 8)
    owners = {client.get_node_from_key(keys.commands(s, "casino")).name for s in range(keys.shards)}
    assert len(owners) >= 2  # the shards really are spread over nodes
    clock = ManualClock(NOW)
    ids = seeded_ids(12)
    agents = [f"agent-{i}" for i in range(12)]
    steps = AtomicSteps(client, keys)
    for agent in agents:
        open_treasury(steps, agent, parse_usd("1000"), now_ms=NOW, new_id=ids)
    start = {agent: read_ledger(client, keys, agent).available["casino"] for agent in agents}
    signer = generate_key("cluster-test", "operator")
    venues: dict[str, ScriptedCasino] = defaultdict(ScriptedCasino)
    for i, agent in enumerate(agents):
        venues[agent].script = [("win", 2) if (i + n) % 2 else ("lose",) for n in range(6)]

    def worker(name: str) -> tuple[StreamBus, ShardLeases]:
        own = command_client(cluster_url)
        actor = CasinoBucket.start(AtomicSteps(own, keys), clock, seeded_ids(len(stops) + 20),
                                   lambda agent: venues[agent])
        gate = CommandGate(Keyring([signer]), RedisNonceStore(own, keys.prefix, shards=keys.shards), clock)
        bus = StreamBus(cluster_url, keys, "casino", [], lambda d: actor.ask(d), consumer=name, gate=gate,
                        block_ms=20, clients=(own, make_client(cluster_url)))
        stops.append(actor.stop)
        return bus, ShardLeases(own, keys.prefix, "casino", keys.shards, name, lease_ms=60_000)

    stops: list = []
    (a, lease_a), (b, lease_b) = worker("w-a"), worker("w-b")
    for _ in range(3):  # a gives back what is above its fair share once b is a member, b takes it
        lease_a.refresh()
        lease_b.refresh()
    assert lease_a.owned and lease_b.owned and not lease_a.owned & lease_b.owned
    assert lease_a.owned | lease_b.owned == set(range(keys.shards))
    a.request_shards(lease_a.owned)
    b.request_shards(lease_b.owned)
    for bus in (a, b):
        bus._apply_requested_shards()

    sent: dict[str, int] = defaultdict(int)
    for _ in range(6):
        for agent in agents:
            env = sign(wrap(BET, agent=agent, now_ms=NOW, new_id=ids), signer, now_ms=NOW, ttl_ms=300_000)
            client.xadd(keys.agent_commands(agent, "casino"), {FIELD: encode(env)})
            sent[agent] += 1
    total = sum(sent.values())

    # a dies with a batch in hand: two entries read (pending under a), never handled
    victim = next(keys.agent_commands(ag, "casino") for ag in agents if keys.shard(ag) in lease_a.owned)
    taken = make_client(cluster_url).xreadgroup("g:casino", "w-a", {victim: ">"}, count=2)
    assert taken and len(taken[0][1]) == 2
    a.close()
    while b.poll_once(wait=False):
        pass
    assert b.processed == sum(n for ag, n in sent.items() if keys.shard(ag) in lease_b.owned)
    # b takes over a's shards (its lease lapsed), with what a left pending, and serves them
    b.request_shards(range(keys.shards))
    b._apply_requested_shards()
    while b.poll_once(wait=False):
        pass
    b.trim_acknowledged()
    for stop in stops:
        stop()

    assert b.processed == total and b.dead_lettered == 0
    for agent in agents:
        settled = [decode(f[FIELD]).body for _, f in client.xrange(keys.events(agent))]
        settled = [e for e in settled if isinstance(e, BetSettled)]
        venue = venues[agent]
        assert len(settled) == sent[agent] == len(venue.placed)  # each bet placed and settled once
        pnl = sum(r.amount_won - r.amount_bet for r in venue.placed.values())
        assert sum(e.pnl for e in settled) == pnl
        ledger = read_ledger(client, keys, agent)
        assert ledger.available["casino"] == start[agent] + pnl
        assert ledger.held_by("casino", "reserved") == 0
    for s in range(keys.shards):  # every command stream acknowledged and trimmed
        stream = keys.commands(s, "casino")
        assert client.xpending(stream, "g:casino")["pending"] == 0
        assert client.xlen(stream) == 0


@pytest.mark.redis
def test_the_control_listener_hears_every_shard_on_a_cluster(cluster_url):
    import threading

    from messages.schema import RiskControl
    from runtime.control import ControlListener

    keys = Keys("ctl", 8)
    client = command_client(cluster_url)
    heard: list[tuple[str, str]] = []
    done = threading.Event()

    def listener(agent: str, control: RiskControl) -> None:
        heard.append((agent, control.state))
        if len(heard) == 4:
            done.set()

    control = ControlListener(cluster_url, keys, range(keys.shards), listener, block_ms=50)
    control._resolve_positions()  # from here on, every broadcast is heard
    agents = [f"agent-{i}" for i in range(4)]
    stop = threading.Event()
    thread = threading.Thread(target=control.run, args=(stop,), daemon=True)
    thread.start()
    ids = seeded_ids(3)
    for agent in agents:
        env = wrap(RiskControl(state="HALTED", reason="test"), agent=agent, now_ms=NOW, new_id=ids)
        client.xadd(keys.control(keys.shard(agent)), {FIELD: encode(env)})
    done.wait(30)
    stop.set()
    thread.join(5)
    assert len({keys.shard(a) for a in agents}) > 1
    assert sorted(heard) == [(agent, "HALTED") for agent in agents]
