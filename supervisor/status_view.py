"""`treasury status`: the snapshot from `supervisor.status` drawn with rich, or printed as JSON.

Drawing is kept apart from collecting so the live view (`supervisor.watch`), the one-shot view
and `--json` all show the same figures. Text that comes from Redis (agent ids, reasons, errors)
is put in `Text` objects, never in markup, so a reason containing `[red]` is shown as written.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime, timezone
from typing import Any

import redis
from rich.console import Console, Group, RenderableType
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from messages.money import format_usd
from runtime.clock import Clock, SystemClock
from runtime.keys import DEFAULT_SHARDS, Keys
from supervisor.status import RedisUnreachable, collect_status, open_client

DETAIL_MAX_AGENTS = 3
"""Up to this many agents are drawn in full; more get one summary row each."""

DEFAULT_LIMIT = 50
"""Agents per page on the command line: a screen, not ten thousand rows."""

STATE_STYLE = {"ACTIVE": "bold green", "PAUSED": "bold yellow", "HALTED": "bold white on red",
               "UNKNOWN": "bold magenta"}


# ---------------------------------------------------------------- formatting


def utc(ms: int) -> str:
    """Epoch milliseconds as `2026-01-01 09:00:00Z`; blank for 0 (not set)."""
    if not ms:
        return ""
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def age(ms: int | None) -> str:
    """A duration for people: `850 ms`, `12.3 s`, `4 m 05 s`, `2 h 07 m`, `3 d 04 h`."""
    if ms is None:
        return "never"
    if ms < 1000:
        return f"{ms} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    s = ms // 1000
    if s < 3600:
        return f"{s // 60} m {s % 60:02d} s"
    if s < 86_400:
        return f"{s // 3600} h {s % 3600 // 60:02d} m"
    return f"{s // 86_400} d {s % 86_400 // 3600:02d} h"


def pct(bp: int, signed: bool = False) -> str:
    """Basis points as a percentage with two decimals, exactly (`3512` → `35.12 %`)."""
    sign = "-" if bp < 0 else ("+" if signed and bp > 0 else "")
    bp = abs(bp)
    return f"{sign}{bp // 100}.{bp % 100:02d} %"


def state_text(state: str) -> Text:
    return Text(state, style=STATE_STYLE.get(state, "bold magenta"))


def shards_text(shards: list | None) -> str:
    if not shards or len(shards) != 3:
        return "?"
    first, last, count = shards
    return f"{first}" if count == 1 else f"{first}–{last} ({count})"


def _money_or_value(key: str, value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and key in _MONEY_FIELDS:
        return format_usd(value)
    if isinstance(value, int) and key.endswith("_ms") and value > 10**11:
        return utc(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))[:60]
    return str(value)


_MONEY_FIELDS = {"amount", "margin", "collateral", "pnl", "unrealized_pnl", "realized_pnl", "fee", "notional", "value"}


# ---------------------------------------------------------------- pieces


def risk_block(risk: dict) -> Text:
    """The risk state in colour, with who set it, why, and until when."""
    line = Text("risk ")
    line.append_text(state_text(risk["state"]))
    if risk["effective"] != risk["state"]:
        line.append("  (pause over: spends allowed)" if risk["effective"] == "ACTIVE" else f"  ({risk['effective']})",
                    style="yellow")
    if risk["breaker"]:
        line.append(f"  breaker {risk['breaker']}", style="bold")
    if risk["reason"]:
        line.append(f"  — {risk['reason']}")
    if risk["until_ms"]:
        line.append(f"  until {utc(risk['until_ms'])}", style="cyan")
    line.append(f"\npeak {format_usd(risk['peak'])} · day start {format_usd(risk['day_start'])}"
                f" · fence seq {risk['fence_seq']}", style="dim")
    perf = risk.get("performance")
    if perf:
        line.append("\n" + performance_text(perf))
    for bucket, why in risk["halted_buckets"].items():
        line.append(f"\n{bucket} halted: ", style="bold red")
        line.append(why)
    return line


def _signed_usd(micros: int) -> str:
    return ("+" if micros > 0 else "") + format_usd(micros)


def performance_text(perf: dict) -> str:
    """P&L today and since start (realized and unrealized), each breaker's distance, what fired:
    "P&L today −$27.00 (realized −$20.00, unrealized −$7.00) · since start … / daily loss 2.7 % of 5 %
    from $1,000.00 · drawdown 8.1 % of 20 % from peak $1,204.00 · … / fired: daily_loss 2026-01-01 23:50 UTC"."""
    lines = [
        f"P&L today {_signed_usd(perf['pnl_today_micros'])} (realized {_signed_usd(perf['pnl_today_realized_micros'])},"
        f" unrealized {_signed_usd(perf['pnl_today_unrealized_micros'])}) · since start "
        f"{_signed_usd(perf['pnl_start_micros'])} (realized {_signed_usd(perf['pnl_start_realized_micros'])},"
        f" unrealized {_signed_usd(perf['pnl_start_unrealized_micros'])})",
        " · ".join(f"{b['breaker'].replace('_', ' ').replace('treasury ', '')} {b['used_bp'] / 100:.1f} % of "
                   f"{b['limit_bp'] / 100:g} % from {b['from']} {format_usd(b['from_micros'])}"
                   for b in perf["breakers"]),
    ]
    if perf["fired"]:
        lines.append("fired: " + ", ".join(f"{f['breaker']} ({f['action']}) {utc(f['at_ms'])}" for f in perf["fired"]))
    return "\n".join(lines)


