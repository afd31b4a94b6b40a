"""`treasury dead list|show|retry|drop`: the dead-letter streams, from the command line.

An entry is named `SHARD/ENTRY` (`12/1733300000000-0`), as `list` prints it. `retry` asks the
owning actor to run a dead-lettered spend again (a signed `RetrySpend`, operator key: the actor
finds the spend's reservation and settles or places it, once); an entry that is not a spend whose
funds are still reserved cannot be retried, only dropped. `drop` removes entries from the dead stream (the
journal keeps their `CommandRefused`). Text from the entries is shown with control characters
escaped.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter

from rich.console import Console
from rich.table import Table
from rich.text import Text

from messages.base import validate_agent_id
from messages.catalogue import SPEND_ROLES
from messages.errors import ConfigError
from runtime.keys import Keys
from supervisor.cli_common import UnknownAgent, add_deployment_arguments, agent_known, connect, positive_int, safe_text
from supervisor.key_choice import add_key_arguments
from supervisor.narrow import card, print_table_or_cards

_ENTRY = re.compile(r"(\d{1,6})/(\d{1,20}-\d{1,20})")


def add_dead_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="dead_cmd", required=True)
    lst = sub.add_parser("list", help="dead entries, newest first, and the count per reason")
    lst.add_argument("--agent", default=None, help="only this agent's entries")
    lst.add_argument("--limit", type=positive_int, default=20, help="entries to show (default 20)")
    show = sub.add_parser("show", help="one entry in full, its message decoded")
    show.add_argument("entry", help="SHARD/ENTRY as `dead list` prints it")
    retry = sub.add_parser("retry", help="run a dead-lettered spend again (operator key)")
    retry.add_argument("entry", help="SHARD/ENTRY as `dead list` prints it")
    add_key_arguments(retry)
    drop = sub.add_parser("drop", help="remove entries from the dead stream")
    drop.add_argument("entries", nargs="+", metavar="SHARD/ENTRY", help="entries as `dead list` prints them")
    for s in (lst, show, retry, drop):
        add_deployment_arguments(s)
        s.add_argument("--json", action="store_true", help="JSON (times in *_ms, epoch milliseconds)")


def reason_of(error: str, agent: str = "") -> str:
    """The reason code of a dead entry's error, without agent names (`supervisor.status.dead_reason`)."""
    from supervisor.status import dead_reason

    return safe_text(dead_reason(error, agent))


def _text(v) -> str:
    return v.decode(errors="replace") if isinstance(v, bytes) else str(v)


def entry_view(shard: int, entry_id: str, fields: dict, *, raw: bool = False) -> dict:
    """A dead entry as plain data (the raw message bytes only decoded when `raw`)."""
    f = {_text(k): v for k, v in fields.items()}
    out = {"entry": f"{shard}/{_text(entry_id)}", "shard": shard, "role": _text(f.get("role", b"")),
           "agent": _text(f.get("agent", b"")), "msg_id": _text(f.get("msg_id", b"")),
           "error": _text(f.get("error", b"")), "deliveries": int(_text(f.get("deliveries", b"0")) or 0),
           "at_ms": int(_text(f.get("at_ms", b"0")) or 0), "stream": _text(f.get("stream", b""))}
    out["reason"] = reason_of(out["error"], out["agent"])
    if raw:
        from messages.codec import decode

        data = f.get("raw", b"")
        try:
            envelope = decode(data if isinstance(data, bytes) else data.encode())
            from supervisor.status_json import label_message

            out["message"] = label_message(envelope)
            out["message"].pop("signature", None)
        except Exception as exc:  # noqa: BLE001 - a dead entry is often one that does not decode
            out["message"] = None
            out["undecodable"] = f"{len(data)} bytes: {exc}"
    return out


def read_dead(client, keys: Keys, agent: str | None = None, limit: int | None = None) -> tuple[list[dict], Counter]:
    """Newest-first dead entries of every shard (at most `limit`), and the count of all per reason."""
    entries: list[dict] = []
    counts: Counter = Counter()
    for shard in range(keys.shards):
        for entry_id, fields in client.xrevrange(keys.dead(shard)):
            view = entry_view(shard, entry_id, fields)
            if agent and view["agent"] != agent:
                continue
            counts[view["reason"]] += 1
            entries.append(view)
    entries.sort(key=lambda e: e["at_ms"], reverse=True)
    return (entries[:limit] if limit else entries), counts


