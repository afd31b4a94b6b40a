"""Client of the Purple Flea wallet service (multi-chain HD wallets, sends, swaps).

Reads are retried; spends (send, swap order, referral withdrawal) are sent once. The service has
no idempotency keys and no per-agent transaction listing, so a lost send is looked up by the
sender's balance: `send_once` reads it before sending and again after a failure. A drop of at
least the amount proves the send happened (it is not repeated); an unchanged balance proves it
did not (it is sent again, up to `attempts` times); anything else leaves the outcome unknown and
raises `VenueUnavailable`. The look-up is exact only while nothing else moves that balance, so
keep one sender per address.

Private keys travel in the request body (the API demands it). They are accepted as `Secret`,
revealed only into the JSON body, and never put into a repr, a log line or an exception message.

Two traps of the real service are closed here:
* on Solana and Tron the service ignores `token` and sends the NATIVE coin, so the client refuses
  a token send on any chain but the EVM ones;
* a swap is only an order: the output arrives after the caller's own deposit, and the service
  knows no slippage bound. `execute_swap` checks the order's expected output against the bound
  BEFORE depositing (the sandbox also honours `max_slippage_bps` / `min_output_amount`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypeVar

from messages.errors import MoneyError
from messages.money import usd_from_venue
from venue.client.base import Secret, ServiceClient
from venue.client.wallet_types import (
    NATIVE_DECIMALS,
    USDC_CONTRACTS,
    USDC_DECIMALS,
    CreatedWallet,
    NativeBalance,
    Portfolio,
    ReferralWithdrawal,
    SavedAddress,
    SendResult,
    SwapOrder,
    SwapQuote,
    SwapStatus,
    UsdcBalances,
    WalletReferralStats,
    WalletRegistration,
    from_base_units,
)
from venue.errors import VenueRejected, VenueUnavailable

T = TypeVar("T")

__all__ = ["WalletClient", "SEND_CHAINS", "EVM_SEND_CHAINS"]

SEND_CHAINS = ("ethereum", "base", "solana", "tron", "monero")
"""Chains `send` can move coins on (bitcoin answers 501 `not_implemented`)."""
EVM_SEND_CHAINS = ("ethereum", "base")
"""The only chains where the service honours a `token` (ERC-20) send."""


def _reveal(key: str | Secret) -> str:
    return key.reveal() if isinstance(key, Secret) else key


class WalletClient(ServiceClient):
    """Every wallet route, typed; USDC in micro-USD (= USDC base units), other coins in base units."""

    service = "wallet"

    # ── plumbing ──────────────────────────────────────────────────────────────────────────

    def _get(self, path: str, build: Callable[[Any], T], *, params: dict[str, Any] | None = None) -> T:
        return self.retry_safe(lambda: self._parse(self.request_json("GET", path, params=params), build,
                                                   f"GET {path}"))

    def _post_once(self, path: str, build: Callable[[Any], T], body: dict[str, Any], *,
                   idempotency_key: str | None = None, auth: bool = True) -> T:
        data = self.request_json("POST", path, body=body, auth=auth, idempotency_key=idempotency_key)
        return self._parse(data, build, f"POST {path}")

    # ── account and wallets ─────────────────────────────────────────────────────────────────

    def register(self, referral_code: str | None = None, *, adopt: bool = True) -> WalletRegistration:
        body = {"referral_code": referral_code} if referral_code else {}
        registration = self._post_once("/v1/auth/register", WalletRegistration.from_wire, body, auth=False)
        if adopt:
            self.set_api_key(registration.api_key)
        return registration

    def create_wallet(self) -> CreatedWallet:
        """A new HD wallet. Calling it again REPLACES the stored wallet (the old addresses stay
        spendable only with their own keys), so it is sent once and never retried."""
        return self._post_once("/v1/wallet/create", CreatedWallet.from_wire, {})

    def native_balance(
        self, address: str, chain: str = "base", *, view_key: str | Secret | None = None
    ) -> NativeBalance:
        """The native coin only; USDC is read with `usdc_balances`."""
        params: dict[str, Any] = {"chain": chain}
        if view_key is not None:
            params["view_key"] = _reveal(view_key)
        return self._get(f"/v1/wallet/balance/{address}", NativeBalance.from_wire, params=params)

    def usdc_balances(self, addresses: dict[str, str]) -> UsdcBalances:
        """USDC per chain for `{chain: address}` (base, ethereum, arbitrum, bsc, solana, tron)."""
        if not addresses:
            raise ValueError("give at least one {chain: address}")
        return self._get("/v1/wallet/usdc-balance", UsdcBalances.from_wire, params=dict(addresses))

    def usdc_balance(self, chain: str, address: str) -> int:
        """USDC at one address, in micro-USD. Raises `VenueUnavailable` (`balance_unreadable`) when
        the service could not read the chain or did not list it: unknown is never 0."""
        balances = self.usdc_balances({chain: address})
        row = next((b for b in balances.balances if b.chain == chain), None)
        if row is None or row.usdc_balance is None:
            why = "not listed" if row is None else row.error
            raise VenueUnavailable(self.service, f"USDC balance on {chain} unreadable ({why})",
                                   code="balance_unreadable", details={"chain": chain})
        return row.usdc_balance

    def portfolio(self) -> Portfolio:
        return self._get("/v1/wallet/portfolio", Portfolio.from_wire)

    def saved_addresses(self) -> list[SavedAddress]:
        return self._get("/v1/wallet/portfolio/addresses",
                         lambda d: [SavedAddress.from_wire(row) for row in d.get("addresses", [])])

    def save_address(self, label: str, chain: str, address: str, note: str | None = None) -> SavedAddress:
        body = {"label": label, "chain": chain, "address": address}
        if note is not None:
            body["note"] = note
        return self._post_once("/v1/wallet/portfolio/addresses", SavedAddress.from_wire, body)

    # ── send ───────────────────────────────────────────────────────────────────────────────

    def send(self, chain: str, to: str, amount: str, private_key: str | Secret, *, token: str | None = None,
             idempotency_key: str | None = None) -> SendResult:
        """One `POST /wallet/send`, sent once. `amount` is a decimal string in the coin's unit (a
        token's at 6 decimals). The private key goes into the body and nowhere else."""
        if chain == "bitcoin":
            raise VenueRejected(self.service, "bitcoin sends are not implemented by the service",
                                code="not_implemented", status=501)
        if token is not None and chain not in EVM_SEND_CHAINS:
            raise ValueError(f"token sends work only on {EVM_SEND_CHAINS}: on {chain} the service would send the "
                             f"native coin instead")
        body: dict[str, Any] = {"chain": chain, "to": to, "amount": amount, "private_key": _reveal(private_key)}
        if token is not None:
            body["token"] = token
        return self._post_once("/v1/wallet/send", SendResult.from_wire, body, idempotency_key=idempotency_key)

    def send_once(self, chain: str, from_address: str, to: str, units: int, private_key: str | Secret, *,
                  token: str = "native", idempotency_key: str | None = None, attempts: int = 3) -> SendResult:
        """Send `units` (base units of the native coin, or micro-USD of USDC with `token="USDC"`)
        exactly once, proving the outcome of a lost answer by the sender's balance."""
        if units <= 0:
            raise MoneyError("units must be positive")
        if token == "USDC":
            if chain not in EVM_SEND_CHAINS:
                raise ValueError(f"USDC sends work only on {EVM_SEND_CHAINS}")
            amount, contract = from_base_units(units, USDC_DECIMALS), USDC_CONTRACTS[chain]
        elif token == "native":
            amount, contract = from_base_units(units, NATIVE_DECIMALS[chain]), None
        else:
            raise ValueError("token must be 'native' or 'USDC'")
        key = idempotency_key or f"send-{uuid.uuid4()}"

        def balance() -> int:
            if token == "USDC":
                return self.usdc_balance(chain, from_address)
            return self.native_balance(from_address, chain).base_units

        before = balance()

        def lookup() -> SendResult | None:
            after = balance()
            if before - after >= units:
                return SendResult(tx_hash="", chain=chain, from_address=from_address, to=to, amount=amount,
                                  token=contract, reconstructed=True)
            if after != before:
                raise VenueUnavailable(self.service, f"the balance moved by {before - after}, not by {units}",
                                       code="balance_moved")
            return None  # the balance is unchanged: the send did not happen

        return self.spend_once(f"send on {chain}",
                               lambda: self.send(chain, to, amount, private_key, token=contract, idempotency_key=key),
                               lookup, attempts=max(1, attempts), details={"idempotency_key": key},
                               settle=self.wait_settle)

    def send_usdc_once(self, chain: str, from_address: str, to: str, micros: int, private_key: str | Secret, *,
                       idempotency_key: str | None = None) -> SendResult:
        """Move USDC (micro-USD) on base/ethereum exactly once; gas is paid in the chain's ETH."""
        return self.send_once(chain, from_address, to, micros, private_key, token="USDC",
                              idempotency_key=idempotency_key)

    # ── swaps ──────────────────────────────────────────────────────────────────────────────

    def swap_quote(self, from_chain: str, to_chain: str, from_token: str, to_token: str, amount: int) -> SwapQuote:
        """`amount` in the base units of `from_token`; the 0.5 % fee is already in `to_amount`."""
        params = {"from_chain": from_chain, "to_chain": to_chain, "from_token": from_token, "to_token": to_token,
                  "amount": str(amount)}
        return self._get("/v1/wallet/swap/quote", SwapQuote.from_wire, params=params)

    def swap(self, from_chain: str, to_chain: str, from_token: str, to_token: str, amount: int, to_address: str, *,
             max_slippage_bps: int | None = None, min_output_amount: int | None = None,
             idempotency_key: str | None = None) -> SwapOrder:
        """Create a swap order (sent once). Nothing moves until the deposit is sent, so a lost
        answer costs nothing: the unknown order expires unfunded."""
        body: dict[str, Any] = {"from_chain": from_chain, "to_chain": to_chain, "from_token": from_token,
                                "to_token": to_token, "amount": str(amount), "to_address": to_address}
        if max_slippage_bps is not None:
            body["max_slippage_bps"] = max_slippage_bps
        if min_output_amount is not None:
            body["min_output_amount"] = str(min_output_amount)
        return self._post_once("/v1/wallet/swap", SwapOrder.from_wire, body, idempotency_key=idempotency_key)

    def swap_status(self, order_id: str) -> SwapStatus:
        return self._get(f"/v1/wallet/swap/status/{order_id}", SwapStatus.from_wire)

    def execute_swap(self, from_chain: str, to_chain: str, from_token: str, to_token: str, amount: int,
                     from_address: str, to_address: str, private_key: str | Secret, *,
                     max_slippage_bps: int = 100) -> tuple[SwapOrder, SendResult]:
        """Quote, order, check, deposit: refuses (`VenueRejected`, code `slippage_exceeded`) before
        any money moves if the order's expected output is below the quote less the bound."""
        quote = self.swap_quote(from_chain, to_chain, from_token, to_token, amount)
        minimum = int(Decimal(quote.to_amount) * (10_000 - max_slippage_bps) / 10_000)
        order = self.swap(from_chain, to_chain, from_token, to_token, amount, to_address,
                          max_slippage_bps=max_slippage_bps, min_output_amount=minimum)
        if order.expected_output < minimum:
            raise VenueRejected(self.service, f"swap output {order.expected_output} is below the bound {minimum}",
                                code="slippage_exceeded")
        token = (
            "USDC"
            if from_token.upper() == "USDC" or from_token.lower() == USDC_CONTRACTS.get(from_chain, "").lower()
            else "native"
        )
        decimals = USDC_DECIMALS if token == "USDC" else NATIVE_DECIMALS[from_chain]
        units = int(Decimal(order.deposit_amount).scaleb(decimals))
        sent = self.send_once(from_chain, from_address, order.deposit_address, units, private_key, token=token)
        return order, sent

    # ── referral ───────────────────────────────────────────────────────────────────────────

    def referral_code(self) -> str:
        return self._get("/v1/referral/code", lambda d: str(d["referral_code"]))

    def referral_stats(self) -> WalletReferralStats:
        return self._get("/v1/referral/stats", WalletReferralStats.from_wire)

    def referral_withdraw(self, address: str, chain: str | None = None, *, idempotency_key: str | None = None,
                          pending_before: int | None = None) -> ReferralWithdrawal:
        """Queue the WHOLE withdrawable referral balance (minimum $1) for a manual payout.

        Sending it again after a lost answer is safe: if the first request was queued nothing is
        left, and the service answers 400 `insufficient_balance` with its `pending_usd`. That
        proves the first one (returned with `reconstructed=True`) only against the pending amount
        before the call: the real stats do not send it, so the caller passes `pending_before`
        (micro-USD it has queued and not seen paid). Without it the answer is `VenueUnavailable`
        `unknown_outcome`, never a refusal that would read as "nothing was withdrawn"."""
        body = {"address": address, **({"chain": chain} if chain else {})}
        key = idempotency_key or f"referral-withdraw-{uuid.uuid4()}"
        before = self.referral_stats().pending_usd
        before = before if before is not None else pending_before
        try:
            return self._post_once("/v1/referral/withdraw", ReferralWithdrawal.from_wire, body, idempotency_key=key)
        except VenueUnavailable as exc:
            self.wait_settle(exc)
            lost = exc
        try:
            return self._post_once("/v1/referral/withdraw", ReferralWithdrawal.from_wire, body, idempotency_key=key)
        except VenueRejected as exc:
            pending = exc.details.get("pending_usd")
            if exc.code != "insufficient_balance":
                raise
            if before is None or not isinstance(pending, (int, float)):
                raise VenueUnavailable(self.service, f"referral withdraw: outcome unknown ({lost}; the pending "
                                                     f"amount before the call is not known)",
                                       code="unknown_outcome") from None
            grew = usd_from_venue(pending, field="pending_usd") - before
            if grew <= 0:
                raise
            return ReferralWithdrawal(withdrawal_id="", amount_usd=grew, status="pending", address=address,
                                      chain=chain, reconstructed=True)
        except VenueUnavailable:
            raise VenueUnavailable(self.service, f"referral withdraw: outcome unknown ({lost})",
                                   code="unknown_outcome") from None
