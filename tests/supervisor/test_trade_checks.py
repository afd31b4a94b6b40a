"""`treasury trade open|close` check what they send with or without `--wait`: a coin the trading
venue does not list and a position id not in the agent's book are one line, exit 2, nothing sent."""

from __future__ import annotations

import pytest

from runtime.keyring import generate_key
from runtime.keys import Keys
from sandbox.clock import ManualClock as SandboxClock
from sandbox.runner import start_sandbox
from supervisor.deployment import record_deployment
from tests.supervisor.cli_helpers import clean_env, one_line_error, treasury

pytestmark = pytest.mark.redis

OPEN = ["--side", "long", "--win-rate", "0.55", "--win-loss-ratio", "2", "--stop", "0.02", "--leverage", "2"]


@pytest.fixture
def deployed(redis_url, prefix, rclient):
    with start_sandbox(seed=5, clock=SandboxClock()) as sandbox:
        keys = Keys(prefix, 8)
        record_deployment(rclient, keys, sandbox.urls, "paper")
        rclient.sadd(keys.agents(), "alice")
        env = clean_env(REDIS_URL=redis_url, TREASURY_KEYS=generate_key("k", "agent").env_entry())
        yield (lambda *argv: treasury("trade", argv[0], "--prefix", prefix, *argv[1:], env=env)), keys


def _nothing_sent(rclient, prefix):
    assert not list(rclient.scan_iter(match=f"{prefix}:*cmd*"))


@pytest.mark.parametrize("wait", [[], ["--wait"]])
def test_an_unknown_coin_is_refused_before_sending(deployed, wait, rclient, prefix):
    run, _ = deployed
    line = one_line_error(run("open", *wait, "alice", "--coin", "NOPE", *OPEN))
    assert "--coin 'NOPE': not a market at the trading venue" in line and "BTC" in line, line
    _nothing_sent(rclient, prefix)


@pytest.mark.parametrize("wait", [[], ["--wait"]])
@pytest.mark.parametrize("pid, words", [
    ("pos_nosuch", "no open position 'pos_nosuch' for alice"),
    ("x y", "POSITION_ID 'x y': must be a position id: 1 to 80 of"),
])
def test_a_position_not_in_the_book_is_refused_before_sending(deployed, wait, pid, words, rclient, prefix):
    run, _ = deployed
    line = one_line_error(run("close", *wait, "alice", pid, "--reason", "done"))
    assert words in line, line
    _nothing_sent(rclient, prefix)
