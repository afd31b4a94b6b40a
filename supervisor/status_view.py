"""`treasury status`: the snapshot from `supervisor.status` drawn with rich, or printed as JSON.

Drawing is kept apart from collecting so the live view (`supervisor.watch`), the one-shot view
and `--json` all show the same figures. Text that comes from Redis (agent ids, reasons, errors)
is put in `Text` objects, never in markup, so a reason containing `[red]` is shown as written.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from typing import Any

import redis
from rich import box
from rich.console import Console, Group, RenderableType
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from messages.base import validate_agent_id
from messages.errors import ConfigError, TreasuryError
from messages.money import format_usd
from runtime.clock import Clock, SystemClock
from runtime.keys import Keys
from supervisor.cli_common import NoDeployment, add_deployment_arguments, find_redis_url, require_agent, safe_text
from supervisor.deployment import load_deployment
from supervisor.status import collect_status, open_client, redact_url
from supervisor.status_json import MONEY_KEYS, with_units

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


_MONEY_FIELDS = MONEY_KEYS


# ---------------------------------------------------------------- pieces


def risk_block(risk: dict) -> Text:
    """The risk state in colour, with who set it, why, and until when."""
    line = Text("risk ")
    line.append_text(state_text(risk["state"]))
    if risk["effective"] != risk["state"]:
        line.append("  (pause over: spends allowed)" if risk["effective"] == "ACTIVE" else f"  ({risk['effective']})",
                    style="yellow")
    if risk["breaker"]:  # who set it: a breaker by name, or a command's key (actors.risk_guard.is_manual)
        manual = risk["breaker"].startswith("key ") or risk["breaker"] in ("operator", "agent", "pause_expired")
        line.append(f"  {'set by' if manual else 'breaker'} {risk['breaker']}", style="bold")
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
                   for b in perf["breakers"])
        + ("" if perf.get("judged", True) else " (not judged yet: RiskGuard evaluates the agent at its first "
                                                "balance change or tick)"),
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
    """Escrows or positions: id, the money field, and the record's other fields.

    The id is never cut (an operator copies it into `release`, `dispute`, `trade close`): its
    column is as wide as the longest id, and the details wrap."""
    if not records["count"]:
        return Text(empty, style="dim")
    t = Table(title=f"{title} ({records['count']}, {money_field} {format_usd(records[money_field])})",
              title_justify="left")
    t.add_column("id", no_wrap=True, min_width=max(len(str(r["id"])) for r in records["items"]))
    t.add_column(money_field, justify="right", no_wrap=True)
    t.add_column("details", ratio=1, overflow="fold")
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
    t.add_column("message", no_wrap=True, min_width=max(len(r["msg_id"]) for r in resv["items"]))
    for name in ("bucket", "amount", "fence seq", "age"):
        t.add_column(name, justify="right" if name in ("amount", "fence seq", "age") else "left", overflow="fold")
    for r in resv["items"]:
        t.add_row(Text(r["msg_id"]), r["bucket"], format_usd(r["amount"]), str(r["seq"]), age(r["age_ms"]))
    return t


def transit_block(transit: dict) -> RenderableType:
    """Money between silos (sent, not yet credited), one line per transfer, its id whole."""
    if not transit["count"] and not transit["amount"]:
        return Text("nothing in transit between silos", style="dim")
    per_bucket = ", ".join(f"{b} {format_usd(v)}" for b, v in transit["by_bucket_micros"].items())
    text = Text(f"in transit between silos: {format_usd(transit['amount'])}", style="bold yellow")
    if per_bucket:
        text.append(f" (held for {per_bucket})")
    sent = sum(r["amount"] for r in transit["items"])
    if len(transit["items"]) == transit["count"] and sent > transit["amount"]:
        # a park moves reserve money with no ledger leg: it stays counted in its bucket, not held in transit
        text.append(f"; {format_usd(sent)} sent in all, {format_usd(sent - transit['amount'])} of it still counted "
                    f"in its bucket (parked money) until it lands")
    for r in transit["items"]:
        text.append(f"\n  {r['from_silo']} → {r['to_silo']} {format_usd(r['amount'])} {r['state']}, transfer ")
        text.append(r["transfer"], style="dim")
    return text


def events_table(journal: dict) -> RenderableType:
    """The latest events: when and what type in the first column, then what happened, with the
    message that caused it on its own dim line, so "what happened" keeps most of an 80-column screen."""
    if not journal["events"]:
        return Text("journal is empty", style="dim")
    t = Table(title=f"last {len(journal['events'])} of {journal['length']} events", title_justify="left")
    t.add_column("time (UTC) · type", no_wrap=True)
    t.add_column("what happened · caused by", ratio=1, overflow="fold")
    for e in journal["events"]:
        style = "red" if e.get("outcome") in ("refused", "rejected", "failed") else (
            "bold yellow" if e["type"] == "RiskStateChanged" else None)
        when = Text(utc(e["created_ms"]) + "\n")
        when.append(e["type"], style=style or "")
        what = Text(e["summary"])
        if e["causation"]:
            what.append(f"\n← {e['causation']}", style="dim")
        t.add_row(when, what)
    return t


def agent_detail(agent: dict) -> RenderableType:
    parts: list[RenderableType] = [
        Rule(Text(f"agent {agent['agent']} · shard {agent['shard']}", style="bold"), align="left"),
    ]
    if not agent["known"]:
        parts.append(Text("no ledger for this agent: every spend is refused until its treasury is opened",
                          style="bold magenta"))
    parts += [risk_block(agent["risk"]), buckets_table(agent), transit_block(agent["in_transit"]),
              reservations_table(agent["reservations"]),
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
    """Workers: heartbeat, and from the supervisor uptime, restarts and the last exit reason.

    Fits 80 columns with whole headers: the role is shown only when the worker's name does not
    start with it, and each last exit gets its own line under the table."""
    if not workers:
        return Text("no worker has reported a heartbeat", style="yellow")
    t = Table(title="workers", title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, collapse_padding=True,
              pad_edge=False)
    t.add_column("worker", no_wrap=True, min_width=max(len(_worker_name(w)) for w in workers))
    for name in ("pid", "shards", "heartbeat", "uptime", "restarts", "done", "dead"):
        t.add_column(name, justify="left" if name == "shards" else "right", overflow="fold", min_width=len(name))
    exits = []
    for w in workers:
        beat = age(w["age_ms"]) + (" ago" if w["age_ms"] is not None else "") + (" STALE" if w["stale"] else "")
        restarts = w.get("restarts")
        t.add_row(Text(_worker_name(w)), str(w["pid"] if w["pid"] is not None else "?"),
                  shards_text(w["shards"]), beat, age(w["uptime_ms"]) if w.get("uptime_ms") is not None else "—",
                  Text("—" if restarts is None else str(restarts), style="yellow" if restarts else ""),
                  str(w["processed"]), Text(str(w["dead_lettered"]), style="red" if w["dead_lettered"] else ""),
                  style="bold red" if w["stale"] else None)
        if w.get("last_exit"):
            line = Text(f"{w['consumer']} last exit: ", style="dim")
            line.append(w["last_exit"], style="red" if w.get("escalated") else "")
            exits.append(line)
    t.caption = "done: commands processed · dead: dead-lettered"
    return Group(t, *exits) if exits else t


def _worker_name(w: dict) -> str:
    consumer, role = str(w["consumer"]), str(w.get("role") or "")
    return consumer if not role or consumer.startswith(role) else f"{consumer} ({role})"


def alerts_text(alerts: dict) -> RenderableType:
    if not alerts or not alerts["count"]:
        return Text("alerts: none", style="green")
    t = Table(title=f"alerts ({alerts['count']}; `treasury alerts` lists them)", title_justify="left")
    t.add_column("time (UTC)", no_wrap=True)
    t.add_column("halted", justify="right")
    t.add_column("reason", ratio=1)
    for a in alerts["latest"]:
        t.add_row(utc(a["at_ms"]), str(a["halted"]), Text(a["reason"], style="bold red"))
    return t


def venues_text(venues: list[dict] | None) -> RenderableType:
    if venues is None:
        return Text("venues: not probed (--no-probe)", style="dim")
    if not venues:
        return Text("venues: none recorded", style="yellow")
    line = Text("venues ")
    for v in venues:
        ok = v["reachable"]
        line.append(f" {v['service']} ", style="bold green" if ok else "bold white on red")
        line.append(f"{v['latency_ms']} ms" if ok else f"unreachable ({v['error']})", style="" if ok else "red")
    return line


def dead_table(dead: list[dict], by_reason: dict[str, int] | None = None) -> RenderableType:
    if not dead:
        return Text("dead streams: empty", style="green")
    reasons = ", ".join(f"{n} {r}" for r, n in (by_reason or {}).items())
    t = Table(title=f"dead letters — {reasons or 'by reason: ?'} (`treasury dead list`)", title_justify="left")
    t.add_column("shard", justify="right")
    t.add_column("entries", justify="right")
    t.add_column("latest", ratio=1)
    for d in dead:
        last = d["last"] or {}
        what = " ".join(x for x in (last.get("role", ""), last.get("agent", ""), utc(last.get("at_ms", 0))) if x)
        t.add_row(str(d["shard"]), Text(str(d["length"]), style="bold red"),
                  Text(f"{what}: {last.get('error', '')}" if last else ""))
    return t


def parked_table(parked: list[dict]) -> RenderableType:
    if not parked:
        return Text("parked spends: none", style="green")
    t = Table(title="parked spends (venue outcome unknown; funds stay reserved, retried by themselves)",
              title_justify="left")
    for name in ("role", "agent", "command", "for", "last error"):
        t.add_column(name, ratio=1 if name == "last error" else None)
    for p in parked:
        t.add_row(p["role"], p["agent"], f"{p['type']} {p['msg_id']}", f"{p['age_ms'] // 1000} s",
                  p["error"], style="bold red" if p["alerted"] else "yellow")
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
                  "?" if b["lag"] is None else f"{b['lag']}+" if b.get("lag_at_least") else str(b["lag"]),
                  str(b["ungrouped"]),
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
    parts += deployment_parts(status)
    return Group(*parts)


def deployment_parts(status: dict) -> list[RenderableType]:
    """The deployment section: workers, alerts, dead letters, venues, backlog, warnings."""
    dep = status["deployment"]
    parts: list[RenderableType] = [
        Rule(Text(f"deployment {status['prefix']} · {status['shards']} shards · {utc(status['now_ms'])}",
                  style="bold"), align="left"),
        workers_table(dep["workers"]), alerts_text(dep.get("alerts")),
        dead_table(dep["dead"], dep.get("dead_by_reason")), parked_table(dep.get("parked", [])),
        venues_text(dep.get("venues")), backlog_table(dep["backlog"])]
    parts += [Text(f"warning: {w}", style="yellow") for w in status["warnings"]]
    return parts


def render_status(status: dict, console: Console) -> None:
    """Draw a snapshot from `collect_status` on `console` (text from data shown escaped)."""
    console.print(status_renderable(printable(status)))


def printable(value: Any) -> Any:
    """A copy of a snapshot with every string passed through `safe_text`: an agent id, a reason or an
    error holding an escape sequence is shown as `\\x1b[...`, never sent to the terminal raw."""
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, dict):
        return {printable(k) if isinstance(k, str) else k: printable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [printable(v) for v in value]
    return value


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
    add_deployment_arguments(parser)
    parser.add_argument("--shard-count", type=positive_int, default=None,
                        help="shard count (default: the one the deployment recorded at creation)")
    parser.add_argument("--agent", action="append", default=None, metavar="ID",
                        help="show this agent (repeat for several); default: every agent, one page")
    parser.add_argument("--limit", type=positive_int, default=DEFAULT_LIMIT,
                        help=f"agents per page (default {DEFAULT_LIMIT})")
    parser.add_argument("--offset", type=non_negative_int, default=0, help="first agent of the page (default 0)")
    parser.add_argument("--events", type=non_negative_int, default=10, help="journal events per agent (default 10)")
    parser.add_argument("--stale-ms", type=positive_int, default=5000,
                        help="milliseconds: a worker silent this long is flagged stale (default 5000)")
    parser.add_argument("--no-probe", action="store_true", help="do not check that the venues answer")


def add_status_arguments(parser: argparse.ArgumentParser) -> None:
    add_connection_arguments(parser)
    parser.add_argument("--json", action="store_true",
                        help="one JSON object: money in *_micros (integer micro-USD), times in *_ms")


def snapshot(client: redis.Redis, args: argparse.Namespace, now_ms: int) -> dict:
    """`collect_status` with the options of a parsed command line (missing ones take defaults),
    and the venues' reachability unless `--no-probe` (or no venues are recorded in `args.venues`)."""
    agents = getattr(args, "agent", None) or None
    if isinstance(agents, str):
        agents = [agents]
    status = collect_status(
        client, Keys(args.prefix, args.shard_count),
        agents=agents,
        now_ms=now_ms,
        journal_tail=getattr(args, "events", 10),
        heartbeat_stale_ms=getattr(args, "stale_ms", 5000),
        limit=getattr(args, "limit", DEFAULT_LIMIT),
        offset=getattr(args, "offset", 0),
    )
    venues = getattr(args, "venues", None)
    if venues is not None and not getattr(args, "no_probe", False):
        from supervisor.venue_probe import probe_venues

        status["deployment"]["venues"] = probe_venues(venues)
    return status


