"""The `treasury` command line.

Every subcommand turns bad input into one line on stderr naming the bad value and a non-zero
exit, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys

from messages.errors import ConfigError
from supervisor.cli_common import EXPECTED_ERRORS, OneLineParser, positive_int, report_error


def _cmd_kelly(args) -> int:
    from actors.kelly import kelly_stake
    from messages.money import format_usd, parse_positive_usd
    from supervisor.cmd_checks import kelly_fraction

    bankroll = parse_positive_usd(args.bankroll, field="bankroll")
    result = kelly_stake(args.win_prob, args.net_odds, bankroll, kelly_fraction(args.fraction, "--fraction"),
                         args.cap)
    if not 0 < result.win_prob < 1:  # the same rule as `cmd bet --win-prob` (supervisor.cmd_checks.check_bet)
        raise ConfigError(f"--win-prob {args.win_prob}: must be strictly between 0 and 1 (a certain bet is no "
                          f"estimate)")
    data = {
        "win_prob": str(result.win_prob), "net_odds": str(result.net_odds),
        "full_kelly": f"{float(result.full_fraction):.6f}", "applied_fraction": f"{float(result.applied_fraction):.6f}",
        "bankroll_micros": result.bankroll, "cap_micros": result.cap, "stake_micros": result.stake,
        "capped": result.capped, "refused": result.refused, "reason": result.reason,
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
    from supervisor.status_json import label_units

    if args.list_scenarios and args.scenario:
        raise ConfigError("--list-scenarios names the scenarios and takes no --scenario; give one or the other")
    if args.list_scenarios:
        for name, text in list_scenarios():
            print(f"{name:<22} {text}")
        return 0
    if args.scenario:
        if args.scenario not in SCENARIOS:
            raise ConfigError(f"unknown scenario {args.scenario!r}; `treasury demo --list-scenarios` names them")
        summary = run_scenario(args.scenario, seed=args.seed, record=args.record)
        if args.json:
            print(json.dumps(label_units(summary), sort_keys=True))
        else:
            render_scenario(summary)
        return 0

    summary = run_demo(seed=args.seed, max_bets=args.max_bets)
    if args.json:
        print(json.dumps(label_units(summary), sort_keys=True))
    else:
        render_summary(summary)
    return 0


def _cmd_sandbox(args, rest: list[str]) -> int:
    from sandbox.runner import main as sandbox_main

    return sandbox_main(rest)


def _cmd_keys(args) -> int:
    from supervisor.keys_cli import keys_main

    return keys_main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="treasury", description="Treasury manager for autonomous agents on Purple Flea.")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="play a seeded session on the sandbox until a breaker fires")
    demo.add_argument("--seed", type=int, default=7, help="random seed, an integer (default 7)")
    demo.add_argument("--max-bets", type=positive_int, default=1500, help="bets at most (default 1500)")
    demo.add_argument("--json", action="store_true",
                      help="print the summary as one JSON object (money in *_micros, integer micro-USD)")
    demo.add_argument("--scenario", default=None, help="tell one breaker's or rebalancing rule's story")
    demo.add_argument("--list-scenarios", action="store_true", help="name the scenarios")
    demo.add_argument("--record", default=None, metavar="FILE",
                      help="with --scenario: run the roles in-process and write a replay record (.jsonl or .jsonl.gz)")

    kelly = sub.add_parser("kelly", help="the stake the Kelly policy would bet, and why")
    kelly.add_argument("--win-prob", required=True, help="probability of winning, strictly between 0 and 1")
    kelly.add_argument("--net-odds", required=True,
                       help="net odds b, in [0.000001, 1000000]: a 1.99x payout is b = 0.99")
    kelly.add_argument("--bankroll", required=True,
                       help="bankroll in USD, more than 0, plain ASCII decimal, e.g. 150 or 150.25")
    kelly.add_argument("--fraction", default="half",
                       help="share of full Kelly: full, half, quarter or a number in (0, 1] (default half)")
    kelly.add_argument("--cap", default="0.02", help="largest share of the bankroll per bet, in (0, 1] (default 0.02)")
    kelly.add_argument("--json", action="store_true", help="one JSON object; money in *_micros (integer micro-USD)")

    sub.add_parser("sandbox", help="run the local sandbox venue (see `treasury sandbox --help`)", add_help=False)

    from supervisor.agents_cli import add_agent_arguments
    from supervisor.alerts_cli import add_alerts_arguments
    from supervisor.balances_cli import add_balances_arguments
    from supervisor.commands import add_cmd_arguments
    from supervisor.dead_cli import add_dead_arguments
    from supervisor.keys_cli import add_keys_arguments
    from supervisor.status_view import add_status_arguments
    from supervisor.trade_cli import add_trade_arguments
    from supervisor.up import add_up_arguments
    from supervisor.watch import add_watch_arguments

    add_up_arguments(sub.add_parser("up", help="run a deployment: Redis, the venue (sandbox in paper mode), workers"))
    add_cmd_arguments(sub.add_parser("cmd", help="publish a signed command (bet, pause, resume, pay, ...)"))
    add_agent_arguments(sub.add_parser("agent", help="add and list the agents of a deployment"))
    add_trade_arguments(sub.add_parser("trade", help="open and close positions, list them"))
    add_keys_arguments(sub.add_parser("keys", help="command signing keys: new, rotate, revoke, list"))
    add_balances_arguments(sub.add_parser("balances", help="an agent's money across the chains, in USD"))
    add_status_arguments(sub.add_parser("status", help="risk, buckets, escrows, positions, workers, dead letters"))
    add_watch_arguments(sub.add_parser("watch", help="the status, live"))
    add_dead_arguments(sub.add_parser("dead", help="the dead-letter streams: list, show, retry, drop"))
    add_alerts_arguments(sub.add_parser("alerts", help="the deployment's alerts (escalations, halts)"))
    from supervisor.replay_cli import add_replay_arguments

    add_replay_arguments(sub.add_parser("replay", help="play a recorded run back through the real actors"))
    from supervisor.reconcile_cli import add_reconcile_arguments

    add_reconcile_arguments(sub.add_parser("reconcile", help="every silo's venue balance against the ledger"))
    from supervisor.journal_cli import add_journal_arguments

    add_journal_arguments(sub.add_parser("journal", help="archive old journal entries to files (explicit step)"))
    return parser


HANDLERS = {
    "kelly": _cmd_kelly,
    "demo": _cmd_demo,
    "up": "supervisor.up:up_main",
    "cmd": "supervisor.commands:cmd_main",
    "agent": "supervisor.agents_cli:agent_main",
    "trade": "supervisor.trade_cli:trade_main",
    "keys": "supervisor.keys_cli:keys_main",
    "balances": "supervisor.balances_cli:balances_main",
    "status": "supervisor.status_view:status_main",
    "watch": "supervisor.watch:watch_main",
    "dead": "supervisor.dead_cli:dead_main",
    "alerts": "supervisor.alerts_cli:alerts_main",
    "replay": "supervisor.replay_cli:replay_main",
    "reconcile": "supervisor.reconcile_cli:reconcile_main",
    "journal": "supervisor.journal_cli:journal_main",
}


def _handler(command: str):
    target = HANDLERS[command]
    if callable(target):
        return target
    import importlib

    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand. Expected failures (bad input, no deployment, Redis unreachable, a file
    that cannot be written) are one line on stderr and exit 2; no traceback."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "sandbox":
        return _cmd_sandbox(None, argv[1:])
    parser = build_parser()
    args = parse_args(parser, argv)
    _pipe_errors_reach_main()
    try:
        return _handler(args.command)(args)
    except BrokenPipeError:
        return _reader_gone()
    except EXPECTED_ERRORS as exc:
        return report_error(_command_name(args), _describe(exc))
    except KeyboardInterrupt:
        return 130


def _raise_broken_pipe(console) -> None:
    raise BrokenPipeError(32, "Broken pipe")


def _pipe_errors_reach_main() -> None:
    """rich's consoles exit 1 on a broken pipe (`Console.on_broken_pipe`, the hook rich documents
    for changing that); every command's consoles hand it to `main` instead, which exits 141."""
    from rich.console import Console

    Console.on_broken_pipe = _raise_broken_pipe  # type: ignore[method-assign]


