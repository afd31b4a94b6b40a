"""`treasury reconcile` and `treasury cmd move|adjust` at the command line, against a deployment
record on real Redis and the sandbox."""

from __future__ import annotations

import json

import pytest

from actors.chain_view import addresses_key
from supervisor.cli import main
from supervisor.deployment import record_deployment
from tests.kit.rebalancer import usd
from tests.kit.silo import SiloHarness


@pytest.fixture
def h(redis_url, keys):
    harness = SiloHarness(redis_url, keys)
    record_deployment(harness.client, keys, harness.sandbox.urls, "paper")
    yield harness
    harness.close()


def run(capsys, h, *args) -> tuple[int, str, str]:
    code = main(["reconcile", h.agent, "--redis-url", h.url, "--prefix", h.keys.prefix, *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_out_of_band_change_is_reported_and_nothing_changes(h, capsys):
    h.onboard(reserve="500", trading="300", casino="100", referral="100")
    code, out, _ = run(capsys, h, "--json")
    assert code == 0 and json.loads(out)["clean"]
    base = h.client.hget(addresses_key(h.keys, h.agent), "base").decode()
    h.admin.fund_wallet("base", base, usd("25"))
    before = h.fields()
    code, out, err = run(capsys, h, "--json")
    data = json.loads(out)
    wallet = next(s for s in data["silos"] if s["silo"] == "wallet")
    assert code == 1 and not data["clean"] and data["alerted"]
    assert (wallet["status"], wallet["difference_micros"], wallet["venue_micros"]) == ("differs", usd("25"), usd("525"))
    assert h.fields() == before
    code, out, err = run(capsys, h)
    assert "wallet   differs" in out and "difference $25.00" in out and "adjust" in err
    alerts = [json.loads(f[b"alert"]) for _, f in h.client.xrange(f"{h.keys.prefix}:alerts")]
    assert alerts and alerts[-1]["subject"] == "reconciliation"


def test_bad_input_is_one_line_and_changes_nothing(h, capsys):
    h.onboard(reserve="500", trading="300", casino="100", referral="100")
    code, _, err = run(capsys, h, "--tolerance", "-1")
    assert code == 2 and err.count("\n") == 1 and "tolerance" in err
    code = main(["reconcile", "nobody", "--redis-url", h.url, "--prefix", h.keys.prefix])
    err = capsys.readouterr().err
    assert code == 2 and "unknown agent 'nobody'" in err
    before = h.fields()
    for args in (["move", h.agent, "--from", "reserve", "--to", "reserve", "--amount", "5", "--reason", "x"],
                 ["adjust", h.agent, "--bucket", "casino", "--amount", "0", "--reason", "x"],
                 ["adjust", h.agent, "--bucket", "casino", "--amount", "1.0000001", "--reason", "x"]):
        code = main(["cmd", "--redis-url", h.url, "--prefix", h.keys.prefix, *args])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1, err
    assert h.fields() == before
    assert h.client.xlen(h.keys.agent_commands(h.agent, "rebalancer")) == 0   # nothing was sent
