"""The venue side of silo transfers: each operation, each look-up, each balance read.

One `AgentVenues` per agent, built from the deployment's venue URLs and the agent's credentials
in Redis (API keys, wallet addresses, and the wallet key the `key_provider` derives). Nothing
here writes Redis; the silo actor records every step before and after calling these.

None of the operations takes an idempotency key at the real venues, so each has a look-up that
answers `FOUND`, `ABSENT` or `UNKNOWN` with the window it covered (`Lookup`):

- a wallet send: the real wallet API has no send history, so the sender's USDC balance is the
  record. The silo actor is the only spender of the wallet's USDC and sends one transfer at a
  time, recording the balance before it: a balance lower by the amount is `FOUND`, unchanged is
  `ABSENT`, anything else (money arrived meanwhile) is `UNKNOWN`.
- a casino withdrawal: `GET /auth/withdrawals` (the 50 newest). A row with the amount and our
  address created since the attempt is `FOUND`; none, with the list reaching back before the
  attempt (or shorter than a page), is `ABSENT`; a full page that starts after the attempt
  cannot prove anything: `UNKNOWN`.

Balances: the wallet's USDC on Base, the casino balance, and the trading collateral (the real
trading API has no balance endpoint: read through the sandbox's exchange view in paper mode,
unknown otherwise). An unreadable balance is `None`, never 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from actors.chain_view import addresses_key
from messages.money import format_usd
from venue.errors import VenueError

FOUND, ABSENT, UNKNOWN = "FOUND", "ABSENT", "UNKNOWN"
PAGE = 50
"""Rows the casino's deposit and withdrawal lists return at most."""

INCOME_REASONS: dict[str, str] = {"payment_received": "casino", "escrow_referral_commission:": "referral"}
"""Casino ledger credits from outside that this role books as income, by reason prefix, and the
bucket each is income of: a payment by another agent (`payment_received`, `POST /stats/pay`) is
the casino bucket's; the escrow service's 15 % of its fee on an escrow of an agent this one
referred (`escrow_referral_commission: <id>`) is referral income (the referral sweep counts only
the casino's own `referral_commission_l<n>:` credits). Escrow payouts to the agent
(`escrow_release: <id>`) are not among them: the casino role books those, once, as a flow with
the escrow as its reference (`actors/incoming.py`); booking them here too counted them twice."""

SLACK_MS = 5_000
"""Clock difference allowed between the treasury and a venue's `createdAt` (seconds on the wire)."""


@dataclass(frozen=True)
class Lookup:
    status: str
    ref: str = ""
    detail: str = ""
    window: str = ""
    """What the look-up covered, in words (for the journal)."""
    row: Any = None


@dataclass(frozen=True)
class Outcome:
    """What a venue operation answered: `sent` (with ref), `review` (casino withdrawal over
    $1,000, debited, waiting), `refused` (a definite no: nothing moved), `lost` (no answer)."""

    kind: str
    ref: str = ""
    detail: str = ""
    fee: int = 0


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _created_ms(row) -> int | None:
    value = getattr(row, "created_at", None)
    if isinstance(value, int):
        return value * 1000 if value < 10**11 else value
    return None


KeyProvider = Callable[[dict[str, str]], "str | None"]


def sandbox_key_provider(creds: dict[str, str]) -> str | None:
    """The Base private key of the agent's wallet, derived from its mnemonic the way the sandbox
    derives it (paper mode). Live mode needs a real BIP-44 derivation, which is not built: the
    executor then holds wallet sends as refused (`no wallet key`)."""
    mnemonic = creds.get("wallet_mnemonic")
    if not mnemonic:
        return None
    from sandbox.wallet import derive_wallet

    return derive_wallet(mnemonic)[1]["base"]


