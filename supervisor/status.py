"""A snapshot of a deployment for operators: what each agent holds, its risk state, and how the
workers and streams are doing.

`collect_status` only reads, and returns plain JSON-ready data (money stays integer micro-USD),
so the same snapshot feeds the rich view, `--json` and tests. It is built for deployments of
thousands of agents: every per-agent read goes through pipelines in batches, so the number of
round trips grows with the page size divided by the batch, never one per agent per section.

The agents' venue credentials live next to their ledgers (`keys.credentials`); this module never
names that key, so no API key can reach a status screen or a JSON dump. Free-form records
(escrows, positions) are also scrubbed of any field whose name looks like a secret, in case a
writer ever puts one there.
"""

from __future__ import annotations

import json
import re
from fractions import Fraction
from typing import Any, Iterable
from urllib.parse import urlsplit, urlunsplit

import msgspec
import redis

from actors.bootstrap import TARGET_BP
from actors.ledger import HELD_KINDS, ledger_from
from messages.catalogue import OUTCOME_KIND_BY_TAG, ROLES
from messages.codec import FIELD
from messages.errors import ConfigError, TreasuryError
from messages.money import format_usd, format_usd_exact
from messages.schema import BUCKETS
from runtime.keys import Keys
from runtime.redis_client import make_client

BATCH = 500
"""Agents read per pipeline round trip."""

MAX_ITEMS = 50
"""Escrows, positions and reservations listed per agent (the counts are always complete)."""

DRIFT_LIMIT_BP = 500
"""A bucket more than 5 % of the treasury away from its target is flagged (exactly 5 % is not)."""

SUMMARY_CHARS = 160
"""A journal event's summary is cut to one line of this length."""

_SECRET_NAME = re.compile(r"(key|secret|token|passw|signature|credential|mnemonic|seed|private)", re.I)


class RedisUnreachable(TreasuryError):
    """Redis could not be reached or refused us: reported as one line, never a traceback."""


# ---------------------------------------------------------------- connecting


def redact_url(url: str) -> str:
    """The URL with any password replaced by `***`, so an error line never leaks it."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid url>"
    if parts.password is None and parts.username is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    auth = f"{user}:***@" if parts.password is not None else f"{user}@"
    return urlunsplit((parts.scheme, auth + host, parts.path, parts.query, parts.fragment))


def open_client(url: str, timeout_s: float = 3.0) -> redis.Redis:
    """A client that has answered a PING, or `RedisUnreachable` saying why in one line.

    A `redis+cluster://` URL gives a cluster client (`runtime.redis_client.make_client`), which
    reads the slot map by the PING at the latest: a cluster no node of which answers is unreachable."""
    try:
        client = make_client(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s + 7)
    except (ValueError, ConfigError) as exc:
        raise RedisUnreachable(f"bad Redis URL {redact_url(url)}: {exc}") from None
    except (redis.RedisError, OSError) as exc:
        raise RedisUnreachable(f"cannot reach Redis at {redact_url(url)}: {_one_line(exc)}") from None
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        client.close()
        raise RedisUnreachable(f"cannot reach Redis at {redact_url(url)}: {_one_line(exc)}") from None
    return client


# ---------------------------------------------------------------- the snapshot


def collect_status(
    client: redis.Redis,
    keys: Keys,
    *,
    agents: list[str] | None = None,
    now_ms: int,
    journal_tail: int = 10,
    heartbeat_stale_ms: int = 5000,
    limit: int | None = None,
    offset: int = 0,
) -> dict:
    """Everything `treasury status` shows, as one JSON-serialisable dict.

    Agents are `agents` if given, else the deployment's agent set, else whatever ledgers a SCAN
    finds; they are sorted and `offset`/`limit` pick the page. `now_ms` is passed in (not read
    from a clock) so ages are reproducible.
    """
    warnings: list[str] = []
    if agents is not None:
        names = list(dict.fromkeys(agents))
        source = "given"
    else:
        names, source, found_in = discover_agents(client, keys)
        for agent, shard in sorted(found_in.items()):
            if shard != keys.shard(agent):
                warnings.append(f"agent {agent} has a ledger in shard {shard} but shard count {keys.shards} "
                                f"maps it to {keys.shard(agent)}: is --shard-count right?")
        names.sort()
    offset = max(0, offset)
    page = names[offset:offset + limit] if limit is not None else names[offset:]
    return {
        "prefix": keys.prefix,
        "shards": keys.shards,
        "now_ms": now_ms,
        "agents_total": len(names),
        "agents_source": source,
        "page": {"offset": offset, "limit": limit, "count": len(page)},
        "agents": collect_agents(client, keys, page, now_ms=now_ms, journal_tail=journal_tail),
        "deployment": collect_deployment(client, keys, now_ms=now_ms, heartbeat_stale_ms=heartbeat_stale_ms),
        "warnings": warnings,
    }


def discover_agents(client: redis.Redis, keys: Keys) -> tuple[list[str], str, dict[str, int]]:
    """Agent ids from the agent set, or failing that from the ledger keys a SCAN finds.

    Returns the ids, where they came from (`set` or `scan`), and for scanned ids the shard their
    ledger was found in (a different shard than the hash gives means a wrong shard count).
    """
    members = client.smembers(keys.agents())
    if members:
        return [_text(m) for m in members], "set", {}
    pattern = re.compile(rf"^{re.escape(keys.prefix)}:\{{(\d+)\}}:ledger:(.+)$")
    found: dict[str, int] = {}
    for raw in client.scan_iter(match=f"{_glob_escape(keys.prefix)}:{{*}}:ledger:*", count=1000):
        m = pattern.match(_text(raw))
        if m:
            found[m.group(2)] = int(m.group(1))
    return list(found), "scan", found


def escrows_key(keys: Keys, agent: str) -> str:
    """The hash of an agent's open escrows (escrow id → msgpack or JSON record)."""
    return keys.escrows(agent)


