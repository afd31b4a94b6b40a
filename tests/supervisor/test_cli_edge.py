"""The command line's edge: bad input of every kind is one line and exit 2, and changes nothing.

Each test runs the real `treasury` command in a subprocess (issue 13, cases 1, 4, 5, 7 and 8)."""

from __future__ import annotations

import json
import string

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from messages.base import AgentId, validate_agent_id
from messages.errors import BadAgentId
from runtime.keyring import generate_key
from runtime.keys import Keys
from supervisor.deployment import record_deployment
from tests.supervisor.cli_helpers import DEAD_REDIS, clean_env, one_line_error, treasury

BAD_NAMES = ["", "ali ce", "\t", "alice\n", "\x1b[31mred", "{x}", "*", "\U0001f600", "a" * 65, "a/b", "é"]

# ---------------------------------------------------------------- case 1: one rule for agent names

_ALLOWED = set(string.ascii_letters + string.digits + "_.:-")


def _oracle(name: str) -> bool:
    """The rule, written out by hand: 1 to 64 characters, each an ASCII letter, digit, `_ . : -`."""
    return 1 <= len(name) <= 64 and all(c in _ALLOWED for c in name)


@given(st.one_of(st.text(max_size=70), st.text(alphabet=sorted(_ALLOWED) + ["\n", " ", "é"], max_size=70)))
def test_the_cli_rule_and_the_message_schema_are_the_same_rule(name):
    try:
        validate_agent_id(name)
        cli_ok = True
    except BadAgentId as exc:
        cli_ok = False
        assert "\n" not in str(exc) and "\x1b" not in str(exc)
    try:
        msgspec.convert(name, AgentId)
        schema_ok = True
    except msgspec.ValidationError:
        schema_ok = False
    assert cli_ok == schema_ok == _oracle(name)


@pytest.mark.parametrize("name", BAD_NAMES)
def test_agent_add_refuses_a_bad_name_before_reaching_redis(name):
    # No deployment at all: the name is refused first, so nothing can have been registered or funded.
    line = one_line_error(treasury("agent", "add", name, "--capital", "100", env=clean_env(REDIS_URL=DEAD_REDIS)))
    assert line.startswith("treasury agent add: error: agent name ") and "is not valid" in line


@pytest.mark.parametrize("name", BAD_NAMES[:6])
def test_cmd_and_status_filters_refuse_a_bad_name(name, redis_url, prefix, rclient):
    record_deployment(rclient, Keys(prefix, 8), {}, "paper")
    env = clean_env(REDIS_URL=redis_url, TREASURY_KEYS=generate_key("k", "operator").env_entry())
    one_line_error(treasury("cmd", "--prefix", prefix, "pause", name, "--reason", "why", env=env))
    one_line_error(treasury("status", "--prefix", prefix, "--agent", name, "--no-probe", env=env))
    assert not list(rclient.scan_iter(match=f"{prefix}:*cmd*"))


def test_agents_file_with_one_bad_name_onboards_nobody(tmp_path, redis_url, prefix, rclient):
    f = tmp_path / "agents.json"
    f.write_text(json.dumps({"agents": [{"name": "good", "capital": "10"}, {"name": "ba d", "capital": "10"}]}))
    proc = treasury("up", "--data-dir", str(tmp_path / "d"), "--prefix", prefix, "--agents", str(f),
                    env=clean_env(REDIS_URL=redis_url))
    line = one_line_error(proc)
    assert "entry 2: agent name 'ba d' is not valid" in line
    assert not list(rclient.scan_iter(match=f"{prefix}:*"))  # nothing registered, funded or recorded
    assert not (tmp_path / "d").exists()  # nothing started


def test_status_never_prints_control_characters_from_data(redis_url, prefix, rclient):
    keys = Keys(prefix, 8)
    record_deployment(rclient, keys, {}, "paper")
    evil = "ev\x1b[2Jil"  # an id written by an older version, before names were checked
    rclient.sadd(keys.agents(), evil)
    rclient.hset(keys.risk(evil), mapping={"state": "PAUSED", "reason": "\x1b]0;owned\x07 moved the cursor\r"})
    proc = treasury("status", "--prefix", prefix, "--no-probe", env=clean_env(REDIS_URL=redis_url))
    assert proc.returncode == 0, proc.stderr
    assert "\x1b" not in proc.stdout and "\x07" not in proc.stdout and "\r" not in proc.stdout
    assert "\\x1b[2J" in proc.stdout and "\\x07" in proc.stdout


# ---------------------------------------------------------------- case 4: up's configuration


