"""Typed client of the casino API (`<base>/api/v1/...`), amounts in micro-USD.

Spends (`bet`, `withdraw`, `pay`, `bet_batch`) are sent once. `place_bet_once` is the safe way
to bet: the venue has no idempotency, so after a lost answer it looks the bet up by its
`client_seed` in the bet history and only sends again when the lookup proves the first attempt
never landed. A `client_seed` must therefore be unique per bet (the treasury uses its message id).
"""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx
import msgspec

from messages.errors import MoneyError
from messages.money import usd_from_venue
from venue.client.base import DEFAULT_TIMEOUT_S, ServiceClient, UsdMicros
from venue.client.types import (
    BatchResult,
    BatchSummary,
    BetError,
    BetHistory,
    BetResult,
    BetVerification,
    BetWire,
    CasinoBalance,
    CasinoRegistration,
    Deposit,
    DepositAddress,
    HistoryBet,
    KellyConfig,
    LedgerEntry,
    Payment,
    ReferralCode,
    ReferralStats,
    SeedHash,
    SeedRotation,
    Withdrawal,
    WithdrawResult,
)
from venue.errors import VenueRejected, VenueUnavailable
from venue.wire import to_venue_amount

API = "/api/v1"

GAME_PATHS: dict[str, str] = {
    "coin_flip": "coin-flip", "dice": "dice", "multiplier": "multiplier", "custom": "custom",
    "roulette": "roulette", "blackjack": "blackjack", "crash": "crash", "plinko": "plinko", "slots": "slots",
    "simple_dice": "simple-dice", "hilo": "hilo", "baccarat": "baccarat", "mines": "mines",
    "keno": "keno", "wheel": "wheel", "scratch_card": "scratch-card",
}
"""Batch-style game id → the `/games/<path>` of a single bet."""

HISTORY_LOOKUP_LIMIT = 200


class _Entries(msgspec.Struct):
    entries: list[LedgerEntry] = []


class _Deposits(msgspec.Struct):
    deposits: list[Deposit] = []


class _Withdrawals(msgspec.Struct):
    withdrawals: list[Withdrawal] = []


class _BatchWire(msgspec.Struct):
    results: list[dict[str, Any]]
    balance_after: UsdMicros = UsdMicros(0)
    kelly_max_next_bet: UsdMicros = UsdMicros(0)


def _roll_of(result_hash: str | None) -> str:
    if not result_hash or len(result_hash) < 8:
        return ""
    hundredths = int(result_hash[:8], 16) % 10000
    return f"{hundredths // 100}.{hundredths % 100:02d}"


def _flatten(wire: BetWire) -> BetResult:
    roll = wire.result.get("roll")
    return BetResult(
        bet_id=wire.bet_id, game=wire.game, amount_bet=int(wire.amount_bet), amount_won=int(wire.amount_won),
        won=wire.won, payout_multiplier=str(wire.payout_multiplier),
        roll=_roll_of(wire.proof.result_hash) if wire.proof.result_hash else ("" if roll is None else str(roll)),
        new_balance=int(wire.new_balance), client_seed=wire.proof.client_seed, nonce=wire.proof.nonce,
        server_seed_hash=wire.proof.server_seed_hash, result_hash=wire.proof.result_hash, result=dict(wire.result),
        kelly=wire.kelly,
    )


