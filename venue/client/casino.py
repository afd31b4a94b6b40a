"""Typed client of the casino API (`<base>/api/v1/...`), amounts in micro-USD.

Spends (`bet`, `withdraw`, `pay`, `bet_batch`) are sent once. `place_bet_once` is the safe way
to bet: the venue has no idempotency, so after a lost answer it looks the bet up by its
`client_seed` in the bet export and only sends again when the lookup proves the first attempt
never landed. A `client_seed` must therefore be unique per bet (the treasury uses its message id).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import msgspec

from messages.errors import MoneyError
from messages.money import usd_from_venue
from venue.client.base import DEFAULT_TIMEOUT_S, ServiceClient, UsdMicros
from venue.client.kelly_check import venue_max_stake, win_odds
from venue.client.lookup import SKEW_MS, Lookup, Presence, scan_pages
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
    KellyLimits,
    LedgerEntry,
    Payment,
    ReferralCode,
    ReferralStats,
    SeedHash,
    SeedRotation,
    VerificationWire,
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

WITHDRAW_FEE = 500_000
"""The casino's flat withdrawal fee, micro-USD."""
LIST_PAGE = 50
"""Rows of `GET /auth/ledger`, `/auth/deposits`, `/auth/withdrawals` (the newest; no paging)."""
EXPORT_LIMIT = 10_000
"""Rows of one `GET /bets/export.csv` (newest first)."""


class _Entries(msgspec.Struct):
    entries: list[LedgerEntry]


class _Deposits(msgspec.Struct):
    deposits: list[Deposit]


class _Withdrawals(msgspec.Struct):
    withdrawals: list[Withdrawal]


