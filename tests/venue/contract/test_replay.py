"""Every recorded request, replayed against the sandbox, gets the same status, error code and
JSON shape (names, JSON types, absent fields, list order) as the real service gave; ids, times
and random outcomes are left out. A field the real service does not send is not sent here.

The recordings are replayed in the order they were made (casino up to the pay calls, escrow,
faucet, bad input, then the rest of the casino calls; trading and wallet on their own), with the
off-API events of the recording run — A's $100 and C's deposit (C bet $1 three times under the
venue's Kelly cap, so it held more than its faucet dollar) — done through the admin side door.
Differences that remain on purpose are listed in `KNOWN` with their reason (docs/venue.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from sandbox import ManualClock, SandboxHandle, start_sandbox
from venue.client import SandboxAdmin

from .recordings import Exchange, load
from .replay import Replayer, differences, shape

KNOWN: dict[str, str] = {
    # exchange id prefix → why the sandbox answers differently (also in docs/venue.md); none left
}
EXTRA_FIELDS: dict[str, tuple[str, str]] = {
    # exchange id prefix → (field the sandbox adds, why)
    "wallet[1]": ("$.sandbox_private_keys", "the sandbox hands out the derived private keys so the treasury can sign "
                                            "sandbox sends without a BIP-32 implementation; the real wallet derives "
                                            "them from the mnemonic, which the treasury keeps"),
}


def _order() -> list[Exchange]:
    casino, escrow, faucet, bad = load("casino"), load("escrow"), load("faucet"), load("bad-input")
    return casino[:43] + escrow + faucet + bad + casino[43:]


@pytest.fixture(scope="module")
def replayed() -> Iterator[dict[str, tuple[Exchange, int, Any]]]:
    results: dict[str, tuple[Exchange, int, Any]] = {}
    with start_sandbox(seed=5, clock=ManualClock()) as handle:
        _run(handle, _order(), results, deposit=True)
    with start_sandbox(seed=6, clock=ManualClock()) as handle:
        _run(handle, load("trading"), results)
    with start_sandbox(seed=7, clock=ManualClock()) as handle:
        _run(handle, load("wallet"), results)
    yield results


def _run(handle: SandboxHandle, exchanges: list[Exchange], results: dict, *, deposit: bool = False) -> None:
    replayer = Replayer(handle.urls)
    admin = SandboxAdmin(handle.root_url)
    admin.set_chain(up=False)  # the recording run reached no chain: withdrawals fail (refunded), balances error
    try:
        for x in exchanges:
            if deposit and x.call == "casino.balance (after $100 deposit)":
                admin.credit(replayer.ids.get("ag_015628dead20", ""), 100_000_000)
            if x.call.startswith("casino.bet C (referred by A)") and x.call.endswith("#0"):
                admin.credit(replayer.ids.get("ag_4928eabe7d82", ""), 10_000_000)  # C's deposit in that run
            if x.file == "bad-input" and x.index == 0:
                admin.advance_clock(ms=61_000)  # the faucet's 5/min window of the recording run had passed
            response, body = replayer.replay(x)
            results[x.id] = (x, response.status_code, body)
    finally:
        replayer.close()
        admin.close()


ALL = _order() + load("trading") + load("wallet")


def _known(x: Exchange) -> str | None:
    return next((why for prefix, why in KNOWN.items() if x.id.startswith(prefix + " ")), None)


@pytest.mark.parametrize("x", ALL, ids=lambda x: x.id)
def test_sandbox_answers_like_the_real_service(x: Exchange, replayed: dict) -> None:
    why = _known(x)
    if why:
        pytest.skip(f"known difference: {why}")
    _, status, body = replayed[x.id]
    assert status == x.status, f"status {status}, real {x.status}: {body}"
    if x.body is None:  # the CSV export
        return
    real_error = x.body.get("error") if isinstance(x.body, dict) else None
    ours_error = body.get("error") if isinstance(body, dict) else None
    assert ours_error == real_error
    extra = next((f for prefix, (f, _) in EXTRA_FIELDS.items() if x.id.startswith(prefix + " ")), None)
    found = [d for d in differences(shape(x.body), shape(body)) if not (extra and d.startswith(extra + ":"))]
    assert found == []