class CasinoClient(ServiceClient):
    service = "casino"

    def __init__(self, base_url: str, api_key: str | None = None, *, timeout_s: float = DEFAULT_TIMEOUT_S,
                 transport: httpx.BaseTransport | None = None, **options: Any) -> None:
        super().__init__(base_url, api_key, timeout_s=timeout_s, transport=transport, **options)

    # ── account ───────────────────────────────────────────────────────────────────────────

    def register(self, referral_code: str | None = None) -> CasinoRegistration:
        """Create a casino agent (sent once: a retry would create a second agent). The client
        adopts the new key if it had none."""
        body = {"referral_code": referral_code} if referral_code else {}
        registration = self.post(f"{API}/auth/register", CasinoRegistration, body, auth=False)
        if not self.has_key:
            self.set_api_key(registration.api_key)
        return registration

    def balance(self) -> CasinoBalance:
        return self.get(f"{API}/auth/balance", CasinoBalance)

    def ledger(self) -> list[LedgerEntry]:
        """The 50 newest ledger entries, newest first."""
        return self.get(f"{API}/auth/ledger", _Entries).entries

    def deposit_address(self, chain: str = "base") -> DepositAddress:
        """Get (or create once) the deposit address for `chain`; repeating it is harmless."""
        return self.retry_safe(lambda: self.post(f"{API}/auth/deposit-address", DepositAddress, {"chain": chain}))

    def deposits(self) -> list[Deposit]:
        return self.get(f"{API}/auth/deposits", _Deposits).deposits

    def withdrawals(self) -> list[Withdrawal]:
        return self.get(f"{API}/auth/withdrawals", _Withdrawals).withdrawals

    def withdraw(self, amount: int, address: str, *, idempotency_key: str) -> WithdrawResult:
        """Withdraw `amount` micro-USD (plus the $0.50 fee) to a Base address. Sent once; after a
        `VenueUnavailable` reconcile with `withdrawals()` before trying again."""
        body = {"amount": _dollars(amount), "address": address}
        return self.post(f"{API}/auth/withdraw", WithdrawResult, body, idempotency_key=idempotency_key)

    def pay(self, to_agent_id: str, amount: int, memo: str | None = None, *, idempotency_key: str) -> Payment:
        """Casino-internal transfer to another casino agent. Sent once; reconcile via `ledger()`."""
        body: dict[str, Any] = {"to_agent_id": to_agent_id, "amount": _dollars(amount)}
        if memo is not None:
            body["memo"] = memo
        return self.post(f"{API}/stats/pay", Payment, body, idempotency_key=idempotency_key)

    def referral_code(self) -> ReferralCode:
        return self.get(f"{API}/auth/referral/code", ReferralCode)

    def referral_stats(self) -> ReferralStats:
        return self.get(f"{API}/auth/referral/stats", ReferralStats)

    # ── bets ──────────────────────────────────────────────────────────────────────────────

    def bet(self, game: str, amount: int, params: dict[str, Any], *, client_seed: str,
            idempotency_key: str) -> BetResult:
        """One bet, sent once. `game` is the batch id (`coin_flip`, `dice`, `multiplier`,
        `custom`, …), `amount` micro-USD. A Kelly refusal is a `VenueRejected` with code
        `kelly_limit_exceeded` and `details["max_bet_micros"]`."""
        path = GAME_PATHS.get(game)
        if path is None:
            raise ValueError(f"unknown game {game!r}")
        body = {**params, "amount": _dollars(amount), "client_seed": client_seed}
        try:
            wire = self.post(f"{API}/games/{path}", BetWire, body, idempotency_key=idempotency_key)
        except VenueRejected as exc:
            _add_max_bet(exc)
            raise
        return _flatten(wire)

    def bet_history(self, *, limit: int = 50, game: str | None = None, outcome: str | None = None) -> list[HistoryBet]:
        params: dict[str, Any] = {"limit": limit}
        if game:
            params["game"] = game
        if outcome:
            params["outcome"] = outcome
        return self.get(f"{API}/bets/history", BetHistory, params=params).bets

    def find_bet(self, client_seed: str) -> BetResult | None:
        """Did a bet with this `client_seed` happen? Reads the 200 newest bets; when the history
        rows do not carry client seeds (the real service), reads the CSV export instead."""
        rows = self.bet_history(limit=HISTORY_LOOKUP_LIMIT)
        if rows and all(r.client_seed is None for r in rows):
            return self._find_in_export(client_seed)
        for row in rows:
            if row.client_seed == client_seed:
                return self._recovered(row.id, row.game, int(row.amount), int(row.amount_won), row.won,
                                       str(row.multiplier or ""), client_seed, row.result_hash)
        return None

    def _find_in_export(self, client_seed: str) -> BetResult | None:
        text = self.retry_safe(lambda: self.request_text("GET", f"{API}/bets/export.csv"))
        for row in csv.DictReader(io.StringIO(text)):
            if row.get("client_seed") == client_seed:
                try:
                    amount = usd_from_venue(row["amount_usd"])
                    won_amount = usd_from_venue(row["amount_won_usd"])
                except (KeyError, MoneyError) as exc:
                    raise VenueUnavailable(self.service, f"unreadable bet export row ({exc})",
                                           code="unexpected_response") from None
                nonce = row.get("nonce")
                result = self._recovered(row["bet_id"], row.get("game", ""), amount, won_amount,
                                         row.get("won") == "true", row.get("payout_multiplier", ""), client_seed,
                                         row.get("result_hash") or None)
                return result if not nonce else _with_nonce(result, int(nonce))
        return None

    def _recovered(self, bet_id: str, game: str, amount: int, amount_won: int, won: bool, multiplier: str,
                   client_seed: str, result_hash: str | None) -> BetResult:
        return BetResult(bet_id=bet_id, game=game, amount_bet=amount, amount_won=amount_won, won=won,
                         payout_multiplier=multiplier, roll=_roll_of(result_hash),
                         new_balance=int(self.balance().balance),
                         client_seed=client_seed, result_hash=result_hash, recovered=True)

    def place_bet_once(self, game: str, amount: int, params: dict[str, Any], *, client_seed: str,
                       idempotency_key: str, attempts: int = 3) -> BetResult:
        """Place a bet at most once, whatever the network does.

        After a `VenueUnavailable` the bet is looked up by `client_seed`: found → that result
        (`recovered=True`); not found → the attempt provably did nothing, so it is sent again.
        A 429 is retried after backoff. Ends with the result, a `VenueRejected` (nothing spent;
        `VenueNotApplied` when every attempt was lost and the lookups prove nothing landed), a
        `VenueRateLimited`, or a `VenueUnavailable` when even the lookup failed (outcome unknown).
        """
        return self.spend_once(
            f"bet {client_seed!r}",
            lambda: self.bet(game, amount, params, client_seed=client_seed, idempotency_key=idempotency_key),
            lambda: self.find_bet(client_seed), attempts=attempts, details={"client_seed": client_seed})

    def bet_batch(self, bets: list[dict[str, Any]], *, idempotency_key: str) -> BatchResult:
        """Up to 20 bets `{game, amount (micro-USD), **params}` run one by one; failed items come
        back as `BetError`. Sent once (no atomicity on the venue either)."""
        wire_bets = [{**b, "amount": _dollars(b["amount"])} if "amount" in b else dict(b) for b in bets]
        data = self.request_json("POST", f"{API}/bets/batch", body={"bets": wire_bets},
                                 idempotency_key=idempotency_key)
        where = f"POST {API}/bets/batch"
        raw = self.decode(data, _BatchWire, where)
        results: list[BetResult | BetError] = []
        for item in raw.results:
            if isinstance(item, dict) and "error" in item:
                results.append(self.decode(item, BetError, where))
            else:
                results.append(_flatten(self.decode(item, BetWire, where)))
        played = [r for r in results if isinstance(r, BetResult)]
        summary = BatchSummary(total=len(results), won=sum(1 for r in played if r.won),
                               lost=sum(1 for r in played if not r.won), errors=len(results) - len(played),
                               total_wagered=sum(r.amount_bet for r in played),
                               total_won=sum(r.amount_won for r in played))
        return BatchResult(results=results, summary=summary, balance_after=int(raw.balance_after),
                           kelly_max_next_bet=int(raw.kelly_max_next_bet))

    # ── Kelly & fairness ──────────────────────────────────────────────────────────────────

    def kelly_limits(self) -> dict[str, Any]:
        return self.get(f"{API}/kelly/limits", dict)

    def set_risk_factor(self, risk_factor: float) -> KellyConfig:
        """`PUT /kelly/config`: 0.1–1.0. Setting the same value twice is harmless, so it is retried."""
        return self.retry_safe(lambda: self.decode(
            self.request_json("PUT", f"{API}/kelly/config", body={"risk_factor": risk_factor}), KellyConfig,
            "PUT /kelly/config"))

    def seed_hash(self) -> SeedHash:
        return self.get(f"{API}/fairness/seed-hash", SeedHash)

    def verify_bet(self, bet_id: str) -> BetVerification:
        return self.retry_safe(lambda: self.post(f"{API}/fairness/verify", BetVerification, {"bet_id": bet_id}))

    def rotate_seed(self) -> SeedRotation:
        """Reveal the current server seed and start a new one."""
        return self.post(f"{API}/fairness/rotate", SeedRotation)


def _dollars(micros: int) -> float:
    if isinstance(micros, bool) or not isinstance(micros, int) or micros <= 0:
        raise MoneyError(f"amount must be a positive integer of micro-USD, got {micros!r}")
    return to_venue_amount(micros)


def _add_max_bet(exc: VenueRejected) -> None:
    if exc.code == "kelly_limit_exceeded" and "max_bet" in exc.details:
        try:
            exc.details["max_bet_micros"] = usd_from_venue(exc.details["max_bet"])
        except MoneyError:
            pass


def _with_nonce(result: BetResult, nonce: int) -> BetResult:
    return msgspec.structs.replace(result, nonce=nonce)
