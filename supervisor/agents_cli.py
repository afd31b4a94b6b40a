"""`treasury agent add|list`: the agents a deployment serves."""

from __future__ import annotations

import argparse

from messages.envelope import random_ids
from messages.errors import ConfigError
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
    if mode != "paper":
        raise ConfigError("live onboarding needs the agent's venue accounts: register them and store their keys "
                          "(see docs/referral-and-onboarding.md)")
    from supervisor.paper import open_paper_casino_agent

    casino_id = open_paper_casino_agent(AtomicSteps(client, keys), args.name, capital, venues["casino"],
                                        now_ms=SystemClock().now_ms(), new_id=random_ids())
    print(f"agent {args.name}: casino account {casino_id}, capital {format_usd(capital)} allocated")
    return 0
