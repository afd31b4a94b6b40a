"""`treasury cmd ...`: publish a signed command to Redis, as any other program may.

Each subcommand builds one typed message, wraps it in an envelope, signs it with a key from the
deployment's keyring (the agent key unless `--operator` or `--key-id` names another;
`supervisor/key_choice.py`) and XADDs it to the role's
command stream of the agent's shard (the role and the scope come from `messages/catalogue.py`).
Every value is checked before anything is published (`supervisor/cmd_checks.py`: flags, free text,
the actors' minimums against the agent's effective policy; `supervisor/cmd_schema.py`: the message
schema, its refusals in plain words), each refusal one line and exit 2.
`--wait` follows the agent's journal until the command's terminal event, as the catalogue names
them, and prints it as one line (`--json`: the event as JSON, money fields named `*_micros`).
Exit codes with `--wait`: 0 done, 1 refused, rejected or failed (the reason is printed), 3 no
outcome in time (`supervisor/outcome.py`).
"""

from __future__ import annotations

import argparse
import json
import sys

from actors.policy.effective import effective_policy, read_overrides
from messages.catalogue import facts_for
from messages.codec import FIELD, decode, encode
from messages.envelope import random_ids, wrap
from messages.errors import ConfigError
from messages.money import parse_positive_usd
from messages.schema import CoinFlip, Dice, Multiplier, PlaceBet, RetrySpend, SetRisk
from runtime.clock import SystemClock
from runtime.journal import JournalFollower
from runtime.signing import required_scope_for, sign
from supervisor.cli_common import (
    add_deployment_arguments,
    connect,
    data_dir_path,
    positive_float,
    require_agent,
    safe_text,
)
from supervisor.cmd_checks import (
    FIELD_FLAGS,
    check_against_ledger,
    check_against_policy,
    check_cmd_args,
    check_policy_settings,
    check_trade,
)
from supervisor.cmd_schema import check_body
from supervisor.deployment import load_keyring
from supervisor.key_choice import add_key_arguments, pick_key
from supervisor.outcome import EXIT_DONE, EXIT_NO_OUTCOME, EXIT_NOT_DONE, describe, wait_outcome
from supervisor.status_json import label_message


def _bet(a):
    if a.game == "coin_flip":
        game = CoinFlip(side=a.side)
    elif a.game == "dice":
        game = Dice(direction=a.direction, threshold=a.threshold)
    else:
        game = Multiplier(target=a.target)
    fixed = parse_positive_usd(a.fixed_stake, field="--fixed-stake") if a.fixed_stake is not None else None
    return PlaceBet(game=game, win_prob=a.win_prob, kelly=a.kelly, fixed_stake=fixed)


MAX_PAUSE_HOURS = 30 * 24
"""The longest pause with an end, in hours (RiskGuard enforces the same 30 days)."""


def pause_hours(text: str) -> float:
    """`--hours`: a finite number of hours, more than 0 and at most 720 (30 days); else `ConfigError`
    (a one-line error at the CLI)."""
    import math

    try:
        hours = float(text)
    except ValueError:
        raise ConfigError(f"--hours must be a number of hours, got {text!r}") from None
    if not math.isfinite(hours) or hours <= 0 or hours > MAX_PAUSE_HOURS:
        raise ConfigError(f"--hours must be more than 0 and at most {MAX_PAUSE_HOURS} (30 days), got {text!r}; "
                          f"use --until-resumed for a pause with no end")
    return hours


def _risk(state):
    def build(a):
        until = None
        if state == "PAUSED":
            if (a.hours is None) == (not a.until_resumed):
                raise ConfigError("pause needs exactly one of --hours H (ends by itself) and --until-resumed")
            if a.hours is not None:
                until = SystemClock().now_ms() + max(1, round(pause_hours(a.hours) * 3_600_000))
        return SetRisk(state=state, reason=a.reason, until_ms=until)
    return build


def _resume_bucket(a):
    from messages.schema import ResumeBucket

    return ResumeBucket(bucket=a.bucket, reason=a.reason)


def _pay(a):
    from messages.escrow_msgs import CreateEscrow

    return CreateEscrow(counterparty=a.to, amount=parse_positive_usd(a.amount, field="--amount"),
                        description=a.description, timeout_hours=a.timeout_hours)


def _release(a):
    from messages.escrow_msgs import ReleaseEscrow

    return ReleaseEscrow(escrow_id=a.escrow_id, proof=a.proof)


def _dispute(a):
    from messages.escrow_msgs import DisputeEscrow

    return DisputeEscrow(escrow_id=a.escrow_id, reason=a.reason)


def _rebalance(a):
    from messages.treasury_msgs import Rebalance

    return Rebalance(trigger="operator", reason=a.reason)


def _set_policy(a):
    from messages.treasury_msgs import SetPolicy

    return SetPolicy(settings=a.checked_settings)


