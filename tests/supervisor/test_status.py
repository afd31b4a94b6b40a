"""`treasury status` and `treasury watch` against a real Redis: exact figures, the drawing, the
JSON, failures, paging at scale, and that no API key ever shows."""

from __future__ import annotations

import argparse
import io
import json

import msgspec
import pytest
from rich.console import Console

from actors.bootstrap import open_treasury
from messages.codec import FIELD, decode
from messages.envelope import seeded_ids, wrap
from messages.money import parse_usd
from messages.schema import BetRefused, BetSettled, RiskStateChanged
from runtime.atomic import AtomicSteps
from runtime.clock import ManualClock
from supervisor.deployment import record_deployment
from supervisor.status import collect_status, escrows_key, positions_key
from supervisor.status_json import with_units
from supervisor.status_view import add_status_arguments, render_status, status_main
from supervisor.watch import add_watch_arguments, watch_main

pytestmark = pytest.mark.redis

NOW = 1_767_258_000_000  # 2026-01-01T09:00:00Z
API_KEY = "sk_live_DO_NOT_SHOW_4f9a1c"
USD = parse_usd


def commit_events(steps, agent, bodies, cause, now_ms, ids, risk=None):
    """Journal `bodies` (each caused by `cause`) and apply optional risk-hash fields, in one step."""
    keys = steps.keys
    commit = steps.new_commit(agent)
    for fld, value in (risk or {}).items():
        commit.hset(keys.risk(agent), fld, value)
    envs = [wrap(b, agent=agent, now_ms=now_ms, new_id=ids, cause=cause) for b in bodies]
    for env in envs:
        commit.emit(keys.events(agent), env)
    steps.commit(commit, envs[0].id, now_ms)
    return envs


@pytest.fixture
def deployment(rclient, keys):
    """alice: drifted buckets, a reservation, a pause, escrows and positions; bob: fresh and ACTIVE."""
    steps = AtomicSteps(rclient, keys)
    record_deployment(rclient, keys, {}, "paper")
    ids = seeded_ids(11)
    buckets = {"reserve": USD(300), "trading": USD(350), "casino": USD(250), "referral": USD(100)}
    open_treasury(steps, "alice", USD(1000), now_ms=NOW - 60_000, new_id=ids, buckets=buckets)
    open_treasury(steps, "bob", USD(500), now_ms=NOW - 60_000, new_id=ids)
    rclient.sadd(keys.agents(), "alice", "bob")
    rclient.hset(keys.credentials("alice"), mapping={"casino_key": API_KEY, "wallet_id": "w-1"})

    assert steps.reserve("alice", "bet-1", "casino", USD(2), USD(5), NOW - 3_000).granted
    cause_env = decode(rclient.xrange(keys.events("alice"))[0][1][FIELD])
    commit_events(steps, "alice", [
        BetSettled(bet_id="b1", game="coin_flip", stake=USD(1), payout=USD("1.98"), pnl=USD("0.98"), won=True,
                   roll="heads", bucket_after=USD(250)),
        BetRefused(code="over_cap", reason="stake above the 2 % cap"),
    ], cause_env, NOW - 20_000, ids)
    commit_events(steps, "alice", [
        RiskStateChanged(state="PAUSED", previous="ACTIVE", breaker="casino_session",
                         reason="casino session lost 25 %", total=USD(1000), peak=USD(1000), day_start=USD(1000),
                         until_ms=NOW + 3_600_000),
    ], cause_env, NOW - 10_000, ids, risk={"state": "PAUSED", "breaker": "casino_session",
                                           "reason": "casino session lost 25 %", "until_ms": NOW + 3_600_000,
                                           "halt:trading": "drawdown 12 % beyond 10 %"})

    rclient.hset(escrows_key(keys, "alice"), mapping={
        "esc-1": json.dumps({"amount": USD(40), "counterparty": "agent-x", "deadline_ms": NOW + 86_400_000,
                             "api_key": API_KEY}),
        "esc-2": msgspec.msgpack.encode({"amount": USD(10), "status": "disputed"}),
    })
    rclient.hset(positions_key(keys, "alice"), "pos-1",
                 json.dumps({"coin": "ETH", "side": "long", "margin": USD(50), "leverage": 3}))

    prefix = keys.prefix
    rclient.hset(f"{prefix}:workers", mapping={
        "casino-h-1": json.dumps({"pid": 4242, "role": "casino", "shards": [0, 3, 4], "consumer": "casino-h-1",
                                  "heartbeat_ms": NOW - 800, "processed": 17, "dead_lettered": 1}),
        "risk-h-2": json.dumps({"pid": 4243, "role": "risk", "shards": [0, 3, 4], "consumer": "risk-h-2",
                                "heartbeat_ms": NOW - 12_000, "processed": 9, "dead_lettered": 0}),
    })
    dead_shard = keys.shard("alice")
    rclient.xadd(keys.dead(dead_shard), {"stream": keys.commands(dead_shard, "casino"), "entry_id": "1-0",
                                         "role": "casino", "error": "invalid message: bad game", "deliveries": 1,
                                         "at_ms": NOW - 5_000, "raw": b"\x81", "agent": "alice", "msg_id": "m1"})
    stream = keys.commands(0, "casino")
    for i in range(3):
        rclient.xadd(stream, {FIELD: f"x{i}"})
    rclient.xgroup_create(stream, "g:casino", id="0")
    rclient.xreadgroup("g:casino", "c1", {stream: ">"}, count=1)
    return {"dead_shard": dead_shard}


