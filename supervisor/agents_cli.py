"""`treasury agent add|list`, and the agents file `treasury up --agents FILE` onboards at start.

Every name is checked with the one rule messages use (`messages.base.validate_agent_id`) before
anything is registered or funded; an agents file is checked whole (names, capitals, duplicates)
before its first agent is onboarded.
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from messages.base import validate_agent_id
from messages.errors import ConfigError, TreasuryError
from messages.money import format_usd, parse_positive_usd
from runtime.keys import Keys
from supervisor.cli_common import add_deployment_arguments, connect, os_error_text, safe_text
from supervisor.narrow import card, print_table_or_cards
from supervisor.onboard_many import add_agent

VENUE_SERVICES = ("casino", "trading", "wallet", "escrow")
"""Services whose venue agent id is shown by `agent list` (`pay --to` takes the casino one)."""


def read_agents_file(path: str | Path) -> list[tuple[str, int]]:
    """`{"agents": [{"name": "alice", "capital": "1000"}, ...]}` as JSON, or the same as TOML
    (`[[agents]]` tables); capital in USD. Returns [(name, capital micro-USD)], or `TreasuryError`
    naming the first bad entry: a name breaking the agent id rule, a capital not > 0, a name twice."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text()) if p.suffix == ".toml" else json.loads(p.read_text())
    except OSError as exc:
        raise ConfigError(f"agents file {p}: {os_error_text(exc).removesuffix(f': {p}').lower()}") from None
    except ValueError as exc:
        raise ConfigError(f"agents file {p}: not valid {'TOML' if p.suffix == '.toml' else 'JSON'}: {exc}") from None
    agents = data.get("agents") if isinstance(data, dict) else None
    if not isinstance(agents, list):
        raise ConfigError(f"agents file {p}: expected a list under 'agents'")
    out: list[tuple[str, int]] = []
    seen: set[str] = set()
    for i, entry in enumerate(agents, start=1):  # entries counted from 1, as a person counts them
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or "capital" not in entry:
            raise ConfigError(f"agents file {p}: entry {i} needs a name and a capital")
        try:
            name = validate_agent_id(entry["name"])
            capital = parse_positive_usd(entry["capital"], field="capital")
        except TreasuryError as exc:
            raise ConfigError(f"agents file {p}: entry {i}: {exc}") from None
        if name in seen:
            raise ConfigError(f"agents file {p}: entry {i}: agent {name} is listed twice")
        seen.add(name)
        out.append((name, capital))
    return out


def add_agent_arguments(agent: argparse.ArgumentParser) -> None:
    agent_sub = agent.add_subparsers(dest="agent_cmd", required=True)
    add = agent_sub.add_parser("add", help="register an agent at the venues and allocate its capital")
    add.add_argument("name", help="1 to 64 of A-Z a-z 0-9 _ . : -")
    add.add_argument("--capital", required=True, help="USD, more than 0, plain ASCII decimal (e.g. 1000 or 250.50)")
    add_deployment_arguments(add)
    many = agent_sub.add_parser("add-many", help="onboard every agent of a file, in parallel, with a progress bar")
    many.add_argument("file", help='{"agents": [{"name": ..., "capital": ...}]} as JSON, or TOML [[agents]]')
    many.add_argument("--parallel", type=int, default=16, help="agents onboarded at once (default 16)")
    add_deployment_arguments(many)
    lst = agent_sub.add_parser("list", help="the agents: venue ids (for `pay --to`), risk state and total")
    add_deployment_arguments(lst)
    lst.add_argument("--json", action="store_true", help="one JSON object; money as total_micros (integer micro-USD)")


