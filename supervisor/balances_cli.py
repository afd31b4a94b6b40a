"""`treasury balances AGENT`: the agent's money across the chains, in USD, from the 5-minute cache.

`--json` names every amount's unit: `*_micros` are integer micro-USD; a native coin's
`amount_units` is in its smallest unit (wei, lamports, ...), named by `symbol`. Each chain's
`usdc` and `native` say whether they were read (`status`: read / unknown with the `reason` /
none, as USDC on bitcoin and monero): `supervisor.balances_view`.

Reads through `actors.chain_view.ChainView` (the same view the actors use), so a second call
within five minutes costs no wallet request; `--refresh` reads every chain again.
"""

from __future__ import annotations

import argparse
import json

from messages.base import validate_agent_id
from messages.errors import ConfigError
from messages.money import format_usd
from runtime.clock import SystemClock
from supervisor.cli_common import add_deployment_arguments, connect, require_agent


def add_balances_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("agent", help="the agent's name")
    p.add_argument("--refresh", action="store_true", help="read every chain again, ignoring the 5-minute cache")
    add_deployment_arguments(p)
    p.add_argument("--json", action="store_true",
                   help="one JSON object: money in *_micros (integer micro-USD), native amounts in *_units")


def balances_main(args: argparse.Namespace) -> int:
    from actors.chain_view import ChainView, wallet_client_factory

    validate_agent_id(args.agent)
    dep = connect(args)
    client, keys, venues = dep.client, dep.keys, dep.venues
    require_agent(client, keys, args.agent)
    if "wallet" not in venues:
        raise ConfigError("this deployment records no wallet venue")
    view = ChainView(client, keys, SystemClock(), wallet_client_factory(client, keys, venues["wallet"]))
    b = view.balances(args.agent, refresh=args.refresh)
    from supervisor.balances_view import cell, token_states

    chains = token_states(b)
    data = {
        # an unreadable chain makes the totals unknown (null), never a smaller number
        "agent": b.agent, "total_micros": b.known_total_usd, "usdc_total_micros": b.usdc_total if b.complete else None,
        "read_total_micros": b.total_usd,
        "chains": chains,
        "usd_per_coin": {asset: str(p) for asset, p in sorted(b.prices.items())},
        "refreshed": list(b.refreshed), "unread": dict(sorted(b.unread.items())),
    }
    if args.json:
        print(json.dumps(data))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=balances_title(b, chains))
    table.add_column("chain", no_wrap=True)
    table.add_column("USDC", justify="right", ratio=1)
    table.add_column("native", justify="right", ratio=1)
    table.add_column("source", no_wrap=True)
    for name, c in chains.items():
        table.add_row(name, cell(c["usdc"], format_usd), cell(c["native"], format_usd), c["source"] or "—")
    console = Console()
    console.print(table)
    console.print("addresses", style="bold")
    for name, c in chains.items():
        console.print(f"  {name:<9} {c['address'] or '— (none recorded)'}", soft_wrap=True)
    return 0


def balances_title(b, chains: dict[str, dict] | None = None) -> str:
    """The table title: the USD total across the chains, USDC and native coins apart, each the sum
    of the cells shown below it (`supervisor.balances_view.shown_micros`), so the figures add up;
    or "total unknown" when any chain could not be read (a partial sum is never shown as the total)."""
    from supervisor.balances_view import shown_micros, token_states

    chains = token_states(b) if chains is None else chains
    usdc = sum(shown_micros(c["usdc"]) for c in chains.values())
    coins = sum(shown_micros(c["native"]) for c in chains.values())
    parts = f"USDC {format_usd(usdc)} + native coins {format_usd(coins)}"
    if b.complete:
        return f"{b.agent}: {format_usd(usdc + coins)} across {len(b.holdings)} chains ({parts})"
    return (f"{b.agent}: total unknown ({len(b.unread)} chain(s) unreadable: {', '.join(sorted(b.unread))}; "
            f"{format_usd(usdc + coins)} on the {len(b.holdings)} read: {parts})")
