"""`treasury balances AGENT`: the agent's money across the chains, in USD, from the 5-minute cache.

`--json` names every amount's unit: `*_micros` are integer micro-USD; `native_units` is the
chain's native coin in its smallest unit (wei, lamports, ...), named by `native_symbol`.

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
from supervisor.cli_common import add_deployment_arguments, connect


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
    if "wallet" not in venues:
        raise ConfigError("this deployment records no wallet venue")
    view = ChainView(client, keys, SystemClock(), wallet_client_factory(client, keys, venues["wallet"]))
    b = view.balances(args.agent, refresh=args.refresh)
    data = {
        "agent": b.agent, "total_micros": b.total_usd, "usdc_total_micros": b.usdc_total,
        "chains": {name: {"address": h.address, "usdc_micros": h.usdc, "native_units": h.native,
                          "native_symbol": h.native_symbol}
                   for name, h in sorted(b.holdings.items())},
        "usd_per_coin": {asset: str(p) for asset, p in sorted(b.prices.items())},
        "refreshed": list(b.refreshed), "unread": dict(sorted(b.unread.items())),
    }
    if args.json:
        print(json.dumps(data))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{args.agent}: {format_usd(b.total_usd)} across {len(b.holdings)} chains")
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
