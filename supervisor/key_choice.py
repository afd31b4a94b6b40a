"""Which key signs a command from the command line, and which commands need the operator key.

The CLI never reaches for the operator key by itself. Without `--key-id` a command is signed
with the keyring's agent key; a command that needs the operator key (`messages/catalogue.py`
decides, through `runtime.signing.required_scope_for`) is refused before anything is sent unless
the operator asks for it: `--operator` (the keyring's first operator key) or `--key-id ID`. So a
plain `treasury cmd resume bob` cannot resume a HALTED agent by accident.

`supervisor/scope_table.py` lists every CLI command that publishes with the key it needs, for
docs/commands-auth.md.
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