def positions_key(keys: Keys, agent: str) -> str:
    """The hash of an agent's open trading positions (position id → msgpack or JSON record)."""
    return keys.positions(agent)


def collect_agents(client: redis.Redis, keys: Keys, agents: list[str], *, now_ms: int,
                   journal_tail: int = 10) -> list[dict]:
    """One dict per agent, read with one pipeline per `BATCH` agents."""
    out: list[dict] = []
    per_agent = 8
    for start in range(0, len(agents), BATCH):
        chunk = agents[start:start + BATCH]
        pipe = client.pipeline(transaction=False)
        for agent in chunk:
            pipe.hgetall(keys.ledger(agent))
            pipe.hgetall(keys.risk(agent))
            pipe.hgetall(keys.reservations(agent))
            pipe.hgetall(escrows_key(keys, agent))
            pipe.hgetall(positions_key(keys, agent))
            pipe.xrevrange(keys.events(agent), count=max(1, journal_tail))
            pipe.xlen(keys.events(agent))
            pipe.hgetall(keys.silo_intents(agent))
        replies = pipe.execute(raise_on_error=False)
        for i, agent in enumerate(chunk):
            r = replies[i * per_agent:(i + 1) * per_agent]
            out.append(_agent_status(keys, agent, now_ms, journal_tail, *r))
    return out


def _agent_status(keys: Keys, agent: str, now_ms: int, journal_tail: int, ledger_raw, risk_raw, resv_raw,
                  escrows_raw, positions_raw, events_raw, events_len, intents_raw) -> dict:
    errors: list[str] = []
    ledger = _hash(ledger_raw, "ledger", errors)
    buckets, total = bucket_rows(ledger)
    risk = risk_status(_hash(risk_raw, "risk", errors), now_ms)
    events = [] if journal_tail <= 0 else _reply(events_raw, "journal", errors, [])
    return {
        "agent": agent,
        "shard": keys.shard(agent),
        "known": any(b in ledger for b in BUCKETS),
        "total": total,
        "buckets": buckets,
        "max_drift_bp": max((abs(b["drift_bp"]) for b in buckets), default=0),
        "drifted": any(b["drifted"] for b in buckets),
        "risk": risk,
        "reservations": reservation_rows(_hash(resv_raw, "reservations", errors), now_ms),
        "escrows": with_net(record_rows(_hash(escrows_raw, "escrows", errors), "amount")),
        "positions": record_rows(_hash(positions_raw, "positions", errors), "margin"),
        "in_transit": transit_rows(_hash(intents_raw, "silo transfers", errors), ledger),
        "journal": {
            "length": int(_reply(events_len, "journal length", errors, 0) or 0),
            "events": [journal_row(entry_id, fields) for entry_id, fields in reversed(events or [])],
        },
        "errors": errors,
    }


# ---------------------------------------------------------------- buckets and risk


IN_FLIGHT = ("pending", "sent")
"""Silo-transfer index states (`actors.silo.records`) in which the money has left its bucket's
available balance and not yet landed: it is held as `<bucket>:in_transit` in the ledger."""


def transit_rows(intents: dict[str, str], ledger: dict[str, str]) -> dict:
    """Money between silos: the transfers not yet landed (from the silo actor's per-agent index,
    `transfer id → from|to|amount|status`), and the ledger's `<bucket>:in_transit` per bucket.

    Shape: `{"count", "amount", "items": [{"transfer", "from_silo", "to_silo", "amount", "state"}],
    "by_bucket_micros": {bucket: amount}}`, money in micro-USD; `amount` is the ledger's sum (what the
    treasury total counts as in transit), which the items explain."""
    items = []
    for transfer, value in sorted(intents.items()):
        parts = value.split("|")
        if len(parts) != 4 or parts[3] not in IN_FLIGHT:
            continue
        items.append({"transfer": transfer, "from_silo": parts[0], "to_silo": parts[1], "amount": _int(parts[2]),
                      "state": parts[3]})
    by_bucket = {b: _int(ledger.get(f"{b}:in_transit")) for b in BUCKETS if _int(ledger.get(f"{b}:in_transit"))}
    return {"count": len(items), "amount": sum(by_bucket.values()), "items": items[:MAX_ITEMS],
            "by_bucket_micros": by_bucket}


