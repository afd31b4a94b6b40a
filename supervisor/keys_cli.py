"""`treasury keys new|rotate|revoke|list`: the command signing keys in a key file.

The key file is `--file`, else `$TREASURY_KEYS_FILE`, else `<data-dir>/keys.json` (the file
`treasury up` gives its workers). Running workers re-read their key file when it changes
(`runtime.keyring.KeyFileWatch`, checked every heartbeat), so a new, rotated or revoked key takes
effect within about two seconds without a restart; the command says whether a running deployment
uses the file. Secrets are never printed.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from messages.errors import ConfigError
from runtime.keyring import KEYS_FILE_ENV, SCOPES, Keyring, generate_key, write_key_file
from supervisor.cli_common import data_dir_path
from supervisor.ownership import owner_pid


def add_keys_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="keys_cmd", required=True)
    for name, text in (("new", "create a key and add it to the key file"),
                       ("rotate", "give a key a fresh secret (signers using the old one are refused)"),
                       ("revoke", "remove a key: commands signed with it are refused"),
                       ("list", "the key ids and scopes in the key file (never the secrets)")):
        s = sub.add_parser(name, help=text)
        if name != "list":
            s.add_argument("--id", required=True, help="key id: 1 to 64 of A-Z a-z 0-9 _ -")
        if name == "new":
            s.add_argument("--scope", choices=list(SCOPES), default="agent",
                           help="agent (ordinary commands) or operator (also resume from HALTED, policy changes)")
        if name == "revoke":
            s.add_argument("--force", action="store_true", help="allow revoking the last operator key")
        s.add_argument("--file", default=None,
                       help=f"the key file (default ${KEYS_FILE_ENV}, else <data-dir>/keys.json)")
        s.add_argument("--data-dir", default=None, metavar="DIR",
                       help="the deployment's data directory (default $TREASURY_DATA_DIR, else .treasury)")
        s.add_argument("--json", action="store_true", help="one JSON object")


def key_file(args: argparse.Namespace) -> Path:
    if args.file:
        return Path(args.file)
    if os.environ.get(KEYS_FILE_ENV):
        return Path(os.environ[KEYS_FILE_ENV])
    return data_dir_path(args.data_dir) / "keys.json"


def _read(path: Path, must_exist: bool) -> Keyring:
    if path.exists():
        return Keyring.from_file(path)
    if must_exist:
        raise ConfigError(f"no key file {path}: `treasury keys new --id ID --file {path}` creates one")
    return Keyring()


def _who_uses(path: Path, args: argparse.Namespace) -> str:
    d = data_dir_path(args.data_dir)
    pid = owner_pid(d)
    if pid is not None and path.resolve() == (d / "keys.json").resolve():
        return f"the deployment running in {d} (pid {pid}) reloads it within 2 s, no restart needed"
    if pid is not None:
        return f"note: the deployment running in {d} (pid {pid}) uses {d / 'keys.json'}, not this file"
    return "workers started with this file read it at start and reload it when it changes"


def keys_main(args: argparse.Namespace) -> int:
    path = key_file(args)
    if args.keys_cmd != "list" and not path.parent.is_dir():
        raise ConfigError(f"cannot write {path}: directory {path.parent} does not exist")
    ring = _read(path, must_exist=args.keys_cmd != "new")
    if args.keys_cmd == "list":
        rows = [{"id": k.key_id, "scope": k.scope} for k in ring]
        print(json.dumps({"file": str(path), "keys": rows}) if args.json else
              "\n".join(f"{r['id']:<24} {r['scope']}" for r in rows) or f"{path}: no keys")
        return 0
    existing = ring.get(args.id)
    if args.keys_cmd == "new":
        if existing is not None:
            raise ConfigError(f"key {args.id} is already in {path}: `treasury keys rotate --id {args.id}` renews it")
        key = generate_key(args.id, args.scope)
        write_key_file(path, [*ring, key])
        done = f"added {args.scope} key {args.id} to {path}"
    else:
        if existing is None:
            raise ConfigError(f"no key {args.id} in {path} (it has: {', '.join(ring.key_ids()) or 'none'})")
        if args.keys_cmd == "rotate":
            key = generate_key(args.id, existing.scope)
            write_key_file(path, [key if k.key_id == args.id else k for k in ring])
            done = f"rotated {existing.scope} key {args.id} in {path}: the old secret is no longer accepted"
        else:
            operators = [k for k in ring if k.scope == "operator"]
            if existing.scope == "operator" and len(operators) == 1 and not args.force:
                raise ConfigError(f"{args.id} is the last operator key in {path}: without one nobody can resume a "
                                  f"halted agent; add another first, or pass --force")
            write_key_file(path, [k for k in ring if k.key_id != args.id])
            done = f"revoked {existing.scope} key {args.id} from {path}: commands signed with it are refused"
    reload_note = _who_uses(path, args)
    if args.json:
        print(json.dumps({"done": args.keys_cmd, "id": args.id, "file": str(path), "reload": reload_note}))
    else:
        print(f"{done}; {reload_note}")
    return 0