def by_agent(status):
    return {a["agent"]: a for a in status["agents"]}


def cli_args(redis_url, keys, **kw):
    base = dict(redis_url=redis_url, data_dir=None, prefix=keys.prefix, shard_count=keys.shards, agent=None,
                json=False, limit=50, offset=0, events=10, stale_ms=5000, interval=0.01, iterations=None,
                no_probe=True)
    base.update(kw)
    return argparse.Namespace(**base)


# ---------------------------------------------------------------- the figures


def test_agent_figures_are_exact(rclient, keys, deployment):
    status = collect_status(rclient, keys, now_ms=NOW)
    assert status["agents_total"] == 2 and status["agents_source"] == "set"
    alice = by_agent(status)["alice"]
    rows = {b["bucket"]: b for b in alice["buckets"]}
    assert alice["total"] == USD(1000)
    assert rows["casino"] == {"bucket": "casino", "available": USD(248), "reserved": USD(2),
                              "held": {"reserved": USD(2)}, "total": USD(250), "target_bp": 1500, "actual_bp": 2500,
                              "drift_bp": 1000, "drifted": True}
    reserve = rows["reserve"]
    assert (reserve["actual_bp"], reserve["drift_bp"], reserve["drifted"]) == (3000, -1000, True)
    assert (rows["trading"]["drift_bp"], rows["trading"]["drifted"]) == (0, False)
    assert alice["max_drift_bp"] == 1000 and alice["drifted"]

    risk = alice["risk"]
    assert (risk["state"], risk["effective"], risk["breaker"]) == ("PAUSED", "PAUSED", "casino_session")
    assert risk["until_ms"] == NOW + 3_600_000
    assert (risk["peak"], risk["day_start"]) == (USD(1000), USD(1000))
    assert risk["halted_buckets"] == {"trading": "drawdown 12 % beyond 10 %"}

    resv = alice["reservations"]
    assert (resv["count"], resv["amount"]) == (1, USD(2))
    assert resv["items"][0] == {"msg_id": "bet-1", "bucket": "casino", "amount": USD(2), "seq": 1,
                                     "at_ms": NOW - 3_000, "age_ms": 3_000}
    assert alice["escrows"]["count"] == 2 and alice["escrows"]["amount"] == USD(50)
    assert alice["positions"]["margin"] == USD(50)
    esc = {e["id"]: e for e in alice["escrows"]["items"]}
    assert esc["esc-1"]["api_key"] == "***" and esc["esc-2"]["status"] == "disputed"
    assert alice["positions"]["items"] == [{"id": "pos-1", "coin": "ETH", "side": "long", "margin": USD(50),
                                            "leverage": 3}]

    events = alice["journal"]["events"]
    assert alice["journal"]["length"] == 4
    assert [e["type"] for e in events] == ["CapitalAllocated", "BetSettled", "BetRefused", "RiskStateChanged"]
    assert events[0]["causation"] is None and events[1]["causation"] == events[0]["msg_id"]
    assert events[3]["summary"] == "ACTIVE → PAUSED by casino_session: casino session lost 25 %"
    assert "allocated $1,000.00" in events[0]["summary"]

    bob = by_agent(status)["bob"]
    assert [b["total"] for b in bob["buckets"]] == [USD(200), USD(175), USD(75), USD(50)]
    assert bob["max_drift_bp"] == 0 and bob["risk"]["state"] == "ACTIVE"
    assert bob["escrows"] == {"count": 0, "amount": 0, "items": []}
    assert bob["positions"] == {"count": 0, "margin": 0, "items": []}


