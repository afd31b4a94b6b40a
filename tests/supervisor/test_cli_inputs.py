"""The command line's inputs and answers, each through the real `treasury` command in a subprocess:
bad input is one plain line and exit 2 before anything is published (schema ranges in words, the
actors' minimums, control characters in any free-text flag, amounts with spaces, negative numbers),
argparse errors name their subcommand, `--wait` prints the whole outcome, a manual risk change
names its key and a resume of an ACTIVE agent is refused, re-adding an agent says nothing was done,
dead letters are counted by a reason code, and every JSON output names the unit of its money."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import unicodedata

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from messages.errors import ConfigError
from messages.escrow_msgs import CreateEscrow
from runtime.keyring import generate_key
from runtime.keys import Keys
from supervisor.cmd_schema import check_body
from supervisor.deployment import record_deployment
from supervisor.status import SUMMARY_CHARS, dead_reasons
from tests.supervisor.cli_helpers import DEAD_REDIS, clean_env, one_line_error, stop_up, treasury

NO_REDIS = clean_env(REDIS_URL=DEAD_REDIS)
"""Refused before Redis is reached: with nothing listening, nothing can have been published."""

PAY = ["cmd", "pay", "alice", "--to", "ag_abc123", "--amount", "5", "--description", "for the work"]
OPEN = ["trade", "open", "alice", "--coin", "BTC", "--side", "long", "--win-rate", "0.55", "--win-loss-ratio", "2",
        "--stop", "0.02", "--leverage", "2"]


def _with(argv: list[str], flag: str, value: str) -> list[str]:
    """`argv` with `flag`'s value replaced (or the flag added)."""
    out = list(argv)
    if flag in out:
        out[out.index(flag) + 1] = value
    else:
        out += [flag, value]
    return out


# ---------------------------------------------------------------- 7, 8, 9, 17: refused at the edge, in plain words


@pytest.mark.parametrize("argv, words", [
    (["cmd", "bet", "alice", "--game", "dice", "--threshold", "100"], "--threshold 100: must be between 1 and 99"),
    (["cmd", "bet", "alice", "--game", "dice", "--threshold", "0"], "--threshold 0: must be between 1 and 99"),
    (["cmd", "bet", "alice", "--game", "multiplier", "--target", "NaN"], "--target nan: must be between 1.01 and 1000"),
    (["cmd", "bet", "alice", "--game", "multiplier", "--target", "1"], "--target 1.0: must be between 1.01 and 1000"),
    (["cmd", "bet", "alice", "--fixed-stake", "0"], "--fixed-stake: '0' must be more than 0"),
    (["cmd", "bet", "alice", "--fixed-stake", "-1"], "--fixed-stake: -1 is negative; it must be positive"),
    (_with(PAY, "--description", "x"), "--description 'x': must be 3 to 200 characters"),
    (_with(PAY, "--description", "  ab  "), "--description ' ab ': must be 3 to 200 characters, at least 3 "
                                            "besides spaces at its ends"),
    (_with(PAY, "--description", "d" * 201), "--description is 201 characters: must be 3 to 200 characters"),
    (_with(PAY, "--description", "two\nlines"), "--description 'two\\nlines' holds control characters"),
    (_with(PAY, "--description", "esc\x1b[31mred"), "--description 'esc\\x1b[31mred' holds control characters"),
    (_with(PAY, "--description", "rtl\u202eoverride"), "holds control characters"),
    (_with(PAY, "--to", "not-an-id"), "--to 'not-an-id': must be a casino agent id: ag_ then letters and digits"),
    (_with(PAY, "--amount", "0"), "--amount: '0' must be more than 0"),
    (_with(PAY, "--amount", " 5"), "--amount: ' 5' has spaces around the number"),
    (["cmd", "release", "alice", "esc_abc", "--proof", "bell\x07"], "--proof 'bell\\x07' holds control characters"),
    (["cmd", "dispute", "alice", "not-esc", "--reason", "late"], "ESCROW_ID 'not-esc': must be an escrow id"),
    (["cmd", "move", "alice", "--from", "reserve", "--to", "casino", "--amount", "-3", "--reason", "r"],
     "--amount: -3 is negative; it must be positive"),
    (_with(OPEN, "--coin", ""), "--coin '': must be 1 to 32 of A-Z a-z 0-9 : _ -"),
    (_with(OPEN, "--win-loss-ratio", "-2"), "--win-loss-ratio -2: must be positive, in (0, ∞)"),
    (_with(OPEN, "--win-rate", "1"), "--win-rate 1: must be in (0, 1)"),
    (_with(OPEN, "--notional", "-3"), "--notional: -3 is negative; it must be positive"),
    (["agent", "add", "alice", "--capital", " 10"], "capital: ' 10' has spaces around the number"),
    (["agent", "add", "alice", "--capital", "10 "], "capital: '10 ' has spaces around the number"),
    (["journal", "archive", "--dir", "/nonexistent/a", "--older-than-days", "-1"],  # named "journal archive"
     "--older-than-days must not be negative"),
    (["watch", "--interval", "abc"], "--interval: 'abc' is not a number of seconds"),  # not argparse's type name
    (["watch", "--interval", "inf"], "--interval: inf is not a positive number of seconds up to 86400"),
    (["watch", "--interval", "1e999"], "--interval: 1e999 is not a positive number of seconds up to 86400"),
])
def test_bad_input_is_one_plain_line_before_anything_is_reached(argv, words):
    line = one_line_error(treasury(*argv, env=NO_REDIS))
    assert words in line, line
    assert "Expected `" not in line and "$." not in line  # no validation library's text
    sub = " ".join(a for a in argv[:2] if not a.startswith("-"))
    assert line.startswith(f"treasury {sub}: error: "), line