def _retry(a):
    return RetrySpend(message_id=a.message_id)


def add_cmd_arguments(p: argparse.ArgumentParser) -> None:
    add_deployment_arguments(p)
    add_key_arguments(p)
    p.add_argument("--wait", action="store_true",
                   help="wait for the command's outcome and print it; exit 0 done, 1 refused, rejected or failed, "
                        "3 no outcome within --timeout")
    p.add_argument("--timeout", type=positive_float, default=30.0, help="seconds --wait waits (default 30)")
    p.add_argument("--json", action="store_true", help="one JSON object (money in integer micro-USD, times in *_ms)")
    sub = p.add_subparsers(dest="cmd", required=True)

    bet = sub.add_parser("bet", help="size and place one casino bet")
    bet.add_argument("agent", help="the agent\'s name")
    bet.add_argument("--game", choices=["coin_flip", "dice", "multiplier"], default="coin_flip",
                     help="the casino game (default coin_flip)")
    bet.add_argument("--side", choices=["heads", "tails"], default=None, help="coin_flip only (default heads)")
    bet.add_argument("--direction", choices=["over", "under"], default=None, help="dice only (default over)")
    bet.add_argument("--threshold", type=int, default=None, help="dice only: 1 to 99 (default 50)")
    bet.add_argument("--target", type=float, default=None,
                     help="multiplier only, required there: the payout multiple, 1.01 to 1000")
    bet.add_argument("--win-prob", type=float, default=None,
                     help="your own estimate of the chance to win, strictly between 0 and 1")
    bet.add_argument("--kelly", default="half",
                     help="share of full Kelly: full, half, quarter or a number in (0, 1] (default half)")
    bet.add_argument("--fixed-stake", default=None, help="USD: bet this amount even with no edge (the bet cap applies)")
    bet.set_defaults(build=_bet)

    for name, state, text in (("pause", "PAUSED", "pause all spending"), ("halt", "HALTED", "halt for manual review"),
                              ("resume", "ACTIVE", "resume spending (operator key, whatever the state)")):
        s = sub.add_parser(name, help=text)
        s.add_argument("agent", help="the agent\'s name")
        s.add_argument("--reason", required=True, help="why, for the journal: some text, at most 1 kB")
        if name == "pause":
            s.add_argument("--hours", default=None,
                           help=f"resume by itself after this long (more than 0, at most {MAX_PAUSE_HOURS})")
            s.add_argument("--until-resumed", action="store_true",
                           help="no end: only a resume (operator key) lifts it")
        s.set_defaults(build=_risk(state))

    lift = sub.add_parser("resume-bucket", help="lift a bucket's halt, e.g. trading after its drawdown breaker "
                                               "(operator key); its next drawdown is measured from here")
    lift.add_argument("agent", help="the agent\'s name")
    lift.add_argument("--bucket", required=True, choices=["reserve", "trading", "casino", "referral"],
                      help="the halted bucket (`treasury status` shows which)")
    lift.add_argument("--reason", required=True, help="why, for the journal: some text, at most 1 kB")
    lift.set_defaults(build=_resume_bucket)

    pay = sub.add_parser("pay", help="pay another agent through escrow")
    pay.add_argument("agent", help="the agent\'s name")
    pay.add_argument("--to", required=True, help="the counterparty's casino agent id (ag_...)")
    pay.add_argument("--amount", required=True, help="USD, plain ASCII decimal, e.g. 12.50")
    pay.add_argument("--description", required=True,
                     help="what the payment is for: 3 to 200 characters, at least 3 besides spaces at its ends")
    pay.add_argument("--timeout-hours", type=int, default=24, help="hours before the escrow expires (default 24)")
    pay.set_defaults(build=_pay)

    release = sub.add_parser("release", help="release an escrow with proof of delivery")
    release.add_argument("agent", help="the agent\'s name")
    release.add_argument("escrow_id", help="the escrow's id (esc_...), as `treasury status` shows it")
    release.add_argument("--proof", required=True, help="proof of delivery, some text")
    release.set_defaults(build=_release)

    dispute = sub.add_parser("dispute", help="dispute an escrow")
    dispute.add_argument("agent", help="the agent\'s name")
    dispute.add_argument("escrow_id", help="the escrow's id (esc_...), as `treasury status` shows it")
    dispute.add_argument("--reason", required=True, help="why, some text, at most 1 kB")
    dispute.set_defaults(build=_dispute)

    rebalance = sub.add_parser("rebalance", help="rebalance the buckets now (operator key)")
    rebalance.add_argument("agent", help="the agent\'s name")
    rebalance.add_argument("--reason", default="operator request", help="why, at most 1 kB")
    rebalance.set_defaults(build=_rebalance)

    retry = sub.add_parser("retry", help="retry a dead-lettered spend whose funds are still reserved (operator key)")
    retry.add_argument("agent", help="the agent\'s name")
    retry.add_argument("message_id", help="the dead-lettered command's message id (`treasury dead list`)")
    retry_roles = facts_for(RetrySpend).roles
    retry.add_argument("--role", default=retry_roles[0], choices=retry_roles,
                       help=f"the role whose spend it was (default {retry_roles[0]})")
    retry.set_defaults(build=_retry)

    policy = sub.add_parser("set-policy", help="change policy settings (operator key)")
    policy.add_argument("agent", help="the agent\'s name")
    policy.add_argument("settings", nargs="+", metavar="NAME=VALUE",
                        help="Policy names; units as the name says: *_bp basis points, *_ms milliseconds, "
                             "*_hours hours, money (min_move, referral_reinvest_threshold) in USD, e.g. min_move=12.50")
    policy.set_defaults(build=_set_policy)

    from supervisor.reconcile_cli import add_silo_commands

    add_silo_commands(sub)


