"""The multi-chain balance view: what an agent's wallet holds on each of the eight chains, in USD.

The wallet API reads the chains unevenly (`actors/policy/chains.py`): USDC through one
`/wallet/usdc-balance` call for base, ethereum, arbitrum, bsc, solana and tron; the native coin
through `/wallet/balance/:address` for base, ethereum, solana, tron, bitcoin and monero. Each of
those reads goes to a public RPC node, so the view keeps what it read in Redis for five minutes
(keyed by agent, judged by the injected clock through the policy's `BalanceCache`): a dashboard,
a rebalance and a risk check in the same minute cost one round of reads. The cache holds
observations, not ledger money, so it is written directly rather than through an atomic commit.

Native coins are valued at the wallet's own swap quote for one coin, grossed up for the 0.5 %
fee: the price at which the treasury could actually turn the coin into USDC. A chain the wallet
could not read is reported in `unread` rather than counted as zero.

`swap_to_usdc` turns a native coin into USDC through the wallet's swap, refusing before any money
moves when the quote — or the order's fill — would pay less than the policy minimum
(`swap_min_out`: the reference value less the fee and the slippage cap).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

import redis

from actors.policy.buckets import BP_SCALE, DEFAULT_POLICY, Policy, PolicyError
from actors.policy.chains import CHAINS, SWAP_FEE_BP, USDC, BalanceCache, Cached, chain, swap_min_out, total_usd
from actors.policy.effective import effective_policy
from actors.venues import TIMEOUT_S, AgentClients
from messages.envelope import IdFactory, wrap
from messages.referral_msgs import ChainSwapPlaced, ChainSwapRefused, ChainSwapRejected
from runtime.atomic import AtomicSteps
from runtime.clock import Clock
from runtime.keys import Keys
from venue.client.wallet import WalletClient
from venue.errors import VenueError, VenueRejected

log = logging.getLogger(__name__)

EVM_CHAINS = ("ethereum", "base", "arbitrum", "bsc")
"""One EVM address serves all four; `wallet/create` only names ethereum and base."""

PRICE_CHAIN = {"ETH": "base", "SOL": "solana", "TRX": "tron", "BTC": "bitcoin", "XMR": "monero", "BNB": "bsc"}
"""Where each native coin is quoted against USDC."""

QUOTE_TO_CHAIN = "base"
"""USDC side of every price quote, and of swaps from chains without USDC (bitcoin, monero)."""

CACHE_RETENTION_S = 24 * 3600
"""Redis expiry of an agent's cache hash: garbage collection only; freshness is the clock's call."""


def addresses_key(keys: Keys, agent: str) -> str:
    """The agent's public wallet addresses by chain (written by onboarding)."""
    return keys.addresses(agent)


def cache_key(keys: Keys, agent: str) -> str:
    return keys.chains(agent)


def read_addresses(client: redis.Redis, keys: Keys, agent: str) -> dict[str, str]:
    """Addresses by chain; arbitrum and bsc take the ethereum address when not stored on their own."""
    raw = {_text(k): _text(v) for k, v in client.hgetall(addresses_key(keys, agent)).items()}
    evm = raw.get("ethereum") or raw.get("base")
    if evm:
        for name in EVM_CHAINS:
            raw.setdefault(name, evm)
    return {name: raw[name] for name in CHAINS if raw.get(name)}


@dataclass(frozen=True)
class ChainHolding:
    """What one chain holds: USDC in micro-USD and the native coin in base units (None: unreadable)."""

    chain: str
    address: str | None
    usdc: int | None
    native: int | None
    fetched_ms: int

    @property
    def native_symbol(self) -> str:
        return CHAINS[self.chain].native

    @property
    def native_coins(self) -> Decimal:
        return Decimal(self.native or 0).scaleb(-CHAINS[self.chain].decimals)


@dataclass(frozen=True)
class ChainBalances:
    """The view at one moment. `total_usd` covers every chain read; `unread` names the others."""

    agent: str
    holdings: dict[str, ChainHolding]
    prices: dict[str, Decimal]
    total_usd: int
    refreshed: tuple[str, ...]
    """Chains read from the wallet in this call; the rest came from the cache."""
    unread: dict[str, str] = field(default_factory=dict)

    @property
    def usdc_total(self) -> int:
        return sum(h.usdc or 0 for h in self.holdings.values())

    @property
    def complete(self) -> bool:
        return not self.unread


