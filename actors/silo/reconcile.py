"""Reconciliation: every silo's balance at its venue against what the ledger says it holds there.

Pure arithmetic (`expected_by_silo`, `compare`) plus the read (`reconcile`). The ledger's figure
for a silo is the whole value of the buckets whose home it is (`rebalancer.HOME_SILO`), corrected
for silo transfers not finished: money the ledger already counts at the destination but that has
not left the origin is added back to the origin; money sent and not yet landed is in flight,
shown separately and counted in neither silo. The trading figure leaves out the open positions'
unrealized P&L: the venue's figure is collateral plus posted margin, and the mark is not in it.

Money that moves at a venue outside a silo transfer is counted where it physically went. Income
(escrow payouts received, payments, casino referral commissions, unexplained deposits) is booked
to a bucket whose home is the silo it arrived in (casino), so it needs no correction. Two kinds
are not:

- wallet and trading referral commissions are referral income, but they are paid out to the
  wallet: what the referral actor counts as landed there (`at:chain`) is counted in the wallet,
  and what it asked for and was not paid yet (`<source>:in_transit`) in no silo (in flight to
  the wallet; a payout the wallet shows before the weekly sweep counts it is not a difference);
- escrows: the reserve's bucket lives in the wallet, but escrows are paid from the casino
  balance. So the reserve has a **position at the casino**:

    parked (net landed `PlaceFunds`, the paper float)
    − every escrow amount the venue debited at creation     (open ones are `reserve:locked`)
    + every refund the venue credited back (amount − fee)

which is `parked − locked − escrow_spent` (escrow_spent: released amounts and refund fees, from
the journal). It is counted whether or not anything was parked: an escrow funded from casino
money that was not parked reserve money (an unbooked surplus there) makes the position negative,
i.e. the reserve owes the casino silo, and the reserve's money still in the wallet is counted
there. What escrows lock sits at the escrow service, in no silo. A balance that cannot be read is
`unknown`, never 0. Nothing here changes the ledger: a difference is an operator's decision
(`AdjustLedger`).
"""

from __future__ import annotations

from actors.ledger import read_ledger
from actors.referral import read_state as read_referral_state
from actors.silo.planning import HOPS
from actors.silo.records import list_transfers, placement_key
from messages.money import format_usd
from messages.silo_msgs import ReconciliationChecked, SiloCheck

SILOS = ("wallet", "casino", "trading")
DEFAULT_TOLERANCE = 10_000
"""$0.01: the venues report money rounded to the cent."""

HOME = {"reserve": "wallet", "trading": "trading", "casino": "casino", "referral": "casino"}


def expected_by_silo(ledger, transfers, parked: int = 0, escrow_spent: int = 0, referral_chain: int = 0,
                     referral_payouts: int = 0) -> tuple[dict[str, int], dict[str, int], dict[str, str]]:
    """(ledger figure per silo, in flight per destination silo, notes per silo).

    `parked`: the reserve's money parked at the casino (net landed `PlaceFunds`, the paper float);
    `escrow_spent`: what escrows took out of the casino balance for good (released amounts, refund
    fees). Escrows are funded from the casino balance, so what is locked and spent comes out of the
    reserve's position there, which goes negative when escrows took more than was parked.
    `referral_chain`: referral income paid out to the wallet (wallet and trading commissions) and
    not moved on yet; `referral_payouts`: commissions asked for and not paid yet, waiting at those
    services (in no silo, shown in flight to the wallet). The referral bucket counts both, but
    neither is in the casino balance."""
    expected = {s: 0 for s in SILOS}
    for bucket, silo in HOME.items():
        expected[silo] += ledger.bucket(bucket)
    notes: dict[str, list[str]] = {s: [] for s in SILOS}
    unrealized = ledger.held_by("trading", "unrealized")
    if unrealized:  # the open positions' mark: in the bucket's value, not in the venue's collateral and margin
        expected["trading"] -= unrealized
        notes["trading"].append(f"open positions' unrealized P&L of {format_usd(unrealized)} is not counted: it "
                                f"is not in the venue's collateral until they close")
    locked = ledger.held_by("reserve", "locked")
    if locked:
        notes["wallet"].append(f"{format_usd(locked)} locked in escrow is at the escrow service")
    float_left = parked - locked - escrow_spent
    expected["wallet"] -= locked + float_left
    expected["casino"] += float_left
    if float_left > 0:
        notes["casino"].append(f"{format_usd(float_left)} of the reserve is parked here")
    elif float_left < 0:
        notes["casino"].append(f"escrows took {format_usd(-float_left)} here beyond the reserve's parked money "
                               f"(the reserve's share of it is still in the wallet)")
    in_flight = {s: 0 for s in SILOS}
    if referral_chain:
        expected["casino"] -= referral_chain
        expected["wallet"] += referral_chain
        notes["wallet"].append(f"{format_usd(referral_chain)} of referral commissions was paid out here")
    if referral_payouts:
        expected["casino"] -= referral_payouts
        in_flight["wallet"] += referral_payouts
        notes["wallet"].append(f"{format_usd(referral_payouts)} of referral commissions is being paid out to here")
    for t in transfers:
        if t.state in ("landed", "returned"):
            continue
        at = HOPS[(t.from_silo, t.to_silo)][t.int("hop")][0]
        counted = t.from_silo if t.text("place_bucket") else t.to_silo  # where the ledger counts it now
        expected[counted] -= t.amount
        if t.state == "pending":
            expected[at] += t.amount
            notes[at].append(f"transfer {t.id} has not left yet")
        else:
            in_flight[t.to_silo] += t.amount
            notes[t.to_silo].append(f"transfer {t.id} is {t.state}")
    return expected, in_flight, {s: "; ".join(n) for s, n in notes.items()}