def test_deployment_figures(rclient, keys, deployment):
    dep = collect_status(rclient, keys, now_ms=NOW)["deployment"]
    workers = {w["consumer"]: w for w in dep["workers"]}
    assert workers["casino-h-1"] == {"consumer": "casino-h-1", "pid": 4242, "role": "casino", "shards": [0, 3, 4],
                                          "heartbeat_ms": NOW - 800, "age_ms": 800, "processed": 17,
                                          "dead_lettered": 1, "stale": False}
    assert workers["risk-h-2"]["age_ms"] == 12_000 and workers["risk-h-2"]["stale"] is True
    assert [(d["shard"], d["length"]) for d in dep["dead"]] == [(deployment["dead_shard"], 1)]
    assert dep["dead"][0]["last"]["error"] == "invalid message: bad game"
    casino = dep["backlog"]["casino"]
    assert (casino["streams"], casino["entries"], casino["pending"], casino["lag"]) == (1, 3, 1, 2)
    assert "risk" not in dep["backlog"]


def test_pause_past_its_deadline_is_effectively_active(rclient, keys, deployment):
    later = NOW + 3_600_000
    alice = by_agent(collect_status(rclient, keys, agents=["alice"], now_ms=later))["alice"]
    assert (alice["risk"]["state"], alice["risk"]["effective"]) == ("PAUSED", "ACTIVE")


def test_agents_found_by_scan_without_the_set(rclient, keys, deployment):
    rclient.delete(keys.agents())
    status = collect_status(rclient, keys, now_ms=NOW)
    assert status["agents_source"] == "scan"
    assert [a["agent"] for a in status["agents"]] == ["alice", "bob"]
    assert status["warnings"] == []


def test_unknown_agent_is_shown_as_unknown(rclient, keys, deployment):
    ghost = collect_status(rclient, keys, agents=["ghost"], now_ms=NOW)["agents"][0]
    assert ghost["known"] is False and ghost["risk"]["effective"] == "UNKNOWN" and ghost["total"] == 0


def test_odd_data_does_not_break_the_snapshot(rclient, keys, deployment):
    """A broken heartbeat, an undecodable entry and an event type from a newer worker are shown, not fatal."""
    rclient.hset(f"{keys.prefix}:workers", "broken", "{not json")
    rclient.xadd(keys.events("bob"), {FIELD: b"\xc1garbage"})
    future = {"id": "m-new", "agent": "bob", "created_ms": NOW, "causation": None, "correlation": "m-new",
              "body": {"type": "EscrowOpened", "escrow_id": "e9", "amount": 5_000_000, "api_key": API_KEY}}
    rclient.xadd(keys.events("bob"), {FIELD: msgspec.msgpack.encode(future)})
    status = collect_status(rclient, keys, now_ms=NOW)
    broken = next(w for w in status["deployment"]["workers"] if w["consumer"] == "broken")
    assert broken["stale"] is True and broken["error"] == "unreadable heartbeat"
    events = by_agent(status)["bob"]["journal"]["events"]
    assert events[-2]["type"] == "?" and events[-2]["summary"].startswith("undecodable entry")
    assert (events[-1]["type"], events[-1]["summary"]) == ("EscrowOpened", "escrow_id=e9, amount=$5.00")
    assert API_KEY not in json.dumps(status)