def bucket_rows(ledger: dict[str, str]) -> tuple[list[dict], int]:
    """Each bucket's value and its share of the treasury against the target, in basis points.

    A bucket's value (`total`) is the one definition the breakers, drift and rebalancing use
    (`actors.ledger.LedgerView.bucket`): available + reserved + locked + in transit + margin +
    unrealized (open positions at their mark). The held kinds are listed as `held` (micro-USD).
    Shares are rounded half-even to the basis point; `drifted` is decided on the exact fraction,
    so a bucket at exactly 5 % off its target is not flagged, as in the rebalancing policy.
    """
    view = ledger_from(ledger)
    rows = []
    for name in BUCKETS:
        rows.append({"bucket": name, "available": view.available.get(name, 0),
                     "reserved": view.held_by(name, "reserved"),
                     "held": {kind: view.held_by(name, kind) for kind in HELD_KINDS if view.held_by(name, kind)},
                     "total": view.bucket(name)})
    total = view.total
    for r in rows:
        target = TARGET_BP.get(r["bucket"], 0)
        if total > 0:
            exact = Fraction(r["total"] * 10_000, total)
            actual = round(exact)
            drifted = abs(exact - target) > DRIFT_LIMIT_BP
        else:
            actual, drifted = 0, False
        r.update(target_bp=target, actual_bp=actual, drift_bp=(actual - target) if total > 0 else 0, drifted=drifted)
    return rows, total


def risk_status(raw: dict[str, str], now_ms: int) -> dict:
    """The risk hash as the fence sees it: `effective` is what a spend would meet right now.

    A PAUSE whose `until_ms` has passed lets spends through; a missing state refuses them
    (fail closed), shown as UNKNOWN.
    """
    state = raw.get("state", "")
    until = _int(raw.get("until_ms"))
    if not state:
        effective = "UNKNOWN"
    elif state == "PAUSED" and 0 < until <= now_ms:
        effective = "ACTIVE"
    else:
        effective = state
    return {
        "state": state or "UNKNOWN",
        "effective": effective,
        "breaker": raw.get("breaker", ""),
        "reason": raw.get("reason", ""),
        "until_ms": until,
        "peak": _int(raw.get("peak")),
        "day_start": _int(raw.get("day_start")),
        "day": _int(raw.get("day")),
        "trading_peak": _int(raw.get("trading_peak")),
        "fence_seq": _int(raw.get("fence_seq")),
        "performance": performance_rows(raw),
        "halted_buckets": {k.removeprefix("halt:"): v for k, v in sorted(raw.items()) if k.startswith("halt:")},
    }


def _share_bp(part: int, whole: int) -> int:
    """`part` as basis points of `whole`, rounded half-even (0 when there is nothing to measure)."""
    return round(Fraction(part * 10_000, whole)) if whole > 0 else 0


def performance_rows(raw: dict[str, str]) -> dict:
    """P&L and the distance to each breaker, as RiskGuard last judged them (its risk hash).

    P&L is performance (total less external flows: `docs/policy.md`): `pnl_today_micros` since the
    day-start, `pnl_start_micros` since the treasury opened, each split into realized and unrealized
    (the change in the open positions' marks). Each breaker row: `used_bp` of `limit_bp` (a loss
    of 2.7 % against a 5 % limit is 270 of 500), with the reference it measures from. `fired`
    lists the breakers that fired, with when (ms) and what they did.
    """
    # before RiskGuard's first judgement the hash holds what opening wrote (peak, day start): the
    # total is then the day start, and `judged` is false (the view says so instead of a 0 % limit)
    judged = "judged_ms" in raw
    day_start = _int(raw.get("day_start"))
    total, peak = _int(raw.get("total", raw.get("day_start"))), _int(raw.get("peak"))
    unrealized = _int(raw.get("unrealized"))
    pnl_today, pnl_start = _int(raw.get("pnl_today")), _int(raw.get("pnl_start"))
    today_unrealized = unrealized - _int(raw.get("day_unrealized"))
    trading_peak = _int(raw.get("trading_peak"))
    trading = _int(raw.get("trading_value", raw.get("trading_peak")))
    fired = []
    for key, value in raw.items():
        if key.startswith("fired:"):
            at, _, action = value.partition("|")
            fired.append({"breaker": key.removeprefix("fired:"), "at_ms": _int(at), "action": action})
    return {
        "judged": judged,
        "pnl_today_micros": pnl_today, "pnl_today_realized_micros": pnl_today - today_unrealized,
        "pnl_today_unrealized_micros": today_unrealized,
        "pnl_start_micros": pnl_start, "pnl_start_realized_micros": pnl_start - unrealized,
        "pnl_start_unrealized_micros": unrealized,
        "breakers": [
            {"breaker": "daily_loss", "used_bp": _share_bp(max(0, day_start - total), day_start),
             "limit_bp": _int(raw.get("limit_daily_loss_bp")), "from": "day start", "from_micros": day_start},
            {"breaker": "treasury_drawdown", "used_bp": _share_bp(max(0, peak - total), peak),
             "limit_bp": _int(raw.get("limit_drawdown_bp")), "from": "peak", "from_micros": peak},
            {"breaker": "trading_drawdown", "used_bp": _share_bp(max(0, trading_peak - trading), trading_peak),
             "limit_bp": _int(raw.get("limit_trading_drawdown_bp")), "from": "trading peak",
             "from_micros": trading_peak},
        ],
        "fired": sorted(fired, key=lambda f: f["at_ms"]),
    }