@pytest.mark.parametrize("flags, words", [
    (["--roles", "casino,risc"], "--roles: unknown role 'risc'"),
    (["--shard-count", "0"], "--shard-count: 0 must be at least 1"),
    (["--stale-ms", "0"], "--stale-ms: 0 must be at least 1"),
    (["--stale-ms", "500"], "--stale-ms 500: must be at least 2000 ms"),
    (["--workers", "0"], "--workers: 0 must be at least 1"),
    (["--workers", "-2"], "--workers: -2 must be at least 1"),
    (["--restart-window", "nan"], "--restart-window: nan must be a finite number above 0"),
    (["--live", "--venues-from", "http://x"], "--live and --venues-from are exclusive"),
])
def test_up_checks_its_whole_configuration_before_starting_anything(tmp_path, flags, words):
    d = tmp_path / "deploy"
    line = one_line_error(treasury("up", "--data-dir", str(d), *flags))
    assert line.startswith("treasury up: error:") and words in line
    assert not d.exists()  # no lock, no Redis, no sandbox, no keys


# ---------------------------------------------------------------- case 5: no tracebacks


@pytest.mark.parametrize("argv", [
    ["agent", "list"], ["agent", "add", "alice", "--capital", "5"], ["balances", "alice"],
    ["cmd", "pause", "alice", "--reason", "why", "--hours", "1"], ["status"], ["watch", "--iterations", "1"],
    ["dead", "list"], ["alerts"], ["trade", "list", "alice"],
])
def test_no_redis_is_one_line(argv):
    line = one_line_error(treasury(*argv, env=clean_env(REDIS_URL=DEAD_REDIS)))
    assert "cannot reach Redis at redis://127.0.0.1:1/0" in line


def test_keys_new_into_a_missing_directory_is_one_line(tmp_path):
    line = one_line_error(treasury("keys", "new", "--id", "k1", "--file", str(tmp_path / "nope" / "keys.json")))
    assert f"directory {tmp_path / 'nope'} does not exist" in line


@pytest.mark.parametrize("odds, words", [("1e400", "too large or too precise"), ("1e-400", "too large or too precise"),
                                         ("2000000", "outside [0.000001, 1000000]")])
def test_kelly_with_absurd_odds_is_one_line(odds, words):
    line = one_line_error(treasury("kelly", "--win-prob", "0", "--net-odds", odds, "--bankroll", "1000"))
    assert line.startswith("treasury kelly: error: net-odds:") and words in line


@pytest.mark.parametrize("script", ["bench/bench_bus.py", "bench/bench_fence.py"])
def test_bench_scripts_without_redis_are_one_line(script):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, str(root / script), "--redis-url", DEAD_REDIS], capture_output=True,
                          text=True, timeout=60, env=clean_env())
    one_line_error(proc)


# ---------------------------------------------------------------- case 7: finding the deployment


def test_no_deployment_found_says_where_it_looked(tmp_path):
    line = one_line_error(treasury("status", cwd=tmp_path))
    assert "no running deployment found in .treasury (the default)" in line
    line = one_line_error(treasury("agent", "list", "--data-dir", str(tmp_path / "x")))
    assert f"no running deployment found in {tmp_path / 'x'} (from --data-dir)" in line
    line = one_line_error(treasury("status", env=clean_env(TREASURY_DATA_DIR=str(tmp_path / "y"))))
    assert "(from $TREASURY_DATA_DIR)" in line


def test_a_stale_url_file_is_not_a_deployment(tmp_path):
    (tmp_path / "redis.url").write_text("redis://127.0.0.1:1/0\n")  # left by an owner that died
    line = one_line_error(treasury("status", "--data-dir", str(tmp_path)))
    assert "is not running (its redis.url is left from a stopped run)" in line


def test_a_redis_without_the_deployment_is_not_a_deployment(redis_url, prefix):
    line = one_line_error(treasury("status", "--prefix", prefix, env=clean_env(REDIS_URL=redis_url)))
    assert f"no deployment with prefix '{prefix}'" in line


# ---------------------------------------------------------------- case 8: inputs


@pytest.mark.parametrize("capital, words", [
    ("0", "capital: '0' must be more than 0"), ("-0", "capital: '-0' must be more than 0"),
    ("\u0661\u0660\u0660", "is not a number: write ASCII digits"), ("1_000", "is not a number"),
    ("1e3", "is not a number"), ("-5", "is negative"),
])
def test_capital_must_be_a_positive_ascii_decimal(capital, words):
    line = one_line_error(treasury("agent", "add", "alice", "--capital", capital, env=clean_env(REDIS_URL=DEAD_REDIS)))
    assert words in line