_CONTROL = ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")


@given(st.text(min_size=3, max_size=40))
def test_a_description_is_refused_exactly_when_it_holds_a_control_character_or_breaks_the_schema(text):
    # Oracle written from the rules: no character of a control/format/unassigned category; 3 to 200
    # characters with something visible (escrow_msgs.Description).
    control = any(unicodedata.category(c) in _CONTROL for c in text)
    fits = 3 <= len(text) <= 200 and any(not c.isspace() for c in text)
    try:
        check_body(CreateEscrow(counterparty="ag_x1", amount=1_000_000, description=text), {})
        refused = None
    except ConfigError as exc:
        refused = str(exc)
        assert "\n" not in refused and "Expected `" not in refused
    if control:
        assert refused is not None and "holds control characters" in refused
    elif fits:
        assert refused is None
    else:
        assert refused is not None and refused.startswith("--description ")


@pytest.mark.parametrize("argv, words", [
    (["kelly", "--win-prob", "1", "--net-odds", "1", "--bankroll", "100"], "--win-prob 1: must be strictly between"),
    (["kelly", "--win-prob", "0.6", "--net-odds", "1", "--bankroll", "0"], "bankroll: '0' must be more than 0"),
    (["demo", "--scenario", "daily-loss", "--list-scenarios"], "--list-scenarios names the scenarios and takes no"),
    (["agent", "add", "-dash", "--capital", "10"], "'-dash' starts with '-' so it was read as an option"),
])
def test_validation_agrees_across_commands(argv, words):
    assert words in one_line_error(treasury(*argv, env=NO_REDIS))


def test_trade_help_and_errors_state_the_same_ranges():
    helptext = " ".join(treasury("trade", "open", "--help", env=NO_REDIS).stdout.split())
    for flag, value, span in (("--win-rate", "1.5", "(0, 1)"), ("--win-loss-ratio", "0", "(0, ∞)"),
                              ("--take-profit-multiple", "1", "[2, ∞)")):
        assert span in helptext, (flag, helptext)
        line = one_line_error(treasury(*_with(OPEN, flag, value), env=NO_REDIS))
        assert line.endswith(f"must be in {span}"), line


# ---------------------------------------------------------------- 15: argparse errors name the subcommand


@pytest.mark.parametrize("argv, prog, extra", [
    (["cmd", "--frobnicate", "bet", "alice"], "treasury cmd bet", "--frobnicate"),
    (["cmd", "bet", "alice", "--stake", "2.5"], "treasury cmd bet", "--stake 2.5"),
    (["status", "--frob"], "treasury status", "--frob"),
    (["balances", "alice", "--frob"], "treasury balances", "--frob"),
    (["trade", "open", "alice", "--frob"], "treasury trade open", None),
    (["agent", "list", "--frob"], "treasury agent list", "--frob"),
])
def test_argument_errors_name_the_subcommand(argv, prog, extra):
    line = one_line_error(treasury(*argv, env=NO_REDIS))
    assert line.startswith(f"{prog}: error: "), line
    assert line.endswith(f"(see `{prog} --help`)")
    if extra:
        assert f"unrecognized arguments: {extra}" in line


