"""Money at the command line, through the real `treasury` command: an operator's move or park of
more than is there, or one that would take the reserve under its floor, is refused before it is
sent (one line, exit 2, nothing published); amounts in answers are dollars with their unit."""

from __future__ import annotations

import pytest

from runtime.keyring import generate_key
from runtime.keys import Keys
from supervisor.deployment import record_deployment
from tests.supervisor.cli_helpers import clean_env, one_line_error, treasury

LEDGER = {"reserve": 400_000_000, "trading": 350_000_000, "casino": 150_000_000, "referral": 100_000_000}


@pytest.fixture
def alice(redis_url, prefix, rclient):
    keys = Keys(prefix, 8)
    record_deployment(rclient, keys, {}, "paper")
    rclient.sadd(keys.agents(), "alice")
    rclient.hset(keys.ledger("alice"), mapping=LEDGER)
    env = clean_env(REDIS_URL=redis_url, TREASURY_KEYS=generate_key("ops", "operator").env_entry())

    def run(*argv):
        return treasury(argv[0], "--prefix", prefix, *argv[1:], env=env)

    yield run, keys


def _nothing_sent(rclient, prefix, keys):
    assert not list(rclient.scan_iter(match=f"{prefix}:*cmd*"))
    assert not rclient.exists(keys.events("alice"))
    assert {k.decode(): int(v) for k, v in rclient.hgetall(keys.ledger("alice")).items()} == LEDGER


@pytest.mark.redis
@pytest.mark.parametrize("argv, words", [
    (["--from", "casino", "--to", "trading", "--amount", "99999"],
     "--amount $99,999.00: casino has only $150.00 available, less than the $99,999.00 asked for; nothing was moved"),
    (["--from", "reserve", "--to", "casino", "--amount", "400.01"], "reserve has only $400.00 available"),
    (["--from", "reserve", "--to", "trading", "--amount", "200.01"],
     "would take reserve under floor: $199.99 left is 19.999 % of the $1,000.00 treasury, below its 20.00 % "
     "floor; at most $200.00 can leave the reserve"),
    (["--from", "casino", "--to", "reserve", "--amount", "0.01"],  # booked, then failed at the venue: refused here
     "--amount $0.01: a move from casino to reserve is a casino withdrawal, and the casino's minimum withdrawal is "
     "$1.00; nothing was moved"),
    (["--from", "referral", "--to", "trading", "--amount", "0.999999"], "minimum withdrawal is $1.00"),
])
def test_a_move_the_buckets_cannot_make_is_refused_before_it_is_sent(alice, argv, words, rclient, prefix):
    run, keys = alice
    line = one_line_error(run("cmd", "--operator", "move", "alice", *argv, "--reason", "probe"))
    assert line.startswith("treasury cmd move: error: ") and words in line, line
    _nothing_sent(rclient, prefix, keys)


@pytest.mark.redis
@pytest.mark.parametrize("argv, words", [
    (["--silo", "casino", "--amount", "500"], "--amount $500.00: the reserve has only $400.00 available"),
    (["--silo", "wallet", "--amount", "5"], "--amount $5.00: only $0.00 of the reserve is parked at the casino"),
    (["--silo", "wallet", "--amount", "0.50"], "--amount $0.50: bringing parked money home is a casino withdrawal, "
                                               "and the casino's minimum withdrawal is $1.00; nothing was sent"),
])
def test_a_park_of_more_than_is_there_is_refused_before_it_is_sent(alice, argv, words, rclient, prefix):
    run, keys = alice
    line = one_line_error(run("cmd", "--operator", "park", "alice", *argv, "--reason", "probe"))
    assert words in line, line
    _nothing_sent(rclient, prefix, keys)


@pytest.mark.redis
def test_an_adjustment_below_zero_is_refused_before_it_is_sent(alice, rclient, prefix):
    """Bad input is exit 2 with nothing sent, not a published command the actor then refuses (exit 1)."""
    run, keys = alice
    proc = run("cmd", "--operator", "adjust", "alice", "--bucket", "casino", "--amount", "-150.01", "--reason", "probe")
    line = one_line_error(proc)
    assert line == ("treasury cmd adjust: error: --amount -$150.01: casino has only $150.00 available; the "
                    "adjustment would make it negative; nothing was sent"), line
    _nothing_sent(rclient, prefix, keys)
