"""The `silo` part of a scenario's summary: each silo's venue balance and ledger figure (the last
reconciliation in the journal) and every silo transfer with its fees. Transfers are numbered in
the order they were made (saga ids are random per run, so they are left out)."""

from __future__ import annotations

from actors.silo.records import list_transfers


def silo_report(client, keys, agent: str, journal: list) -> dict:
    """Each silo's venue balance and ledger figure (the last reconciliation) and every transfer
    with its fees, from the journal and the transfer records."""
    transfers = list_transfers(client, keys, agent)
    number = {t.id: f"#{n}" for n, t in enumerate(sorted(transfers, key=lambda t: t.int("created_ms")))}
    fees: dict[str, list[dict]] = {}
    for env in journal:
        if type(env.body).__name__ == "FeeBooked":
            f = env.body
            reason = f.reason.replace(f.transfer, number.get(f.transfer, "?"))  # saga ids are not seeded
            fees.setdefault(f.transfer, []).append({"kind": f.kind, "bucket": f.bucket, "amount_micros": f.amount,
                                                    "reason": reason})
    checks = [env.body for env in journal if type(env.body).__name__ == "ReconciliationChecked"]
    last = checks[-1] if checks else None
    return {
        "transfers": [{"n": number[t.id], "from_silo": t.from_silo, "to_silo": t.to_silo, "amount_micros": t.amount,
                       "state": t.state, "credited_micros": t.int("credited"),
                       "fees": fees.get(t.id, []), "fees_micros": sum(f["amount_micros"] for f in fees.get(t.id, []))}
                      for t in sorted(transfers, key=lambda t: number[t.id])],
        "reconciliation": None if last is None else {
            "clean": last.clean, "tolerance_micros": last.tolerance_micros,
            "silos": {c.silo: {"status": c.status, "venue_micros": c.venue_micros, "ledger_micros": c.ledger_micros,
                               "in_flight_micros": c.in_flight_micros, "difference_micros": c.difference_micros}
                      for c in last.silos}},
    }