def reservation_rows(raw: dict[str, str], now_ms: int) -> dict:
    """Spends reserved by the fence and not yet settled: `msg id → bucket|amount|seq|at_ms`."""
    items = []
    for msg_id, value in raw.items():
        bucket, amount, seq, at = (value.split("|") + ["", "", "", ""])[:4]
        at_ms = _int(at)
        items.append({"msg_id": msg_id, "bucket": bucket, "amount": _int(amount), "seq": _int(seq),
                      "at_ms": at_ms, "age_ms": max(0, now_ms - at_ms) if at_ms else None})
    items.sort(key=lambda r: (r["at_ms"], r["seq"]))
    return {"count": len(items), "amount": sum(r["amount"] for r in items), "items": items[:MAX_ITEMS]}


def record_rows(raw: dict[str, Any], money_field: str) -> dict:
    """Open escrows or positions: each record decoded from JSON or msgpack, secrets scrubbed.

    `money_field` names the integer micro-USD field summed over every record (`amount` locked in
    escrows, `margin` posted for positions), so the totals stay right past `MAX_ITEMS`.
    """
    items = []
    for rid in sorted(raw):
        record = decode_record(raw[rid])
        items.append({"id": rid, **record} if isinstance(record, dict) else {"id": rid, "value": record})
    total = sum(v for r in items if isinstance(v := r.get(money_field), int) and not isinstance(v, bool))
    return {"count": len(items), money_field: total, "items": items[:MAX_ITEMS]}


def with_net(escrows: dict) -> dict:
    """Each escrow with `net_to_counterparty` (micro-USD): the amount less the escrow service's fee,
    what the counterparty is paid on release (the locked amount is the gross)."""
    for item in escrows["items"]:
        amount, fee = item.get("amount"), item.get("fee")
        if isinstance(amount, int) and isinstance(fee, int) and "net_to_counterparty" not in item:
            item["net_to_counterparty"] = amount - fee
    return escrows


def decode_record(data: bytes | str) -> Any:
    """JSON or msgpack (whichever the writer used), made JSON-safe; anything else as text."""
    blob = data.encode() if isinstance(data, str) else data
    for decoder in (msgspec.json.decode, msgspec.msgpack.decode):
        try:
            return scrub(decoder(blob))
        except (msgspec.DecodeError, TypeError, ValueError):
            continue
    return blob.decode("utf-8", "replace")[:SUMMARY_CHARS]