class AgentVenues:
    def __init__(self, client, keys, agent: str, urls: dict[str, str], *, key_provider: KeyProvider | None = None,
                 paper: bool = True, clients: dict[str, Any] | None = None):
        from venue.client.casino import CasinoClient
        from venue.client.trading import TradingClient
        from venue.client.wallet import WalletClient

        raw = client.hgetall(keys.credentials(agent))
        self.creds = {_text(k): _text(v) for k, v in raw.items()}
        addresses = client.hgetall(addresses_key(keys, agent))
        self.wallet_address = _text(addresses[b"base"]) if b"base" in addresses else None
        self.urls, self.paper = urls, paper
        self.key_provider = key_provider
        factories = {"casino": CasinoClient, "wallet": WalletClient, "trading": TradingClient}
        made = {}
        for service, cls in factories.items():
            given = (clients or {}).get(service)
            if given is not None:  # a client made by the caller (tests): it gets the agent's key
                if self.creds.get(f"{service}_key"):
                    given.set_api_key(self.creds[f"{service}_key"])
                made[service] = given
            elif service in urls:
                made[service] = cls(urls[service], self.creds.get(f"{service}_key"))
        self.casino, self.wallet, self.trading = made["casino"], made["wallet"], made.get("trading")
        self._own = clients is None

    def close(self) -> None:
        if not self._own:
            return
        for c in (self.casino, self.wallet, self.trading):
            if c is not None and hasattr(c, "close"):
                c.close()

    # ------------------------------------------------------------------ balances (None = unknown)

    def balance(self, silo: str) -> tuple[int | None, str]:
        """The silo's balance in micro-USD and a note; `None` when it cannot be read."""
        try:
            if silo == "casino":
                return int(self.casino.balance().balance), "GET /auth/balance"
            if silo == "wallet":
                if self.wallet_address is None:
                    return None, "no wallet address stored"
                return int(self.wallet.usdc_balance("base", self.wallet_address)), "USDC on Base"
            if silo == "trading":
                return self._trading_collateral()
        except VenueError as exc:
            return None, f"unreadable: {exc}"
        return None, f"no silo {silo!r}"

    def _trading_collateral(self) -> tuple[int | None, str]:
        agent_id = self.creds.get("trading_agent_id")
        if agent_id is None:
            return None, "no trading account"
        if not self.paper:
            return None, "the trading API has no balance endpoint (collateral sits on Hyperliquid)"
        from venue.client import SandboxAdmin

        account = SandboxAdmin(self.urls["casino"]).trading_account(agent_id)
        return int(account["collateral_micros"]) + int(account.get("margin_locked_micros", 0)), "exchange account"

    # ------------------------------------------------------------------ operations

    def destination_address(self, silo: str) -> str:
        if silo == "casino":
            return self.casino.deposit_address("base").address
        if silo == "trading":
            if self.trading is None:
                raise LookupError("no trading venue configured")
            return self.trading.deposit_address()
        if silo == "wallet":
            if self.wallet_address is None:
                raise LookupError("no wallet address stored")
            return self.wallet_address
        raise LookupError(f"no silo {silo!r}")

    def send_usdc(self, to: str, micros: int) -> Outcome:
        """One `POST /wallet/send` of USDC on Base (never retried here)."""
        from venue.client.wallet_types import USDC_CONTRACTS, from_base_units

        key = self.key_provider(self.creds) if self.key_provider else None
        if key is None or self.wallet_address is None:
            return Outcome("refused", detail="no wallet key for this agent: the send cannot be signed")
        try:
            sent = self.wallet.send("base", to, from_base_units(micros, 6), key, token=USDC_CONTRACTS["base"])
        except VenueError as exc:
            return self._failure(exc)
        return Outcome("sent", ref=sent.tx_hash, detail=f"tx {sent.tx_hash}")

    def casino_withdraw(self, micros: int, transfer: str) -> Outcome:
        """One `POST /auth/withdraw` to the agent's wallet ($0.50 fee on top; over $1,000 reviewed)."""
        if self.wallet_address is None:
            return Outcome("refused", detail="no wallet address stored: nowhere to withdraw to")
        try:
            result = self.casino.withdraw(micros, self.wallet_address, idempotency_key=transfer)
        except VenueError as exc:
            return self._failure(exc)
        fee = int(result.fee or 0)
        if result.status == "pending_review":
            return Outcome("review", ref=result.withdrawal_id, fee=fee,
                           detail=f"withdrawal {result.withdrawal_id} of {format_usd(micros)} is over the casino's "
                                  f"$1,000 review threshold: debited, waiting for the casino's review")
        return Outcome("sent", ref=result.withdrawal_id, fee=fee, detail=f"withdrawal {result.withdrawal_id}")

    @staticmethod
    def _failure(exc: VenueError) -> Outcome:
        from venue.errors import VenueRejected

        if isinstance(exc, VenueRejected):
            return Outcome("refused", detail=str(exc))
        return Outcome("lost", detail=str(exc))

    # ------------------------------------------------------------------ look-ups

    def find_send(self, micros: int, balance_before: int) -> Lookup:
        """Was a wallet send of `micros` made since `balance_before` was read? (see module doc)"""
        now, note = self.balance("wallet")
        window = f"the wallet's USDC balance since the attempt ({format_usd(balance_before)} before it)"
        if now is None:
            return Lookup(UNKNOWN, detail=note, window=window)
        if balance_before - now == micros:
            return Lookup(FOUND, detail=f"the balance fell by {format_usd(micros)}", window=window)
        if now == balance_before:
            return Lookup(ABSENT, detail="the balance is unchanged", window=window)
        return Lookup(UNKNOWN, detail=f"the balance moved by {format_usd(balance_before - now)}, not by "
                                      f"{format_usd(micros)}", window=window)

    def find_withdrawal(self, micros: int, since_ms: int, ref: str = "") -> Lookup:
        """The casino withdrawal of `micros` to our wallet made since `since_ms` (or with id `ref`)."""
        try:
            rows = self.casino.withdrawals()
        except VenueError as exc:
            return Lookup(UNKNOWN, detail=f"withdrawals unreadable: {exc}")
        for row in rows:
            if ref and str(row.id) == ref:
                return Lookup(FOUND, ref=str(row.id), row=row, detail=f"status {row.status}")
        created = [c for c in (_created_ms(r) for r in rows) if c is not None]
        window = (f"{len(rows)} newest withdrawals"
                  + (f", back to {min(created)} ms" if created else ""))
        if not ref:
            for row in rows:
                c = _created_ms(row)
                addr = (row.address or "").lower()
                if int(row.amount) == micros and addr == (self.wallet_address or "").lower() and \
                        c is not None and c >= since_ms - SLACK_MS:
                    return Lookup(FOUND, ref=str(row.id), row=row, detail=f"status {row.status}", window=window)
        covered = len(rows) < PAGE or (created and min(created) < since_ms - SLACK_MS)
        if covered:
            return Lookup(ABSENT, window=window, detail="no such withdrawal in a list that covers the attempt")
        return Lookup(UNKNOWN, window=window, detail="the list does not reach back to the attempt")

    def find_casino_deposit(self, micros: int, since_ms: int, claimed: set[str]) -> Lookup:
        """A credited casino deposit of about `micros` (a swap may keep 0.5 %) since `since_ms`,
        not already claimed by another transfer or booked as income."""
        try:
            rows = self.casino.deposits()
        except VenueError as exc:
            return Lookup(UNKNOWN, detail=f"deposits unreadable: {exc}")
        low = micros - micros // 200 - 10_000
        for row in sorted(rows, key=lambda r: _created_ms(r) or 0):
            c = _created_ms(row)
            if str(row.id) in claimed or row.status != "credited" or c is None or c < since_ms - SLACK_MS:
                continue
            if low <= int(row.amount) <= micros:
                return Lookup(FOUND, ref=str(row.id), row=row, detail=f"deposit {row.id} credited {row.amount}")
        return Lookup(ABSENT, window=f"{len(rows)} newest deposits", detail="no matching credited deposit")

    def outside_income(self) -> list[tuple[str, int, str, str]]:
        """(reference, micro-USD, what it is, the bucket it is income of) for every credited casino
        deposit and every casino ledger credit of `INCOME_REASONS`, among the 50 newest of each
        (escrow payouts are the casino role's: `actors/incoming.py`). Raises `VenueError` when
        either list is unreadable."""
        out = [(str(r.id), int(r.amount), f"casino deposit {r.id} that no transfer of the treasury explains", "casino")
               for r in self.casino.deposits() if r.status == "credited"]
        for e in self.casino.ledger():
            reason = e.reason or ""
            if getattr(e, "type", "credit") != "credit":
                continue
            bucket = next((b for prefix, b in INCOME_REASONS.items() if reason.startswith(prefix)), None)
            if bucket is not None:
                out.append((f"ledger:{e.id}", int(e.amount), f"casino credit {reason!r}", bucket))
        return out
