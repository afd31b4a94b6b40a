"""The framework: one server, services mounted at their roots, admin routes, persistence, CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading

import httpx
import pytest

from sandbox import SERVICE_FACTORIES, FaultConfig, ManualClock, SystemClock, start_sandbox
from sandbox.clock import iso
from sandbox.runner import SandboxContext, build_services
from sandbox.store import Store
from venue.client import CasinoClient, SandboxAdmin

HTTP = httpx.Client(timeout=10)
"""One pooled client for raw calls (a fresh client per call costs a TLS context)."""


def test_services_are_mounted_at_their_roots(sandbox):
    assert {"casino", "escrow", "faucet"} <= set(sandbox.urls)
    for name, url in sandbox.urls.items():
        assert url == f"{sandbox.root_url}/{name}"
    assert HTTP.get(f"{sandbox.urls['escrow']}/escrow/stats").status_code == 200
    assert HTTP.get(f"{sandbox.urls['faucet']}/faucet/stats").status_code == 200


def test_unknown_routes_answer_json_404(sandbox):
    for url in (f"{sandbox.root_url}/nowhere", f"{sandbox.urls['casino']}/api/v1/nope",
                f"{sandbox.urls['faucet']}/claim", f"{sandbox.urls['casino']}/api/v1/games/roulette"):
        r = HTTP.post(url, json={})
        assert r.status_code == 404, url
        assert r.json()["error"] == "not_found"
    # a wrong method is a 404 too, as on Hono
    assert HTTP.get(f"{sandbox.urls['faucet']}/faucet/claim").json()["error"] == "not_found"


def test_responses_carry_info_field(sandbox):
    body = HTTP.get(f"{sandbox.urls['escrow']}/escrow/stats").json()
    assert body["_info"]["sandbox"] is True


def test_missing_service_modules_are_skipped(tmp_path, monkeypatch):
    monkeypatch.setitem(SERVICE_FACTORIES, "ghost", _lazy_missing())
    store = Store(str(tmp_path / "s.sqlite"))
    ctx = SandboxContext(seed=1, store=store, clock=ManualClock(), faults=FaultConfig())
    try:
        apps = build_services(ctx)
    finally:
        store.close()
    assert "ghost" not in apps and "casino" in apps


def _lazy_missing():
    from sandbox.runner import _lazy

    return _lazy("sandbox.does_not_exist")


def test_a_service_is_added_by_one_registry_line(tmp_path, monkeypatch):
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    def create_app(ctx):
        return Starlette(routes=[Route("/ping", lambda r: JSONResponse({"seed": ctx.seed}))])

    monkeypatch.setitem(SERVICE_FACTORIES, "echo", create_app)
    with start_sandbox(seed=5, state_path=str(tmp_path / "s.sqlite")) as handle:
        assert HTTP.get(handle.urls["echo"] + "/ping").json() == {"seed": 5}


def test_rng_and_ids_are_derived_from_the_seed(tmp_path):
    def ctx_for(seed, name):
        return SandboxContext(seed=seed, store=Store(str(tmp_path / name)), clock=ManualClock(), faults=FaultConfig())

    a, b, c = ctx_for(3, "a"), ctx_for(3, "b"), ctx_for(4, "c")
    assert a.rng_for("x").random() == b.rng_for("x").random() != c.rng_for("x").random()
    assert a.rng_for("x") is a.rng_for("x")
    assert a.new_id("agent", 6) == b.new_id("agent", 6) != c.new_id("agent", 6)
    assert a.new_id("agent", 6) != a.new_id("agent", 6)  # counters move on
    for ctx in (a, b, c):
        ctx.store.close()


def test_same_seed_gives_same_ids_and_rolls(sandbox_factory):
    def first_bet(handle):
        client = CasinoClient(handle.urls["casino"])
        reg = client.register()
        SandboxAdmin(handle.root_url).credit(reg.agent_id, 50_000_000)
        bet = client.bet("dice", 1_000_000, {"direction": "under", "threshold": 60}, client_seed="c",
                         idempotency_key="k")
        client.close()
        return reg.agent_id, bet.roll, bet.bet_id

    assert first_bet(sandbox_factory(seed=99)) == first_bet(sandbox_factory(seed=99))
    assert first_bet(sandbox_factory(seed=99)) != first_bet(sandbox_factory(seed=98))


def test_state_survives_a_restart(tmp_path):
    path = str(tmp_path / "state.sqlite")
    with start_sandbox(seed=2, state_path=path) as first:
        client = CasinoClient(first.urls["casino"])
        reg = client.register()
        SandboxAdmin(first.root_url).credit(reg.agent_id, 40_000_000)
        client.bet("coin_flip", 2_000_000, {"side": "tails"}, client_seed="before", idempotency_key="k1")
        balance = client.balance().balance
        key = reg.api_key
        client.close()
    with start_sandbox(seed=2, state_path=path) as second:
        client = CasinoClient(second.urls["casino"], key)
        assert client.balance().balance == balance
        assert client.find_bet("before") is not None
        # ids keep counting: a new agent does not collide with the old one
        other = CasinoClient(second.urls["casino"]).register()
        assert other.agent_id != reg.agent_id
        # the nonce carried over, so the next bet has nonce 1
        bet = client.bet("coin_flip", 1_000_000, {"side": "tails"}, client_seed="after", idempotency_key="k2")
        assert bet.nonce == 1
        client.close()


def test_temporary_state_is_removed_on_stop():
    handle = start_sandbox(seed=1)
    path = handle.state_path
    assert os.path.exists(path)
    handle.stop()
    handle.stop()  # idempotent
    assert not os.path.exists(path)


def test_admin_health_clock_and_faults(fresh_sandbox):
    admin = SandboxAdmin(fresh_sandbox.urls["escrow"])  # a service URL works as well as the root
    health = admin.health()
    assert health["ok"] and "casino" in health["services"]
    start = admin.now_ms()
    assert admin.advance_clock(hours=2) == start + 7_200_000
    assert admin.advance_clock(ms=5) == start + 7_200_005
    settings = admin.set_faults(error_rate=0.25, seed=3)
    assert settings["config"]["error_rate"] == 0.25
    assert admin.faults()["config"]["seed"] == 3
    r = HTTP.post(f"{fresh_sandbox.root_url}/_sandbox/faults", json={"error_rate": 2})
    assert r.status_code == 400 and r.json()["error"] == "invalid_faults"
    r = HTTP.post(f"{fresh_sandbox.root_url}/_sandbox/faults", json={"bogus": 1})
    assert r.status_code == 400
    r = HTTP.post(f"{fresh_sandbox.root_url}/_sandbox/clock/advance", json={"ms": -1})
    assert r.status_code == 400 and r.json()["error"] == "invalid_ms"


def test_admin_credit_errors(fresh_sandbox):
    url = f"{fresh_sandbox.root_url}/_sandbox/casino/credit"
    assert HTTP.post(url, json={"agent_id": "ag_000000000000", "amount": 5}).json()["error"] == "agent_not_found"
    assert HTTP.post(url, json={"agent_id": "ag_x", "amount": -5}).json()["error"] == "invalid_request"
    assert HTTP.post(url, content=b"{nope").json()["error"] == "invalid_json"


def test_idempotency_keys_are_logged_not_deduplicated(fresh_sandbox, funded_agent):
    agent = funded_agent(fresh_sandbox, 50)
    admin = SandboxAdmin(fresh_sandbox.root_url)
    for seed in ("a", "b"):
        agent.client.bet("coin_flip", 1_000_000, {"side": "heads"}, client_seed=seed, idempotency_key="same")
    entry = admin.idempotency("same")
    assert entry["count"] == 2 and entry["successes"] == 2
    assert entry["entries"][0]["service"] == "casino" and entry["entries"][0]["path"] == "/api/v1/games/coin-flip"
    summary = admin.idempotency_summary()
    assert summary["keys_succeeded_more_than_once"] == ["same"]
    assert admin.idempotency("unknown")["count"] == 0


def test_clock_helpers():
    clock = ManualClock(0)
    assert clock.advance(1500) == 1500 and iso(1500) == "1970-01-01T00:00:01.500Z"
    with pytest.raises(ValueError):
        clock.advance(-1)
    system = SystemClock()
    before = system.now_ms()
    assert system.advance(60_000) >= before + 60_000


def test_store_is_safe_across_threads(tmp_path):
    store = Store(str(tmp_path / "t.sqlite"))
    store.ensure_schema("t", "CREATE TABLE IF NOT EXISTS t (n INTEGER)")

    def work():
        for _ in range(200):
            with store.tx() as conn:
                conn.execute("INSERT INTO t(n) VALUES (1)")
                store.next_seq("s")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.scalar("SELECT COUNT(*) FROM t") == 800
    assert store.next_seq("s") == 801
    with pytest.raises(RuntimeError):
        with store.tx() as conn:
            conn.execute("INSERT INTO t(n) VALUES (2)")
            raise RuntimeError("rolled back")
    assert store.scalar("SELECT COUNT(*) FROM t WHERE n = 2") == 0
    store.set_meta("k", "v")
    assert store.meta("k") == "v" and store.meta("missing", "d") == "d"
    store.close()


def test_fault_config_validation():
    with pytest.raises(ValueError):
        FaultConfig(error_rate=0.6, drop_rate=0.6)
    with pytest.raises(ValueError):
        FaultConfig(latency_ms=-1)
    with pytest.raises(ValueError):
        FaultConfig.from_dict({"nope": 1})
    assert FaultConfig.from_dict({"drop_rate": 0.5}).to_dict()["drop_rate"] == 0.5


def test_cli_prints_one_json_line_and_exits_cleanly_on_sigterm(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from sandbox.runner import main; sys.exit(main(sys.argv[1:]))",
         "--seed", "4", "--state", str(tmp_path / "cli.sqlite"), "--error-rate", "0.0", "--latency-ms", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline()
        urls = json.loads(line)
        assert {"casino", "escrow", "faucet"} <= set(urls)
        assert HTTP.get(urls["escrow"] + "/escrow/stats").status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        assert proc.stdout.read() == ""  # exactly one line
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_rejects_bad_fault_settings(capsys):
    from sandbox.runner import main

    assert main(["--error-rate", "0.7", "--drop-rate", "0.7"]) == 2
    assert "must not exceed" in capsys.readouterr().err
