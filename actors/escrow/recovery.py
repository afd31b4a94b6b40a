"""After a crash or a lost answer: did the venue create the escrow or not?

Creating an escrow is a spend with no idempotency at the venue, and the venue cannot list
escrows. What it does offer:

- the description is stored and returned by `GET /escrow/:id`, so the treasury tags it with the
  message id (`… [ref:<message id>]`, `venue.client.escrow.tag_description`);
- the creation debits the casino balance with a ledger entry `escrow_lock: <escrow id>`, and
  `GET /auth/ledger` returns the 50 newest entries.

So the lookup walks the escrow-lock debits of the right amount in the casino ledger and GETs
each one until a description matches (`EscrowClient.find_created`). Finding it settles the
question. NOT finding it only proves absence if the ledger window still reaches back to before
the creation was sent: the intent records the newest ledger entry seen just before the call
(`ledger_head`), and if that entry is still among the 50 returned, every later entry — the lock
debit included, had there been one — was looked at. If the window has moved past it (more than
50 casino entries since, e.g. a busy casino bucket), the answer is unknown and the treasury
refuses to guess: `CreationUnresolved`, the reservation stays held, an operator decides.

The order matters: the lookup reads the ledger first and the window check reads it again after.
The window only slides forward, so if the recorded head is in the second read it was in the
first, and the first covered everything since the head.
"""

from __future__ import annotations

from actors.escrow.store import CreatingIntent
from venue.client.casino import CasinoClient
from venue.client.escrow import EscrowClient
from venue.client.types import EscrowCreated as VenueEscrow

LEDGER_WINDOW = 50
"""How many entries `GET /auth/ledger` returns (newest first)."""


class CreationUnresolved(Exception):
    """The venue may hold the escrow, but the casino ledger no longer shows far enough back to tell."""


def ledger_head(casino: CasinoClient) -> str:
    """The id of the newest casino ledger entry, or "" when the ledger is empty."""
    entries = casino.ledger()
    return str(entries[0].id) if entries else ""


def find_or_prove_absent(escrow: EscrowClient, casino: CasinoClient, intent: CreatingIntent) -> VenueEscrow | None:
    """The escrow this intent created, or None when it provably was not created.

    Raises `CreationUnresolved` when neither can be shown, and lets `VenueUnavailable` through
    (the bus retries; nothing is decided on a half-read venue).
    """
    found = escrow.find_created(intent.description, intent.amount)
    if found is not None:
        return found
    ids = [str(e.id) for e in casino.ledger()]
    if intent.ledger_head:
        if intent.ledger_head in ids:
            return None
    elif len(ids) < LEDGER_WINDOW:
        return None
    raise CreationUnresolved(
        f"escrow of {intent.amount} micro-USD for {intent.counterparty} may exist at the venue: the casino ledger "
        f"no longer reaches back to entry {intent.ledger_head or '(empty ledger)'} recorded before the call")
