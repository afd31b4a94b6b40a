"""`treasury balances AGENT`: the agent's money across the chains, in USD, from the 5-minute cache.

Reads through `actors.chain_view.ChainView` (the same view the actors use), so a second call
within five minutes costs no wallet request; `--refresh` reads every chain again.
"""

from __future__ import annotations

import argparse
import json

from messages.money import format_usd
from runtime.bus import command_client
from runtime.clock import SystemClock
from supervisor.deployment import default_redis_url, load_deployment


def add_balances_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("agent")
    p.add_argument("--refresh", action="store_true", help="read every chain again, ignoring the cache")
    p.add_argument("--redis-url", default=None)
    p.add_argument("--prefix", default="tr")
    p.add_argument("--json", action="store_true")


def balances_main(args: argparse.Namespace) -> int:
    from actors.chain_view import ChainView, wallet_client_factory

    client = command_client(args.redis_url or default_redis_url())
    keys, venues, _mode = load_deployment(client, args.prefix)
    view = ChainView(client, keys, SystemClock(), wallet_client_factory(client, keys, venues["wallet"]))
    b = view.balances(args.agent, refresh=args.refresh)
    data = {
        "agent": b.agent, "total_usd": b.known_total_usd, "usdc_total": b.usdc_total if b.complete else None,
        "read_total_usd": b.total_usd,
        "chains": {name: {"address": h.address, "usdc": h.usdc, "native": h.native, "native_symbol": h.native_symbol}
                   for name, h in sorted(b.holdings.items())},
        "prices": {asset: str(p) for asset, p in sorted(b.prices.items())},
        "refreshed": list(b.refreshed), "unread": dict(sorted(b.unread.items())),
    }
    if args.json:
        print(json.dumps(data))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=balances_title(b))
    for column in ("chain", "address", "USDC", "native", "source"):
        table.add_column(column, justify="right" if column in ("USDC", "native") else "left")
    for name, h in sorted(b.holdings.items()):
        table.add_row(name, h.address or "—", format_usd(h.usdc) if h.usdc is not None else "unreadable",
                      f"{h.native} {h.native_symbol} units" if h.native is not None else "unreadable",
                      "wallet" if name in b.refreshed else "cache")
    for name, why in sorted(b.unread.items()):
        table.add_row(name, "—", "—", "—", why)
    Console().print(table)
    return 0


def balances_title(b) -> str:
    """The table title: the USD total across the chains, or "total unknown" when any chain could
    not be read (a partial sum is never shown as the total)."""
    if b.complete:
        return f"{b.agent}: {format_usd(b.total_usd)} across {len(b.holdings)} chains"
    return (f"{b.agent}: total unknown ({len(b.unread)} chain(s) unreadable: {', '.join(sorted(b.unread))}; "
            f"{format_usd(b.total_usd)} on the {len(b.holdings)} read)")
