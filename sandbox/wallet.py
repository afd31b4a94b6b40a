"""Sandbox of the Purple Flea wallet service (`/wallet/v1/...`) and of the chains behind it.

The real service is a thin layer over public chains: it derives HD wallets, reads balances from
RPC nodes, signs sends with a private key the caller puts in the request body, and brokers
cross-chain swaps through Wagyu. The sandbox keeps a pretend ledger of every chain instead:
balances per (chain, address, token) in integer base units (wei, lamports, satoshis, sun,
piconero; USDC has 6 decimals everywhere, so one USDC unit is one micro-USD), and a transfer log
that plays the role of the block explorers.

Reproduced on purpose:

* `wallet/create` overwrites the agent's stored wallet on every call; `base` = `ethereum`;
* `/wallet/balance` shows the native coin only; USDC is read with `/wallet/usdc-balance`;
* `send` takes the raw private key in the body (it is used to derive the sender and then
  dropped: never stored, never logged); token amounts are parsed at 6 decimals; on Solana and
  Tron the `token` field is ignored and the NATIVE coin is sent, as the real code does; bitcoin
  answers 501 `not_implemented`; every send pays gas in the chain's native coin, so a wallet
  holding only USDC cannot move it;
* a swap is an order: the caller must send the deposit itself, the output lands on `to_address`
  and the 0.5 % integrator fee is inside the quote. Sandbox extension: an optional
  `max_slippage_bps` and/or `min_output_amount` on `POST /wallet/swap` make the sandbox refuse
  (400 `swap_failed`) an order whose seeded fill price would break the bound;
* referral withdrawals queue the whole available amount (minimum $1) as `pending`.

Cross-silo moves. A USDC transfer that lands on a casino deposit address (one the casino
sandbox handed out with `POST /auth/deposit-address`), on a trading agent's deposit address, or
on an address registered with `POST /wallet/_sandbox/deposit-routes`, becomes a pending credit to
that service after a delay (the real casino polls Base every 60 s and other chains every 90 s;
the trading delay stands for the Hyperliquid bridge). Due credits are delivered by a background
poller, at the start of every wallet request, and by `POST /wallet/_sandbox/deliver-deposits`.

Not modelled: confirmations and reorgs, ERC-20 tokens other than USDC, Monero view-key scanning.
`/_sandbox/*` under this service is NOT part of the real API.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
import sqlite3
import threading
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from messages.money import MICRO
from sandbox.clock import iso
from sandbox.prices import SPOT_ASSETS, PriceBook
from sandbox.runner import ApiError, SandboxContext, bearer, make_service_app, read_json, reply, wire_cents

log = logging.getLogger(__name__)

SERVICE = "wallet"

CHAINS = ("ethereum", "base", "solana", "bitcoin", "tron", "monero")
"""Chains the service supports (wallet/create, balance, send)."""
USDC_CHAINS = ("base", "ethereum", "arbitrum", "bsc", "solana", "tron")
"""Chains `usdc-balance` reads."""
EVM = ("ethereum", "base", "arbitrum", "bsc")
NATIVE = {"ethereum": ("ETH", 18), "base": ("ETH", 18), "solana": ("SOL", 9), "bitcoin": ("BTC", 8),
          "tron": ("TRX", 6), "monero": ("XMR", 12), "arbitrum": ("ETH", 18), "bsc": ("BNB", 18)}
UNIT_NAME = {"ethereum": "wei", "base": "wei", "solana": "lamports", "tron": "sun", "monero": "piconero"}
USDC_DECIMALS = 6
USDC_CONTRACTS = {
    "base": "0x833589fcd6edb6e08f4c7c32d4f71b54bda02913",
    "ethereum": "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48",
    "arbitrum": "0xaf88d065e77c8cc2239327c5edb3a432268e5831",
    "bsc": "0x8ac76a51cc950d9822d68b83fe1ad97b32cd580d",
}
GAS = {"ethereum": 200_000_000_000_000, "base": 2_000_000_000_000, "solana": 5_000, "tron": 0,
       "monero": 30_000_000}
"""Flat network fee per send, in native base units (0.0002 ETH, 0.000002 ETH, 5000 lamports, …)."""
EXPLORERS = {"ethereum": "https://etherscan.io", "base": "https://basescan.org", "solana": "https://explorer.solana.com",
             "bitcoin": "https://mempool.space", "tron": "https://tronscan.org/#", "monero": "https://xmrchain.net"}
SWAP_FEE = Decimal("0.005")
SWAP_TTL_MS = 30 * 60_000
SWAP_SLIPPAGE_SD = 0.0025
"""Standard deviation of the seeded difference between a swap's quote and its fill."""
REFERRAL_SHARE = Decimal("0.10")
REFERRAL_LEVELS = (Decimal(1), Decimal("0.5"), Decimal("0.25"))
MAX_SAVED_ADDRESSES = 50
DEPOSIT_DELAY_MS = {"casino:base": 60_000, "casino": 90_000, "trading": 60_000}
CASINO_MINIMUM_DEPOSIT = 500_000
POLL_INTERVAL_S = 0.25

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_WORDS = ("abandon ability able about above absent absorb abstract absurd abuse access accident account accuse "
          "achieve acid acoustic acquire across act action actor actress actual adapt add addict address adjust "
          "admit adult advance advice aerobic affair afford afraid again age agent agree ahead aim air airport "
          "aisle alarm album alcohol alert alien all alley allow almost alone alpha already also alter always "
          "amateur amazing among amount amused analyst anchor ancient anger angle angry animal ankle announce "
          "annual another answer antenna antique anxiety any apart apology appear apple approve april arch arctic "
          "area arena argue arm armed armor army around arrange arrest arrive arrow art artefact artist artwork "
          "ask aspect assault asset assist assume asthma athlete atom attack attend attitude attract auction "
          "audit august aunt author auto autumn average avocado avoid awake aware away awesome awful awkward "
          "axis baby bachelor bacon badge bag balance balcony ball bamboo banana banner bar barely bargain barrel "
          "base basic basket battle beach bean beauty because become beef before begin behave behind believe "
          "below belt bench benefit best betray better between beyond bicycle bid bike bind biology bird birth "
          "bitter black blade blame blanket blast bleak bless blind blood blossom blouse blue blur blush board "
          "boat body boil bomb bone bonus book boost border boring borrow boss bottom bounce box boy bracket "
          "brain brand brass brave bread breeze brick bridge brief bright bring brisk broccoli broken bronze "
          "broom brother brown brush bubble buddy budget buffalo build bulb bulk bullet bundle bunker burden").split()