def buckets_table(agent: dict) -> Table:
    t = Table(title=f"buckets — treasury total {format_usd(agent['total'])}", title_justify="left")
    for name, justify in (("bucket", "left"), ("available", "right"), ("reserved", "right"), ("balance", "right"),
                          ("target", "right"), ("actual", "right"), ("drift", "right")):
        t.add_column(name, justify=justify)
    for b in agent["buckets"]:
        t.add_row(b["bucket"], format_usd(b["available"]), format_usd(b["reserved"]), format_usd(b["total"]),
                  pct(b["target_bp"]), pct(b["actual_bp"]),
                  pct(b["drift_bp"], signed=True) + (" ⚠" if b["drifted"] else ""),
                  style="bold red" if b["drifted"] else None)
    return t


def records_table(title: str, records: dict, money_field: str, empty: str) -> RenderableType:
    """Escrows or positions: id, the money field, and the record's other fields on one line."""
    if not records["count"]:
        return Text(empty, style="dim")
    t = Table(title=f"{title} ({records['count']}, {money_field} {format_usd(records[money_field])})",
              title_justify="left")
    t.add_column("id")
    t.add_column(money_field, justify="right")
    t.add_column("details")
    for r in records["items"]:
        money = r.get(money_field)
        details = " ".join(f"{k}={_money_or_value(k, v)}" for k, v in r.items() if k not in ("id", money_field))
        shown = format_usd(money) if isinstance(money, int) and not isinstance(money, bool) else ""
        t.add_row(Text(str(r["id"])), shown, Text(details))
    if records["count"] > len(records["items"]):
        t.caption = f"first {len(records['items'])} of {records['count']}"
    return t


def reservations_table(resv: dict) -> RenderableType:
    if not resv["count"]:
        return Text("no reservations in flight", style="dim")
    t = Table(title=f"reservations in flight ({resv['count']}, {format_usd(resv['amount'])})", title_justify="left")
    for name in ("message", "bucket", "amount", "fence seq", "age"):
        t.add_column(name, justify="right" if name in ("amount", "fence seq", "age") else "left")
    for r in resv["items"]:
        t.add_row(Text(r["msg_id"]), r["bucket"], format_usd(r["amount"]), str(r["seq"]), age(r["age_ms"]))
    return t


def events_table(journal: dict) -> RenderableType:
    if not journal["events"]:
        return Text("journal is empty", style="dim")
    t = Table(title=f"last {len(journal['events'])} of {journal['length']} events", title_justify="left")
    t.add_column("time (UTC)", no_wrap=True)
    t.add_column("type", no_wrap=True)
    t.add_column("what happened", ratio=1)
    t.add_column("caused by", no_wrap=True, style="dim")
    for e in journal["events"]:
        style = "red" if e["type"] in ("BetRefused", "BetFailed", "CommandRejected") else (
            "bold yellow" if e["type"] == "RiskStateChanged" else None)
        t.add_row(utc(e["created_ms"]), Text(e["type"], style=style or ""), Text(e["summary"]), e["causation"] or "")
    return t


