"""`treasury trade open|close|list`: perpetual positions, from the command line.

`open` publishes a signed `OpenPosition` (the trading actor sizes it with Kelly from the agent's
own win rate and win/loss ratio, places it with its stop-loss and take-profit, or refuses it with
why); `close` publishes `ClosePosition`; `list` reads the treasury's book of open positions.
Publishing goes through `treasury cmd`'s path (`supervisor.commands.cmd_main`), so `--wait`,
`--json` and the exit codes are the same. Ratios are decimal text, checked here first.
"""

from __future__ import annotations

import argparse
import json
import re

from rich.console import Console
from rich.table import Table
from rich.text import Text

from messages.base import validate_agent_id
from messages.errors import ConfigError
from messages.money import format_usd, parse_positive_usd
from supervisor.cli_common import (
    add_deployment_arguments,
    connect,
    positive_float,
    reason_text,
    require_agent,
    safe_text,
)
from supervisor.key_choice import add_key_arguments
from supervisor.narrow import card, print_table_or_cards

_DECIMAL = re.compile(r"[0-9]{1,12}(\.[0-9]{1,18})?", re.ASCII)


def _decimal(flag: str, text: str, low: str, high: str | None, *, low_open: bool = True,
             high_open: bool = False) -> str:
    """`text` when it is a plain decimal in the range (the brackets say which ends are open, and the
    help of each flag says the same range), else `ConfigError`; a negative number "must be positive"."""
    from decimal import Decimal

    span = f"{'(' if low_open else '['}{low}, {high or '∞'}{')' if high_open or high is None else ']'}"
    if text.startswith("-") and _DECIMAL.fullmatch(text[1:]):
        raise ConfigError(f"{flag} {text}: must be positive, in {span}")
    if not _DECIMAL.fullmatch(text):
        raise ConfigError(f"{flag} {ascii(text)}: expected a plain decimal number, e.g. 0.55")
    value = Decimal(text)
    too_low = value <= Decimal(low) if low_open else value < Decimal(low)
    too_high = high is not None and (value >= Decimal(high) if high_open else value > Decimal(high))
    if too_low or too_high:
        raise ConfigError(f"{flag} {text}: must be in {span}")
    return text


def add_trade_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="trade_cmd", required=True)
    op = sub.add_parser("open", help="open a position with its stop-loss and take-profit")
    op.add_argument("agent", help="the agent's name")
    op.add_argument("--coin", required=True, help="market, e.g. BTC")
    op.add_argument("--side", required=True, choices=["long", "short"], help="long or short")
    op.add_argument("--win-rate", required=True,
                    help="the strategy's share of winning trades p, in (0, 1): more than 0, less than 1")
    op.add_argument("--win-loss-ratio", required=True, help="average win / average loss b, in (0, ∞): more than 0")
    op.add_argument("--stop", required=True,
                    help="stop-loss distance as a fraction of the entry price, in (0, 0.5]: 0.02 is 2 %%")
    op.add_argument("--take-profit-multiple", default="2",
                    help="take-profit distance in stop distances, in [2, ∞): at least 2 (default 2)")
    op.add_argument("--leverage", type=int, required=True, help="1 to 100 (the policy's cap applies)")
    op.add_argument("--kelly", default="half",
                    help="share of full Kelly: full, half, quarter or a number in (0, 1] (default half)")
    op.add_argument("--trail-bp", type=int, default=None,
                    help="make the stop trailing, this many basis points behind the best price (1 to 9999)")
    op.add_argument("--notional", default=None, help="USD: your own position size instead of Kelly's")
    cl = sub.add_parser("close", help="close a position at the market")
    cl.add_argument("agent", help="the agent's name")
    cl.add_argument("position_id", help="the venue's position id, as `trade list` shows it")
    cl.add_argument("--reason", required=True, help="why, for the journal: some text, at most 1 kB")
    for s in (op, cl):
        add_deployment_arguments(s)
        add_key_arguments(s)
        s.add_argument("--wait", action="store_true", help="wait for the outcome and print it")
        s.add_argument("--timeout", type=positive_float, default=30.0, help="seconds --wait waits (default 30)")
        s.add_argument("--json", action="store_true", help="one JSON object (money in integer micro-USD)")
    ls = sub.add_parser("list", help="the agent's open positions")
    ls.add_argument("agent", help="the agent's name")
    add_deployment_arguments(ls)
    ls.add_argument("--json", action="store_true", help="one JSON object: money in *_micros, times in *_ms")