class _BatchWire(msgspec.Struct):
    results: list[dict[str, Any]]
    balance_after: UsdMicros
    kelly_max_next_bet: UsdMicros


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
    refunded_5xx = frozenset({"withdrawal_failed"})

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
        `VenueUnavailable` reconcile with `lookup_withdrawal` before trying again.

        Guards a real-service bug: the casino does not notice that its reservation failed, so a
        withdrawal above the balance answers 200 (`pending_review` over $1000, or a send) without
        a debit. The balance is read first and a withdrawal it cannot cover is refused here
        (`VenueRejected` `insufficient_balance`, nothing sent). A chain failure is a 500
        `withdrawal_failed` after the casino refunded: `VenueRejected` with `details["refunded"]`."""
        dollars = _dollars(amount)
        balance = int(self.balance().balance)
        if amount + WITHDRAW_FEE > balance:
            raise VenueRejected(self.service, f"withdrawal of {amount} micro-USD plus the {WITHDRAW_FEE} fee exceeds "
                                              f"the casino balance of {balance}: not sent", code="insufficient_balance",
                                details={"available_micros": balance, "local": True})
        body = {"amount": dollars, "address": address}
        return self.post(f"{API}/auth/withdraw", WithdrawResult, body, idempotency_key=idempotency_key)

    def lookup_withdrawal(self, amount: int, address: str, *, since_ms: int) -> Lookup[Withdrawal]:
        """Is there a withdrawal of exactly `amount` micro-USD to `address` made since `since_ms`
        (epoch ms)? Reads `GET /auth/withdrawals` (the 50 newest, no paging): FOUND (any status;
        `failed` ones were refunded), ABSENT when the rows reach back before `since_ms` or are
        fewer than 50, else UNKNOWN. Two candidates of the same amount are FOUND as the oldest
        one not before `since_ms`; a caller that sends equal withdrawals concurrently cannot tell
        them apart."""
        rows = self.withdrawals()

        def match(w: Withdrawal) -> bool:
            return (w.amount == amount and w.address.lower() == address.lower()
                    and w.created_ms >= since_ms - SKEW_MS)

        return scan_pages([(rows, len(rows) < LIST_PAGE)], match=match, time_ms=lambda w: w.created_ms,
                          since_ms=since_ms, what=f"withdrawal of {amount} to {address}",
                          clocks_agree=self.clocks_agree())

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

    def lookup_bet(self, client_seed: str, *, since_ms: int) -> Lookup[BetResult]:
        """Is there a bet with this `client_seed` at the venue? `since_ms` (epoch ms) is the
        earliest moment it can have been sent. Reads `GET /bets/export.csv` (the only list that
        carries client seeds: at most 10 000 rows, newest first), paging back with `until` while a
        full export does not reach `since_ms`. FOUND (`recovered=True`, balance read now), ABSENT
        (every bet since `since_ms` was read), or UNKNOWN (never send again on it)."""

        def pages() -> Iterator[tuple[list[dict[str, str]], bool]]:
            until: int | None = None
            while True:
                params = {} if until is None else {"until": _iso_seconds(until)}
                text = self.retry_safe(lambda p=params: self.request_text("GET", f"{API}/bets/export.csv", params=p))
                try:
                    rows = list(csv.DictReader(io.StringIO(text)))
                except csv.Error as exc:  # a field over csv's limit, a NUL byte: not an export we can read
                    raise VenueUnavailable(self.service, f"unreadable bet export ({exc})",
                                           code="unexpected_response") from None
                last = len(rows) < EXPORT_LIMIT
                yield rows, last
                times = [t for t in (_row_ms(r) for r in rows) if t is not None]
                if last or not times or (until is not None and min(times) >= until):
                    return  # the end, or a whole export within one second: no way further back
                until = min(times)

        found = scan_pages(pages(), match=lambda row: row.get("client_seed") == client_seed, time_ms=_row_ms,
                           since_ms=since_ms, what=f"bet {client_seed!r}", clocks_agree=self.clocks_agree())
        if found.presence is not Presence.FOUND:
            return Lookup(found.presence, found.since_ms, None, found.covered_from_ms, found.reason, found.pages)
        assert found.value is not None
        return found.map(lambda row: self._from_export(row, client_seed))

    def _from_export(self, row: dict[str, str], client_seed: str) -> BetResult:
        try:
            amount = usd_from_venue(row["amount_usd"])
            won_amount = usd_from_venue(row["amount_won_usd"])
        except (KeyError, MoneyError) as exc:
            raise VenueUnavailable(self.service, f"unreadable bet export row ({exc})",
                                   code="unexpected_response") from None
        nonce = row.get("nonce")
        result = self._recovered(row["bet_id"], row.get("game", ""), amount, won_amount, row.get("won") == "true",
                                 row.get("payout_multiplier", ""), client_seed, row.get("result_hash") or None)
        return result if not nonce else _with_nonce(result, int(nonce))

    def _recovered(self, bet_id: str, game: str, amount: int, amount_won: int, won: bool, multiplier: str,
                   client_seed: str, result_hash: str | None) -> BetResult:
        return BetResult(bet_id=bet_id, game=game, amount_bet=amount, amount_won=amount_won, won=won,
                         payout_multiplier=multiplier, roll=_roll_of(result_hash),
                         new_balance=int(self.balance().balance),
                         client_seed=client_seed, result_hash=result_hash, recovered=True)

    def place_bet_once(self, game: str, amount: int, params: dict[str, Any], *, client_seed: str,
                       idempotency_key: str, attempts: int = 3, since_ms: int | None = None) -> BetResult:
        """Place a bet at most once, whatever the network does.

        After a `VenueUnavailable` the bet is looked up by `client_seed` (`lookup_bet`, from
        `since_ms`, default now): FOUND → that result (`recovered=True`); ABSENT → the attempt
        provably did nothing, so it is sent again; UNKNOWN → `VenueUnavailable` `outcome_unknown`.
        A 429 is retried after backoff. Ends with the result, a `VenueRejected` (nothing spent;
        `VenueNotApplied` when every attempt was lost and the lookups prove nothing landed), a
        `VenueRateLimited`, or a `VenueUnavailable` when even the lookup failed (outcome unknown).
        """
        since = self._now_ms() if since_ms is None else since_ms
        return self.spend_once(
            f"bet {client_seed!r}",
            lambda: self.bet(game, amount, params, client_seed=client_seed, idempotency_key=idempotency_key),
            lambda: self.lookup_bet(client_seed, since_ms=since), attempts=attempts,
            details={"client_seed": client_seed})

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

    def kelly_limits(self) -> KellyLimits:
        """The venue's own per-game stake caps now (they fall with the balance)."""
        return self.get(f"{API}/kelly/limits", KellyLimits)

    def max_stake(self, game: str, params: dict[str, Any]) -> int | None:
        """The largest stake (micro-USD) the venue's Kelly check accepts for this bet now, from
        the bankroll and risk factor of `GET /kelly/limits` (`venue.client.kelly_check`); None
        for a game whose odds the check is not known for."""
        odds = win_odds(game, params)
        if odds is None:
            return None
        limits = self.kelly_limits()
        return venue_max_stake(int(limits.bankroll), limits.risk_factor, odds)

    def set_risk_factor(self, risk_factor: float) -> KellyConfig:
        """`PUT /kelly/config`: 0.1–1.0. Setting the same value twice is harmless, so it is retried."""
        return self.retry_safe(lambda: self.decode(
            self.request_json("PUT", f"{API}/kelly/config", body={"risk_factor": risk_factor}), KellyConfig,
            "PUT /kelly/config"))

    def seed_hash(self) -> SeedHash:
        return self.get(f"{API}/fairness/seed-hash", SeedHash)

    def verify_bet(self, bet_id: str) -> BetVerification:
        """`revealed=False` while the seed is still secret (`status: seed_not_yet_revealed`);
        after a rotation, `valid` is the venue's `verified` and `server_seed` is revealed."""
        wire = self.retry_safe(lambda: self.post(f"{API}/fairness/verify", VerificationWire, {"bet_id": bet_id}))
        where = f"POST {API}/fairness/verify"
        if wire.proof is not None:
            p = wire.proof
            return BetVerification(bet_id=wire.bet_id, client_seed=p.client_seed, nonce=p.nonce,
                                   result_hash=p.result_hash, server_seed_hash=p.server_seed_hash, revealed=True,
                                   server_seed=p.server_seed, valid=bool(wire.verified and p.hash_matches),
                                   roll=p.computed_result)
        if wire.status != "seed_not_yet_revealed" or None in (wire.client_seed, wire.nonce, wire.result_hash,
                                                               wire.server_seed_hash):
            raise VenueUnavailable(self.service, f"{where}: neither a proof nor an unrevealed commitment",
                                   code="unexpected_response")
        return BetVerification(bet_id=wire.bet_id, client_seed=str(wire.client_seed), nonce=int(wire.nonce or 0),
                               result_hash=str(wire.result_hash), server_seed_hash=str(wire.server_seed_hash),
                               revealed=False)

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


def _row_ms(row: dict[str, str]) -> int | None:
    """`timestamp_utc` of an export row (whole seconds) in epoch ms, or None if unreadable."""
    try:
        return int(datetime.fromisoformat(row["timestamp_utc"].replace("Z", "+00:00")).timestamp() * 1000)
    except (KeyError, ValueError, AttributeError):
        return None


def _iso_seconds(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _with_nonce(result: BetResult, nonce: int) -> BetResult:
    return msgspec.structs.replace(result, nonce=nonce)
