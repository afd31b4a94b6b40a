"""`treasury journal archive`: move journal entries older than N days from Redis to day files.

The explicit, documented step that keeps Redis memory flat without ever trimming the audit trail
silently (runtime/archive.py says how; docs/operations.md when).
"""

from __future__ import annotations

import argparse
import sys

from messages.base import validate_agent_id
from messages.errors import ConfigError
from runtime.archive import archive_journal
from runtime.clock import SystemClock
from supervisor.cli_common import add_deployment_arguments, connect, require_agent

DAY_MS = 24 * 3600 * 1000


def add_journal_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="journal_cmd", required=True)
    a = sub.add_parser("archive", help="move journal entries older than N days to a file per agent and day")
    a.add_argument("--dir", required=True, help="the archive directory (kept with the deployment's backups)")
    a.add_argument("--older-than-days", type=float, default=7.0, help="archive entries older than this (default 7)")
    a.add_argument("--agent", action="append", default=[], help="only this agent (repeatable); default: every agent")
    add_deployment_arguments(a)


def journal_main(args: argparse.Namespace) -> int:
    if args.older_than_days < 0:
        raise ConfigError(f"--older-than-days must not be negative (got {args.older_than_days})")
    dep = connect(args)
    client, keys = dep.client, dep.keys
    for agent in args.agent:
        require_agent(client, keys, validate_agent_id(agent))
    agents = args.agent or sorted(m.decode() for m in client.smembers(keys.agents()))
    before = SystemClock().now_ms() - int(args.older_than_days * DAY_MS)
    total = 0
    for agent in agents:
        result = archive_journal(client, keys, agent, args.dir, before)
        total += result.archived
        if result.archived:
            print(f"agent {agent}: {result.archived} entries archived up to {result.last_id} "
                  f"in {len(result.files)} day file(s)")
    print(f"{total} journal entries archived from {len(agents)} agent(s) to {args.dir}", file=sys.stderr)
    return 0