def agent_detail(agent: dict) -> RenderableType:
    parts: list[RenderableType] = [
        Rule(Text(f"agent {agent['agent']} · shard {agent['shard']}", style="bold"), align="left"),
    ]
    if not agent["known"]:
        parts.append(Text("no ledger for this agent: every spend is refused until its treasury is opened",
                          style="bold magenta"))
    parts += [risk_block(agent["risk"]), buckets_table(agent), reservations_table(agent["reservations"]),
              records_table("open escrows", agent["escrows"], "amount", "no open escrows"),
              records_table("open positions", agent["positions"], "margin", "no open positions"),
              events_table(agent["journal"])]
    parts += [Text(f"read error: {e}", style="red") for e in agent["errors"]]
    return Group(*parts)


def agents_summary(agents: list[dict], now_ms: int) -> Table:
    """One row per agent, for pages too long to draw each agent in full.

    `drift` is the largest bucket drift (red past 5 %); `esc`/`pos` count open escrows and positions.
    """
    t = Table(title="agents", title_justify="left", expand=True)
    for name, justify in (("agent", "left"), ("shard", "right"), ("total", "right"), ("state", "left"),
                          ("why", "left"), ("drift", "right"), ("reserved", "right"), ("esc", "right"),
                          ("pos", "right"), ("last event", "left")):
        t.add_column(name, justify=justify, no_wrap=True, overflow="ellipsis",
                     ratio=1 if name in ("why", "last event") else None)
    for a in agents:
        risk = a["risk"]
        why = " — ".join(x for x in (risk["breaker"], risk["reason"]) if x) if a["known"] else "no ledger"
        last = a["journal"]["events"][-1] if a["journal"]["events"] else None
        t.add_row(Text(a["agent"]), str(a["shard"]), format_usd(a["total"]), state_text(risk["state"]), Text(why),
                  Text(pct(a["max_drift_bp"]), style="bold red" if a["drifted"] else ""),
                  format_usd(a["reservations"]["amount"]), str(a["escrows"]["count"]), str(a["positions"]["count"]),
                  f"{age(max(0, now_ms - last['created_ms']))} ago {last['type']}" if last else "")
    return t


def workers_table(workers: list[dict]) -> RenderableType:
    if not workers:
        return Text("no worker has reported a heartbeat", style="yellow")
    t = Table(title="workers", title_justify="left")
    for name, justify in (("consumer", "left"), ("pid", "right"), ("role", "left"), ("shards", "left"),
                          ("heartbeat", "right"), ("processed", "right"), ("dead", "right")):
        t.add_column(name, justify=justify)
    for w in workers:
        beat = age(w["age_ms"]) + (" ago" if w["age_ms"] is not None else "") + (" STALE" if w["stale"] else "")
        t.add_row(Text(w["consumer"]), str(w["pid"] if w["pid"] is not None else "?"), w["role"],
                  shards_text(w["shards"]), beat, str(w["processed"]),
                  Text(str(w["dead_lettered"]), style="red" if w["dead_lettered"] else ""),
                  style="bold red" if w["stale"] else None)
    return t


def dead_table(dead: list[dict]) -> RenderableType:
    if not dead:
        return Text("dead streams: empty", style="green")
    t = Table(title="dead letters", title_justify="left")
    t.add_column("shard", justify="right")
    t.add_column("entries", justify="right")
    t.add_column("latest", ratio=1)
    for d in dead:
        last = d["last"] or {}
        what = " ".join(x for x in (last.get("role", ""), last.get("agent", ""), utc(last.get("at_ms", 0))) if x)
        t.add_row(str(d["shard"]), Text(str(d["length"]), style="bold red"),
                  Text(f"{what}: {last.get('error', '')}" if last else ""))
    return t


def backlog_table(backlog: dict) -> RenderableType:
    if not backlog:
        return Text("command streams: none yet", style="dim")
    t = Table(title="command backlog", title_justify="left")
    for name in ("role", "streams", "entries", "pending", "lag", "no group"):
        t.add_column(name, justify="left" if name == "role" else "right")
    for role, b in backlog.items():
        busy = b["pending"] or b["lag"] or b["ungrouped"]
        t.add_row(role, str(b["streams"]), str(b["entries"]), str(b["pending"]),
                  "?" if b["lag"] is None else str(b["lag"]), str(b["ungrouped"]),
                  style="yellow" if busy else None)
    return t