# ---------------------------------------------------------------- refusals that need the deployment's policy


@pytest.mark.redis
@pytest.mark.parametrize("flag, value, words", [
    ("--timeout-hours", "0", "--timeout-hours 0: must be between 1 and 72 hours"),
    ("--timeout-hours", "-1", "--timeout-hours -1: must be between 1 and 72 hours"),
    ("--timeout-hours", "100000", "--timeout-hours 100000: must be between 1 and 72 hours"),
    ("--amount", "0.05", "--amount $0.05: the escrow service's minimum is $0.10"),
    ("--amount", "0.000001", "--amount $0.000001: the escrow service's minimum is $0.10"),  # not "$0.00"
])
def test_the_actors_limits_are_refused_before_publishing(flag, value, words, redis_url, prefix, rclient):
    keys = Keys(prefix, 8)
    record_deployment(rclient, keys, {}, "paper")
    rclient.sadd(keys.agents(), "alice")
    env = clean_env(REDIS_URL=redis_url, TREASURY_KEYS=generate_key("k", "operator").env_entry())
    line = one_line_error(treasury(*_with([*PAY[:1], "--prefix", prefix, *PAY[1:]], flag, value), env=env))
    assert line.startswith("treasury cmd pay: error: ") and words in line, line
    assert not list(rclient.scan_iter(match=f"{prefix}:*cmd*"))  # nothing published
    assert not rclient.exists(keys.events("alice"))  # nothing journaled


# ---------------------------------------------------------------- 20: dead letters by reason code


@pytest.mark.redis
def test_dead_letters_are_counted_by_a_reason_code_without_agent_names(redis_url, prefix, rclient):
    keys = Keys(prefix, 8)
    record_deployment(rclient, keys, {}, "paper")
    for agent in ("ghost", "phantom", "alice.b"):
        rclient.xadd(keys.dead(keys.shard(agent)), {"error": f"no trading credentials for agent {agent}",
                                                    "agent": agent, "role": "trading", "deliveries": 1})
    rclient.xadd(keys.dead(0), {"error": "ConfigError: no ledger for 'ghost'", "agent": "ghost", "role": "x"})
    assert dead_reasons(rclient, keys, list(range(8))) == {"no_trading_credentials": 3, "no_ledger": 1}
    proc = treasury("dead", "list", "--prefix", prefix, "--json", env=clean_env(REDIS_URL=redis_url))
    assert proc.returncode == 0, proc.stderr
    by_reason = json.loads(proc.stdout)["by_reason"]
    assert by_reason == {"no_trading_credentials": 3, "no_ledger": 1}
    assert not any(name in reason for reason in by_reason for name in ("ghost", "phantom", "alice"))


# ---------------------------------------------------------------- against a running deployment