def prepare(command: str, args: argparse.Namespace) -> redis.Redis:
    """Check the filters, find and reach the deployment, and fill `args.shard_count` and
    `args.venues` from its record. Raises `TreasuryError` (one line) when any of it fails."""
    for agent in getattr(args, "agent", None) or []:
        validate_agent_id(agent)
    url = find_redis_url(args)
    client = open_client(url)
    try:
        keys, venues, _mode = load_deployment(client, args.prefix)
    except ConfigError:
        client.close()
        raise NoDeployment(f"no deployment with prefix {args.prefix!r} in the Redis at {redact_url(url)}: start one "
                           f"with `treasury up` (or give the right --prefix)") from None
    if args.shard_count is None:
        args.shard_count = keys.shards
    try:
        for agent in getattr(args, "agent", None) or []:
            require_agent(client, keys, agent)
    except TreasuryError:
        client.close()
        raise
    args.venues = venues
    return client


def fail(command: str, message: object) -> int:
    print(f"treasury {command}: error: {safe_text(' '.join(str(message).split()))}", file=sys.stderr)
    return 2


def status_main(args: argparse.Namespace, *, clock: Clock | None = None) -> int:
    """One snapshot, drawn or as JSON. Exit 0, or 2 with one line on stderr when there is no
    deployment to read or Redis fails us."""
    try:
        client = prepare("status", args)
    except TreasuryError as exc:
        return fail("status", exc)
    try:
        status = snapshot(client, args, (clock or SystemClock()).now_ms())
    except redis.RedisError as exc:
        return fail("status", f"reading the deployment failed: {exc}")
    finally:
        client.close()
    if args.json:
        print(json.dumps(with_units(status)))
    else:
        render_status(status, Console())
    return 0