def scrub(value: Any) -> Any:
    """JSON-safe copy of a decoded record with secret-looking fields replaced by `***`."""
    if isinstance(value, dict):
        return {str(k): ("***" if _SECRET_NAME.search(str(k)) else scrub(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(v) for v in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


# ---------------------------------------------------------------- the journal


def journal_row(entry_id: bytes | str, fields: dict) -> dict:
    """One journal entry as type, time, causation and a one-line summary.

    The envelope is read without the typed schema on purpose: a status screen must keep working
    when a newer worker journals an event type this process does not know yet.
    """
    row: dict[str, Any] = {"entry_id": _text(entry_id), "msg_id": "", "type": "?", "created_ms": 0,
                           "causation": None, "correlation": None, "summary": "", "outcome": None}
    raw = fields.get(FIELD, fields.get(FIELD.decode()))
    try:
        env = msgspec.msgpack.decode(raw) if raw is not None else None
    except msgspec.DecodeError as exc:
        env = None
        row["summary"] = f"undecodable entry: {exc}"[:SUMMARY_CHARS]
    if not isinstance(env, dict) or not isinstance(env.get("body"), dict):
        row["summary"] = row["summary"] or "entry without an envelope"
        return row
    body = env["body"]
    row.update(msg_id=str(env.get("id", "")), type=str(body.get("type", "?")), created_ms=_int(env.get("created_ms")),
               causation=scrub(env.get("causation")), correlation=scrub(env.get("correlation")),
               outcome=OUTCOME_KIND_BY_TAG.get(str(body.get("type"))))
    try:
        row["summary"] = summarize(body)
    except Exception as exc:  # noqa: BLE001 - an odd body must not break the screen
        row["summary"] = f"(unreadable {row['type']}: {exc})"
    return row


def summarize(body: dict, limit: int | None = SUMMARY_CHARS) -> str:
    """A one-line reading of an event body, amounts in dollars; cut to `limit` characters with `…`
    (None: the whole line, as `treasury cmd --wait` prints it)."""
    kind = body.get("type")
    if kind == "CapitalAllocated":
        parts = ", ".join(f"{k} {format_usd(v)}" for k, v in body.get("buckets", {}).items())
        text = f"allocated {format_usd(body['total'])}: {parts}"
    elif kind == "BetSettled":
        outcome = "won" if body.get("won") else "lost"
        pnl = body["pnl"]
        text = (f"{body.get('game')} stake {format_usd(body['stake'])} {outcome}, "
                f"P&L {'+' if pnl >= 0 else ''}{format_usd(pnl)}, casino now {format_usd(body['bucket_after'])}")
    elif kind == "RiskStateChanged":
        by = f" by {body['breaker']}" if body.get("breaker") else ""
        text = f"{body.get('previous')} → {body.get('state')}{by}: {body.get('reason')}"
    elif OUTCOME_KIND_BY_TAG.get(str(kind), "done") != "done" and body.get("reason"):
        what = f"{body['command']} " if body.get("command") else ""
        code = f" ({body['code']})" if body.get("code") else ""
        text = f"{what}{OUTCOME_KIND_BY_TAG[str(kind)]}{code}: {body['reason']}"
        if isinstance(body.get("stake"), int):
            text += f"; {format_usd(body['stake'])} released"
    elif kind == "PositionOpened":
        text = (f"{body.get('side')} {body.get('coin')} {format_usd(body['notional'])} at {body.get('entry_price')}, "
                f"{body.get('leverage')}x, margin {format_usd(body['margin'])}, stop-loss {body.get('stop_loss')}, "
                f"take-profit {body.get('take_profit')}; position {body.get('position_id')}")
    elif kind == "PositionClosed":
        pnl = body["pnl"]
        text = (f"{body.get('side')} {body.get('coin')} closed at {body.get('exit_price')} ({body.get('reason')}), "
                f"P&L {'+' if pnl >= 0 else ''}{format_usd(pnl)}, fee {format_usd(body['fee'])}")
    elif kind == "EscrowCreated":
        # the counterparty is paid the amount less the escrow service's fee, never the gross amount
        net = body.get("net_to_counterparty", body["amount"] - body["fee"])
        text = (f"escrow {body.get('escrow_id')}: {format_usd_exact(body['amount'])} locked; on release "
                f"{body.get('counterparty')} gets {format_usd_exact(net)}, net of the escrow service's "
                f"{format_usd_exact(body['fee'])} fee; times out in {body.get('timeout_hours')} h (then refunded to "
                f"this agent less the fee)")
    else:
        from supervisor.status_json import money_fields

        money = money_fields(str(kind))
        text = ", ".join(f"{str(k).removesuffix('_micros')}={_money_or_short(k, v, k in money)}"
                         for k, v in body.items() if k != "type" and not _SECRET_NAME.search(str(k)))
    line = _one_line(text)
    if limit is not None and len(line) > limit:
        line = line[: max(0, limit - 1)] + "…"
    return line


# ---------------------------------------------------------------- the deployment


DEAD_SAMPLE = 500
"""Dead entries per shard read (newest first) to count them by reason."""

ALERTS_SHOWN = 3


def collect_deployment(client: redis.Redis, keys: Keys, *, now_ms: int, heartbeat_stale_ms: int = 5000) -> dict:
    """Workers (heartbeats joined with the supervisor's slots: uptime, restarts, last exit), dead
    letters (per shard and per reason), the latest alerts, parked spends and command backlogs."""
    pipe = client.pipeline(transaction=False)
    pipe.hgetall(keys.workers())
    pipe.hgetall(keys.supervisor())
    pipe.xrevrange(keys.alerts(), count=ALERTS_SHOWN)
    pipe.xlen(keys.alerts())
    beats, slots_raw, alerts_raw, alerts_len = pipe.execute()
    workers = worker_rows(beats, now_ms, heartbeat_stale_ms)
    slots = slot_rows(slots_raw, now_ms)
    by_consumer = {w["consumer"]: w for w in workers}
    for consumer, slot in slots.items():
        w = by_consumer.get(consumer)
        if w is None:  # a slot whose worker is down (restarting, or failed to start)
            w = {"consumer": consumer, "pid": None, "role": slot["role"], "shards": None, "heartbeat_ms": 0,
                 "age_ms": None, "processed": 0, "dead_lettered": 0, "stale": True}
            workers.append(w)
        w.update(uptime_ms=slot["uptime_ms"], restarts=slot["restarts"], last_exit=slot["last_exit"],
                 escalated=slot["escalated"])
    workers.sort(key=lambda r: (r["role"], r["consumer"]))
    dead = dead_rows(client, keys)
    return {
        "workers": workers,
        "supervised": bool(slots),
        "dead": dead,
        "dead_by_reason": dead_reasons(client, keys, [d["shard"] for d in dead]),
        "alerts": alert_rows(alerts_raw, alerts_len),
        "parked": parked_rows(client, keys, now_ms),
        "backlog": backlog_rows(client, keys),
    }


SPEND_ROLES = ("casino", "trading", "escrow")


def parked_rows(client: redis.Redis, keys: Keys, now_ms: int) -> list[dict]:
    """Spends whose venue outcome is still unknown (the bus parked them with their funds reserved):
    role, agent, message id, `age_ms`, last error, whether the alert went out. One round trip."""
    pipe = client.pipeline(transaction=False)
    slots = [(shard, role) for shard in range(keys.shards) for role in SPEND_ROLES]
    for shard, role in slots:
        pipe.hgetall(keys.parked(shard, role))
    rows = []
    for (shard, role), raw in zip(slots, pipe.execute(raise_on_error=False), strict=True):
        if not isinstance(raw, dict):
            continue
        for entry_id, value in raw.items():
            try:
                record = json.loads(value)
            except ValueError:
                continue
            rows.append({"shard": shard, "role": role, "entry_id": _text(entry_id),
                         "agent": str(record.get("agent", "")), "msg_id": str(record.get("msg_id", "")),
                         "type": str(record.get("type", "")), "age_ms": max(0, now_ms - _int(record.get("since_ms"))),
                         "error": _one_line(str(record.get("error", "")))[:SUMMARY_CHARS],
                         "alerted": bool(record.get("alerted"))})
    rows.sort(key=lambda r: -r["age_ms"])
    return rows


def slot_rows(raw: dict, now_ms: int) -> dict[str, dict]:
    """The supervisor's worker slots (`<prefix>:supervisor`): uptime, restarts and last exit reason."""
    out = {}
    for name, value in raw.items():
        try:
            info = json.loads(value)
        except ValueError:
            continue
        if not isinstance(info, dict):
            continue
        started = _int(info.get("started_ms"))
        out[_text(name)] = {"role": str(info.get("role", "?")),
                            "uptime_ms": max(0, now_ms - started) if started else None,
                            "restarts": _int(info.get("restarts")), "last_exit": str(info.get("last_exit") or ""),
                            "escalated": bool(info.get("escalated"))}
    return out


_REASON_WORD = re.compile(r"[a-z]+", re.ASCII)
_REASON_TAIL = frozenset({"a", "an", "by", "for", "from", "in", "of", "on", "the", "to", "with"})


def dead_reason(error: str, agent: str = "") -> str:
    """The reason code of a dead entry's error, the same for every agent and id: the error's text up
    to its first colon (after an exception class name, the text that follows it), without the
    agent's name, quoted values or words holding digits, as lower-case words joined by `_` (at most
    48 characters); the class name when nothing else is left, else `unknown`.

    "no trading credentials for agent ghost" (agent ghost) → `no_trading_credentials`;
    "ConfigError: no ledger for 'ghost'" → `no_ledger`; "KeyError: 'x'" → `keyerror`."""
    parts = [p.strip() for p in _one_line(error).split(":")]
    klass = parts[0] if len(parts) > 1 and re.fullmatch(r"[A-Z][A-Za-z]*(Error|Exception|Refused)", parts[0]) else ""
    code = _reason_words(parts[1] if klass else parts[0], agent)
    return code or _reason_words(klass, agent) or "unknown"


def _reason_words(text: str, agent: str) -> str:
    text = re.sub(r"'[^']*'|\"[^\"]*\"", " ", text)
    words = []
    for word in text.split():
        if (agent and word.strip(".,;()[]") == agent) or any(c.isdigit() for c in word):
            continue
        words.extend(_REASON_WORD.findall(word.lower()))
    while words and (words[-1] in _REASON_TAIL or words[-2:-1] and words[-1] == "agent" and words[-2] in _REASON_TAIL):
        words.pop()
    return "_".join(words)[:48].rstrip("_")


def dead_reasons(client: redis.Redis, keys: Keys, shards: list[int]) -> dict[str, int]:
    """Dead entries per reason over the newest `DEAD_SAMPLE` of each non-empty shard, most first."""
    if not shards:
        return {}
    pipe = client.pipeline(transaction=False)
    for shard in shards:
        pipe.xrevrange(keys.dead(shard), count=DEAD_SAMPLE)
    counts: dict[str, int] = {}
    for reply in pipe.execute(raise_on_error=False):
        if not isinstance(reply, list):
            continue
        for _entry_id, fields in reply:
            f = {_text(k): v for k, v in fields.items()}
            reason = dead_reason(_text(f.get("error", b"")), _text(f.get("agent", b"")))
            counts[reason] = counts.get(reason, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def alert_rows(newest: list, count: int) -> dict:
    """How many alerts the deployment holds (`count`), and the newest (`XREVRANGE` reply) read."""
    latest = []
    for entry_id, fields in newest:
        try:
            alert = json.loads(fields.get(b"alert") or fields.get("alert") or b"{}")
        except ValueError:
            alert = {}
        alert = alert if isinstance(alert, dict) else {}
        latest.append({"id": _text(entry_id), "at_ms": _int(alert.get("at_ms")),
                       "reason": _one_line(str(alert.get("reason", "")))[:SUMMARY_CHARS],
                       "halted": len(alert.get("halted") or [])})
    return {"count": int(count), "latest": latest}


def worker_rows(raw: dict, now_ms: int, stale_ms: int) -> list[dict]:
    """Each worker's last heartbeat; a worker silent for longer than `stale_ms` is `stale`."""
    rows = []
    for name, value in raw.items():
        consumer = _text(name)
        try:
            info = json.loads(value)
            if not isinstance(info, dict):
                raise ValueError("not an object")
        except ValueError:
            rows.append({"consumer": consumer, "pid": None, "role": "?", "shards": None, "heartbeat_ms": 0,
                         "age_ms": None, "processed": 0, "dead_lettered": 0, "stale": True,
                         "error": "unreadable heartbeat"})
            continue
        beat = _int(info.get("heartbeat_ms"))
        age = max(0, now_ms - beat) if beat else None
        shards = info.get("shards")
        rows.append({
            "consumer": str(info.get("consumer") or consumer),
            "pid": info.get("pid"),
            "role": str(info.get("role", "?")),
            "shards": list(shards) if isinstance(shards, list) else None,
            "heartbeat_ms": beat,
            "age_ms": age,
            "processed": _int(info.get("processed")),
            "dead_lettered": _int(info.get("dead_lettered")),
            "stale": age is None or age > stale_ms,
        })
    rows.sort(key=lambda r: (r["role"], r["consumer"]))
    return rows


def dead_rows(client: redis.Redis, keys: Keys) -> list[dict]:
    """Dead-stream length per shard (non-empty ones only) with its latest error."""
    pipe = client.pipeline(transaction=False)
    for shard in range(keys.shards):
        pipe.xlen(keys.dead(shard))
    lengths = pipe.execute(raise_on_error=False)
    busy = [(s, int(n)) for s, n in enumerate(lengths) if isinstance(n, int) and n > 0]
    if not busy:
        return []
    pipe = client.pipeline(transaction=False)
    for shard, _ in busy:
        pipe.xrevrange(keys.dead(shard), count=1)
    latest = pipe.execute(raise_on_error=False)
    rows = []
    for (shard, length), last in zip(busy, latest, strict=True):
        row: dict[str, Any] = {"shard": shard, "length": length, "last": None}
        if isinstance(last, list) and last:
            entry_id, fields = last[0]
            f = {_text(k): v for k, v in fields.items()}
            row["last"] = {"entry_id": _text(entry_id), "role": _text(f.get("role", b"")),
                           "agent": _text(f.get("agent", b"")), "msg_id": _text(f.get("msg_id", b"")),
                           "at_ms": _int(f.get("at_ms")), "deliveries": _int(f.get("deliveries")),
                           "error": _one_line(_text(f.get("error", b"")))[:SUMMARY_CHARS]}
        rows.append(row)
    return rows


def backlog_rows(client: redis.Redis, keys: Keys, roles: Iterable[str] = ROLES) -> dict:
    """Per role, over every shard: entries in the command streams, pending (delivered, not acked)
    and lag (not yet delivered) for the role's consumer group.

    `lag` is what Redis 7 reports for the group; where it reports none (Redis 6.2, which keeps no
    such counter, or 7.x after entries were deleted) it is counted: the entries after the group's
    last-delivered id (`XRANGE (<id> +`), which are exactly the ones not yet delivered, deleted or
    not. A count stops at `LAG_SCAN` entries per stream and the role's `lag_at_least` is then true
    (at least that many). `lag` is null only if even that read failed. A stream with entries but no
    group is counted in `ungrouped`, since nothing will ever read it.
    """
    roles = list(roles)
    pipe = client.pipeline(transaction=False)
    stream_of: dict[tuple[str, int], str] = {}
    for role in roles:
        for shard in range(keys.shards):
            stream = stream_of[(role, shard)] = keys.commands(shard, role)
            pipe.xlen(stream)
            pipe.xinfo_groups(stream)
    replies = pipe.execute(raise_on_error=False)
    out: dict[str, dict] = {}
    uncounted: list[tuple[str, int, str, str, int]] = []
    i = 0
    for role in roles:
        acc: dict = {"streams": 0, "entries": 0, "pending": 0, "lag": 0, "ungrouped": 0, "busy_shards": []}
        for shard in range(keys.shards):
            length, groups = replies[i], replies[i + 1]
            i += 2
            if not isinstance(length, int) or (length == 0 and isinstance(groups, Exception)):
                continue  # no such stream
            acc["streams"] += 1
            acc["entries"] += length
            group = next((g for g in groups if _text(g.get("name", b"")) == f"g:{role}"), None) \
                if isinstance(groups, list) else None
            if group is None:
                if length:
                    acc["ungrouped"] += 1
                    acc["busy_shards"].append({"shard": shard, "pending": 0, "lag": length})
                    acc["lag"] += length
                continue
            pending = _int(group.get("pending"))
            lag = group.get("lag")
            acc["pending"] += pending
            if lag is None and length:
                last = _text(group.get("last-delivered-id", b"0-0"))
                uncounted.append((role, shard, stream_of[(role, shard)], last, pending))
                continue
            lag = int(lag or 0)
            acc["lag"] += lag
            if pending or lag:
                acc["busy_shards"].append({"shard": shard, "pending": pending, "lag": lag})
        out[role] = acc
    _count_lag(client, out, uncounted)
    return {role: acc for role, acc in out.items() if acc["streams"]}


LAG_SCAN = 1000
"""Entries counted per stream when Redis does not report a group's lag (Redis 6.2)."""


def _count_lag(client: redis.Redis, out: dict[str, dict], uncounted: list[tuple[str, int, str, str, int]]) -> None:
    """The lag of groups Redis gave none for: entries after the last-delivered id, up to `LAG_SCAN`."""
    if not uncounted:
        return
    pipe = client.pipeline(transaction=False)
    for _, _, stream, last, _ in uncounted:
        pipe.xrange(stream, min=f"({last}", max="+", count=LAG_SCAN)
    for (role, shard, _, _, pending), entries in zip(uncounted, pipe.execute(raise_on_error=False), strict=True):
        acc = out[role]
        if isinstance(entries, Exception) or acc["lag"] is None:
            acc["lag"] = None
            continue
        lag = len(entries)
        acc["lag"] += lag
        acc["lag_at_least"] = acc.get("lag_at_least", False) or lag >= LAG_SCAN
        if lag or pending:
            acc["busy_shards"].append({"shard": shard, "pending": pending, "lag": lag})


# ---------------------------------------------------------------- helpers


def _hash(reply: Any, what: str, errors: list[str]) -> dict[str, Any]:
    value = _reply(reply, what, errors, {})
    if not isinstance(value, dict):
        return {}
    return {_text(k): (v if what in ("escrows", "positions") else _text(v)) for k, v in value.items()}


def _reply(reply: Any, what: str, errors: list[str], default: Any) -> Any:
    if isinstance(reply, Exception):
        errors.append(f"{what}: {_one_line(reply)}")
        return default
    return reply


def _text(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    return "" if value is None else str(value)


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _money_or_short(key: str, value: Any, money: bool = False) -> str:
    """A micro-USD field (declared so in the message schema, `money`, or named in
    `status_json.MONEY_KEYS`) in dollars, and a map of them as `{name=$..., ...}`; a small map of
    plain values (policy settings, whose micro-USD ones are `MONEY_SETTINGS`) as `{name=value, ...}`;
    anything else as `_short`."""
    from actors.policy.buckets import MONEY_SETTINGS
    from supervisor.status_json import MONEY_KEYS

    money = money or key in MONEY_KEYS or key.endswith("_micros")
    if money and isinstance(value, int) and not isinstance(value, bool):
        return format_usd(value)
    if isinstance(value, dict) and 0 < len(value) <= 8 and all(isinstance(v, (int, str)) for v in value.values()):
        return "{" + ", ".join(
            f"{k}={format_usd(v) if isinstance(v, int) and (money or k in MONEY_SETTINGS) else _short(v)}"
            for k, v in value.items()) + "}"
    return _short(value)


def _short(value: Any) -> str:
    if isinstance(value, dict):
        return "{…}"
    if isinstance(value, list):
        return f"[{len(value)}]"
    return str(value)


def _one_line(value: Any) -> str:
    return " ".join(str(value).split())


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)