def _open(a):
    from messages.trading_msgs import OpenPosition
    from supervisor.cmd_checks import kelly_fraction

    _decimal("--win-rate", a.win_rate, "0", "1", high_open=True)  # a strategy that never loses is no estimate
    _decimal("--win-loss-ratio", a.win_loss_ratio, "0", None)
    _decimal("--stop", a.stop, "0", "0.5")
    _decimal("--take-profit-multiple", a.take_profit_multiple, "2", None, low_open=False)
    if not 1 <= a.leverage <= 100:
        raise ConfigError(f"--leverage {a.leverage}: must be 1 to 100")
    if a.trail_bp is not None and not 1 <= a.trail_bp <= 9999:
        raise ConfigError(f"--trail-bp {a.trail_bp}: must be 1 to 9999 basis points")
    notional = parse_positive_usd(a.notional, field="--notional") if a.notional is not None else None
    return OpenPosition(coin=a.coin, side=a.side, win_rate=a.win_rate, win_loss_ratio=a.win_loss_ratio,
                        stop_distance=a.stop, leverage=a.leverage,
                        take_profit_multiple=a.take_profit_multiple, kelly=kelly_fraction(a.kelly),
                        trail_bp=a.trail_bp, notional=notional)


def _close(a):
    from messages.trading_msgs import ClosePosition

    return ClosePosition(position_id=a.position_id, reason=reason_text(a.reason))


def position_rows(client, keys, agent: str) -> list[dict]:
    """The open positions, oldest first, money in micro-USD (`*_micros`), prices as decimal text."""
    from actors.trading.book import read_positions

    rows = []
    for pid, rec in sorted(read_positions(client, keys, agent).items(), key=lambda kv: kv[1].opened_ms):
        rows.append({"position_id": pid, "coin": rec.coin, "side": rec.side, "entry_price": rec.entry_price,
                     "notional_micros": rec.notional, "margin_micros": rec.margin, "leverage": rec.leverage,
                     "fee_open_micros": rec.fee_open, "stop_loss": rec.stop_loss, "take_profit": rec.take_profit,
                     "trailing_bp": rec.trail.bp if rec.trail else None, "opened_ms": rec.opened_ms})
    return rows


def trade_main(args: argparse.Namespace) -> int:
    validate_agent_id(args.agent)
    if args.trade_cmd in ("open", "close"):
        from supervisor.commands import cmd_main

        args.cmd = args.trade_cmd
        args.build = _open if args.trade_cmd == "open" else _close
        args.build(args)  # check every value before Redis is reached
        return cmd_main(args)
    from supervisor.status_view import utc

    dep = connect(args)
    require_agent(dep.client, dep.keys, args.agent)
    rows = position_rows(dep.client, dep.keys, args.agent)
    if args.json:
        print(json.dumps({"agent": args.agent, "positions": rows}))
        return 0
    console = Console()
    if not rows:
        console.print(f"{args.agent}: no open positions")
        return 0
    t = Table(title=f"{args.agent}: {len(rows)} open position{'' if len(rows) == 1 else 's'}, margin "
                    f"{format_usd(sum(r['margin_micros'] for r in rows))}", title_justify="left")
    for name in ("position", "coin", "side", "entry", "notional", "margin", "lev", "stop-loss", "take-profit",
                 "opened (UTC)"):
        t.add_column(name, justify="right" if name in ("notional", "margin", "lev") else "left",
                     no_wrap=name == "position")
    for r in rows:
        stop = r["stop_loss"] + (f" (trailing {r['trailing_bp']} bp)" if r["trailing_bp"] else "")
        t.add_row(Text(safe_text(r["position_id"])), Text(safe_text(r["coin"])), r["side"], r["entry_price"],
                  format_usd(r["notional_micros"]), format_usd(r["margin_micros"]), f"{r['leverage']}x", stop,
                  r["take_profit"], utc(r["opened_ms"]))
    print_table_or_cards(console, t, (
        card(safe_text(r["position_id"]),
             f"{r['side']} {safe_text(r['coin'])} {r['leverage']}x at {r['entry_price']} · notional "
             f"{format_usd(r['notional_micros'])} · margin {format_usd(r['margin_micros'])}",
             f"stop-loss {r['stop_loss']}" + (f" (trailing {r['trailing_bp']} bp)" if r["trailing_bp"] else "")
             + f" · take-profit {r['take_profit']} · opened {utc(r['opened_ms'])}")
        for r in rows))
    return 0