def _reader_gone() -> int:
    """The reader of our output went away (`treasury watch | head`): stop quietly, as `yes | head`
    does. Standard output is pointed at /dev/null so the interpreter's last flush cannot fail
    again; the exit code is 141 (128 + SIGPIPE), what a shell reports for a process that pipe killed."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return EXIT_BROKEN_PIPE


EXIT_BROKEN_PIPE = 141


def parse_args(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """`parser.parse_args`, but an unknown argument is reported by the subcommand it was given to
    (`treasury cmd bet: error: unrecognized arguments: --stake 2.5`), not by `treasury`."""
    OneLineParser.argv = list(argv)
    args, extra = parser.parse_known_args(argv)
    if extra:
        chosen_parser(parser, args).error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def chosen_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The deepest subcommand parser `args` went through (`treasury cmd bet`'s for `cmd ... bet ...`)."""
    while True:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        name = getattr(args, subs[0].dest, None) if subs else None
        if name is None or name not in subs[0].choices:
            return parser
        parser = subs[0].choices[name]


def _command_name(args) -> str:
    sub = getattr(args, "agent_cmd", None) or getattr(args, "keys_cmd", None) or getattr(args, "dead_cmd", None) \
        or getattr(args, "trade_cmd", None) or getattr(args, "journal_cmd", None) \
        or (args.cmd if args.command == "cmd" else None)
    return f"{args.command} {sub}" if sub else args.command


def _describe(exc: BaseException) -> str:
    import redis

    if isinstance(exc, redis.ConnectionError):
        return f"lost the connection to Redis: {exc}"
    if isinstance(exc, redis.RedisError):
        return f"Redis refused: {exc}"
    if isinstance(exc, OSError):
        from supervisor.cli_common import os_error_text

        return os_error_text(exc)
    return str(exc)


if __name__ == "__main__":
    sys.exit(main())