def _parse_entry(text: str, keys: Keys) -> tuple[int, str]:
    m = _ENTRY.fullmatch(text)
    if not m or int(m[1]) >= keys.shards:
        raise ConfigError(f"{ascii(text)} is not SHARD/ENTRY (e.g. 3/1733300000000-0) with a shard below "
                          f"{keys.shards}")
    return int(m[1]), m[2]


def _one(client, keys: Keys, text: str) -> tuple[int, str, dict]:
    shard, entry_id = _parse_entry(text, keys)
    found = client.xrange(keys.dead(shard), entry_id, entry_id)
    if not found:
        raise ConfigError(f"no dead entry {text}: `treasury dead list` names them")
    return shard, entry_id, found[0][1]


def dead_main(args: argparse.Namespace) -> int:
    dep = connect(args)
    client, keys = dep.client, dep.keys
    if args.dead_cmd == "list":
        agent = validate_agent_id(args.agent) if args.agent else None
        entries, counts = read_dead(client, keys, agent, args.limit)
        if agent and not counts and not agent_known(client, keys, agent):  # a stranger's dead entries still show
            raise UnknownAgent(f"unknown agent {safe_text(agent)!r}: `treasury agent list` shows the agents this "
                               f"treasury serves")
        total = sum(counts.values())
        if args.json:
            print(json.dumps({"total": total, "by_reason": dict(counts.most_common()), "entries": entries}))
            return 0
        console = Console()
        if not total:
            console.print("dead streams: empty")
            return 0
        console.print(Text("by reason: " + ", ".join(f"{n} {r}" for r, n in counts.most_common())))
        t = Table(title=f"{len(entries)} newest of {total} dead entries", title_justify="left")
        for name in ("entry", "role", "agent", "tries", "error"):  # entry ids and agents are copied: never cut
            t.add_column(name, overflow="fold", no_wrap=name in ("entry", "agent"),
                         ratio=1 if name == "error" else None)
        for e in entries:
            t.add_row(e["entry"], e["role"], Text(safe_text(e["agent"])), str(e["deliveries"]),
                      Text(safe_text(e["error"], 200)))
        print_table_or_cards(console, t, (
            card(e["entry"], f"{e['role']} · {safe_text(e['agent'])} · {e['deliveries']} tries",
                 safe_text(e["error"], 200))
            for e in entries))
        return 0
    if args.dead_cmd == "show":
        shard, entry_id, fields = _one(client, keys, args.entry)
        view = entry_view(shard, entry_id, fields, raw=True)
        text = json.dumps(view, indent=None if args.json else 2, default=str)
        print(text if args.json else safe_text(text).replace("\\n", "\n"))
        return 0
    if args.dead_cmd == "drop":
        dropped = []
        for text in args.entries:
            shard, entry_id, _ = _one(client, keys, text)
            dropped.append((shard, entry_id))
        for shard, entry_id in dropped:
            client.xdel(keys.dead(shard), entry_id)
        names = [f"{s}/{e}" for s, e in dropped]
        print(json.dumps({"dropped": names}) if args.json else f"dropped {len(names)} dead entries: {' '.join(names)}")
        return 0
    shard, entry_id, fields = _one(client, keys, args.entry)
    view = entry_view(shard, entry_id, fields)
    if view["role"] not in SPEND_ROLES or not view["msg_id"] or not view["agent"]:
        raise ConfigError(f"{args.entry} is not a dead-lettered spend ({view['role'] or 'no role'}, "
                          f"{'no message id' if not view['msg_id'] else view['msg_id']}): it cannot be retried; "
                          f"publish the command again, or `treasury dead drop {args.entry}`")
    if not client.hexists(keys.reservations(view["agent"]), view["msg_id"]):
        raise ConfigError(f"{args.entry}: no funds are reserved for message {view['msg_id']}, so there is no spend "
                          f"to finish; publish the command again if it is still wanted, then "
                          f"`treasury dead drop {args.entry}`")
    from supervisor.commands import cmd_main

    ns = argparse.Namespace(**vars(args))
    ns.cmd, ns.agent, ns.role, ns.message_id = "retry", view["agent"], view["role"], view["msg_id"]
    ns.wait, ns.timeout = False, 30.0
    from supervisor.commands import _retry

    ns.build = _retry
    return cmd_main(ns)