def _role(body, args: argparse.Namespace) -> str:
    """The stream the command goes to: the catalogue's role (a retry goes to the role the operator named)."""
    if isinstance(body, RetrySpend):
        return args.role
    return facts_for(body).role_for(body)


def _what(body, policy) -> str:
    """What a sent escrow will do, for the `sent ...` line: the counterparty is paid net of the fee."""
    from messages.escrow_msgs import CreateEscrow

    if not isinstance(body, CreateEscrow):
        return ""
    from actors.policy.buckets import bp_text
    from actors.policy.escrow_rules import escrow_fee
    from messages.money import format_usd_exact

    fee = escrow_fee(body.amount, policy.escrow_fee_bp)  # sub-cent figures shown exactly, so the three add up
    return (f": {format_usd_exact(body.amount)} to lock; once released {safe_text(body.counterparty)} gets "
            f"{format_usd_exact(body.amount - fee)}, net of the escrow service's {bp_text(policy.escrow_fee_bp)} fee "
            f"({format_usd_exact(fee)})")


def cmd_main(args: argparse.Namespace) -> int:
    """Check, sign and publish one command (see the module docstring); every refusal of bad input
    comes before anything is published: as `ConfigError` (one line, exit 2)."""
    check_cmd_args(args)
    body = None
    if args.cmd != "set-policy":  # set-policy is checked against the stored overrides, so after connecting
        body = args.build(args)
        check_body(body, FIELD_FLAGS)  # the message schema, in plain words, before Redis is reached
    dep = connect(args)
    client, keys = dep.client, dep.keys
    if body is None:
        args.checked_settings = check_policy_settings(args.settings, read_overrides(client, keys, args.agent))
        body = args.build(args)
        check_body(body, FIELD_FLAGS)
    policy = effective_policy(client, keys, args.agent)
    check_against_policy(body, policy)
    role = _role(body, args)
    now = SystemClock().now_ms()
    envelope = wrap(body, agent=args.agent, now_ms=now, new_id=random_ids())
    decode(encode(envelope))  # validate here, as a worker would: a bad value is refused before it is sent
    key = pick_key(load_keyring(data_dir_path(args.data_dir)), required_scope_for(body), args.key_id, what=args.cmd)
    require_agent(client, keys, args.agent)
    check_against_ledger(body, client, keys, args.agent, policy)  # what the balances allow, then the venue's lists
    if args.command == "trade":
        check_trade(body, client, keys, args.agent, dep.venues)
    envelope = sign(envelope, key, now_ms=now)
    follower = JournalFollower(client, keys, args.agent)
    follower.last_id = client.xinfo_stream(keys.events(args.agent))["last-generated-id"] \
        if client.exists(keys.events(args.agent)) else b"0-0"
    entry = client.xadd(keys.agent_commands(args.agent, role), {FIELD: encode(envelope)})
    sent = {"sent": envelope.type, "id": envelope.id, "agent": args.agent, "role": role, "entry": entry.decode(),
            "key": key.key_id}
    if not args.wait:
        print(json.dumps(sent) if args.json
              else f"sent {envelope.type} {envelope.id} to {role} (signed by {key.key_id}){_what(body, policy)}")
        return EXIT_DONE
    outcome = wait_outcome(follower, envelope, args.timeout)
    if outcome is None:
        print(f"treasury cmd: no outcome for {envelope.id} within {args.timeout:g} s (it stays queued)",
              file=sys.stderr)
        return EXIT_NO_OUTCOME
    if args.json:
        print(json.dumps({**sent, "outcome": type(outcome.event.body).__name__, "kind": outcome.kind,
                          "event": label_message(outcome.event.body)}))
    else:
        print(f"{envelope.type} {envelope.id}: {safe_text(describe(outcome))}")
    return EXIT_DONE if outcome.done else EXIT_NOT_DONE