def escrow_outflows(client, keys, agent: str) -> int:
    """What escrows took out of the casino balance for good, from the journal: released amounts and
    the fees kept on refunds. An agent that never had an escrow (no open or closed record) costs no
    journal read."""
    from messages.escrow_msgs import EscrowRefunded, EscrowReleased
    from runtime.journal import replay_events

    spent = 0
    if not client.exists(keys.escrows(agent), keys.escrows_closed(agent)):
        return spent
    for event in replay_events(client, keys, agent, (EscrowReleased, EscrowRefunded)):
        body = event.body
        if isinstance(body, EscrowReleased):
            spent += body.amount
        elif isinstance(body, EscrowRefunded):
            spent += body.fee
    return spent


def parked_at_casino(client, keys, agent: str, bucket: str = "reserve") -> int:
    """`bucket`'s money parked at the casino (net landed `PlaceFunds`; the paper float), micro-USD,
    before anything escrows took of it."""
    return int(client.hget(placement_key(keys, agent), f"{bucket}@casino") or 0)


def parked_left(client, keys, agent: str, bucket: str = "reserve") -> int:
    """What of `bucket`'s money parked at the casino is still there (never below 0): the reserve's
    position at the casino, net of what escrows locked and spent (the most that can be brought
    home without taking another bucket's money)."""
    parked = parked_at_casino(client, keys, agent, bucket)
    if bucket != "reserve":
        return parked
    locked = read_ledger(client, keys, agent).held_by("reserve", "locked")
    return max(0, parked - locked - escrow_outflows(client, keys, agent))


def compare(venue: dict[str, int | None], expected: dict[str, int], in_flight: dict[str, int],
            notes: dict[str, str], tolerance: int, arriving: dict[str, list[int]] | None = None
            ) -> tuple[SiloCheck, ...]:
    """Per silo: `match` within `tolerance`, or when the difference is exactly money in flight to
    it (`arriving`: the amounts per destination) that the venue has already credited."""
    arriving = arriving or {}
    out = []
    for silo in SILOS:
        have = venue.get(silo)
        if have is None:
            out.append(SiloCheck(silo=silo, status="unknown", venue_micros=None, ledger_micros=expected[silo],
                                 in_flight_micros=in_flight[silo], difference_micros=None, note=notes.get(silo, "")))
            continue
        diff = have - expected[silo]
        note = notes.get(silo, "")
        status = "match" if abs(diff) <= tolerance else "differs"
        if status == "differs" and arrived(diff, arriving.get(silo, []), tolerance):
            status, note = "match", "; ".join(filter(None, [note, f"{format_usd(diff)} in flight already credited: "
                                                                  f"it lands at the next watch"]))
        out.append(SiloCheck(silo=silo, status=status, venue_micros=have, ledger_micros=expected[silo],
                             in_flight_micros=in_flight[silo], difference_micros=diff, note=note))
    return tuple(out)


def arrived(diff: int, amounts: list[int], tolerance: int) -> bool:
    """Whether `diff` is what some of the in-flight transfers into a silo add up to (a deposit the
    venue has credited and the watcher has not landed yet). Up to 12 transfers are weighed."""
    sums = {0}
    for amount in amounts[:12]:
        sums |= {s + amount for s in sums}
    return any(s and abs(diff - s) <= tolerance for s in sums)


def reconcile(client, keys, agent: str, venues, *, tolerance: int = DEFAULT_TOLERANCE,
              reason: str = "on demand") -> ReconciliationChecked:
    """Read every silo (through `venues.balance(silo)`) and compare with the ledger."""
    balances, unread = {}, {}
    for silo in SILOS:
        value, note = venues.balance(silo)
        balances[silo] = value
        if value is None:
            unread[silo] = note
    ledger = read_ledger(client, keys, agent)
    parked = parked_at_casino(client, keys, agent)
    spent = escrow_outflows(client, keys, agent)  # parked or not: escrows are paid from the casino balance
    referral = read_referral_state(client, keys, agent)
    payouts = [amount for amount in referral.in_transit.values() if amount > 0]
    transfers = list_transfers(client, keys, agent)
    expected, in_flight, notes = expected_by_silo(ledger, transfers, parked, spent,
                                                  referral.held_at.get("chain", 0), sum(payouts))
    for silo, why in unread.items():
        notes[silo] = "; ".join(filter(None, [f"balance unknown: {why}", notes.get(silo, "")]))
    arriving: dict[str, list[int]] = {}
    for t in transfers:
        if t.state in ("sent", "review", "sending", "unknown"):
            arriving.setdefault(t.to_silo, []).append(t.amount)
    arriving.setdefault("wallet", []).extend(payouts)  # a payout the wallet has and the sweep has not counted
    checks = compare(balances, expected, in_flight, notes, tolerance, arriving)
    clean = all(c.status == "match" for c in checks)
    alerted = any(c.status == "differs" for c in checks)
    return ReconciliationChecked(reason=reason, silos=checks, clean=clean, tolerance_micros=tolerance, alerted=alerted)


def describe(check: ReconciliationChecked) -> list[str]:
    """One line per silo, for people."""
    lines = []
    for c in check.silos:
        venue = "unknown" if c.venue_micros is None else format_usd(c.venue_micros)
        diff = "" if c.difference_micros is None else f", difference {format_usd(c.difference_micros)}"
        flight = f", in flight {format_usd(c.in_flight_micros)}" if c.in_flight_micros else ""
        lines.append(f"{c.silo:8} {c.status:8} venue {venue}, ledger {format_usd(c.ledger_micros)}{flight}{diff}"
                     + (f" ({c.note})" if c.note else ""))
    return lines
