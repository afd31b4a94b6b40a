"""Which key each CLI command needs, for docs/commands-auth.md: `scope_rows()` builds every
publishing command's body through the real parser and asks the catalogue
(`runtime.signing.required_scope_for`); `scope_table()` is the table in the doc, which
tests/test_key_scopes.py checks. `python -m supervisor.scope_table` prints it.
"""

from __future__ import annotations

EXAMPLES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("cmd bet", ("cmd", "bet", "a", "--game", "coin_flip", "--win-prob", "0.6")),
    ("cmd pause", ("cmd", "pause", "a", "--reason", "r", "--hours", "1")),
    ("cmd halt", ("cmd", "halt", "a", "--reason", "r")),
    ("cmd resume", ("cmd", "resume", "a", "--reason", "r")),
    ("cmd resume-bucket", ("cmd", "resume-bucket", "a", "--bucket", "trading", "--reason", "r")),
    ("cmd pay", ("cmd", "pay", "a", "--to", "ag_0123456789ab", "--amount", "25", "--description", "work")),
    ("cmd release", ("cmd", "release", "a", "esc_1", "--proof", "p")),
    ("cmd dispute", ("cmd", "dispute", "a", "esc_1", "--reason", "r")),
    ("cmd rebalance", ("cmd", "rebalance", "a")),
    ("cmd set-policy", ("cmd", "set-policy", "a", "max_bet_bp=100")),
    ("cmd retry", ("cmd", "retry", "a", "m1")),
    ("cmd move", ("cmd", "move", "a", "--from", "reserve", "--to", "casino", "--amount", "10", "--reason", "r")),
    ("cmd park", ("cmd", "park", "a", "--silo", "casino", "--amount", "10", "--reason", "r")),
    ("cmd adjust", ("cmd", "adjust", "a", "--bucket", "casino", "--amount", "1", "--reason", "r")),
    ("trade open", ("trade", "open", "a", "--coin", "BTC", "--side", "long", "--win-rate", "0.55",
                    "--win-loss-ratio", "2", "--stop", "0.02", "--leverage", "3")),
    ("trade close", ("trade", "close", "a", "pos_1", "--reason", "r")),
)
"""One valid invocation of every CLI command that publishes a signed command (`dead retry`
publishes the same `RetrySpend` as `cmd retry`)."""


def _body(argv: tuple[str, ...]):
    from supervisor.cli import build_parser
    from supervisor.cmd_checks import check_policy_settings

    args = build_parser().parse_args(list(argv))
    if argv[0] == "trade":  # `trade_main` picks the builder
        from supervisor.trade_cli import _close, _open

        return (_open if args.trade_cmd == "open" else _close)(args)
    if args.cmd == "set-policy":
        args.checked_settings = check_policy_settings(args.settings, {})
    return args.build(args)


def scope_rows() -> list[tuple[str, str, str]]:
    """`(command, message type, key scope)` for every publishing CLI command, from the catalogue."""
    from runtime.signing import required_scope_for

    rows = []
    for name, argv in EXAMPLES:
        body = _body(argv)
        rows.append((name, type(body).__name__, required_scope_for(body)))
        if name == "cmd retry":  # `dead retry ENTRY` publishes the same body, read from the dead letter
            rows.append(("dead retry", type(body).__name__, required_scope_for(body)))
    return rows


def scope_table() -> str:
    """The markdown table of docs/commands-auth.md ("Which key each command needs")."""
    lines = ["| `treasury` command | message | key | flag |", "|---|---|---|---|"]
    for name, message, scope in scope_rows():
        flag = "`--operator` or `--key-id ID`" if scope == "operator" else "none (the agent key)"
        lines.append(f"| `{name}` | `{message}` | {scope} | {flag} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(scope_table(), end="")
