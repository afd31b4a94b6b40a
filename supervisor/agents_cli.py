"""`treasury agent add|list`: the agents a deployment serves."""

from __future__ import annotations

import argparse
import sys

from messages.envelope import random_ids
from messages.money import format_usd, parse_usd
from supervisor.atomic import AtomicSteps
from supervisor.bus import command_client
from supervisor.clock import SystemClock
from supervisor.deployment import default_redis_url, load_deployment


def agent_main(args: argparse.Namespace) -> int:
    client = command_client(getattr(args, "redis_url", None) or default_redis_url())
    keys, venues, mode = load_deployment(client, args.prefix)
    if args.agent_cmd == "list":
        for agent in sorted(m.decode() for m in client.smembers(keys.agents())):
            print(agent)
        return 0
    capital = parse_usd(args.capital, field="capital")
    from actors.onboarding import onboard_agent

    steps = AtomicSteps(client, keys)
    print(f"onboarding {args.name}: registering at casino, wallet and trading ...", file=sys.stderr)
    result = onboard_agent(steps, args.name, capital, venues=venues, now_ms=SystemClock().now_ms(),
                           new_id=random_ids())
    client.sadd(keys.agents(), args.name)
    if mode == "paper":
        from supervisor.paper import fund_paper_silos

        fund_paper_silos(steps, args.name, venues)
        funded = "the sandbox silos funded to match"
    else:
        funded = "deposit the capital to the venues; the reconciler compares them with the ledger"
    ids = ", ".join(f"{service} {venue_id}" for service, venue_id in sorted(result.venue_agent_ids.items()))
    print(f"agent {args.name}: {ids}; capital {format_usd(capital)} allocated ({result.allocation}); {funded}")
    return 0