@dataclass(frozen=True)
class SwapOutcome:
    """A swap to USDC: `placed` (order accepted within the cap, `deposited` if the coin was sent)
    or `refused` with the reason. Amounts in micro-USDC."""

    status: str
    chain: str
    amount: int
    min_out: int
    quote_out: int | None = None
    reason: str = ""
    order_id: str | None = None
    expected_out: int | None = None
    deposit_address: str | None = None
    deposited: bool = False

    @property
    def placed(self) -> bool:
        return self.status == "placed"


class ChainView:
    """Balances across the chains through a Redis cache, and native → USDC swaps under a slippage cap."""

    def __init__(self, client: redis.Redis, keys: Keys, clock: Clock, wallet_for: Callable[[str], object], *,
                 policy: Policy = DEFAULT_POLICY, price_of: Callable[[str, str], Decimal] | None = None,
                 steps: AtomicSteps | None = None, new_id: IdFactory | None = None):
        """`wallet_for(agent)` gives the agent's `WalletClient`. `price_of(agent, asset)` overrides the
        quote-based USD price (an oracle, a test); `steps` + `new_id` journal swaps."""
        self.client = client
        self.keys = keys
        self.clock = clock
        self.wallet_for = wallet_for
        self.policy = policy
        self.price_of = price_of
        self.steps = steps
        self.new_id = new_id

    def policy_for(self, agent: str) -> Policy:
        """The agent's effective policy (`actors.policy.effective`): this view's base with the overrides."""
        return effective_policy(self.client, self.keys, agent, self.policy)

    # ------------------------------------------------------------------ cache

    def _load(self, agent: str) -> BalanceCache:
        entries: dict[object, Cached] = {}
        for fld, raw in self.client.hgetall(cache_key(self.keys, agent)).items():
            record = json.loads(raw)
            entries[_text(fld)] = Cached(record, int(record["at"]))
        return BalanceCache(self.policy_for(agent).balance_ttl_ms, entries)

    def _store(self, agent: str, records: Mapping[str, dict]) -> None:
        if not records:
            return
        key = cache_key(self.keys, agent)
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(key, mapping={fld: json.dumps(rec, sort_keys=True) for fld, rec in records.items()})
        pipe.expire(key, CACHE_RETENTION_S)
        pipe.execute()

    def invalidate(self, agent: str, *chains: str) -> None:
        """Forget cached reads (all of them, or the given chains') so the next view reads afresh."""
        key = cache_key(self.keys, agent)
        if chains:
            self.client.hdel(key, *(f"chain:{c}" for c in chains))
        else:
            self.client.delete(key)

    # ------------------------------------------------------------------ balances

    def balances(self, agent: str, *, refresh: bool = False) -> ChainBalances:
        """Every chain's holdings and their USD total; reads only what is stale (or all, on `refresh`)."""
        now = self.clock.now_ms()
        addresses = read_addresses(self.client, self.keys, agent)
        cache = self._load(agent)
        fields = [f"chain:{name}" for name in CHAINS]
        stale = fields if refresh else list(cache.stale(fields, now))
        unread: dict[str, str] = {}
        fresh: dict[str, dict] = {}
        if stale:
            fresh, unread = self._read_chains(agent, [f.removeprefix("chain:") for f in stale], addresses, now)
            self._store(agent, fresh)
        records = {name: fresh.get(f"chain:{name}") or cache.get(f"chain:{name}", now) for name in CHAINS}
        holdings = {
            name: ChainHolding(name, rec.get("address"), _opt_int(rec.get("usdc")), _opt_int(rec.get("native")),
                               int(rec["at"]))
            for name, rec in records.items() if rec is not None
        }
        held_assets = sorted({h.native_symbol for h in holdings.values() if h.native})
        prices = {asset: self._price(agent, asset, now, cache, refresh) for asset in held_assets}
        coins = {name: {**({h.native_symbol: h.native_coins} if h.native else {}),
                        **({USDC: Decimal(h.usdc).scaleb(-6)} if h.usdc else {})}
                 for name, h in holdings.items()}
        total = total_usd(coins, prices)
        return ChainBalances(agent, holdings, prices, total, tuple(sorted(f.removeprefix("chain:") for f in fresh)),
                             unread)

    def _read_chains(self, agent: str, names: list[str], addresses: dict[str, str],
                     now: int) -> tuple[dict[str, dict], dict[str, str]]:
        wallet = self.wallet_for(agent)
        records: dict[str, dict] = {}
        unread: dict[str, str] = {}
        usdc: dict[str, int] = {}
        usdc_chains = {n: addresses[n] for n in names if CHAINS[n].reads_usdc and n in addresses}
        if usdc_chains:
            try:
                for row in wallet.usdc_balances(usdc_chains).balances:
                    usdc[row.chain] = row.usdc_balance
            except VenueError as exc:
                for n in usdc_chains:
                    unread[n] = f"usdc: {exc.code or exc.message}"
        view_key = self.client.hget(self.keys.credentials(agent), "monero_view_key")
        for name in names:
            spec, address = CHAINS[name], addresses.get(name)
            if address is None:
                unread[name] = "no address"
                continue
            if name in unread:
                continue
            native = None
            if spec.reads_native:
                try:
                    kw = {"view_key": _text(view_key)} if name == "monero" and view_key else {}
                    native = wallet.native_balance(address, name, **kw).base_units
                except VenueError as exc:
                    unread[name] = f"native: {exc.code or exc.message}"
                    continue
            records[f"chain:{name}"] = {"address": address, "at": now,
                                        "usdc": str(usdc.get(name, 0)) if spec.reads_usdc else None,
                                        "native": str(native) if native is not None else None}
        return records, unread

    # ------------------------------------------------------------------ prices

    def _price(self, agent: str, asset: str, now: int, cache: BalanceCache | None = None,
               refresh: bool = False) -> Decimal:
        if self.price_of is not None:
            return Decimal(self.price_of(agent, asset))
        cache = cache if cache is not None else self._load(agent)
        fld = f"price:{asset}"
        cached = None if refresh else cache.get(fld, now)
        if cached is not None:
            return Decimal(cached["usd"])
        price = self._quote_price(agent, asset)
        self._store(agent, {fld: {"usd": str(price), "at": now}})
        return price

    def _quote_price(self, agent: str, asset: str) -> Decimal:
        """USD per coin from the wallet's quote for one whole coin, with the 0.5 % fee added back."""
        name = PRICE_CHAIN[asset]
        one = 10 ** CHAINS[name].decimals
        quote = self.wallet_for(agent).swap_quote(name, QUOTE_TO_CHAIN, asset, USDC, one)
        return Decimal(quote.to_amount) * BP_SCALE / (Decimal(1_000_000) * (BP_SCALE - SWAP_FEE_BP))

    def price(self, agent: str, asset: str) -> Decimal:
        """The reference USD price of `asset` (cached for five minutes like the balances)."""
        return self._price(agent, asset, self.clock.now_ms())

    # ------------------------------------------------------------------ swaps

    def swap_to_usdc(self, agent: str, chain_name: str, amount: int, max_slippage_bp: int | None = None, *,
                     private_key: object | None = None, idempotency_key: str | None = None) -> SwapOutcome:
        """Swap `amount` base units of `chain_name`'s native coin into USDC on the agent's own address.

        The minimum acceptable output is the policy's `swap_min_out` at the reference price; a
        quote below it is refused before any order, and the order carries the cap
        (`max_slippage_bps`, `min_output_amount`) and is refused again if its fill is below it.
        With `private_key` the deposit is sent too (exactly once); without, the order waits for it.
        A cap looser than the policy's `swap_slippage_bp` is refused outright.
        """
        spec = chain(chain_name)
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise PolicyError(f"amount must be a positive integer of {spec.native} base units, got {amount!r}")
        cap = self.policy_for(agent).swap_slippage_bp
        slippage = cap if max_slippage_bp is None else max_slippage_bp
        if isinstance(slippage, bool) or not isinstance(slippage, int) or not 0 <= slippage <= cap:
            raise PolicyError(f"slippage cap {slippage!r} bp is outside the policy's 0–{cap} bp")
        coins = Decimal(amount).scaleb(-spec.decimals)
        min_out = swap_min_out(coins, self.price(agent, spec.native), slippage)
        key = idempotency_key or f"swap-{uuid.uuid4().hex}"
        if not spec.can_send:
            return self._refused(agent, key, spec.name, amount, min_out, slippage, None,
                                 f"the wallet cannot send from {spec.name}, so the deposit could never be made")
        addresses = read_addresses(self.client, self.keys, agent)
        to_chain = spec.name if spec.reads_usdc else QUOTE_TO_CHAIN
        if to_chain not in addresses or spec.name not in addresses:
            return self._refused(agent, key, spec.name, amount, min_out, slippage, None, "no wallet address")
        wallet = self.wallet_for(agent)
        quote = wallet.swap_quote(spec.name, to_chain, spec.native, USDC, amount)
        if quote.to_amount < min_out:
            return self._refused(agent, key, spec.name, amount, min_out, slippage, quote.to_amount,
                                 f"quote pays {quote.to_amount} micro-USDC, below the minimum {min_out}")
        try:
            order = wallet.swap(spec.name, to_chain, spec.native, USDC, amount, addresses[to_chain],
                                max_slippage_bps=slippage, min_output_amount=min_out, idempotency_key=key)
        except VenueRejected as exc:
            return self._refused(agent, key, spec.name, amount, min_out, slippage, quote.to_amount,
                                 f"venue refused the order ({exc.code}): fill below the minimum", by_venue=True)
        if order.expected_output < min_out:
            return self._refused(agent, key, spec.name, amount, min_out, slippage, quote.to_amount,
                                 f"order fills {order.expected_output} micro-USDC, below the minimum {min_out}")
        deposited = False
        if private_key is not None:
            wallet.send_once(spec.name, addresses[spec.name], order.deposit_address, amount, private_key,
                             idempotency_key=f"{key}-deposit")
            deposited = True
        self.invalidate(agent, spec.name, to_chain)
        outcome = SwapOutcome("placed", spec.name, amount, min_out, quote.to_amount, order_id=order.order_id,
                              expected_out=order.expected_output, deposit_address=order.deposit_address,
                              deposited=deposited)
        self._journal(agent, key, ChainSwapPlaced(chain=spec.name, from_token=spec.native, amount=str(amount),
                                                  quote_out=quote.to_amount, min_out=min_out,
                                                  expected_out=order.expected_output, order_id=order.order_id,
                                                  slippage_bp=slippage, deposited=deposited))
        return outcome

    def _refused(self, agent: str, key: str, name: str, amount: int, min_out: int, slippage: int,
                 quote_out: int | None, reason: str, *, by_venue: bool = False) -> SwapOutcome:
        log.info("swap of %s %s for agent %s refused: %s", amount, name, agent, reason)
        kind = ChainSwapRejected if by_venue else ChainSwapRefused
        self._journal(agent, key, kind(chain=name, from_token=CHAINS[name].native, amount=str(amount),
                                                   min_out=min_out, slippage_bp=slippage, reason=reason,
                                                   quote_out=quote_out))
        return SwapOutcome("refused", name, amount, min_out, quote_out, reason=reason)

    def _journal(self, agent: str, key: str, body) -> None:
        if self.steps is None or self.new_id is None:
            return
        now = self.clock.now_ms()
        commit = self.steps.new_commit(agent)
        commit.emit(self.keys.events(agent), wrap(body, agent=agent, now_ms=now, new_id=self.new_id))
        self.steps.commit(commit, f"swap:{key}", now)


def wallet_client_factory(client: redis.Redis, keys: Keys, base_url: str) -> AgentClients[WalletClient]:
    """Per-agent wallet clients, built from `wallet_key` in the agent's credentials hash."""
    return AgentClients(client, keys, "wallet", lambda key: WalletClient(base_url, key, timeout_s=TIMEOUT_S))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _opt_int(value: object) -> int | None:
    return None if value is None else int(value)
