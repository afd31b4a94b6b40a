"""`treasury reconcile AGENT [--json]` and the `treasury cmd move|park|adjust` builders.

`reconcile` reads every silo's balance at its venue (an unreadable one is `unknown`, never 0),
compares it with what the ledger says the silo holds (in-flight transfers shown apart), journals
the result as `ReconciliationChecked` and raises an alert on `<prefix>:alerts` for a difference
above the tolerance. It changes no balance: a difference is settled by an operator with
`treasury cmd --operator adjust AGENT --bucket B --amount USD --reason ...`, which is
journaled with its reason. Exit status: 0 when every silo matches, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys

from messages.money import format_usd, parse_positive_usd, parse_usd


def add_reconcile_arguments(p: argparse.ArgumentParser) -> None:
    from supervisor.cli_common import add_deployment_arguments

    p.add_argument("agent", help="the agent's name")
    p.add_argument("--tolerance", default="0.01", help="USD; a larger difference is an alert (default 0.01)")
    add_deployment_arguments(p)
    p.add_argument("--json", action="store_true",
                   help="one JSON object: money in *_micros (integer micro-USD), unknown balances as null")


def reconcile_main(args: argparse.Namespace) -> int:
    import msgspec

    from actors.silo.reconcile import describe, reconcile
    from actors.silo.venues import AgentVenues
    from messages.base import validate_agent_id
    from messages.envelope import random_ids, wrap
    from runtime.atomic import AtomicSteps
    from runtime.clock import SystemClock
    from supervisor.cli_common import connect, require_agent

    validate_agent_id(args.agent)
    tolerance = parse_usd(args.tolerance, field="tolerance")
    dep = connect(args)
    client, keys, venues, mode = dep.client, dep.keys, dep.venues, dep.mode
    require_agent(client, keys, args.agent)
    silo_venues = AgentVenues(client, keys, args.agent, venues, paper=mode == "paper")
    try:
        checked = reconcile(client, keys, args.agent, silo_venues, tolerance=tolerance, reason="treasury reconcile")
    finally:
        silo_venues.close()
    now = SystemClock().now_ms()
    steps = AtomicSteps(client, keys)
    commit = steps.new_commit(args.agent)
    event = wrap(checked, agent=args.agent, now_ms=now, new_id=random_ids())
    commit.emit(keys.events(args.agent), event)
    steps.commit(commit, event.id, now)
    if checked.alerted:
        diffs = ", ".join(f"{c.silo} {format_usd(c.difference_micros)}" for c in checked.silos if c.status == "differs")
        alert = {"at_ms": now, "role": "reconcile", "agent": args.agent, "subject": "reconciliation",
                 "reason": f"venue and ledger differ beyond {format_usd(tolerance)}: {diffs}"}
        client.xadd(f"{keys.prefix}:alerts", {"alert": json.dumps(alert)}, maxlen=10_000, approximate=True)
    if args.json:
        data = msgspec.to_builtins(checked)
        data.pop("type", None)
        data["agent"] = args.agent
        print(json.dumps(data, sort_keys=True))
    else:
        print(f"{args.agent}: {'clean' if checked.clean else 'NOT clean'} (tolerance {format_usd(tolerance)})")
        for line in describe(checked):
            print("  " + line)
        if not checked.clean:
            print("  nothing was changed; an operator settles a difference with "
                  "`treasury cmd --operator adjust AGENT --bucket B --amount USD --reason ...`", file=sys.stderr)
    return 0 if checked.clean else 1


# ---------------------------------------------------------------- `treasury cmd move|adjust`


def _move(a):
    from messages.silo_msgs import MoveFunds

    if a.source == a.dest:
        from messages.errors import ConfigError

        raise ConfigError(f"--from and --to are both {a.source}: a move needs two buckets")
    return MoveFunds(source=a.source, dest=a.dest, amount=parse_positive_usd(a.amount, field="--amount"),
                     reason=a.reason)


def _adjust(a):
    from messages.silo_msgs import AdjustLedger

    amount = parse_usd(a.amount, field="--amount", allow_negative=True)
    if amount == 0:
        from messages.errors import ConfigError

        raise ConfigError("--amount 0 adjusts nothing")
    return AdjustLedger(bucket=a.bucket, amount=amount, reason=a.reason)


def _park(a):
    from messages.silo_msgs import PlaceFunds

    return PlaceFunds(bucket="reserve", silo=a.silo, amount=parse_positive_usd(a.amount, field="--amount"),
                      reason=a.reason)


BUCKET_CHOICES = ["reserve", "trading", "casino", "referral"]


def add_silo_commands(sub) -> None:
    """The `move`, `park` and `adjust` subcommands of `treasury cmd` (each needs the operator key)."""
    move = sub.add_parser("move", help="move money between buckets, physically across silos (operator key)")
    move.add_argument("agent", help="the agent's name")
    move.add_argument("--from", dest="source", required=True, choices=BUCKET_CHOICES, help="the bucket money leaves")
    move.add_argument("--to", dest="dest", required=True, choices=BUCKET_CHOICES, help="the bucket money enters")
    move.add_argument("--amount", required=True, help="USD, e.g. 100 or 12.50")
    move.add_argument("--reason", required=True, help="why, for the journal: some text, at most 1 kB")
    move.set_defaults(build=_move)

    park = sub.add_parser("park", help="park reserve money in the casino balance, where escrows are funded from, "
                                       "or bring it home with --silo wallet (operator key)")
    park.add_argument("agent", help="the agent's name")
    park.add_argument("--silo", required=True, choices=["casino", "wallet"],
                      help="casino: park reserve money there; wallet: bring parked money home")
    park.add_argument("--amount", required=True, help="USD, e.g. 100 or 12.50")
    park.add_argument("--reason", required=True, help="why, for the journal: some text, at most 1 kB")
    park.set_defaults(build=_park)

    adjust = sub.add_parser("adjust", help="settle a reconciliation difference in a bucket (operator key)")
    adjust.add_argument("agent", help="the agent's name")
    adjust.add_argument("--bucket", required=True, choices=BUCKET_CHOICES, help="the bucket to correct")
    adjust.add_argument("--amount", required=True, help="USD to add, negative to take away (e.g. -25)")
    adjust.add_argument("--reason", required=True, help="why, for the journal: some text, at most 1 kB")
    adjust.set_defaults(build=_adjust)