def test_wrong_shard_count_is_warned_about(rclient, keys, deployment):
    rclient.delete(keys.agents())
    wrong = type(keys)(prefix=keys.prefix, shards=7)
    status = collect_status(rclient, wrong, now_ms=NOW)
    assert any("is --shard-count right?" in w for w in status["warnings"])


# ---------------------------------------------------------------- drawing


def test_render_shows_the_key_facts(rclient, keys, deployment):
    status = collect_status(rclient, keys, agents=["alice"], now_ms=NOW)
    console = Console(record=True, width=120)
    render_status(status, console)
    text = console.export_text()
    for expected in ("agent alice", "PAUSED", "casino_session", "casino session lost 25 %", "2026-01-01 10:00:00Z",
                     "$248.00", "25.00 %", "+10.00 %", "trading halted", "esc-1", "disputed", "pos-1",
                     "RiskStateChanged", "BetSettled", "casino-h-1", "4242", "STALE", "invalid message: bad game",
                     "0–3 (4)"):
        assert expected in text, expected
    assert API_KEY not in text


def test_many_agents_get_one_row_each(rclient, keys, deployment):
    steps = AtomicSteps(rclient, keys)
    for n in range(4):
        open_treasury(steps, f"extra-{n}", USD(100), now_ms=NOW, new_id=seeded_ids(50 + n))
    status = collect_status(rclient, keys, agents=["alice", "bob"] + [f"extra-{n}" for n in range(4)], now_ms=NOW,
                            limit=5)
    assert status["page"] == {"offset": 0, "limit": 5, "count": 5} and status["agents_total"] == 6
    console = Console(record=True, width=160)
    render_status(status, console)
    text = console.export_text()
    assert "extra-2" in text and "extra-3" not in text and "agents 1–5 of 6" in text
    assert "buckets —" not in text


# ---------------------------------------------------------------- scale


class RoundTrips:
    """A client proxy counting round trips: each direct command, and each pipeline execute."""

    def __init__(self, client):
        self.client, self.count = client, 0

    def pipeline(self, *a, **kw):
        pipe = self.client.pipeline(*a, **kw)
        outer = self

        class Counted:
            def __getattr__(self, name):
                return getattr(pipe, name)

            def execute(self, *a, **kw):
                outer.count += 1
                return pipe.execute(*a, **kw)

        return Counted()

    def __getattr__(self, name):
        attr = getattr(self.client, name)
        if not callable(attr):
            return attr

        def call(*a, **kw):
            self.count += 1
            return attr(*a, **kw)

        return call


def test_round_trips_do_not_grow_with_the_agents(rclient, keys):
    names = [f"a{n:05d}" for n in range(1200)]
    pipe = rclient.pipeline(transaction=False)
    for name in names:
        pipe.hset(keys.ledger(name), mapping={"reserve": 400, "trading": 350, "casino": 150, "referral": 100})
        pipe.hset(keys.risk(name), mapping={"state": "ACTIVE", "peak": 1000})
    pipe.sadd(keys.agents(), *names)
    pipe.execute()
    counted = RoundTrips(rclient)
    status = collect_status(counted, keys, now_ms=NOW, journal_tail=1)
    assert len(status["agents"]) == 1200 and all(a["total"] == 1000 for a in status["agents"])
    assert counted.count <= 8, counted.count
    page = collect_status(rclient, keys, now_ms=NOW, limit=100, offset=1150)
    assert [a["agent"] for a in page["agents"]][0] == "a01150" and page["page"]["count"] == 50


