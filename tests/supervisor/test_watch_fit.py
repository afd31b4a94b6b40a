"""`treasury watch` on a terminal never cuts the deployment section off: agents are summarised,
then counted, until the whole screen fits (issue 13, status/watch)."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from messages.base import BUCKETS
from supervisor.watch import frame
from tests.supervisor.test_status import NOW, cli_args, deployment  # noqa: F401 - the fixture

pytestmark = pytest.mark.redis


def _screen(rclient, redis_url, keys, height: int) -> list[str]:
    console = Console(file=io.StringIO(), force_terminal=True, width=110, height=height, record=True)
    args = cli_args(redis_url, keys, interval=2.0)
    args.venues = None
    console.print(frame(rclient, args, NOW, console))
    return console.export_text().rstrip("\n").splitlines()


@pytest.mark.parametrize("height", [40, 60])
def test_the_deployment_section_always_fits(rclient, redis_url, keys, deployment, height):  # noqa: F811
    lines = _screen(rclient, redis_url, keys, height)
    text = "\n".join(lines)
    assert len(lines) <= height
    assert f"deployment {keys.prefix}" in text and "workers" in text and "command backlog" in text
    assert "alice" in text  # summarised (one row), not dropped


def test_agents_that_do_not_fit_are_counted(rclient, redis_url, keys, deployment):  # noqa: F811
    pipe = rclient.pipeline(transaction=False)
    for n in range(60):
        pipe.hset(keys.ledger(f"z{n:03d}"), mapping={b: 100 for b in BUCKETS})
        pipe.sadd(keys.agents(), f"z{n:03d}")
    pipe.sadd(keys.agents(), "alice", "bob")
    pipe.execute()
    lines = _screen(rclient, redis_url, keys, 45)
    text = "\n".join(lines)
    assert len(lines) <= 45 and "command backlog" in text
    assert "more agents: `treasury status --offset" in text