def list_agents(client, keys: Keys) -> list[dict]:
    """Per agent: name, venue ids (public ids only, never keys), risk state and reason, total micro-USD."""
    from actors.ledger import read_ledger, read_risk

    rows = []
    fields = [f"{service}_agent_id" for service in VENUE_SERVICES]
    for raw in sorted(client.smembers(keys.agents())):
        name = raw.decode(errors="replace")
        ids = client.hmget(keys.credentials(name), fields)
        risk = read_risk(client, keys, name)
        rows.append({"agent": name,
                     "venue_ids": {s: v.decode() for s, v in zip(VENUE_SERVICES, ids, strict=True) if v is not None},
                     "state": risk.state or "UNKNOWN", "reason": risk.reason,
                     "total_micros": read_ledger(client, keys, name).total})
    return rows


def agent_main(args: argparse.Namespace) -> int:
    if args.agent_cmd == "add":
        validate_agent_id(args.name)  # before Redis is even reached
        capital = parse_positive_usd(args.capital, field="capital")
    if args.agent_cmd == "add-many":
        if args.parallel < 1:
            raise ConfigError(f"--parallel must be at least 1 (got {args.parallel})")
        listed = read_agents_file(args.file)  # every entry checked before Redis is reached
    dep = connect(args)
    if args.agent_cmd == "add-many":
        from supervisor.onboard_many import onboard_with_bar

        report = onboard_with_bar(dep.client, dep.keys, dep.venues, dep.mode, listed, parallel=args.parallel,
                                  console=Console(stderr=True))
        for name, error in sorted(report.failed.items()):
            print(f"agent {safe_text(name)}: not onboarded: {error}", file=sys.stderr)
        print(f"{len(report.done)} of {len(listed)} agents onboarded"
              + ("; run again to finish the rest" if report.failed else ""))
        return 1 if report.failed else 0
    if args.agent_cmd == "list":
        rows = list_agents(dep.client, dep.keys)
        if args.json:
            print(json.dumps({"agents": rows}))
            return 0
        if not rows:
            print("no agents yet: `treasury agent add NAME --capital USD`", file=sys.stderr)
            return 0
        services = [s for s in ("casino", "trading") if any(s in row["venue_ids"] for row in rows)]
        table = Table(title=f"{len(rows)} agents (`pay --to` takes the casino id)", title_justify="left")
        def width(values) -> int:
            return max((len(v) for v in values), default=1)

        # every column but `why` keeps its full width; `why` takes what is left and is cut with …
        table.add_column("agent", no_wrap=True, min_width=width(safe_text(r["agent"]) for r in rows))
        for s in services:
            table.add_column(f"{s} id", no_wrap=True, min_width=width(r["venue_ids"].get(s, "—") for r in rows))
        table.add_column("state", no_wrap=True, min_width=width(r["state"] for r in rows))
        table.add_column("total", justify="right", no_wrap=True,
                         min_width=width(format_usd(r["total_micros"]) for r in rows))
        for row in rows:
            ids = row["venue_ids"]
            table.add_row(Text(safe_text(row["agent"])), *(Text(safe_text(ids.get(s, "—"))) for s in services),
                          row["state"], format_usd(row["total_micros"]))
        console = Console()
        print_table_or_cards(console, table, (
            card(safe_text(row["agent"]),
                 " · ".join([*(f"{s} {safe_text(row['venue_ids'].get(s, '—'))}" for s in services),
                             row["state"], format_usd(row["total_micros"])]))
            for row in rows))
        for row in rows:
            if row["state"] != "ACTIVE":
                console.print(Text(f"{safe_text(row['agent'])} {row['state']}: {safe_text(row['reason'], 200)}"))
        console.print(Text("every venue id, the wallet's too: `treasury agent list --json`", style="dim"))
        return 0
    from supervisor.onboard_many import exists_line

    if dep.client.exists(dep.keys.ledger(args.name)):  # said first, before any onboarding line
        print(exists_line(dep.client, dep.keys, args.name, capital))
        return 0
    print(f"onboarding {args.name}: registering at casino, wallet and trading ...", file=sys.stderr)
    print(add_agent(dep.client, dep.keys, dep.venues, dep.mode, args.name, capital))
    return 0