# ---------------------------------------------------------------- command line


def test_json_output_is_the_snapshot(redis_url, keys, rclient, deployment, capsys):
    code = status_main(cli_args(redis_url, keys, json=True), clock=ManualClock(NOW))
    out, err = capsys.readouterr()
    assert code == 0 and err == ""
    status = collect_status(rclient, keys, now_ms=NOW, limit=50)
    assert json.loads(out) == with_units(status)
    alice = next(a for a in json.loads(out)["agents"] if a["agent"] == "alice")
    assert alice["total_micros"] == status["agents"][0]["total"] == USD(1000)
    assert {b["bucket"]: b["available_micros"] for b in alice["buckets"]}["reserve"] == USD(300)
    assert alice["risk"]["day_utc"] and "day" not in alice["risk"] and "total" not in alice
    worker = json.loads(out)["deployment"]["workers"][0]
    assert worker["shards"] == {"first": 0, "last": 3, "count": 4}
    assert json.loads(out)["shard_count"] == keys.shards
    assert len(out.strip().splitlines()) == 1
    assert API_KEY not in out


def test_rich_output_never_shows_the_api_key(redis_url, keys, deployment, capsys):
    assert status_main(cli_args(redis_url, keys, agent=["alice"]), clock=ManualClock(NOW)) == 0
    out, _ = capsys.readouterr()
    assert "alice" in out and API_KEY not in out


@pytest.mark.parametrize("main", [status_main, watch_main])
def test_unreachable_redis_is_one_line_and_exit_2(keys, capsys, main):
    args = cli_args("redis://:hunter2@127.0.0.1:1/0", keys, iterations=1)
    assert main(args) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.strip().splitlines()) == 1 and "cannot reach Redis at redis://:***@127.0.0.1:1/0" in err
    assert "hunter2" not in err and "Traceback" not in err


def test_watch_refreshes_then_stops(redis_url, keys, deployment):
    sleeps = []
    console = Console(record=True, width=120, file=io.StringIO())
    args = cli_args(redis_url, keys, agent=["alice"], iterations=2, interval=0.5)
    assert watch_main(args, clock=ManualClock(NOW), console=console, sleep=sleeps.append) == 0
    assert sleeps == [0.5]
    text = console.export_text()
    assert "agent alice" in text and API_KEY not in text


def test_watch_json_prints_one_object_per_refresh(redis_url, keys, deployment, capsys):
    args = cli_args(redis_url, keys, json=True, iterations=2)
    assert watch_main(args, clock=ManualClock(NOW), sleep=lambda s: None) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and all(json.loads(line)["now_ms"] == NOW for line in lines)


def test_watch_stops_cleanly_on_ctrl_c(redis_url, keys, deployment):
    def interrupt(_):
        raise KeyboardInterrupt

    console = Console(record=True, width=120, file=io.StringIO())
    assert watch_main(cli_args(redis_url, keys), clock=ManualClock(NOW), console=console, sleep=interrupt) == 0