@pytest.mark.parametrize("argv, words", [
    (["pause", "alice", "--reason", ""], "--reason needs some text"),
    (["pause", "alice", "--reason", "   "], "--reason needs some text"),
    (["halt", "alice", "--reason", "x" * 10_000], "--reason is 10000 bytes; keep it under 1024"),
    (["pause", "alice", "--reason", "a\x1b[2Jb"], "holds control characters"),
    (["bet", "alice", "--game", "multiplier"], "--game multiplier needs --target"),
    (["bet", "alice", "--target", "10"], "--target does not apply to --game coin_flip"),
    (["bet", "alice", "--game", "dice", "--side", "tails"], "--side does not apply to --game dice"),
    (["bet", "alice", "--win-prob", "1.0"], "--win-prob 1: must be strictly between 0 and 1"),
    (["bet", "alice", "--win-prob", "0"], "--win-prob 0: must be strictly between 0 and 1"),
    (["bet", "alice", "--win-prob", "1e-320"], "--win-prob: 1e-320 is too large or too precise to size a bet"),
    (["bet", "alice", "--kelly", "2"], "--kelly '2': use full, half, quarter or a number in (0, 1]"),
    (["bet", "alice", "--fixed-stake", "1_0"], "fixed-stake: '1_0' is not a number"),
    (["bet", "alice", "--fixed-stake", "0.001"], "--fixed-stake $0.001: the casino's minimum bet is $0.01"),
])
def test_bad_command_input_is_refused_before_anything_is_sent(argv, words, redis_url, prefix, rclient):
    record_deployment(rclient, Keys(prefix, 8), {}, "paper")
    env = clean_env(REDIS_URL=redis_url, TREASURY_KEYS=generate_key("k", "operator").env_entry())
    line = one_line_error(treasury("cmd", "--prefix", prefix, *argv, env=env))
    assert words in line
    assert not list(rclient.scan_iter(match=f"{prefix}:*cmd*"))


@pytest.mark.parametrize("setting, words", [
    ("nosuch=1", "unknown policy setting 'nosuch'"),
    ("daily_loss_bp=0", "daily_loss_bp: 0 must be in [1, 10000]"),
    ("daily_loss_bp=5%", "expected a whole number"),
    ("min_move=-1", "min_move: -1 is negative"),
    ("min_move=ten", "min_move: 'ten' is not a number"),
    ("kelly_fraction=2", "kelly_fraction '2': use full, half, quarter"),
    ("reserve_target_bp=9000", "targets must sum to 10000"),
])
def test_set_policy_is_checked_before_publishing(setting, words, redis_url, prefix, rclient):
    record_deployment(rclient, Keys(prefix, 8), {}, "paper")
    env = clean_env(REDIS_URL=redis_url, TREASURY_KEYS=generate_key("k", "operator").env_entry())
    line = one_line_error(treasury("cmd", "--prefix", prefix, "set-policy", "bob", setting, env=env))
    assert words in line
    assert not list(rclient.scan_iter(match=f"{prefix}:*cmd*"))


def test_one_kelly_syntax_for_bet_and_the_calculator(redis_url, prefix, rclient):
    keys = Keys(prefix, 8)
    record_deployment(rclient, keys, {}, "paper")
    rclient.hset(keys.risk("alice"), "state", "ACTIVE")  # a known agent: commands to unknown ones are refused
    env = clean_env(REDIS_URL=redis_url, TREASURY_KEYS=generate_key("k", "agent").env_entry())
    for fraction in ("quarter", "0.25"):
        calc = treasury("kelly", "--win-prob", "0.6", "--net-odds", "1", "--bankroll", "100", "--fraction", fraction,
                        "--json")
        assert json.loads(calc.stdout)["applied_fraction"] == "0.050000"
        sent = treasury("cmd", "--prefix", prefix, "--json", "bet", "alice", "--kelly", fraction, env=env)
        assert sent.returncode == 0, sent.stderr
    from messages.codec import FIELD, decode

    entries = rclient.xrange(keys.agent_commands("alice", "casino"))
    assert [decode(f[FIELD]).body.kelly for _, f in entries] \
        == ["quarter", 0.25]


def test_every_argument_has_help_text():
    import argparse

    from supervisor.cli import build_parser

    missing = []

    def walk(parser, path):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, [*path, name])
            elif not action.help and not isinstance(action, argparse._HelpAction):
                missing.append(f"{' '.join(path)} {action.option_strings or action.dest}")

    walk(build_parser(), ["treasury"])
    assert missing == []


def test_ticks_skip_names_left_in_the_agent_set_by_older_versions(redis_url, prefix, rclient):
    from messages.codec import FIELD, decode
    from runtime.clock import ManualClock
    from supervisor.scheduler import Scheduler

    keys = Keys(prefix, 8)
    rclient.sadd(keys.agents(), "alice", "ali ce", "\x1b[31m")
    clock = ManualClock(1_767_258_000_000)
    scheduler = Scheduler(rclient, keys, clock, ["risk", "trading"])
    scheduler.run_once()  # the first run only marks where the window starts
    clock.advance(3_600_000)  # one period of the risk tick: every agent's phase is crossed once
    sent = scheduler.run_once()
    published = [decode(fields[FIELD]).agent for shard in range(8) for role in ("risk", "trading")
                 for _, fields in rclient.xrange(keys.commands(shard, role))]
    assert sent == len(published) > 0 and set(published) == {"alice"}
