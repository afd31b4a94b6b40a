"""`treasury agent add|list`, and the agents file `treasury up --agents FILE` onboards at start."""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from pathlib import Path

from messages.errors import ConfigError
from messages.money import parse_usd
from runtime.bus import command_client
from supervisor.deployment import default_redis_url, load_deployment
from supervisor.onboard_many import add_agent


def read_agents_file(path: str | Path) -> list[tuple[str, int]]:
    """`{"agents": [{"name": "alice", "capital": "1000"}, ...]}` as JSON, or the same as TOML
    (`[[agents]]` tables)."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text()) if p.suffix == ".toml" else json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"agents file {p}: {exc}") from None
    agents = data.get("agents") if isinstance(data, dict) else None
    if not isinstance(agents, list):
        raise ConfigError(f"agents file {p}: expected a list under 'agents'")
    out = []
    for i, entry in enumerate(agents):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or "capital" not in entry:
            raise ConfigError(f"agents file {p}: entry {i} needs a name and a capital")
        out.append((entry["name"], parse_usd(entry["capital"], field=f"agents[{i}].capital")))
    return out


def agent_main(args: argparse.Namespace) -> int:
    client = command_client(getattr(args, "redis_url", None) or default_redis_url())
    keys, venues, mode = load_deployment(client, args.prefix)
    if args.agent_cmd == "list":
        for agent in sorted(m.decode() for m in client.smembers(keys.agents())):
            print(agent)
        return 0
    if args.agent_cmd == "add-many":
        from rich.console import Console

        from supervisor.onboard_many import onboard_with_bar

        if args.parallel < 1:
            raise ConfigError(f"--parallel must be at least 1 (got {args.parallel})")
        listed = read_agents_file(args.file)
        report = onboard_with_bar(client, keys, venues, mode, listed, parallel=args.parallel,
                                  console=Console(stderr=True))
        for name, error in sorted(report.failed.items()):
            print(f"agent {name}: not onboarded: {error}", file=sys.stderr)
        print(f"{len(report.done)} of {len(listed)} agents onboarded" + ("; run again to finish the rest"
                                                                         if report.failed else ""))
        return 1 if report.failed else 0
    capital = parse_usd(args.capital, field="capital")
    print(f"onboarding {args.name}: registering at casino, wallet and trading ...", file=sys.stderr)
    print(add_agent(client, keys, venues, mode, args.name, capital))
    return 0