def test_argument_helpers(monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://example:6380/2")
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    add_status_arguments(sub.add_parser("status"))
    add_watch_arguments(sub.add_parser("watch"))
    s = parser.parse_args(["status", "--agent", "a", "--agent", "b", "--json"])
    assert (s.redis_url, s.prefix, s.shard_count) == (None, "tr", None)  # resolved when run (find_redis_url)
    assert (s.agent, s.json, s.limit, s.offset) == (["a", "b"], True, 50, 0)
    w = parser.parse_args(["watch", "--interval", "0.5", "--iterations", "2"])
    assert (w.interval, w.iterations, w.agent, w.json) == (0.5, 2, None, False)
    monkeypatch.delenv("REDIS_URL")
    parser = argparse.ArgumentParser()
    add_status_arguments(parser)
    assert parser.parse_args(["--data-dir", "d"]).data_dir == "d"


def test_status_shows_pnl_and_the_distance_to_each_breaker_from_riskguards_figures():
    from supervisor.status import performance_rows, risk_status
    from supervisor.status_view import performance_text

    raw = {"state": "ACTIVE", "total": str(USD("1106.476")), "peak": str(USD("1204")),
           "day_start": str(USD("1137.17")), "trading_peak": str(USD("350")), "trading_value": str(USD("315")),
           "pnl_today": str(-USD("30.694")), "pnl_start": str(USD("106.476")), "unrealized": str(-USD("12")),
           "day_unrealized": str(-USD("2")), "limit_daily_loss_bp": "500", "limit_drawdown_bp": "2000",
           "limit_trading_drawdown_bp": "2000", "fired:daily_loss": "1767311400000|PAUSED"}
    perf = performance_rows(raw)
    assert perf["pnl_today_unrealized_micros"] == -USD("10")
    assert perf["pnl_today_realized_micros"] == -USD("20.694")
    assert perf["pnl_start_realized_micros"] == USD("118.476")
    text = performance_text(perf)
    assert "daily loss 2.7 % of 5 % from day start $1,137.17" in text
    assert "drawdown 8.1 % of 20 % from peak $1,204.00" in text
    assert "trading drawdown 10.0 % of 20 %" in text
    assert "fired: daily_loss (PAUSED) 2026-01-01 23:50" in text
    assert risk_status(raw, 0)["performance"] == perf


def test_before_riskguards_first_judgement_status_says_so_instead_of_a_full_loss():
    """Right after opening, the risk hash holds only what opening wrote: no loss is shown, and the
    breakers are "not judged yet", never "100 % of 0 %"."""
    from supervisor.status import performance_rows
    from supervisor.status_view import performance_text

    raw = {"state": "ACTIVE", "peak": str(USD("1000")), "day_start": str(USD("1000")),
           "trading_peak": str(USD("350")), "peak_perf": "0", "trading_peak_perf": "0"}
    perf = performance_rows(raw)
    assert perf["judged"] is False
    assert [b["used_bp"] for b in perf["breakers"]] == [0, 0, 0]
    text = performance_text(perf)
    assert "not judged yet" in text and "100.0 %" not in text


def test_a_new_agent_shows_its_limits_and_no_loss_before_riskguard_has_judged(rclient, keys):
    from actors.bootstrap import open_treasury
    from messages.envelope import seeded_ids
    from runtime.atomic import AtomicSteps
    from supervisor.status import performance_rows

    open_treasury(AtomicSteps(rclient, keys), "fresh", USD("1000"), now_ms=0, new_id=seeded_ids(1))
    raw = {k.decode(): v.decode() for k, v in rclient.hgetall(keys.risk("fresh")).items()}
    perf = performance_rows(raw)
    assert perf["judged"] is False
    assert [(b["used_bp"], b["limit_bp"]) for b in perf["breakers"]] == [(0, 500), (0, 2000), (0, 2000)]


@pytest.mark.parametrize("breaker, words", [
    ("key local-agent", "risk HALTED  set by key local-agent  — check"),  # a command, not a breaker
    ("operator", "risk HALTED  set by operator  — check"),
    ("treasury_drawdown", "risk HALTED  breaker treasury_drawdown  — check"),
])
def test_the_risk_line_names_a_breaker_only_when_a_breaker_set_it(breaker, words):
    from actors.risk_guard import is_manual
    from supervisor.status_view import risk_block

    assert is_manual(breaker) == (breaker != "treasury_drawdown")  # the same rule as RiskGuard's
    risk = {"state": "HALTED", "effective": "HALTED", "breaker": breaker, "reason": "check", "until_ms": 0,
            "peak": 0, "day_start": 0, "fence_seq": 0, "halted_buckets": {}}
    assert risk_block(risk).plain.splitlines()[0] == words