ROLES = "casino,risk,rebalancer,reserve"


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    import redis

    from tests.conftest import REDIS_TEST_URL as redis_url

    tmp = tmp_path_factory.mktemp("deploy")
    prefix = f"clipolish{os.getpid()}"
    client = redis.Redis.from_url(redis_url)
    env = {**clean_env(REDIS_URL=redis_url), "TREASURY_DATA_DIR": str(tmp)}
    proc = subprocess.Popen([sys.executable, "-m", "supervisor.cli", "up", "--data-dir", str(tmp), "--roles", ROLES,
                             "--prefix", prefix, "--shard-count", "8"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while client.hlen(f"{prefix}:workers") < len(ROLES.split(",")):
            if proc.poll() is not None:
                raise AssertionError(f"treasury up exited: {proc.stderr.read()}")
            assert time.monotonic() < deadline, "treasury up did not start its workers"
            time.sleep(0.1)

        def run(*argv, timeout=120):
            where = ["--prefix", prefix]
            return treasury(*argv[:1], *([argv[1]] if argv[0] in ("agent", "trade") else []), *where,
                            *argv[2 if argv[0] in ("agent", "trade") else 1:], env=env, timeout=timeout)

        added = run("agent", "add", "alice", "--capital", "1000")
        assert "capital $1,000.00 allocated" in added.stdout, added.stderr
        yield run, client, Keys(prefix, 8), tmp
    finally:
        stop_up(proc)
        for key in client.scan_iter(match=f"{prefix}:*"):
            client.delete(key)


@pytest.mark.redis
def test_adding_an_existing_agent_says_plainly_that_nothing_was_done(deployment):
    run, client, keys, _ = deployment
    before = client.hgetall(keys.ledger("alice"))
    again = run("agent", "add", "alice", "--capital", "10")
    assert again.returncode == 0, again.stderr
    assert "alice exists already: nothing was done" in again.stdout and "allocated" not in again.stdout
    assert "onboarding" not in again.stderr and again.stdout.count("\n") == 1  # said first, and only that
    assert client.hgetall(keys.ledger("alice")) == before


@pytest.mark.redis
def test_wait_prints_the_whole_outcome_line(deployment):
    run, client, keys, _ = deployment
    reason = "a long operator note " * 12
    proc = run("cmd", "--wait", "--operator", "rebalance", "alice", "--reason", reason.strip())
    assert proc.returncode == 0, proc.stderr
    line = proc.stdout.strip()
    assert len(line.splitlines()) == 1 and not line.endswith("…")
    from runtime.journal import read_journal

    last = [e for e in read_journal(client, keys, "alice") if type(e.body).__name__.startswith("Rebalance")][-1]
    told = " ".join((getattr(last.body, "reason", "") or "").split())
    assert told and told in line  # the outcome's own reason, whole
    assert len(line) > SUMMARY_CHARS or len(told) < SUMMARY_CHARS


@pytest.mark.redis
def test_a_manual_risk_change_names_its_key_and_a_resume_of_an_active_agent_is_refused(deployment):
    run, client, keys, _ = deployment
    resumed = run("cmd", "--wait", "--json", "--operator", "resume", "alice", "--reason", "nothing to resume")
    assert resumed.returncode == 1, (resumed.stdout, resumed.stderr)
    data = json.loads(resumed.stdout)
    assert data["outcome"] == "CommandRefused" and "alice is already ACTIVE" in data["event"]["reason"]
    plain = run("cmd", "--wait", "--operator", "resume", "alice", "--reason", "again")
    assert plain.returncode == 1 and "already ACTIVE" in plain.stdout and "ACTIVE → ACTIVE" not in plain.stdout

    paused = run("cmd", "--wait", "--json", "pause", "alice", "--reason", "checking", "--until-resumed")
    assert paused.returncode == 0, paused.stderr
    data = json.loads(paused.stdout)
    assert data["event"]["breaker"] == f"key {data['key']}"
    back = run("cmd", "--wait", "--operator", "resume", "alice", "--reason", "checked")
    assert back.returncode == 0 and "PAUSED → ACTIVE by key " in back.stdout, back.stdout


# ---------------------------------------------------------------- 5: every JSON output names its units

MONEY_WORDS = frozenset({
    "total", "balance", "balances", "amount", "bucket", "buckets", "casino", "reserve", "trading", "referral",
    "staked", "paid", "pnl", "capital", "fee", "fees", "ledger", "venue", "flight", "transit", "held", "reserved",
    "locked", "available", "peak", "start", "margin", "notional", "bankroll", "cap", "stake", "payout",
    "collateral", "value", "budget", "risk", "income", "credited", "moved", "usd", "out", "wallet"})
TIME_WORDS = frozenset({"hours", "seconds", "wall", "at", "until", "created", "opened", "closed", "age", "uptime",
                        "time", "hold"})
COUNTS = frozenset({"agents_total"})
"""Number-valued keys that are counts, not money, whatever their words say (status: how many agents)."""
TEXT_MAPS = frozenset({"halted_buckets"})
AMOUNT_MAP_KEYS = frozenset({"reserve", "trading", "casino", "referral", "wallet", "reserved", "locked", "margin",
                             "in_transit", "unrealized"})
"""The keys of a map of amounts (by bucket, by silo, by held kind): such a map, even an empty one,
names its unit on itself (`held_micros`)."""
"""Maps whose values are text (bucket -> why it is halted), empty when nothing is halted."""
UNIT_SUFFIXES = ("_micros", "_bp", "_ms", "_units", "_hours", "_epoch_days", "_count")


def unlabelled(value, path: str = "", parent_unit: bool = False) -> list[str]:
    """Paths of number-valued keys that look like money or a time and name no unit (nor does their
    parent map, as in `balances_micros: {"casino": ...}`)."""
    bad = []
    if isinstance(value, dict):
        for k, v in value.items():
            key = str(k)
            unit = key.endswith(UNIT_SUFFIXES)
            numbers = isinstance(v, (int, float)) and not isinstance(v, bool)
            # a map of amounts (even an empty one: `held: {}`) names its unit on the map
            amounts = isinstance(v, dict) and key not in TEXT_MAPS and set(v) <= AMOUNT_MAP_KEYS \
                and all(isinstance(x, int) and not isinstance(x, bool) for x in v.values())
            if (numbers or amounts) and not unit and not parent_unit and key not in COUNTS:
                if set(key.lower().split("_")) & (MONEY_WORDS | TIME_WORDS):
                    bad.append(f"{path}.{key}")
            bad += unlabelled(v, f"{path}.{key}", unit or parent_unit)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            bad += unlabelled(v, f"{path}[{i}]", parent_unit)
    return bad


def test_the_unit_check_catches_what_it_should():
    assert unlabelled({"buckets": {"casino": 1}, "sizing": {"bankroll": 2}, "wall_seconds": 1.5,
                       "x": [{"hours": 24.0}]}) == [".buckets", ".buckets.casino", ".sizing.bankroll", ".wall_seconds",
                                                    ".x[0].hours"]
    assert unlabelled({"buckets": [{"held": {}}, {"held": {"margin": 5}}]}) == [".buckets[0].held", ".buckets[1].held",
                                                                                ".buckets[1].held.margin"]
    assert unlabelled({"balances_micros": {"casino": 1}, "hold_ms": 5, "placed": 3, "threshold_bp": 10,
                       "held_micros": {"reserve": {"in_transit": 2}}}) == []


def _json(proc) -> dict:
    assert proc.returncode in (0, 1), (proc.returncode, proc.stderr)
    return json.loads(proc.stdout)


@pytest.mark.redis
def test_every_json_output_names_the_unit_of_its_money(deployment, redis_url):
    run, client, keys, _ = deployment
    outputs = {
        "status": _json(run("status", "--json", "--no-probe")),
        "agent list": _json(run("agent", "list", "--json")),
        "balances": _json(run("balances", "alice", "--json")),
        "cmd --wait --json bet": _json(run("cmd", "--wait", "--json", "bet", "alice")),
        "kelly": _json(treasury("kelly", "--win-prob", "0.55", "--net-odds", "1", "--bankroll", "100", "--json",
                                env=NO_REDIS)),
        "demo": _json(treasury("demo", "--json", "--max-bets", "150", env=clean_env(REDIS_URL=redis_url),
                               timeout=300)),
        "demo --scenario": _json(treasury("demo", "--scenario", "reserve-floor", "--json",
                                          env=clean_env(REDIS_URL=redis_url), timeout=300)),
    }
    assert outputs["cmd --wait --json bet"]["event"]["sizing"]["bankroll_micros"] >= 0  # the refusal's sizing
    assert "buckets_micros" in outputs["demo"] and "balances_micros" in outputs["demo --scenario"]
    problems = {name: unlabelled(data) for name, data in outputs.items()}
    assert problems == {name: [] for name in outputs}


def test_status_escrow_times_are_epoch_ms():
    from supervisor.status_json import with_units

    out = with_units({"agents": [{"escrows": {"count": 1, "amount": 5, "items": [
        {"id": "esc_1", "amount": 5, "auto_release_at": "2026-01-02T09:00:00Z", "timeout_hours": 24}]}}]})
    item = out["agents"][0]["escrows"]["items"][0]
    assert item["auto_release_ms"] == 1_767_344_400_000 and item["auto_release_utc"] == "2026-01-02T09:00:00Z"
    assert "auto_release_at" not in item and unlabelled(out) == []


def test_event_bodies_are_labelled_from_their_schema():
    from messages.schema import CapitalAllocated
    from messages.trading_msgs import OrderRefused, TradeSizing
    from supervisor.status_json import label_message

    sizing = TradeSizing(win_rate="0.5", win_loss_ratio="2", full_fraction="0.25", applied_fraction="0.125",
                         bucket=5_000_000, risk=1_000, notional=9_000_000, margin=1, leverage=2, margin_capped=False,
                         reason="r")
    refused = label_message(OrderRefused(code="too_small", reason="r", sizing=sizing))
    assert {k: v for k, v in refused["sizing"].items() if k.endswith("_micros")} == {
        "bucket_micros": 5_000_000, "risk_micros": 1_000, "notional_micros": 9_000_000, "margin_micros": 1}
    allocated = label_message(CapitalAllocated(buckets={"casino": 3}, total=3))
    assert allocated == {"type": "CapitalAllocated", "buckets_micros": {"casino": 3}, "total_micros": 3}
    assert unlabelled(msgspec.to_builtins(refused)) == []


def test_status_held_amounts_name_their_unit_even_when_empty():
    from supervisor.status_json import with_units

    out = with_units({"agents": [{"buckets": [{"bucket": "reserve", "held": {}},
                                              {"bucket": "trading", "held": {"margin": 5_000_000}}]}]})
    buckets = out["agents"][0]["buckets"]
    assert [b["held_micros"] for b in buckets] == [{}, {"margin": 5_000_000}]
    assert not any("held" in b for b in buckets) and unlabelled(out) == []


# ---------------------------------------------------------------- an unknown agent: one line, exit 2, everywhere

UNKNOWN_AGENT_COMMANDS = [
    ["status", "--agent", "nosuch"],
    ["status", "--json", "--agent", "nosuch"],
    ["watch", "--agent", "nosuch"],
    ["balances", "nosuch"],
    ["reconcile", "nosuch"],
    ["trade", "list", "nosuch"],
    ["trade", "close", "nosuch", "pos1", "--reason", "done"],
    ["trade", *OPEN[1:2], "nosuch", *OPEN[3:]],
    ["dead", "list", "--agent", "nosuch"],
    ["journal", "archive", "--dir", "ARCHIVE", "--agent", "nosuch"],
    ["cmd", "bet", "nosuch"],
    ["cmd", "--operator", "move", "nosuch", "--from", "casino", "--to", "reserve", "--amount", "5", "--reason", "x"],
    ["cmd", "--operator", "adjust", "nosuch", "--bucket", "casino", "--amount", "5", "--reason", "x"],
    ["cmd", "pause", "nosuch", "--reason", "x", "--hours", "1"],
]


@pytest.mark.redis
@pytest.mark.parametrize("argv", UNKNOWN_AGENT_COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_an_unknown_agent_is_one_line_and_exit_2_in_every_command(argv, redis_url, prefix, rclient, tmp_path):
    keys = Keys(prefix, 8)
    record_deployment(rclient, keys, {}, "paper")
    rclient.sadd(keys.agents(), "alice")
    both = f'{generate_key("a", "agent").env_entry()},{generate_key("o", "operator").env_entry()}'
    env = clean_env(REDIS_URL=redis_url, TREASURY_KEYS=both)  # the right key for each: only the name is wrong
    argv = [a.replace("ARCHIVE", str(tmp_path)) for a in argv]
    at = 2 if argv[0] in ("trade", "dead", "journal") else 1
    line = one_line_error(treasury(*argv[:at], "--prefix", prefix, *argv[at:], env=env))
    assert "unknown agent 'nosuch'" in line and "treasury agent list" in line, line
    assert not list(rclient.scan_iter(match=f"{prefix}:*cmd*"))  # nothing published


@pytest.mark.parametrize("argv, words", [
    (["agent", "add-many", "/nonexistent/agents.json"],
     "agents file /nonexistent/agents.json: no such file or directory"),
    (["up", "--agents", "/nonexistent/agents.json", "--data-dir", "/nonexistent/d"],
     "agents file /nonexistent/agents.json: no such file or directory"),
    (["agent", "add", "bob", "--capital", "99999999999999"], "$99,999,999,999,999.00 is beyond the $1,000,000,000.00"),
])
def test_errors_are_readable_lines_with_units(argv, words):
    line = one_line_error(treasury(*argv, env=NO_REDIS))
    assert words in line and "Errno" not in line and "micro-USD" not in line, line
