"""The demo summary for people (rich tables); `--json` prints the same data as one object (money in
`*_micros` integers, times in `*_ms`)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from messages.money import format_usd


def render_summary(s: dict) -> None:
    console = Console()
    bets = s["bets"]
    t = Table(title=f"treasury demo — seed {s['seed']}, agent {s['agent']}", show_header=False)
    t.add_row("capital", format_usd(s["capital_micros"]))
    t.add_row("bets placed", f"{bets['placed']} ({bets['won']} won, {bets['lost']} lost)")
    t.add_row("bets refused", ", ".join(f"{k}: {v}" for k, v in bets["refused"].items()) or "none")
    if bets["failed"]:
        t.add_row("bets failed at venue", ", ".join(f"{k}: {v}" for k, v in bets["failed"].items()))
    t.add_row("staked / paid out", f"{format_usd(s['staked_micros'])} / {format_usd(s['paid_out_micros'])}")
    t.add_row("casino P&L", format_usd(s["pnl_micros"]))
    t.add_row("treasury total", format_usd(s["total_micros"]))
    risk = s["risk"]
    t.add_row("risk state", f"[bold]{risk['state']}[/bold]" + (f" ({risk['breaker']})" if risk["breaker"] else ""))
    for fired in s.get("breakers_fired", []):
        hold = (f"{fired['hold_ms'] / 3_600_000:g} h" if fired["hold_ms"] is not None
                else "until an operator resumes")
        t.add_row("breaker fired", f"{fired['breaker']} → {fired['state']} for {hold}")
    t.add_row("why it stopped", s["stopped_because"])
    if s.get("after_stop"):
        a = s["after_stop"]
        t.add_row("next bet", f"{a['type']} {a['code'] or ''}: {a['reason'] or ''}")
    c = s.get("conservation")
    if c:
        t.add_row(
            "casino bucket vs venue",
            f"{format_usd(c['casino_bucket_micros'])} vs {format_usd(c['venue_casino_balance_micros'])}"
            + (" ✓" if c["matches"] else " ✗ MISMATCH"),
        )
    t.add_row("journal events", str(s["journal_events"]))
    console.print(t)
    b = Table(title="buckets")
    b.add_column("bucket")
    b.add_column("balance", justify="right")
    for name, amount in s["buckets_micros"].items():
        b.add_row(name, format_usd(amount))
    console.print(b)
    timing = s.get("timing", {})
    if timing:
        pids = ", ".join(f"{role} pid {w['pid']}" for role, w in timing.get("workers", {}).items())
        wall = timing.get("wall_ms", 0) / 1000
        console.print(f"[dim]{wall:g} s wall, redis {timing.get('redis')}, workers: {pids}[/dim]")


def render_scenario(s: dict) -> None:
    console = Console()
    console.print(f"[bold]scenario {s['scenario']}[/bold] — seed {s['seed']}")
    for line in s["story"]:
        console.print(f"  • {line}")
    t = Table(title="outcome", show_header=False)
    risk = s["risk"]
    t.add_row("treasury", f"[bold]{risk['state']}[/bold]" + (f" ({risk['breaker']}: {risk['reason']})"
                                                                  if risk["breaker"] else ""))
    for bucket, state in s["buckets_risk"].items():
        t.add_row(f"  {bucket}", f"{format_usd(s['balances_micros'][bucket])}  {state}")
    for fired in s["breakers_fired"]:
        t.add_row("breaker fired", f"{fired['breaker']} → {fired['action']}: {fired['reason']}")
    c = s["conservation"]
    t.add_row("ledger total", format_usd(c["ledger_total_micros"])
              + (f" ({format_usd(c['in_flight_micros'])} in flight)" if c["in_flight_micros"] else ""))
    for silo, figures in c["silos"].items():
        venue, ledger = figures["venue_micros"], figures["ledger_micros"]
        mark = "✓" if venue == ledger else "✗ MISMATCH"
        t.add_row(f"{silo} silo", f"venue {format_usd(venue)} vs ledger {format_usd(ledger)} {mark}")
    console.print(t)
