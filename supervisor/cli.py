"""The `treasury` command line.

Every subcommand turns bad input into one line on stderr naming the bad value and a non-zero
exit, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys

from messages.errors import ConfigError, TreasuryError


def _cmd_kelly(args) -> int:
    from actors.kelly import kelly_stake
    from messages.money import format_usd, parse_usd

    bankroll = parse_usd(args.bankroll, field="bankroll")
    result = kelly_stake(args.win_prob, args.net_odds, bankroll, args.fraction, args.cap)
    data = {
        "win_prob": str(result.win_prob), "net_odds": str(result.net_odds),
        "full_kelly": f"{float(result.full_fraction):.6f}", "applied_fraction": f"{float(result.applied_fraction):.6f}",
        "bankroll": result.bankroll, "cap": result.cap, "stake": result.stake, "capped": result.capped,
        "refused": result.refused, "reason": result.reason,
    }
    if args.json:
        print(json.dumps(data))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Kelly sizing", show_header=False)
    table.add_row("win probability", f"{float(result.win_prob):.4f}")
    table.add_row("net odds (b)", f"{float(result.net_odds):.4f}")
    table.add_row("full Kelly f*", f"{float(result.full_fraction):+.4%}")
    table.add_row("applied fraction", f"{float(result.applied_fraction):.4%}")
    table.add_row("bankroll", format_usd(result.bankroll))
    table.add_row("cap", format_usd(result.cap))
    table.add_row("stake", f"[bold]{format_usd(result.stake)}[/bold]" + ("  (refused)" if result.refused else ""))
    table.add_row("why", result.reason)
    Console().print(table)
    return 0


def _cmd_demo(args) -> int:
    from supervisor.demo import run_demo
    from supervisor.demo_view import render_scenario, render_summary
    from supervisor.scenarios import SCENARIOS, list_scenarios, run_scenario

    if args.list_scenarios:
        for name, text in list_scenarios():
            print(f"{name:<22} {text}")
        return 0
    if args.scenario:
        if args.scenario not in SCENARIOS:
            raise ConfigError(f"unknown scenario {args.scenario!r}; `treasury demo --list-scenarios` names them")
        summary = run_scenario(args.scenario, seed=args.seed, record=args.record)
        if args.json:
            print(json.dumps(summary, sort_keys=True))
        else:
            render_scenario(summary)
        return 0

    summary = run_demo(seed=args.seed, max_bets=args.max_bets)
    if args.json:
        print(json.dumps(summary, sort_keys=True))
    else:
        render_summary(summary)
    return 0


def _cmd_sandbox(args, rest: list[str]) -> int:
    from sandbox.runner import main as sandbox_main

    return sandbox_main(rest)


def _find_running_deployment() -> None:
    """Point REDIS_URL at the Redis a running `treasury up` wrote down, when none is set."""
    import os

    from supervisor.deployment import DEFAULT_DATA_DIR, redis_url_file

    if os.environ.get("REDIS_URL"):
        return
    from pathlib import Path

    f = redis_url_file(Path(os.environ.get("TREASURY_DATA_DIR", DEFAULT_DATA_DIR)))
    if f.exists():
        os.environ["REDIS_URL"] = f.read_text().strip()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="treasury", description="Treasury manager for autonomous agents on Purple Flea."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="play a seeded session on the sandbox until a breaker fires")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--max-bets", type=int, default=1500)
    demo.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    demo.add_argument("--scenario", default=None, help="tell one breaker's or rebalancing rule's story")
    demo.add_argument("--list-scenarios", action="store_true", help="name the scenarios")
    demo.add_argument("--record", default=None, metavar="FILE",
                      help="with --scenario: run the roles in-process and write a replay record (.jsonl or .jsonl.gz)")

    kelly = sub.add_parser("kelly", help="the stake the Kelly policy would bet, and why")
    kelly.add_argument("--win-prob", required=True, help="probability of winning, in [0, 1]")
    kelly.add_argument("--net-odds", required=True, help="net odds b (> 0): a 1.99x payout is b = 0.99")
    kelly.add_argument("--bankroll", required=True, help="bankroll in USD, e.g. 150 or 150.25")
    kelly.add_argument("--fraction", default="half", help="full, half, quarter or a number in (0, 1]")
    kelly.add_argument("--cap", default="0.02", help="largest share of the bankroll per bet (default 0.02)")
    kelly.add_argument("--json", action="store_true")

    sub.add_parser("sandbox", help="run the local sandbox venue (see `treasury sandbox --help`)", add_help=False)

    from supervisor.commands import add_cmd_arguments
    from supervisor.status_view import add_status_arguments
    from supervisor.up import add_up_arguments
    from supervisor.watch import add_watch_arguments

    add_up_arguments(sub.add_parser("up", help="run a deployment: Redis, the venue (sandbox in paper mode), workers"))
    add_cmd_arguments(sub.add_parser("cmd", help="publish a signed command (bet, pause, resume, pay, ...)"))
    agent = sub.add_parser("agent", help="manage the agents of a deployment")
    agent_sub = agent.add_subparsers(dest="agent_cmd", required=True)
    add = agent_sub.add_parser("add", help="register an agent and allocate its capital")
    add.add_argument("name")
    add.add_argument("--capital", required=True, help="USD")
    add.add_argument("--redis-url", default=None)
    add.add_argument("--prefix", default="tr")
    agent_sub.add_parser("list", help="the agents of the deployment").add_argument("--prefix", default="tr")
    keys_p = sub.add_parser("keys", help="command signing keys")
    keys_sub = keys_p.add_subparsers(dest="keys_cmd", required=True)
    new = keys_sub.add_parser("new", help="create a key and add it to a key file")
    new.add_argument("--id", required=True)
    new.add_argument("--scope", choices=["agent", "operator"], default="agent")
    new.add_argument("--file", required=True)
    from supervisor.balances_cli import add_balances_arguments

    add_balances_arguments(sub.add_parser("balances", help="an agent's money across the chains, in USD"))
    add_status_arguments(sub.add_parser("status", help="buckets, risk, escrows, positions, events and workers"))
    add_watch_arguments(sub.add_parser("watch", help="the status, live"))
    from supervisor.replay_cli import add_replay_arguments

    add_replay_arguments(sub.add_parser("replay", help="play a recorded run back through the real actors"))
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    _find_running_deployment()
    parser = build_parser()
    if argv and argv[0] == "sandbox":
        return _cmd_sandbox(None, argv[1:])
    args = parser.parse_args(argv)
    try:
        if args.command == "kelly":
            return _cmd_kelly(args)
        if args.command == "demo":
            return _cmd_demo(args)
        if args.command == "replay":
            from supervisor.replay_cli import replay_main

            return replay_main(args)
        if args.command == "up":
            from supervisor.up import up_main

            return up_main(args)
        if args.command == "cmd":
            from supervisor.commands import cmd_main

            return cmd_main(args)
        if args.command == "agent":
            from supervisor.agents_cli import agent_main

            return agent_main(args)
        if args.command == "keys":
            from runtime.keyring import add_key_to_file, generate_key

            add_key_to_file(args.file, generate_key(args.id, args.scope))
            print(f"added {args.scope} key {args.id} to {args.file}")
            return 0
        if args.command == "balances":
            from supervisor.balances_cli import balances_main

            return balances_main(args)
        if args.command == "status":
            from supervisor.status_view import status_main

            return status_main(args)
        if args.command == "watch":
            from supervisor.watch import watch_main

            return watch_main(args)
    except TreasuryError as exc:
        print(f"treasury {args.command}: error: {exc}", file=sys.stderr)
        return 2
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
