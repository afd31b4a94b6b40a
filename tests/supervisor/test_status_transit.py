"""`treasury status` shows money between silos: a rebalance leg sent from the wallet to the casino
and not yet credited is held as `casino:in_transit`, listed with its transfer id (probe item 1)."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from actors.bootstrap import open_treasury
from messages.envelope import seeded_ids
from messages.money import parse_usd
from runtime.atomic import AtomicSteps
from supervisor.deployment import record_deployment
from supervisor.status import collect_status
from supervisor.status_json import with_units
from supervisor.status_view import render_status

pytestmark = pytest.mark.redis

NOW = 1_767_258_000_000


def USD(x) -> int:
    return parse_usd(str(x))


@pytest.fixture
def in_flight(rclient, keys):
    steps = AtomicSteps(rclient, keys)
    record_deployment(rclient, keys, {}, "paper")
    open_treasury(steps, "carol", USD("2500.50"), now_ms=NOW - 60_000, new_id=seeded_ids(3))
    rclient.sadd(keys.agents(), "carol")
    # what the rebalance's first leg leaves behind: reserve debited, the casino's share held in transit
    rclient.hincrby(keys.ledger("carol"), "reserve", -USD("250.05"))
    rclient.hset(keys.ledger("carol"), "casino:in_transit", USD("250.05"))
    tid = "5960eb79086c4a9a93939369a0962b3c:0"
    rclient.hset(keys.silo_intents("carol"), mapping={
        tid: f"wallet|casino|{USD('250.05')}|sent",
        "older:0": f"wallet|trading|{USD(10)}|landed",
    })
    return tid


def test_status_lists_the_transfer_in_flight(rclient, keys, in_flight):
    carol = collect_status(rclient, keys, now_ms=NOW)["agents"][0]
    transit = carol["in_transit"]
    assert transit["amount"] == USD("250.05") and transit["by_bucket_micros"] == {"casino": USD("250.05")}
    assert transit["items"] == [{"transfer": in_flight, "from_silo": "wallet", "to_silo": "casino",
                                 "amount": USD("250.05"), "state": "sent"}]  # the landed one is not listed


def test_status_text_and_json_show_it(rclient, keys, in_flight):
    status = collect_status(rclient, keys, now_ms=NOW)
    console = Console(file=io.StringIO(), width=80, record=True)
    render_status(status, console)
    text = console.export_text()
    assert "in transit between silos: $250.05 (held for casino $250.05)" in text
    assert f"wallet → casino $250.05 sent, transfer {in_flight}" in text  # the id whole at 80 columns
    body = with_units(status)["agents"][0]["in_transit"]
    assert body["amount_micros"] == 250_050_000 and body["items"][0]["amount_micros"] == 250_050_000


def test_nothing_in_transit_says_so(rclient, keys, in_flight):
    rclient.hset(keys.ledger("carol"), "casino:in_transit", 0)
    rclient.hset(keys.silo_intents("carol"), in_flight, f"wallet|casino|{USD('250.05')}|landed")
    status = collect_status(rclient, keys, now_ms=NOW)
    assert status["agents"][0]["in_transit"]["count"] == 0
    console = Console(file=io.StringIO(), width=80, record=True)
    render_status(status, console)
    assert "nothing in transit between silos" in console.export_text()


def test_a_park_in_flight_is_not_shown_as_nothing_in_transit():
    """A park has no ledger leg (the money stays the reserve's): the heading must not read "$0.00"
    above a $100.00 transfer with no word on where the $100.00 is."""
    from supervisor.status_view import transit_block

    transit = {"count": 1, "amount": 0, "by_bucket_micros": {}, "items": [
        {"transfer": "place:8ee3", "from_silo": "wallet", "to_silo": "casino", "amount": USD(100), "state": "sent"}]}
    console = Console(file=io.StringIO(), width=200, record=True)
    console.print(transit_block(transit))
    text = console.export_text()
    assert ("in transit between silos: $0.00; $100.00 sent in all, $100.00 of it still counted in its bucket "
            "(parked money) until it lands") in text, text
    assert "wallet → casino $100.00 sent, transfer place:8ee3" in text
