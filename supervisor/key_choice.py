"""Which key signs a command from the command line, and which commands need the operator key.

The CLI never reaches for the operator key by itself. Without `--key-id` a command is signed
with the keyring's agent key; a command that needs the operator key (`messages/catalogue.py`
decides, through `runtime.signing.required_scope_for`) is refused before anything is sent unless
the operator asks for it: `--operator` (the keyring's first operator key) or `--key-id ID`. So a
plain `treasury cmd resume bob` cannot resume a HALTED agent by accident.

`scope_rows()` lists every CLI command that publishes, with its message type and key scope, by
building each command's body through the real parser and asking the catalogue; the table in
docs/commands-auth.md is `scope_table()` (tests/test_key_scopes.py checks they agree).
"""

from __future__ import annotations

import argparse

from messages.errors import ConfigError
from runtime.keyring import Keyring, SigningKey, scope_covers

OPERATOR = "@operator"
"""`--key-id` value that `--operator` stands for: the keyring's first operator key."""


def add_key_arguments(parser: argparse.ArgumentParser) -> None:
    """`--key-id ID` and `--operator` (one `key_id` destination; without either: the agent key)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--key-id", default=None,
                       help="sign with this key (default: the agent key; commands that need the operator key "
                            "need --operator or --key-id)")
    group.add_argument("--operator", dest="key_id", action="store_const", const=OPERATOR,
                       help="sign with the keyring's operator key (resume, set-policy, rebalance, retry, move, "
                            "park, adjust)")


def pick_key(keyring: Keyring, scope: str, key_id: str | None, *, what: str = "this command") -> SigningKey:
    """The key that signs: `key_id` (or `OPERATOR`: the first operator key), else the first agent key.

    Raises `ConfigError` (one line, exit 2, nothing sent) when the key is missing or its scope
    does not cover `scope`, naming the key the command needs."""
    if key_id == OPERATOR:
        key = next((k for k in keyring if k.scope == "operator"), None)
        if key is None:
            raise ConfigError("--operator: the keyring has no operator key (`treasury keys new --scope operator`)")
    elif key_id:
        key = keyring.get(key_id)
        if key is None:
            raise ConfigError(f"no key {key_id!r} in the keyring (it has: {', '.join(keyring.key_ids()) or 'none'})")
    else:
        key = next((k for k in keyring if k.scope == "agent"), None)
        if scope == "operator":
            raise ConfigError(f"{what} needs the operator key: add --operator (or --key-id ID of an operator key)")
        if key is None:
            raise ConfigError(f"{what} needs an agent key and the keyring has none; "
                              f"add --operator or --key-id ID to sign with another key")
    if not scope_covers(key.scope, scope):
        raise ConfigError(f"{what} needs the {scope} key; {key.key_id} is an {key.scope} key "
                          f"(use --operator or --key-id ID of an operator key)")
    return key


# ---------------------------------------------------------------- the scope table

EXAMPLES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("cmd bet", ("cmd", "bet", "a", "--game", "coin_flip", "--win-prob", "0.6")),
    ("cmd pause", ("cmd", "pause", "a", "--reason", "r")),
    ("cmd halt", ("cmd", "halt", "a", "--reason", "r")),
    ("cmd resume", ("cmd", "resume", "a", "--reason", "r")),
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