def status_renderable(status: dict) -> RenderableType:
    """The whole status screen as one rich renderable (used by the one-shot view and `watch`)."""
    agents = status["agents"]
    parts: list[RenderableType] = []
    if not agents:
        parts.append(Text("no agents found", style="yellow"))
    elif len(agents) <= DETAIL_MAX_AGENTS:
        parts += [agent_detail(a) for a in agents]
    else:
        parts.append(agents_summary(agents, status["now_ms"]))
    page = status["page"]
    if status["agents_total"] > page["count"]:
        first = page["offset"] + 1 if page["count"] else page["offset"]
        parts.append(Text(f"agents {first}–{page['offset'] + page['count']} of {status['agents_total']} "
                          f"(--offset/--limit for other pages, --agent ID for one agent)", style="dim"))
    dep = status["deployment"]
    parts += [Rule(Text(f"deployment {status['prefix']} · {status['shards']} shards · {utc(status['now_ms'])}",
                        style="bold"), align="left"),
              workers_table(dep["workers"]), dead_table(dep["dead"]), backlog_table(dep["backlog"])]
    parts += [Text(f"warning: {w}", style="yellow") for w in status["warnings"]]
    return Group(*parts)


def render_status(status: dict, console: Console) -> None:
    """Draw a snapshot from `collect_status` on `console`."""
    console.print(status_renderable(status))


# ---------------------------------------------------------------- command line


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every read-only view shares: where Redis is and which deployment to read."""
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0",
                        help="Redis of the deployment (default: $REDIS_URL, else redis://127.0.0.1:6379/0)")
    parser.add_argument("--prefix", default="tr", help="key prefix of the deployment (default tr)")
    parser.add_argument("--shard-count", type=positive_int, default=DEFAULT_SHARDS,
                        help=f"shard count the deployment was created with (default {DEFAULT_SHARDS})")
    parser.add_argument("--agent", action="append", default=None, metavar="ID",
                        help="show this agent (repeat for several); default: every agent, one page")
    parser.add_argument("--limit", type=positive_int, default=DEFAULT_LIMIT,
                        help=f"agents per page (default {DEFAULT_LIMIT})")
    parser.add_argument("--offset", type=non_negative_int, default=0, help="first agent of the page (default 0)")
    parser.add_argument("--events", type=non_negative_int, default=10, help="journal events per agent (default 10)")
    parser.add_argument("--stale-ms", type=positive_int, default=5000,
                        help="a worker silent this long is flagged stale (default 5000)")


def add_status_arguments(parser: argparse.ArgumentParser) -> None:
    add_connection_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the snapshot as one JSON object")


def snapshot(client: redis.Redis, args: argparse.Namespace, now_ms: int) -> dict:
    """`collect_status` with the options of a parsed command line (missing ones take defaults)."""
    agents = getattr(args, "agent", None) or None
    if isinstance(agents, str):
        agents = [agents]
    return collect_status(
        client, Keys(args.prefix, args.shard_count),
        agents=agents,
        now_ms=now_ms,
        journal_tail=getattr(args, "events", 10),
        heartbeat_stale_ms=getattr(args, "stale_ms", 5000),
        limit=getattr(args, "limit", DEFAULT_LIMIT),
        offset=getattr(args, "offset", 0),
    )


def fail(command: str, message: object) -> int:
    print(f"treasury {command}: error: {' '.join(str(message).split())}", file=sys.stderr)
    return 2


def status_main(args: argparse.Namespace, *, clock: Clock | None = None) -> int:
    """One snapshot, drawn or as JSON. Exit 0, or 2 with one line on stderr when Redis fails us."""
    if args.shard_count <= 0:
        return fail("status", f"--shard-count must be positive, got {args.shard_count}")
    try:
        client = open_client(args.redis_url)
    except RedisUnreachable as exc:
        return fail("status", exc)
    try:
        status = snapshot(client, args, (clock or SystemClock()).now_ms())
    except redis.RedisError as exc:
        return fail("status", f"reading the deployment failed: {exc}")
    finally:
        client.close()
    if args.json:
        print(json.dumps(status))
    else:
        render_status(status, Console())
    return 0