_EVM_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_EVM_KEY = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS wallet_agents (
    id TEXT PRIMARY KEY,
    api_key_hash TEXT NOT NULL UNIQUE,
    referral_code TEXT NOT NULL UNIQUE,
    referred_by TEXT,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS wallet_wallets (
    agent_id TEXT PRIMARY KEY,
    addresses TEXT NOT NULL,
    monero_address TEXT NOT NULL,
    monero_spend_key_hash TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS wallet_balances (
    chain TEXT NOT NULL,
    address TEXT NOT NULL,
    token TEXT NOT NULL,
    units TEXT NOT NULL,
    PRIMARY KEY (chain, address, token)
);
CREATE TABLE IF NOT EXISTS wallet_transfers (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    tx_hash TEXT NOT NULL,
    chain TEXT NOT NULL,
    token TEXT NOT NULL,
    from_address TEXT,
    to_address TEXT NOT NULL,
    units TEXT NOT NULL,
    kind TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_wallet_transfers_to ON wallet_transfers(to_address);
CREATE TABLE IF NOT EXISTS wallet_saved_addresses (
    id TEXT PRIMARY KEY,
    agent_id TEXT NOT NULL,
    label TEXT NOT NULL,
    chain TEXT NOT NULL,
    address TEXT NOT NULL,
    note TEXT,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS wallet_swaps (
    id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL UNIQUE,
    agent_id TEXT NOT NULL,
    from_chain TEXT NOT NULL,
    to_chain TEXT NOT NULL,
    from_token TEXT NOT NULL,
    to_token TEXT NOT NULL,
    from_units TEXT NOT NULL,
    output_units TEXT NOT NULL,
    to_address TEXT NOT NULL,
    deposit_address TEXT NOT NULL,
    fee_micros INTEGER NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    refund_units TEXT,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    done_ms INTEGER
);
CREATE INDEX IF NOT EXISTS idx_wallet_swaps_deposit ON wallet_swaps(deposit_address);
CREATE TABLE IF NOT EXISTS wallet_referral_earnings (
    id TEXT PRIMARY KEY,
    referrer_id TEXT NOT NULL,
    referred_id TEXT NOT NULL,
    swap_id TEXT NOT NULL,
    fee_micros INTEGER NOT NULL,
    commission_micros INTEGER NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS wallet_referral_withdrawals (
    id TEXT PRIMARY KEY,
    referrer_id TEXT NOT NULL,
    amount_micros INTEGER NOT NULL,
    address TEXT NOT NULL,
    chain TEXT NOT NULL,
    status TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS wallet_deposit_routes (
    chain TEXT NOT NULL,
    address TEXT NOT NULL,
    service TEXT NOT NULL,
    agent_id TEXT,
    delay_ms INTEGER,
    PRIMARY KEY (chain, address)
);
CREATE TABLE IF NOT EXISTS wallet_pending_deposits (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    transfer_seq INTEGER NOT NULL,
    service TEXT NOT NULL,
    agent_id TEXT,
    chain TEXT NOT NULL,
    address TEXT NOT NULL,
    micros INTEGER NOT NULL,
    due_ms INTEGER NOT NULL,
    status TEXT NOT NULL,
    result TEXT,
    delivered_ms INTEGER
);
"""


# ── keys and addresses (a pretend derivation: deterministic, not BIP32) ──────────────────────


def _b58(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    out = ""
    while number:
        number, rem = divmod(number, 58)
        out = _B58[rem] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


def _b58check(payload: bytes) -> str:
    return _b58(payload + hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4])


def _b58decode(text: str) -> bytes | None:
    number = 0
    for char in text:
        index = _B58.find(char)
        if index < 0:
            return None
        number = number * 58 + index
    body = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return b"\0" * (len(text) - len(text.lstrip("1"))) + body


def _digest(*parts: str) -> bytes:
    return hashlib.sha256("\x1f".join(parts).encode()).digest()


def normalize(chain: str, address: str) -> str:
    """EVM addresses compare case-insensitively; the other chains' are case-sensitive."""
    return address.lower() if chain in EVM else address


def address_for_key(chain: str, private_key: str) -> str | None:
    """The sandbox's address of a private key, or None when the key is malformed for the chain."""
    if chain in EVM:
        if not _EVM_KEY.match(private_key):
            return None
        return "0x" + _digest("evm", private_key.lower().removeprefix("0x")).hex()[:40]
    if chain == "tron":
        if not _EVM_KEY.match(private_key):
            return None
        return _b58check(b"\x41" + _digest("tron", private_key.lower().removeprefix("0x"))[:20])
    if chain == "solana":
        raw = _b58decode(private_key)
        if raw is None or len(raw) != 64:
            return None
        return _b58(_digest("solana", private_key)[:32])
    return None


def derive_wallet(mnemonic: str) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """(addresses, private keys, monero keys) of a mnemonic, by the sandbox's own derivation."""
    evm_key = "0x" + _digest("m/44'/60'/0'/0/0", mnemonic).hex()
    tron_key = _digest("m/44'/195'/0'/0/0", mnemonic).hex()
    sol_key = _b58(_digest("m/44'/501'/0'/0'", mnemonic) + _digest("m/44'/501'/0'/0'#2", mnemonic))
    btc_key = "K" + _b58(_digest("m/84'/0'/0'/0/0", mnemonic))[:51]
    spend = _digest("monero-spend", mnemonic).hex()
    view = _digest("monero-view", mnemonic).hex()
    evm_address = address_for_key("ethereum", evm_key)
    assert evm_address is not None
    btc_hash = _digest("btc-address", btc_key)
    addresses = {
        "ethereum": evm_address,
        "base": evm_address,
        "solana": address_for_key("solana", sol_key) or "",
        "bitcoin": "bc1q" + "".join(_BECH32[b % 32] for b in btc_hash[:38]),
        "tron": address_for_key("tron", tron_key) or "",
        "monero": "4" + _b58(_digest("monero-address", spend) + _digest("monero-address#2", spend)
                             + _digest("monero-address#3", spend))[:94],
    }
    keys = {"ethereum": evm_key, "base": evm_key, "solana": sol_key, "tron": tron_key, "bitcoin": btc_key}
    monero = {"private_spend_key": spend, "private_view_key": view}
    return addresses, keys, monero


def _key_hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _units(amount: Any, decimals: int, *, floor: bool = False) -> int | None:
    """A decimal amount (string or number) → base units; None if unusable. `floor` truncates extra
    decimals (how `Math.floor(parseFloat(x) * 1e9)` behaves), otherwise they are refused (how
    `ethers.parseUnits` behaves)."""
    if isinstance(amount, bool) or not isinstance(amount, (str, int, float)):
        return None
    try:
        value = Decimal(repr(amount)) if isinstance(amount, float) else Decimal(str(amount).strip())
    except InvalidOperation:
        return None
    if not value.is_finite() or value <= 0:
        return None
    scaled = value.scaleb(decimals)
    if scaled != scaled.to_integral_value():
        if not floor:
            return None
        scaled = scaled.to_integral_value(rounding=ROUND_FLOOR)
    return int(scaled)


def _text(units: int, decimals: int) -> str:
    text = format(Decimal(units).scaleb(-decimals), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def _token_decimals(chain: str, token: str) -> int:
    return USDC_DECIMALS if token == "USDC" else NATIVE[chain][1]


# ── the service ───────────────────────────────────────────────────────────────────────────────


class WalletSandbox:
    """Agents, wallets, the chains' balances and transfers, swaps, referral payouts."""

    def __init__(self, ctx: SandboxContext) -> None:
        self.ctx = ctx
        self.store = ctx.store
        self.store.ensure_schema("wallet", _SCHEMA)
        self.book = PriceBook(ctx.seed, list(SPOT_ASSETS), epoch_ms=ctx.clock.now_ms())
        saved = self.store.meta("wallet.prices")
        if saved:
            self.book.restore(json.loads(saved))
        else:
            self._save_prices()
        self.forced_slippage_bps: int | None = None
        self.delay_overrides: dict[str, int] = {}
        """`service` or `service:chain` → deposit delay in ms (`POST /_sandbox/deposit-delay`)."""
        from sandbox import casino

        if _withdrawal_lands not in casino.ONCHAIN_PAYOUTS:  # casino withdrawals land on this chain
            casino.ONCHAIN_PAYOUTS.append(_withdrawal_lands)
        self._deliver_lock = threading.Lock()

    def now(self) -> int:
        return self.ctx.clock.now_ms()

    # -- prices ----------------------------------------------------------------------------------

    def _save_prices(self) -> None:
        self.store.set_meta("wallet.prices", json.dumps(self.book.snapshot()))

    def sync(self) -> None:
        if self.book.advance_to(self.now()):
            self._save_prices()
        self.deliver_due()

    def usd_price(self, chain: str, token: str) -> Decimal:
        if token == "USDC":
            return Decimal(1)
        return self.book.price(NATIVE[chain][0])

    # -- agents ----------------------------------------------------------------------------------

    def register(self, body: dict[str, Any]) -> dict[str, Any]:
        agent_id = "ag_" + self.ctx.new_id("wallet.agent", 6)
        api_key = "pk_live_" + self.ctx.new_id("wallet.key", 24)
        referral_code = "ref_" + self.ctx.new_id("wallet.referral", 4)
        code = body.get("referral_code")
        with self.store.tx() as db:
            referrer = None
            if isinstance(code, str) and code:
                row = db.execute("SELECT id FROM wallet_agents WHERE referral_code = ?", (code,)).fetchone()
                referrer = row["id"] if row else None
            db.execute("INSERT INTO wallet_agents(id, api_key_hash, referral_code, referred_by, created_ms) "
                       "VALUES (?, ?, ?, ?, ?)", (agent_id, _key_hash(api_key), referral_code, referrer, self.now()))
        return {"agent_id": agent_id, "api_key": api_key, "referral_code": referral_code,
                "message": "Store your API key securely — it cannot be recovered."}

    def authenticate(self, request: Request) -> Any:
        token = bearer(request)
        if token is None:
            raise ApiError(401, "unauthorized", "Missing or invalid Authorization header. Use: Bearer {api_key}",
                           suggestion="Register at POST /v1/auth/register to get an API key")
        row = self.store.one("SELECT * FROM wallet_agents WHERE api_key_hash = ?", (_key_hash(token),))
        if row is None:
            raise ApiError(401, "unauthorized", "Invalid API key",
                           suggestion="Register at POST /v1/auth/register to get an API key")
        return row

    # -- wallets ---------------------------------------------------------------------------------

    def create_wallet(self, agent: Any) -> dict[str, Any]:
        words = self.ctx.new_id("wallet.mnemonic", 24)
        mnemonic = " ".join(_WORDS[int(words[i:i + 2], 16) % len(_WORDS)] for i in range(0, 48, 2))
        addresses, keys, monero = derive_wallet(mnemonic)
        with self.store.tx() as db:
            db.execute(
                "INSERT INTO wallet_wallets(agent_id, addresses, monero_address, monero_spend_key_hash, created_ms) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT(agent_id) DO UPDATE SET addresses = excluded.addresses, "
                "monero_address = excluded.monero_address, monero_spend_key_hash = excluded.monero_spend_key_hash, "
                "created_ms = excluded.created_ms",
                (agent["id"], json.dumps(addresses), addresses["monero"], _key_hash(monero["private_spend_key"]),
                 self.now()),
            )
        return {
            "mnemonic": mnemonic,
            "addresses": addresses,
            "monero_keys": {**monero, "note": "XMR keys stored server-side for this agent."},
            "warning": "This mnemonic is shown ONCE and never stored. Save it securely. Loss = loss of funds.",
            "derivation_paths": {"ethereum": "m/44'/60'/0'/0/0", "base": "m/44'/60'/0'/0/0 (same as ethereum)",
                                 "solana": "m/44'/501'/0'/0'", "bitcoin": "m/84'/0'/0'/0/0 (native segwit)",
                                 "tron": "m/44'/195'/0'/0/0"},
            "sandbox_private_keys": keys,
        }

    def _stored_wallet(self, agent_id: str) -> Any:
        return self.store.one("SELECT * FROM wallet_wallets WHERE agent_id = ?", (agent_id,))

    # -- balances ---------------------------------------------------------------------------------

    def units_of(self, chain: str, address: str, token: str) -> int:
        value = self.store.scalar("SELECT units FROM wallet_balances WHERE chain = ? AND address = ? AND token = ?",
                                  (chain, normalize(chain, address), token))
        return int(value) if value is not None else 0

    def _move(self, db: sqlite3.Connection, chain: str, token: str, source: str | None, target: str | None,
              units: int, kind: str, tx_hash: str) -> int:
        """Move units between two addresses (None: from/to outside the sandbox); returns the seq."""
        for address, delta in ((source, -units), (target, units)):
            if address is None:
                continue
            address = normalize(chain, address)
            row = db.execute("SELECT units FROM wallet_balances WHERE chain = ? AND address = ? AND token = ?",
                             (chain, address, token)).fetchone()
            balance = (int(row["units"]) if row else 0) + delta
            if balance < 0:
                raise ValueError("insufficient balance")
            db.execute("INSERT INTO wallet_balances(chain, address, token, units) VALUES (?, ?, ?, ?) "
                       "ON CONFLICT(chain, address, token) DO UPDATE SET units = excluded.units",
                       (chain, address, token, str(balance)))
        cursor = db.execute(
            "INSERT INTO wallet_transfers(tx_hash, chain, token, from_address, to_address, units, kind, created_ms) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (tx_hash, chain, token, normalize(chain, source) if source else None,
             normalize(chain, target) if target else "", str(units), kind, self.now()))
        return int(cursor.lastrowid or 0)

    def fund(self, chain: str, address: str, token: str, units: int) -> dict[str, Any]:
        """Money arriving from outside the sandbox (an exchange withdrawal, a faucet)."""
        tx_hash = self._tx_hash(chain)
        with self.store.tx() as db:
            seq = self._move(db, chain, token, None, address, units, "external_deposit", tx_hash)
            self._after_arrival(db, seq, chain, token, None, address, units)
        return {"tx_hash": tx_hash, "chain": chain, "address": address, "token": token,
                "units": str(self.units_of(chain, address, token))}

    def native_balance(self, agent: Any, address: str, chain: str, view_key: str | None) -> dict[str, Any]:
        if chain not in CHAINS:
            raise ApiError(400, "unsupported_chain", supported=list(CHAINS))
        if chain in EVM and not _EVM_ADDRESS.match(address):
            raise ApiError(502, "rpc_error", f'invalid address (argument="address", value="{address}")')
        symbol, decimals = NATIVE[chain]
        units = self.units_of(chain, address, "native")
        amount = _text(units, decimals)
        if chain in EVM and "." not in amount:
            amount += ".0"  # ethers.formatEther always shows a decimal point
        native: dict[str, Any] = {"symbol": symbol, "amount": amount}
        if chain == "bitcoin":
            native.update(confirmed_satoshis=units, unconfirmed_satoshis=0, total_satoshis=units)
            explorer = f"{EXPLORERS[chain]}/address/{address}"
        elif chain == "monero":
            stored = self._stored_wallet(agent["id"])
            if not view_key and stored is None:
                raise ApiError(400, "view_key_required", "Monero balance requires your private_view_key.")
            native["piconero"] = str(units)
            explorer = f"{EXPLORERS[chain]}/search?value={address}"
        else:
            native[UNIT_NAME[chain]] = str(units) if chain in EVM else units
            explorer = f"{EXPLORERS[chain]}/{'account' if chain == 'solana' else 'address'}/{address}"
        return {"address": address, "chain": chain, "balance": {"native": native}, "explorer": explorer}

    def usdc_balance(self, params: dict[str, str]) -> dict[str, Any]:
        rows = []
        total = 0
        for chain in USDC_CHAINS:
            address = params.get(chain)
            if not address:
                continue
            units = self.units_of(chain, address, "USDC")
            total += units
            rows.append({"chain": chain, "wallet_address": address, "usdc_balance": _text(units, USDC_DECIMALS)})
        if not rows:
            raise ApiError(400, "no_addresses", "Provide at least one address: ?base=0x…&solana=…",
                           supported_chains=list(USDC_CHAINS))
        return {"total_usdc": _text(total, USDC_DECIMALS), "balances": rows}

    # -- saved addresses and portfolio ------------------------------------------------------------

    def save_address(self, agent: Any, body: dict[str, Any]) -> dict[str, Any]:
        label, chain, address, note = body.get("label"), body.get("chain"), body.get("address"), body.get("note")
        if not all(isinstance(v, str) and v for v in (label, chain, address)) or chain not in CHAINS:
            raise ApiError(400, "invalid_request", "Provide label, chain and address", supported_chains=list(CHAINS))
        count = self.store.scalar("SELECT COUNT(*) FROM wallet_saved_addresses WHERE agent_id = ?", (agent["id"],), 0)
        if count >= MAX_SAVED_ADDRESSES:
            raise ApiError(400, "limit_reached", f"At most {MAX_SAVED_ADDRESSES} saved addresses")
        entry_id = "pa_" + self.ctx.new_id("wallet.saved", 6)
        self.store.execute("INSERT INTO wallet_saved_addresses(id, agent_id, label, chain, address, note, created_ms) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?)",
                           (entry_id, agent["id"], label, chain, address, note if isinstance(note, str) else None,
                            self.now()))
        return {"address": {"id": entry_id, "label": label, "chain": chain, "address": address,
                            "note": note if isinstance(note, str) else None}}

    def saved_addresses(self, agent: Any) -> list[Any]:
        return self.store.all("SELECT * FROM wallet_saved_addresses WHERE agent_id = ? ORDER BY rowid",
                              (agent["id"],))

    def portfolio(self, agent: Any) -> dict[str, Any]:
        wallets, by_chain, total = [], {}, 0
        for row in self.saved_addresses(agent):
            chain = row["chain"]
            symbol, decimals = NATIVE[chain]
            units = self.units_of(chain, row["address"], "native")
            price = self.usd_price(chain, "native")
            value = int((Decimal(units).scaleb(-decimals) * price * MICRO).to_integral_value(rounding=ROUND_HALF_EVEN))
            total += value
            by_chain[chain] = by_chain.get(chain, 0) + value
            wallets.append({"label": row["label"], "chain": chain, "address": row["address"], "symbol": symbol,
                            "balance": float(Decimal(units).scaleb(-decimals)), "price_usd": float(price),
                            "value_usd": wire_cents(value)})
        return {"total_value_usd": wire_cents(total), "by_chain": {k: wire_cents(v) for k, v in by_chain.items()},
                "wallets": wallets, "note": "Native balances at saved addresses, valued in USD."}

    # -- send ---------------------------------------------------------------------------------------

    def _tx_hash(self, chain: str) -> str:
        if chain == "solana":
            return _b58(bytes.fromhex(self.ctx.new_id("wallet.tx", 64)))
        raw = self.ctx.new_id("wallet.tx", 32)
        return raw if chain in ("tron", "monero") else "0x" + raw

    def send(self, agent: Any, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        chain, to, amount = body.get("chain"), body.get("to"), body.get("amount")
        private_key, token = body.get("private_key"), body.get("token")
        if not chain or not to or not amount or (not private_key and chain != "monero"):
            raise ApiError(400, "invalid_request", "Provide chain, to, amount, and private_key")
        if chain not in CHAINS:
            raise ApiError(400, "unsupported_chain", supported=list(CHAINS))
        if chain == "bitcoin":
            return 501, {"error": "not_implemented",
                         "message": "Bitcoin send requires UTXO management. Use a dedicated Bitcoin library."}
        if not isinstance(to, str):
            raise ApiError(400, "send_failed", "invalid recipient")
        if chain == "monero":
            return 200, self._send_monero(agent, body, to, amount)
        source = address_for_key(chain, private_key) if isinstance(private_key, str) else None
        if source is None:
            raise ApiError(400, "send_failed", "invalid private key")
        if chain in EVM:
            if not isinstance(amount, str):  # ethers.parseUnits takes strings only
                raise ApiError(400, "send_failed", "invalid BigNumberish string (amount must be a decimal string)")
            if not _EVM_ADDRESS.match(to):
                raise ApiError(400, "send_failed", f'invalid address (argument="address", value="{to}")')
            if token:
                if not isinstance(token, str) or token.lower() != USDC_CONTRACTS.get(chain):
                    raise ApiError(400, "send_failed", "could not decode result data (unknown token contract)")
                return 200, self._transfer(chain, "USDC", source, to, _units(amount, USDC_DECIMALS), amount,
                                           token_contract=token, error="send_failed")
            return 200, self._transfer(chain, "native", source, to, _units(amount, 18), amount, error="send_failed")
        # Solana and Tron: the real code ignores `token` and moves the native coin.
        decimals = NATIVE[chain][1]
        units = _units(amount, decimals, floor=True)
        error = "send_failed" if chain == "solana" else "tx_create_failed"
        result = self._transfer(chain, "native", source, to, units, amount, error=error)
        if chain == "tron":
            result["amount"] = f"{_text(units or 0, decimals)} TRX"
            result.pop("from", None)
        return 200, result

    def _transfer(self, chain: str, token: str, source: str, to: str, units: int | None, amount: Any, *,
                  error: str, token_contract: str | None = None) -> dict[str, Any]:
        if units is None or units <= 0:
            raise ApiError(400, error, f"invalid amount: {amount!r}")
        gas = GAS.get(chain, 0)
        tx_hash = self._tx_hash(chain)
        with self.store.tx() as db:
            try:
                if gas:
                    self._move(db, chain, "native", source, None, gas, "gas", tx_hash)
                seq = self._move(db, chain, token, source, to, units, "transfer", tx_hash)
            except ValueError:
                raise ApiError(400, error, "insufficient funds for transfer and gas") from None
            self._after_arrival(db, seq, chain, token, source, to, units)
        out = {"tx_hash": tx_hash, "chain": chain, "from": source, "to": to, "amount": str(amount),
               "explorer": f"{EXPLORERS[chain]}/tx/{tx_hash}"}
        if token_contract is not None:
            out["token"] = token_contract
        return out

    def _send_monero(self, agent: Any, body: dict[str, Any], to: str, amount: Any) -> dict[str, Any]:
        stored = self._stored_wallet(agent["id"])
        spend_key = body.get("spend_key")
        source = body.get("from") if isinstance(body.get("from"), str) else None
        if stored is not None:
            source = source or stored["monero_address"]
            if spend_key and _key_hash(str(spend_key)) != stored["monero_spend_key_hash"]:
                raise ApiError(400, "xmr_send_failed", "spend key does not match the wallet")
        if stored is None or source is None:
            raise ApiError(400, "keys_required", "Monero send requires from, view_key and spend_key, or a stored "
                                                 "wallet (POST /v1/wallet/create).")
        units = _units(amount, 12)
        if units is None:
            raise ApiError(400, "xmr_send_failed", f"invalid amount: {amount!r}")
        tx_hash = self._tx_hash("monero")
        with self.store.tx() as db:
            try:
                self._move(db, "monero", "native", source, None, GAS["monero"], "gas", tx_hash)
                seq = self._move(db, "monero", "native", source, to, units, "transfer", tx_hash)
            except ValueError:
                raise ApiError(400, "xmr_send_failed", "not enough unlocked money") from None
            self._after_arrival(db, seq, "monero", "native", source, to, units)
        return {"tx_hash": tx_hash, "chain": "monero", "from": source, "to": to, "amount": _text(units, 12),
                "fee": _text(GAS["monero"], 12), "explorer": f"{EXPLORERS['monero']}/tx/{tx_hash}"}

    def multi_send(self, agent: Any, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        chain, private_key, recipients, token = (body.get("chain"), body.get("private_key"), body.get("recipients"),
                                                 body.get("token"))
        if not chain or not private_key or not isinstance(recipients, list) or not recipients:
            raise ApiError(400, "invalid_request", "Provide chain, private_key, and recipients (array of {to, amount})")
        if len(recipients) > 20:
            raise ApiError(400, "too_many_recipients", "Maximum 20 recipients per call")
        if chain not in CHAINS:
            raise ApiError(400, "unsupported_chain", supported=list(CHAINS))
        if chain not in ("ethereum", "base"):
            raise ApiError(400, "not_supported", f"multi-send is only supported on EVM chains (ethereum, base). "
                                                 f"Received: {chain}")
        results = []
        for item in recipients:
            item = item if isinstance(item, dict) else {}
            try:
                _, sent = self.send(agent, {"chain": chain, "to": item.get("to"), "amount": item.get("amount"),
                                            "private_key": private_key, "token": token})
                results.append({"to": item.get("to"), "amount": item.get("amount"), "status": "sent",
                                "tx_hash": sent["tx_hash"], "explorer": sent["explorer"]})
            except ApiError as exc:
                results.append({"to": item.get("to"), "amount": item.get("amount"), "status": "failed",
                                "error": exc.message or exc.code})
        sent_count = sum(1 for r in results if r["status"] == "sent")
        source = address_for_key(chain, private_key) if isinstance(private_key, str) else None
        return (200 if sent_count else 400), {"chain": chain, "from": source, "total": len(recipients),
                                             "sent": sent_count, "failed": len(results) - sent_count,
                                             "results": results}

    # -- arrivals: swaps and deposits into other silos ------------------------------------------------

    def _after_arrival(self, db: sqlite3.Connection, seq: int, chain: str, token: str, source: str | None,
                       target: str, units: int) -> None:
        target = normalize(chain, target)
        swap = db.execute("SELECT * FROM wallet_swaps WHERE deposit_address = ? AND status = 'awaiting_deposit'",
                          (target,)).fetchone()
        if swap is not None:
            self._settle_swap(db, swap, chain, token, source, units)
            return
        if token != "USDC":
            return
        route = self._route_for(db, chain, target)
        if route is None:
            return
        service, agent_id, delay = route
        if service == "casino" and units < CASINO_MINIMUM_DEPOSIT:
            return
        db.execute(
            "INSERT INTO wallet_pending_deposits(transfer_seq, service, agent_id, chain, address, micros, due_ms, "
            "status) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending')",
            (seq, service, agent_id, chain, target, units, self.now() + delay),
        )

    def _route_for(self, db: sqlite3.Connection, chain: str, address: str) -> tuple[str, str | None, int] | None:
        row = db.execute("SELECT * FROM wallet_deposit_routes WHERE chain IN (?, '*') AND address = ? "
                         "ORDER BY chain = '*'", (chain, address)).fetchone()
        if row is not None:
            delay = row["delay_ms"]
            if delay is None:
                delay = self.deposit_delay_ms(row["service"], chain)
            return row["service"], row["agent_id"], int(delay)
        if _table_exists(db, "casino_deposit_addresses"):
            owner = db.execute("SELECT agent_id FROM casino_deposit_addresses WHERE chain = ? AND lower(address) = ?",
                               (chain, address.lower())).fetchone()
            if owner is not None:
                return "casino", owner["agent_id"], self.deposit_delay_ms("casino", chain)
        if chain in EVM and _table_exists(db, "trading_agents"):
            owner = db.execute("SELECT id FROM trading_agents WHERE lower(hl_wallet_address) = ?",
                               (address.lower(),)).fetchone()
            if owner is not None:
                return "trading", owner["id"], self.deposit_delay_ms("trading", chain)
        return None

    def deposit_delay_ms(self, service: str, chain: str) -> int:
        """How long a deposit into `service` takes to be credited (the casino's poll, the bridge):
        the value set with `POST /_sandbox/deposit-delay`, else the real services' figures."""
        for name in (f"{service}:{chain}", service):
            if name in self.delay_overrides:
                return self.delay_overrides[name]
        return DEPOSIT_DELAY_MS.get(f"{service}:{chain}", DEPOSIT_DELAY_MS.get(service, 60_000))

    def deliver_due(self) -> list[dict[str, Any]]:
        """Credit every pending cross-silo deposit whose delay has passed."""
        delivered = []
        with self._deliver_lock:
            due = self.store.all("SELECT * FROM wallet_pending_deposits WHERE status = 'pending' AND due_ms <= ? "
                                 "ORDER BY id", (self.now(),))
            for row in due:
                try:
                    result = self._deliver(row)
                    status = "delivered"
                except Exception as exc:  # a missing service or agent: keep it visible, never retry blindly
                    result, status = f"{type(exc).__name__}: {exc}", "failed"
                self.store.execute("UPDATE wallet_pending_deposits SET status = ?, result = ?, delivered_ms = ? "
                                   "WHERE id = ?", (status, result, self.now(), row["id"]))
                delivered.append({"id": row["id"], "service": row["service"], "status": status, "result": result})
        return delivered

    def _deliver(self, row: Any) -> str:
        ref = self.store.scalar("SELECT tx_hash FROM wallet_transfers WHERE seq = ?", (row["transfer_seq"],))
        if row["service"] == "trading":
            from sandbox.trading import credit_deposit_address

            agent_id = credit_deposit_address(self.ctx, row["address"], row["micros"], ref=ref)
            if agent_id is None:
                raise LookupError("no trading agent at that address")
            return agent_id
        if row["service"] == "casino":
            from sandbox.casino import credit_deposit

            if not row["agent_id"]:
                raise LookupError("casino route without agent_id")
            result = credit_deposit(self.ctx, row["agent_id"], row["micros"], chain=row["chain"])
            return str(result.get("deposit_id", row["agent_id"])) if isinstance(result, dict) else row["agent_id"]
        raise LookupError(f"no sandbox service {row['service']!r}")

    def pending_deposits(self) -> list[dict[str, Any]]:
        rows = self.store.all("SELECT * FROM wallet_pending_deposits ORDER BY id")
        return [{"id": r["id"], "service": r["service"], "agent_id": r["agent_id"], "chain": r["chain"],
                 "address": r["address"], "amount_micros": r["micros"], "due_at": iso(r["due_ms"]),
                 "due_ms": r["due_ms"], "status": r["status"], "result": r["result"]} for r in rows]

    # -- swaps ----------------------------------------------------------------------------------------

    def _swap_leg(self, chain: Any, token: Any) -> tuple[str, str]:
        if not isinstance(chain, str) or not isinstance(token, str):
            raise ValueError("chain and token must be strings")
        upper = token.upper()
        if chain in EVM and token.lower() == USDC_CONTRACTS.get(chain):
            upper = "USDC"
        if upper == "USDC":
            if chain not in USDC_CHAINS:
                raise ValueError(f"USDC is not supported on {chain}")
            return chain, "USDC"
        if chain not in CHAINS or upper != NATIVE[chain][0]:
            raise ValueError(f"unsupported token {token} on {chain}")
        return chain, "native"

    def _price_out(self, params: dict[str, Any]) -> tuple[tuple[str, str], tuple[str, str], int, Decimal, int]:
        """(from leg, to leg, input units, output units before slippage as Decimal, input USD micros)."""
        from_leg = self._swap_leg(params.get("from_chain"), params.get("from_token"))
        to_leg = self._swap_leg(params.get("to_chain"), params.get("to_token"))
        if from_leg == to_leg:
            raise ValueError("from and to are the same asset")
        raw = params.get("amount")
        units = int(raw) if isinstance(raw, int) and not isinstance(raw, bool) else (
            int(raw) if isinstance(raw, str) and raw.isdigit() else 0)
        if units <= 0:
            raise ValueError("amount must be a positive integer of base units")
        in_dec, out_dec = _token_decimals(*from_leg), _token_decimals(*to_leg)
        usd = Decimal(units).scaleb(-in_dec) * self.usd_price(*from_leg)
        out = usd / self.usd_price(*to_leg) * (1 - SWAP_FEE)
        return from_leg, to_leg, units, out.scaleb(out_dec), int((usd * MICRO).to_integral_value())

    def quote(self, params: dict[str, Any]) -> dict[str, Any]:
        if not all(params.get(k) for k in ("from_chain", "to_chain", "from_token", "to_token", "amount")):
            raise ApiError(400, "invalid_request",
                           "Provide from_chain, to_chain, from_token, to_token, amount as query params")
        try:
            from_leg, to_leg, units, out, usd = self._price_out(params)
        except ValueError as exc:
            raise ApiError(400, "quote_failed", str(exc)) from None
        to_units = int(out.to_integral_value(rounding=ROUND_FLOOR))
        fee = int(Decimal(usd) * SWAP_FEE)
        return {
            "quote": {"fromChain": from_leg[0], "toChain": to_leg[0], "fromToken": params["from_token"],
                      "toToken": params["to_token"], "fromAmount": str(units), "toAmount": str(to_units),
                      "fromAmountUsd": _text(usd, 6), "toAmountUsd": _text(max(0, usd - fee), 6),
                      "expiresAt": iso(self.now() + 60_000)},
            "integrator_fee": {"rate": "0.5%", "estimated_fee_usd": wire_cents(fee),
                               "note": "Fee is included in the quote via integrator program"},
            "next_step": "POST /v1/wallet/swap with same parameters + to_address",
        }

    def swap(self, agent: Any, body: dict[str, Any]) -> dict[str, Any]:
        if not all(body.get(k) for k in ("from_chain", "to_chain", "from_token", "to_token", "amount", "to_address")):
            raise ApiError(
                400, "invalid_request", "Provide from_chain, to_chain, from_token, to_token, amount, to_address"
            )
        try:
            from_leg, to_leg, units, out, usd = self._price_out(body)
        except ValueError as exc:
            raise ApiError(400, "swap_failed", str(exc)) from None
        seq = self.store.next_seq("wallet.swap")
        drift = self._fill_drift(seq)
        filled = int((out * (1 + drift)).to_integral_value(rounding=ROUND_FLOOR))
        expected = int(out.to_integral_value(rounding=ROUND_FLOOR))
        bps = body.get("max_slippage_bps")
        if bps is not None:
            if isinstance(bps, bool) or not isinstance(bps, (int, float)) or not 0 <= bps <= 10_000:
                raise ApiError(400, "invalid_request", "max_slippage_bps must be a number from 0 to 10000")
            floor = Decimal(expected) * (1 - Decimal(repr(bps)) / 10_000)
            if filled < floor:
                raise ApiError(
                    400,
                    "swap_failed",
                    f"Slippage {float(-drift * 10_000):.1f} bps exceeds max_slippage_bps {bps}",
                    expected_amount=str(expected),
                    fill_amount=str(filled),
                )
        minimum = body.get("min_output_amount")
        if minimum is not None:
            min_units = _units(str(minimum), 0) if not isinstance(minimum, bool) else None
            if min_units is None:
                raise ApiError(400, "invalid_request", "min_output_amount must be a positive integer of base units")
            if filled < min_units:
                raise ApiError(400, "swap_failed", "Output below min_output_amount", expected_amount=str(expected),
                               fill_amount=str(filled))
        swap_id = "swap_" + self.ctx.new_id("wallet.swap_id", 6)
        order_id = "wgy_" + self.ctx.new_id("wallet.order", 12)
        deposit_chain = from_leg[0]
        deposit_address = self._deposit_address(deposit_chain)
        fee = int(Decimal(usd) * SWAP_FEE)
        now = self.now()
        in_dec = _token_decimals(*from_leg)
        with self.store.tx() as db:
            db.execute(
                "INSERT INTO wallet_swaps(id, order_id, agent_id, from_chain, to_chain, from_token, to_token, "
                "from_units, output_units, to_address, deposit_address, fee_micros, status, created_ms, expires_ms) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'awaiting_deposit', ?, ?)",
                (swap_id, order_id, agent["id"], from_leg[0], to_leg[0], from_leg[1], to_leg[1], str(units),
                 str(filled), str(body["to_address"]), normalize(deposit_chain, deposit_address), fee, now,
                 now + SWAP_TTL_MS))
            self._pay_referrers(db, agent, swap_id, fee)
        return {
            "swap_id": swap_id,
            "order_id": order_id,
            "status": "awaiting_deposit",
            "deposit": {"address": deposit_address, "chain": deposit_chain, "token": str(body["from_token"]),
                        "amount": _text(units, in_dec),
                        "instruction": f"Send exactly {_text(units, in_dec)} {body['from_token']} to {deposit_address} "
                                       f"on {deposit_chain}"},
            "output": {"address": str(body["to_address"]), "expected_amount": str(filled)},
            "fee": {"rate": "0.5%", "amount_usd": wire_cents(fee)},
            "expires_at": iso(now + SWAP_TTL_MS),
            "check_status": f"GET /v1/wallet/swap/status/{order_id}",
        }

    def _deposit_address(self, chain: str) -> str:
        """A fresh address of the swap provider on `chain`, where the caller sends its deposit."""
        raw = bytes.fromhex(self.ctx.new_id("wallet.deposit", 32))
        if chain in EVM:
            return "0x" + raw[:20].hex()
        if chain == "solana":
            return _b58(raw)
        if chain == "tron":
            return _b58check(b"\x41" + raw[:20])
        if chain == "bitcoin":
            return "bc1q" + "".join(_BECH32[b % 32] for b in raw[:32]) + "".join(_BECH32[b % 32] for b in raw[:6])
        return "4" + (_b58(raw) * 3)[:94]

    def _fill_drift(self, seq: int) -> Decimal:
        """How far this order's fill sits from the quote: seeded, or forced by the admin route."""
        if self.forced_slippage_bps is not None:
            return -Decimal(self.forced_slippage_bps) / 10_000
        z = random.Random(f"{self.ctx.seed}/swap-fill/{seq}").gauss(0.0, SWAP_SLIPPAGE_SD)
        return Decimal(repr(z)).quantize(Decimal("0.000001"))

    def _settle_swap(self, db: sqlite3.Connection, swap: Any, chain: str, token: str, source: str | None,
                     units: int) -> None:
        now = self.now()
        reason = None
        if now > swap["expires_ms"]:
            reason = "expired"
        elif chain != swap["from_chain"] or token != swap["from_token"]:
            reason = "wrong_asset"
        elif units < int(swap["from_units"]):
            reason = "insufficient_deposit"
        deposit = swap["deposit_address"]
        if reason is not None:
            if source is not None:
                self._move(db, chain, token, deposit, source, units, "swap_refund", self._tx_hash(chain))
            db.execute("UPDATE wallet_swaps SET status = ?, reason = ?, refund_units = ?, done_ms = ? WHERE id = ?",
                       ("expired" if reason == "expired" else "refunded", reason, str(units), now, swap["id"]))
            return
        excess = units - int(swap["from_units"])
        self._move(db, chain, token, deposit, None, int(swap["from_units"]), "swap_in", self._tx_hash(chain))
        if excess and source is not None:
            self._move(db, chain, token, deposit, source, excess, "swap_refund", self._tx_hash(chain))
        out_seq = self._move(db, swap["to_chain"], swap["to_token"], None, swap["to_address"],
                             int(swap["output_units"]), "swap_out", self._tx_hash(swap["to_chain"]))
        db.execute("UPDATE wallet_swaps SET status = 'completed', refund_units = ?, done_ms = ? WHERE id = ?",
                   (str(excess) if excess else None, now, swap["id"]))
        self._after_arrival(db, out_seq, swap["to_chain"], swap["to_token"], None, swap["to_address"],
                            int(swap["output_units"]))

    def swap_status(self, order_id: str) -> dict[str, Any]:
        row = self.store.one("SELECT * FROM wallet_swaps WHERE order_id = ?", (order_id,))
        if row is None:
            raise ApiError(400, "status_check_failed", f"Order {order_id} not found")
        status = row["status"]
        if status == "awaiting_deposit" and self.now() > row["expires_ms"]:
            status = "expired"
        out: dict[str, Any] = {"order_id": row["order_id"], "status": status,
                               "deposit_address": row["deposit_address"], "expires_at": iso(row["expires_ms"])}
        if status == "completed":
            out["output_amount"] = row["output_units"]
        if row["refund_units"]:
            out["refund_amount"] = row["refund_units"]
        if row["reason"]:
            out["reason"] = row["reason"]
        return out

    # -- referral --------------------------------------------------------------------------------------

    def _pay_referrers(self, db: sqlite3.Connection, agent: Any, swap_id: str, fee: int) -> None:
        referred, referrer = agent["id"], agent["referred_by"]
        for multiplier in REFERRAL_LEVELS:
            if not referrer or fee <= 0:
                return
            commission = int((Decimal(fee) * REFERRAL_SHARE * multiplier).to_integral_value(rounding=ROUND_HALF_EVEN))
            if commission > 0:
                db.execute("INSERT INTO wallet_referral_earnings(id, referrer_id, referred_id, swap_id, fee_micros, "
                           "commission_micros, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
                           ("re_" + self.ctx.new_id("wallet.earning", 6), referrer, referred, swap_id, fee, commission,
                            self.now()))
            upstream = db.execute("SELECT referred_by FROM wallet_agents WHERE id = ?", (referrer,)).fetchone()
            referred, referrer = referrer, (upstream["referred_by"] if upstream else None)

    def _referral_totals(self, agent_id: str) -> tuple[int, int, int, int]:
        earned = self.store.scalar("SELECT COALESCE(SUM(commission_micros), 0) FROM wallet_referral_earnings "
                                   "WHERE referrer_id = ?", (agent_id,), 0)
        completed = self.store.scalar("SELECT COALESCE(SUM(amount_micros), 0) FROM wallet_referral_withdrawals "
                                      "WHERE referrer_id = ? AND status = 'completed'", (agent_id,), 0)
        pending = self.store.scalar("SELECT COALESCE(SUM(amount_micros), 0) FROM wallet_referral_withdrawals "
                                    "WHERE referrer_id = ? AND status = 'pending'", (agent_id,), 0)
        referrals = self.store.scalar("SELECT COUNT(*) FROM wallet_agents WHERE referred_by = ?", (agent_id,), 0)
        return int(earned), int(completed), int(pending), int(referrals)

    def referral_stats(self, agent: Any) -> dict[str, Any]:
        earned, completed, pending, referrals = self._referral_totals(agent["id"])
        return {"total_referrals": referrals, "total_earned_usd": wire_cents(earned),
                "total_withdrawn_usd": wire_cents(completed), "pending_usd": wire_cents(pending),
                "available_usd": wire_cents(earned - completed), "commission_rate": "10% of swap fees"}

    def referral_withdraw(self, agent: Any, body: dict[str, Any]) -> dict[str, Any]:
        address, chain = body.get("address"), body.get("chain") or "base"
        if not address or not isinstance(address, str):
            raise ApiError(400, "invalid_request", "Provide a withdrawal address")
        with self.store.tx():
            earned, completed, pending, _ = self._referral_totals(agent["id"])
            available = earned - completed - pending
            if available < MICRO:
                raise ApiError(400, "insufficient_balance", "Minimum withdrawal is $1.00",
                               available_usd=wire_cents(available), pending_usd=wire_cents(pending), minimum=1.0)
            withdrawal_id = "rw_" + self.ctx.new_id("wallet.withdrawal", 6)
            self.store.execute(
                "INSERT INTO wallet_referral_withdrawals(id, referrer_id, amount_micros, address, chain, "
                "status, created_ms) VALUES (?, ?, ?, ?, ?, 'pending', ?)",
                (withdrawal_id, agent["id"], available, address, str(chain), self.now()),
            )
        return {"withdrawal_id": withdrawal_id, "amount_usd": wire_cents(available), "address": address,
                "chain": str(chain), "status": "pending", "message": "Referral withdrawal queued for processing"}


def _table_exists(db: sqlite3.Connection, name: str) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None


def credit_onchain(ctx: SandboxContext, chain: str, address: str, token: str, units: int) -> str:
    """Land `units` of `token` ('native' or 'USDC') at `address` from outside the sandbox's wallets
    (e.g. a casino withdrawal paid on Base). Returns the transaction hash."""
    ctx.store.ensure_schema("wallet", _SCHEMA)
    tx_hash = "0x" + ctx.new_id("wallet.tx", 32)
    with ctx.store.tx() as db:
        address = normalize(chain, address)
        row = db.execute("SELECT units FROM wallet_balances WHERE chain = ? AND address = ? AND token = ?",
                         (chain, address, token)).fetchone()
        balance = (int(row["units"]) if row else 0) + units
        db.execute("INSERT INTO wallet_balances(chain, address, token, units) VALUES (?, ?, ?, ?) "
                   "ON CONFLICT(chain, address, token) DO UPDATE SET units = excluded.units",
                   (chain, address, token, str(balance)))
        db.execute(
            "INSERT INTO wallet_transfers(tx_hash, chain, token, from_address, to_address, units, kind, created_ms) "
            "VALUES (?, ?, ?, NULL, ?, ?, 'external_deposit', ?)",
            (tx_hash, chain, token, address, str(units), ctx.clock.now_ms()),
        )
    return tx_hash


def _withdrawal_lands(ctx: SandboxContext, address: str, micros: int) -> None:
    """A completed casino withdrawal: its USDC arrives at `address` on Base."""
    credit_onchain(ctx, "base", address, "USDC", micros)


class _Poller:
    """The deposit poller: delivers due cross-silo credits without waiting for a wallet request."""

    def __init__(self, wallet: WalletSandbox) -> None:
        self.wallet = wallet
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="sandbox-wallet-poller", daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(POLL_INTERVAL_S):
            try:
                self.wallet.deliver_due()
            except sqlite3.ProgrammingError:  # the store was closed: the sandbox stopped
                return
            except Exception:  # keep polling; the failure is recorded per deposit
                log.exception("wallet sandbox: deposit delivery failed")


# ── HTTP ─────────────────────────────────────────────────────────────────────────────────────────


def create_app(ctx: SandboxContext) -> Starlette:
    wallet = WalletSandbox(ctx)
    poller = _Poller(wallet)

    def ok(data: dict[str, Any], status: int = 200) -> JSONResponse:
        return reply(data, status, service=SERVICE)

    def authed(handler: Any) -> Any:
        async def endpoint(request: Request) -> JSONResponse:
            wallet.sync()
            agent = wallet.authenticate(request)
            return await handler(request, agent)

        return endpoint

    async def register(request: Request) -> JSONResponse:
        wallet.sync()
        try:
            body = await read_json(request, strict=True)
        except ApiError:
            body = {}
        return ok(wallet.register(body), 201)

    async def create(request: Request, agent: Any) -> JSONResponse:
        return ok(wallet.create_wallet(agent), 201)

    async def balance(request: Request, agent: Any) -> JSONResponse:
        q = request.query_params
        return ok(wallet.native_balance(agent, request.path_params["address"], q.get("chain") or "base",
                                        q.get("view_key")))

    async def usdc_balance(request: Request, agent: Any) -> JSONResponse:
        return ok(wallet.usdc_balance(dict(request.query_params)))

    async def portfolio(request: Request, agent: Any) -> JSONResponse:
        return ok(wallet.portfolio(agent))

    async def list_addresses(request: Request, agent: Any) -> JSONResponse:
        rows = wallet.saved_addresses(agent)
        return ok({"addresses": [{"id": r["id"], "label": r["label"], "chain": r["chain"], "address": r["address"],
                                  "note": r["note"]} for r in rows], "count": len(rows), "max": MAX_SAVED_ADDRESSES})

    async def add_address(request: Request, agent: Any) -> JSONResponse:
        return ok(wallet.save_address(agent, await read_json(request, strict=True)), 201)

    async def send(request: Request, agent: Any) -> JSONResponse:
        status, data = wallet.send(agent, await read_json(request, strict=True))
        return ok(data, status)

    async def multi_send(request: Request, agent: Any) -> JSONResponse:
        status, data = wallet.multi_send(agent, await read_json(request, strict=True))
        return ok(data, status)

    async def swap_quote(request: Request, agent: Any) -> JSONResponse:
        return ok(wallet.quote(dict(request.query_params)))

    async def swap(request: Request, agent: Any) -> JSONResponse:
        return ok(wallet.swap(agent, await read_json(request, strict=True)))

    async def swap_status(request: Request, agent: Any) -> JSONResponse:
        return ok(wallet.swap_status(request.path_params["order_id"]))

    async def referral_code(request: Request, agent: Any) -> JSONResponse:
        return ok({"referral_code": agent["referral_code"],
                   "commission_rate": "10% of swap integrator fees from referred agents"})

    async def referral_stats(request: Request, agent: Any) -> JSONResponse:
        return ok(wallet.referral_stats(agent))

    async def referral_withdraw(request: Request, agent: Any) -> JSONResponse:
        return ok(wallet.referral_withdraw(agent, await read_json(request, strict=True)))

    # -- /_sandbox: not part of the real API ----------------------------------------------------------

    async def admin_fund(request: Request) -> JSONResponse:
        body = await read_json(request, strict=True)
        chain, address = body.get("chain"), body.get("address")
        token = "USDC" if str(body.get("token", "native")).upper() == "USDC" else "native"
        if chain not in NATIVE or not isinstance(address, str) or not address:
            raise ApiError(400, "invalid_request", "give chain, address, token (native|USDC) and amount or units")
        if token == "USDC" and chain not in USDC_CHAINS:
            raise ApiError(400, "invalid_request", f"no USDC on {chain}")
        units = body.get("units")
        if units is None:
            units = _units(body.get("amount"), _token_decimals(chain, token))
        if not isinstance(units, int) or isinstance(units, bool) or units <= 0:
            raise ApiError(400, "invalid_amount", "amount (decimal string) or units (integer) must be positive")
        wallet.sync()
        return JSONResponse(wallet.fund(chain, address, token, units))

    async def admin_balances(request: Request) -> JSONResponse:
        q = request.query_params
        chain, address = q.get("chain", "base"), q.get("address", "")
        return JSONResponse({"chain": chain, "address": address,
                             "native": str(wallet.units_of(chain, address, "native")),
                             "USDC": str(wallet.units_of(chain, address, "USDC"))})

    async def admin_transfers(request: Request) -> JSONResponse:
        q = request.query_params
        after = int(q.get("after_seq", "0") or 0)
        sql, params = "SELECT * FROM wallet_transfers WHERE seq > ?", [after]
        if q.get("to"):
            sql += " AND to_address IN (?, ?)"
            params += [q["to"], q["to"].lower()]
        if q.get("chain"):
            sql += " AND chain = ?"
            params.append(q["chain"])
        rows = ctx.store.all(sql + " ORDER BY seq LIMIT 500", params)
        return JSONResponse({"transfers": [{"seq": r["seq"], "tx_hash": r["tx_hash"], "chain": r["chain"],
                                            "token": r["token"], "from": r["from_address"], "to": r["to_address"],
                                            "units": r["units"], "kind": r["kind"], "at": iso(r["created_ms"])}
                                           for r in rows]})

    async def admin_route(request: Request) -> JSONResponse:
        body = await read_json(request, strict=True)
        chain, address, service = body.get("chain", "*"), body.get("address"), body.get("service")
        delay = body.get("delay_ms")
        if not isinstance(address, str) or service not in ("casino", "trading") or (
                delay is not None and (not isinstance(delay, int) or isinstance(delay, bool) or delay < 0)):
            raise ApiError(400, "invalid_request", "give address, service (casino|trading), agent_id, delay_ms?")
        stored = address.lower() if _EVM_ADDRESS.match(address) else address
        ctx.store.execute(
            "INSERT INTO wallet_deposit_routes(chain, address, service, agent_id, delay_ms) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT(chain, address) DO UPDATE SET service = excluded.service, "
            "agent_id = excluded.agent_id, delay_ms = excluded.delay_ms",
            (chain, stored, service, body.get("agent_id"), delay),
        )
        return JSONResponse({"chain": chain, "address": address, "service": service, "agent_id": body.get("agent_id"),
                             "delay_ms": delay})

    async def admin_deposit_delay(request: Request) -> JSONResponse:
        body = await read_json(request, strict=True)
        service, delay = body.get("service"), body.get("delay_ms")
        if service not in ("casino", "trading") or isinstance(delay, bool) or not isinstance(delay, int) or delay < 0:
            raise ApiError(400, "invalid_request", "give service (casino|trading), delay_ms (integer >= 0), chain?")
        name = f"{service}:{body['chain']}" if body.get("chain") else service
        wallet.delay_overrides[name] = delay
        if not body.get("chain"):  # a service-wide setting replaces the per-chain defaults too
            wallet.delay_overrides.update({k: delay for k in DEPOSIT_DELAY_MS if k.startswith(f"{service}:")})
        return JSONResponse({"delays_ms": dict(wallet.delay_overrides)})

    async def admin_deposits(request: Request) -> JSONResponse:
        return JSONResponse({"deposits": wallet.pending_deposits()})

    async def admin_deliver(request: Request) -> JSONResponse:
        wallet.book.advance_to(wallet.now())
        return JSONResponse({"delivered": wallet.deliver_due()})

    async def admin_slippage(request: Request) -> JSONResponse:
        body = await read_json(request, strict=True)
        bps = body.get("bps")
        if bps is not None and (isinstance(bps, bool) or not isinstance(bps, int) or not -10_000 < bps < 10_000):
            raise ApiError(400, "invalid_request", "bps: an integer (positive = adverse), or null for seeded fills")
        wallet.forced_slippage_bps = bps
        return JSONResponse({"forced_slippage_bps": bps})

    async def admin_prices(request: Request) -> JSONResponse:
        wallet.sync()
        return JSONResponse({"prices": {k: float(v) for k, v in wallet.book.prices().items()} | {"USDC": 1.0}})

    routes = [
        Route("/v1/auth/register", register, methods=["POST"]),
        Route("/v1/wallet/create", authed(create), methods=["POST"]),
        Route("/v1/wallet/balance/{address}", authed(balance), methods=["GET"]),
        Route("/v1/wallet/usdc-balance", authed(usdc_balance), methods=["GET"]),
        Route("/v1/wallet/portfolio", authed(portfolio), methods=["GET"]),
        Route("/v1/wallet/portfolio/addresses", authed(list_addresses), methods=["GET"]),
        Route("/v1/wallet/portfolio/addresses", authed(add_address), methods=["POST"]),
        Route("/v1/wallet/send", authed(send), methods=["POST"]),
        Route("/v1/wallet/multi-send", authed(multi_send), methods=["POST"]),
        Route("/v1/wallet/swap/quote", authed(swap_quote), methods=["GET"]),
        Route("/v1/wallet/swap", authed(swap), methods=["POST"]),
        Route("/v1/wallet/swap/status/{order_id}", authed(swap_status), methods=["GET"]),
        Route("/v1/referral/code", authed(referral_code), methods=["GET"]),
        Route("/v1/referral/stats", authed(referral_stats), methods=["GET"]),
        Route("/v1/referral/withdraw", authed(referral_withdraw), methods=["POST"]),
        Route("/_sandbox/fund", admin_fund, methods=["POST"]),
        Route("/_sandbox/balances", admin_balances, methods=["GET"]),
        Route("/_sandbox/transfers", admin_transfers, methods=["GET"]),
        Route("/_sandbox/deposit-routes", admin_route, methods=["POST"]),
        Route("/_sandbox/deposits", admin_deposits, methods=["GET"]),
        Route("/_sandbox/deposit-delay", admin_deposit_delay, methods=["POST"]),
        Route("/_sandbox/deliver-deposits", admin_deliver, methods=["POST"]),
        Route("/_sandbox/swap-slippage", admin_slippage, methods=["POST"]),
        Route("/_sandbox/prices", admin_prices, methods=["GET"]),
    ]
    app = make_service_app(SERVICE, routes)
    app.state.wallet = wallet
    app.state.poller = poller
    poller.thread.start()
    return app
