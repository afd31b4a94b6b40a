"""After a crash or a lost answer: did the venue create the escrow or not?

Creating an escrow is a spend with no idempotency at the venue, and the venue cannot list
escrows. What it does offer:

- the description is stored and returned by `GET /escrow/:id`, so the treasury tags it with the
  message id (`… [ref:<message id>]`, `venue.client.escrow.tag_description`);
- the creation debits the casino balance with a ledger entry `escrow_lock: <escrow id>`, and
  `GET /auth/ledger` returns the 50 newest entries.

So the lookup walks the escrow-lock debits of the right amount in the casino ledger and GETs
each one until a description matches (`EscrowClient.lookup_created`). Finding it settles the
question. NOT finding it only proves absence if the rows read reach back before the creation was
sent (`intent.started_ms`, less a clock-skew allowance), or the ledger holds fewer than 50 rows.
Row order and ids prove nothing: the real casino's ids are UUID strings, and rows of one second
come oldest first. Otherwise (more than 50 casino entries since, e.g. a busy casino bucket) the
answer is unknown and the treasury refuses to guess: `CreationUnresolved`, the reservation stays
held, an operator decides.
"""

from __future__ import annotations

from actors.escrow.store import CreatingIntent
from venue.client.casino import CasinoClient
from venue.client.escrow import EscrowClient
from venue.client.types import EscrowCreated as VenueEscrow


class CreationUnresolved(Exception):
    """The venue may hold the escrow, but the casino ledger no longer shows far enough back to tell."""


def ledger_head(casino: CasinoClient) -> str:
    """The id of the first casino ledger row listed, or "" (kept in the intent for operators; the
    proof of absence uses the intent's time, not this id)."""
    entries = casino.ledger()
    return str(entries[0].id) if entries else ""


def find_or_prove_absent(escrow: EscrowClient, casino: CasinoClient, intent: CreatingIntent) -> VenueEscrow | None:
    """The escrow this intent created, or None when it provably was not created.

    Raises `CreationUnresolved` when neither can be shown, and lets `VenueUnavailable` through
    (the bus retries; nothing is decided on a half-read venue)."""
    found = escrow.lookup_created(intent.description, intent.amount, since_ms=intent.started_ms)
    if found.found:
        return found.value
    if found.absent:
        return None
    raise CreationUnresolved(
        f"escrow of {intent.amount} micro-USD for {intent.counterparty} may exist at the venue: {found.reason}")
