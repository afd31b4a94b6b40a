"""`treasury alerts`: the deployment's alert stream (`<prefix>:alerts`), newest first.

The supervisor raises an alert when it escalates (a worker restarting too often, every treasury
halted for review). Each alert is a JSON object with at least `at_ms` (epoch milliseconds) and
`reason`; text is shown with control characters escaped.
"""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.table import Table
from rich.text import Text

from runtime.keys import Keys
from supervisor.cli_common import add_deployment_arguments, connect, positive_int, safe_text


def add_alerts_arguments(p: argparse.ArgumentParser) -> None:
    add_deployment_arguments(p)
    p.add_argument("--limit", type=positive_int, default=20, help="alerts to show, newest first (default 20)")
    p.add_argument("--json", action="store_true", help="one JSON object (times in *_ms, epoch milliseconds)")


def read_alerts(client, keys: Keys, limit: int) -> tuple[list[dict], int]:
    """The newest `limit` alerts (each with its stream `id`), and how many the stream holds."""
    key = keys.alerts()
    out = []
    for entry_id, fields in client.xrevrange(key, count=limit):
        raw = fields.get(b"alert") or fields.get("alert") or b"{}"
        try:
            alert = json.loads(raw)
        except ValueError:
            alert = {"reason": f"unreadable alert: {raw[:80]!r}"}
        if not isinstance(alert, dict):
            alert = {"reason": str(alert)}
        out.append({"id": entry_id.decode() if isinstance(entry_id, bytes) else entry_id, **alert})
    return out, client.xlen(key)


def alerts_main(args: argparse.Namespace) -> int:
    from supervisor.status_view import utc

    dep = connect(args)
    alerts, total = read_alerts(dep.client, dep.keys, args.limit)
    if args.json:
        print(json.dumps({"total": total, "alerts": alerts}))
        return 0
    console = Console()
    if not alerts:
        console.print("no alerts", style="green")
        return 0
    t = Table(title=f"{len(alerts)} newest of {total} alerts", title_justify="left")
    for name in ("time (UTC)", "worker", "halted", "reason"):
        t.add_column(name, overflow="fold" if name == "reason" else "ellipsis")
    for a in alerts:
        halted = a.get("halted") or []
        t.add_row(utc(int(a.get("at_ms") or 0)), Text(safe_text(a.get("worker", ""))),
                  str(len(halted)) + (" agents" if halted else ""), Text(safe_text(a.get("reason", ""), 400)))
    console.print(t)
    return 0
