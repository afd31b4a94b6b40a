"""httpx clients of the Purple Flea services, plus `SandboxAdmin` for the local sandbox.

`SandboxAdmin` drives the sandbox's `/_sandbox/*` side door, which the real services do not
have: credit a deposit, move the clock, set faults, read the Idempotency-Key log.

    admin = SandboxAdmin(handle.urls["casino"])    # a service URL or the root URL
    admin.credit("ag_0123456789ab", 100_000_000)   # a $100 deposit lands; returns the new balance
"""

from __future__ import annotations

from typing import Any

import httpx
import msgspec

from venue.client.base import DEFAULT_TIMEOUT_S, Secret, ServiceClient, UsdMicros
from venue.client.casino import CasinoClient
from venue.client.escrow import EscrowClient
from venue.client.faucet import FaucetClient
from venue.wire import to_venue_amount

SANDBOX_SERVICES = ("casino", "escrow", "faucet", "trading", "wallet")


class _Credit(msgspec.Struct):
    deposit_id: str
    new_balance: UsdMicros


class SandboxAdmin(ServiceClient):
    """Client of the sandbox-only `/_sandbox` routes. Every call here changes nothing real."""

    service = "sandbox"

    def __init__(self, url: str, *, timeout_s: float = DEFAULT_TIMEOUT_S,
                 transport: httpx.BaseTransport | None = None) -> None:
        root = url.rstrip("/")
        head, _, last = root.rpartition("/")
        if last in SANDBOX_SERVICES and "://" in head:
            root = head
        super().__init__(root + "/_sandbox", None, timeout_s=timeout_s, transport=transport, retries=0)

    def credit(self, agent_id: str, micros: int, *, chain: str = "base") -> int:
        """Simulate a credited casino deposit of `micros`; returns the new balance (micro-USD)."""
        result = self.post("/casino/credit", _Credit, {"agent_id": agent_id, "amount": to_venue_amount(micros),
                                                      "chain": chain}, auth=False)
        return int(result.new_balance)

    def advance_clock(self, *, ms: int = 0, hours: float = 0) -> int:
        """Move the sandbox clock forward (due escrow timeouts run at once); returns now_ms."""
        return int(self.request_json("POST", "/clock/advance", body={"ms": ms, "hours": hours}, auth=False)["now_ms"])

    def now_ms(self) -> int:
        return int(self.request_json("GET", "/clock", auth=False)["now_ms"])

    def set_chain(self, *, up: bool) -> bool:
        """Make simulated on-chain sends (casino withdrawals) succeed or fail (500, refunded)."""
        return bool(self.request_json("POST", "/chain", body={"up": up}, auth=False)["chain_up"])

    def set_faults(self, **settings: Any) -> dict[str, Any]:
        """Replace the fault settings (`error_rate`, `latency_ms`, `drop_rate`, `garbage_rate`,
        `seed`, `after_ratio`); omitted ones reset to their defaults."""
        return self.request_json("POST", "/faults", body=settings, auth=False)

    def faults(self) -> dict[str, Any]:
        """The current settings and counts of injected faults by kind and phase."""
        return self.request_json("GET", "/faults", auth=False)

    def idempotency(self, key: str) -> dict[str, Any]:
        """How many POSTs with this Idempotency-Key reached a handler, and their statuses."""
        return self.request_json("GET", "/idempotency", params={"key": key}, auth=False)

    def idempotency_summary(self) -> dict[str, Any]:
        return self.request_json("GET", "/idempotency/summary", auth=False)

    def run_escrow_timeouts(self) -> int:
        return int(self.request_json("POST", "/escrow/run-timeouts", body={}, auth=False)["refunded"])

    # The trading service keeps its own admin routes at <root>/trading/_sandbox; "/../trading"
    # resolves there from this client's <root>/_sandbox base.

    def fund_trading(self, agent_id: str, micros: int) -> int:
        """Simulate a collateral deposit on the exchange for a trading agent; returns its collateral."""
        result = self.request_json("POST", "/../trading/_sandbox/fund",
                                   body={"agent_id": agent_id, "amount_usd": to_venue_amount(micros)}, auth=False)
        return int(result["collateral_micros"])

    def trading_account(self, agent_id: str) -> dict[str, Any]:
        """The exchange's view of a trading agent: free collateral, margin locked, open positions."""
        return self.request_json("GET", f"/../trading/_sandbox/account/{agent_id}", auth=False)

    def set_price(self, coin: str, price: str) -> str:
        """Pin a market's price (the seeded walk resumes from it)."""
        return str(self.request_json("POST", "/../trading/_sandbox/price", body={"coin": coin, "price": price},
                                     auth=False)["price"])

    def fund_wallet(self, chain: str, address: str, units: int, token: str = "USDC") -> dict[str, Any]:
        """Simulate an on-chain deposit to a wallet address (USDC units are micro-USD)."""
        return self.request_json("POST", "/../wallet/_sandbox/fund",
                                 body={"chain": chain, "address": address, "token": token, "units": units}, auth=False)

    def set_deposit_delay(self, service: str, delay_ms: int, chain: str | None = None) -> dict[str, Any]:
        """How long the sandbox takes to credit a deposit into `service` (casino|trading), in ms of
        the sandbox's clock; due deposits are credited by `deliver_deposits` or the poller."""
        body: dict[str, Any] = {"service": service, "delay_ms": delay_ms}
        if chain:
            body["chain"] = chain
        return self.request_json("POST", "/../wallet/_sandbox/deposit-delay", body=body, auth=False)

    def deliver_deposits(self) -> list[dict[str, Any]]:
        """Credit every deposit whose delay has passed on the sandbox's clock, now."""
        return self.request_json("POST", "/../wallet/_sandbox/deliver-deposits", body={}, auth=False)["delivered"]

    def wallet_deposits(self) -> list[dict[str, Any]]:
        """The sandbox's log of deposits routed from the wallet to the casino or trading deposit
        addresses: `[{id, service, status, amount_micros, due_ms, ...}]` (paper mode's stand-in for
        reading Hyperliquid collateral)."""
        return self.request_json("GET", "/../wallet/_sandbox/deposits", auth=False)["deposits"]

    def wallet_usdc(self, chain: str, address: str) -> int:
        """The USDC units (micro-USD) the simulated chain holds at `address`."""
        return int(self.request_json("GET", "/../wallet/_sandbox/balances",
                                     params={"chain": chain, "address": address}, auth=False)["USDC"])

    def health(self) -> dict[str, Any]:
        return self.request_json("GET", "/health", auth=False)


__all__ = ["CasinoClient", "EscrowClient", "FaucetClient", "SandboxAdmin", "Secret", "ServiceClient"]
