"""Every table at 80 columns, run as the real command (probe item 12): ids an operator copies are
whole, the events' "what happened" keeps most of the width, worker headers are whole words."""

from __future__ import annotations

import pytest

from actors.bootstrap import open_treasury
from actors.trading.book import PositionRecord, positions_key
from messages.envelope import seeded_ids
from messages.money import parse_usd
from runtime.atomic import AtomicSteps
from tests.supervisor.cli_helpers import clean_env, treasury
from tests.supervisor.test_status import NOW, deployment  # noqa: F401 - the fixture

pytestmark = pytest.mark.redis

LONG = "agent-" + "n" * 52 + "-64chr"
POSITION = "pos_57d34844-c7cd-4653-be74-06f126c3900b"


@pytest.fixture
def wide_ids(rclient, keys, deployment):  # noqa: F811
    steps = AtomicSteps(rclient, keys)
    assert len(LONG) == 64
    open_treasury(steps, LONG, parse_usd("100"), now_ms=NOW, new_id=seeded_ids(5))
    rclient.sadd(keys.agents(), LONG)
    rclient.hset(keys.credentials(LONG), mapping={"casino_agent_id": "ag_19591e8dd98e",
                                                  "trading_agent_id": "ag_ff047b466cab"})
    record = PositionRecord(position_id=POSITION, coin="BTC", side="long", entry_price="95342", notional=262_550_000,
                            margin=87_510_000, leverage=3, fee_open=140_000, stop_loss="93435.16",
                            take_profit="99155.68", opened_by="m1", opened_ms=NOW)
    rclient.hset(positions_key(keys, "bob"), POSITION, record.encode())


def _run(redis_url, keys, *argv: str) -> list[str]:
    proc = treasury(*argv, "--redis-url", redis_url, "--prefix", keys.prefix, env=clean_env(COLUMNS="80"))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, "\n".join(line for line in lines if len(line) > 80)
    return lines


def test_status_events_and_workers_at_80_columns(redis_url, keys, wide_ids):
    lines = _run(redis_url, keys, "status", "--no-probe", "--shard-count", str(keys.shards), "--agent", "alice")
    text = "\n".join(lines)
    header = next(line for line in lines if "time (UTC) · type" in line)
    what = header.split("┃")[2]
    assert "what happened" in what and len(what) >= 40  # the column keeps most of the screen
    assert "stake above the 2 % cap" in text  # a summary readable as written
    worker_header = next(line for line in lines if line.startswith("worker "))
    assert worker_header.split() == ["worker", "pid", "shards", "heartbeat", "uptime", "restarts", "done", "dead"]
    assert "…" not in worker_header
    assert "casino-h-1" in text and "risk-h-2" in text


def test_agent_list_keeps_a_64_character_name_and_the_ids_whole(redis_url, keys, wide_ids):
    text = "\n".join(_run(redis_url, keys, "agent", "list"))
    assert LONG in text and "ag_19591e8dd98e" in text and "ag_ff047b466cab" in text
    assert "…" not in text


def test_trade_list_keeps_the_position_id_whole(redis_url, keys, wide_ids):
    lines = _run(redis_url, keys, "trade", "list", "bob")
    assert POSITION in [line.strip() for line in lines]  # on its own line: copy it into `trade close`
    assert "…" not in "\n".join(lines)
    assert any("take-profit 99155.68" in line for line in lines)


def test_dead_list_keeps_the_entry_id_and_agent_whole(redis_url, keys, rclient, wide_ids):
    (entry_id, _), = rclient.xrange(keys.dead(keys.shard("alice")))
    lines = _run(redis_url, keys, "dead", "list")
    text = "\n".join(lines)
    assert f"{keys.shard('alice')}/{entry_id.decode()}" in text and "alice" in text
    assert "…" not in text
