"""`WalletClient` against the sandbox: typed balances, sends that happen exactly once, swaps
guarded by a slippage bound, and private keys that never show."""

from __future__ import annotations

import logging

import httpx
import pytest

from sandbox import ManualClock, start_sandbox
from venue.client import SandboxAdmin
from venue.client.wallet import WalletClient
from venue.client.wallet_types import CreatedWallet, from_base_units, to_base_units
from venue.errors import VenueNotApplied, VenueRejected, VenueUnavailable

MICRO = 1_000_000
HTTP = httpx.Client(timeout=10.0)
FAST = {"backoff_s": 0.0001, "max_backoff_s": 0.001}
ELSEWHERE = "0x" + "6" * 40


@pytest.fixture(scope="module")
def shared():
    with start_sandbox(seed=61, clock=ManualClock()) as handle:
        yield handle


def fund(handle, chain: str, address: str, token: str, amount: str) -> None:
    r = HTTP.post(handle.urls["wallet"] + "/_sandbox/fund", json={"chain": chain, "address": address, "token": token,
                                                                 "amount": amount})
    assert r.status_code == 200, r.text


def new_holder(handle, *, usdc: str = "100", eth: str = "0.01", **options) -> tuple[WalletClient, CreatedWallet]:
    client = WalletClient(handle.urls["wallet"], **{**FAST, **options})
    client.register()
    wallet = client.create_wallet()
    if usdc:
        fund(handle, "base", wallet.addresses["base"], "USDC", usdc)
    if eth:
        fund(handle, "base", wallet.addresses["base"], "native", eth)
    return client, wallet


class LoseAnswers(httpx.BaseTransport):
    """Real HTTP, but the answers of chosen POSTs are lost after (or before) the server saw them."""

    def __init__(self, path: str, *, after: int = 0, before: int = 0) -> None:
        self.inner = httpx.HTTPTransport()
        self.path, self.after, self.before, self.sent = path, after, before, 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path.endswith(self.path):
            if self.before:
                self.before -= 1
                raise httpx.ConnectError("refused (test)", request=request)
            self.sent += 1
            response = self.inner.handle_request(request)
            if self.after:
                self.after -= 1
                response.read()
                raise httpx.ReadError("connection reset (test)", request=request)
            return response
        return self.inner.handle_request(request)


def test_amount_conversions():
    assert to_base_units("12.345678", 6) == 12_345_678 and from_base_units(12_345_678, 6) == "12.345678"
    assert from_base_units(10**18, 18) == "1" and from_base_units(0, 6) == "0"
    with pytest.raises(ValueError):
        to_base_units("0.0000001", 6)


def test_typed_wallet_and_balances(shared):
    client, wallet = new_holder(shared, usdc="12.5", eth="0.25")
    assert wallet.addresses["base"] == wallet.addresses["ethereum"] and wallet.private_keys["base"].reveal()
    assert wallet.mnemonic.reveal() not in repr(wallet) and wallet.private_keys["base"].reveal() not in repr(wallet)
    native = client.native_balance(wallet.addresses["base"])
    assert (native.symbol, native.base_units, native.amount) == ("ETH", 25 * 10**16, 0.25)
    assert client.usdc_balance("base", wallet.addresses["base"]) == 12_500_000
    both = client.usdc_balances({"base": wallet.addresses["base"], "tron": wallet.addresses["tron"]})
    assert both.total_usdc == 12_500_000 and [b.chain for b in both.balances] == ["base", "tron"]
    saved = client.save_address("main", "base", wallet.addresses["base"], note="reserve")
    assert saved.label == "main" and [a.address for a in client.saved_addresses()] == [wallet.addresses["base"]]
    assert client.portfolio().total_value_usd > 0
    with pytest.raises(VenueRejected) as info:
        client.native_balance(wallet.addresses["base"], "dogecoin")
    assert info.value.code == "unsupported_chain"


def test_send_guards_the_real_services_traps(shared):
    client, wallet = new_holder(shared)
    with pytest.raises(ValueError):
        client.send("solana", wallet.addresses["solana"], "1", wallet.private_keys["solana"], token="USDC-mint")
    with pytest.raises(VenueRejected) as info:
        client.send("bitcoin", "bc1qxyz", "0.1", "key")
    assert (info.value.code, info.value.status) == ("not_implemented", 501)


def test_send_usdc_once_happy_path(shared):
    client, wallet = new_holder(shared)
    sent = client.send_usdc_once("base", wallet.addresses["base"], ELSEWHERE, 2_500_000, wallet.private_keys["base"])
    assert not sent.reconstructed and sent.tx_hash.startswith("0x") and sent.amount == "2.5"
    assert client.usdc_balance("base", wallet.addresses["base"]) == 97_500_000


def test_a_lost_send_is_proven_by_the_balance_not_repeated(shared):
    transport = LoseAnswers("/wallet/send", after=1)
    client, wallet = new_holder(shared, transport=transport, settle_s=0)
    sent = client.send_usdc_once("base", wallet.addresses["base"], ELSEWHERE, 10 * MICRO, wallet.private_keys["base"],
                                 idempotency_key="lost-send")
    assert sent.reconstructed and transport.sent == 1
    assert client.usdc_balance("base", wallet.addresses["base"]) == 90 * MICRO
    assert SandboxAdmin(shared.root_url).idempotency("lost-send")["successes"] == 1


def test_a_send_lost_before_the_server_is_sent_again(shared):
    transport = LoseAnswers("/wallet/send", before=1)
    client, wallet = new_holder(shared, transport=transport)
    sent = client.send_once("base", wallet.addresses["base"], ELSEWHERE, 10**15, wallet.private_keys["base"])
    assert not sent.reconstructed and transport.sent == 1
    assert client.native_balance(wallet.addresses["base"]).base_units == 10**16 - 10**15 - 2 * 10**12


def test_send_gives_up_when_nothing_arrives(shared):
    client, wallet = new_holder(shared, transport=LoseAnswers("/wallet/send", before=5))
    with pytest.raises(VenueNotApplied):
        client.send_usdc_once("base", wallet.addresses["base"], ELSEWHERE, MICRO, wallet.private_keys["base"])
    assert client.usdc_balance("base", wallet.addresses["base"]) == 100 * MICRO


def test_sends_under_random_faults_move_money_exactly_once(sandbox_factory):
    handle = sandbox_factory(seed=71)
    admin = SandboxAdmin(handle.root_url)
    client, wallet = new_holder(handle, usdc="1000", eth="0.1", retries=8)
    admin.set_faults(error_rate=0.15, drop_rate=0.15, garbage_rate=0.1, after_ratio=0.5, seed=9)
    keys = [f"fault-send-{i}" for i in range(16)]
    done, unknown = [], 0
    for key in keys:
        try:
            done.append(client.send_usdc_once("base", wallet.addresses["base"], ELSEWHERE, 5 * MICRO,
                                              wallet.private_keys["base"], idempotency_key=key))
        except VenueNotApplied:
            pass
        except VenueUnavailable:
            unknown += 1
    injected = admin.faults()["injected"]
    admin.set_faults()
    assert sum(injected.values()) > 5
    moved = 1000 * MICRO - client.usdc_balance("base", wallet.addresses["base"])
    happened = [k for k in keys if admin.idempotency(k)["successes"]]
    assert all(admin.idempotency(k)["successes"] <= 1 for k in keys)
    assert moved == 5 * MICRO * len(happened)
    assert len(done) == len(happened) or unknown


def test_execute_swap_checks_the_bound_before_any_money_moves(shared):
    client, wallet = new_holder(shared, usdc="50", eth="0.01")
    order, deposit = client.execute_swap("base", "base", "USDC", "ETH", 20 * MICRO, wallet.addresses["base"],
                                         wallet.addresses["base"], wallet.private_keys["base"], max_slippage_bps=300)
    assert client.swap_status(order.order_id).status == "completed" and deposit.to == order.deposit_address
    HTTP.post(shared.urls["wallet"] + "/_sandbox/swap-slippage", json={"bps": 250})
    try:
        with pytest.raises(VenueRejected) as info:
            client.execute_swap("base", "base", "USDC", "ETH", 20 * MICRO, wallet.addresses["base"],
                                wallet.addresses["base"], wallet.private_keys["base"], max_slippage_bps=100)
        assert info.value.code == "swap_failed"
    finally:
        HTTP.post(shared.urls["wallet"] + "/_sandbox/swap-slippage", json={"bps": None})
    assert client.usdc_balance("base", wallet.addresses["base"]) == 30 * MICRO
    quote = client.swap_quote("base", "solana", "USDC", "SOL", 10 * MICRO)
    assert quote.fee_rate == "0.5%" and quote.from_amount_usd == 10 * MICRO and quote.to_amount > 0


def test_lost_referral_withdrawal_is_proven_by_the_pending_amount(shared):
    referrer = WalletClient(shared.urls["wallet"], **FAST, transport=LoseAnswers("/referral/withdraw", after=1))
    code = referrer.register().referral_code
    agent = WalletClient(shared.urls["wallet"], **FAST)
    agent.register(code)
    wallet = agent.create_wallet()
    agent.swap("base", "base", "USDC", "ETH", 4_000 * MICRO, wallet.addresses["base"])  # fee $20 → $2 commission
    assert referrer.referral_stats().available_usd == 2 * MICRO
    done = referrer.referral_withdraw(ELSEWHERE)
    assert done.reconstructed and done.amount_usd == 2 * MICRO
    assert referrer.referral_stats().pending_usd == 2 * MICRO


def test_keys_never_show_in_logs_reprs_or_errors(shared, caplog):
    caplog.set_level(logging.DEBUG)
    client, wallet = new_holder(shared, usdc="1", eth="")
    key = wallet.private_keys["base"].reveal()
    api_key = client._key.reveal()
    with pytest.raises(VenueRejected) as info:  # no gas: refused
        client.send_usdc_once("base", wallet.addresses["base"], ELSEWHERE, MICRO, wallet.private_keys["base"])
    with pytest.raises(VenueRejected):
        client.send("base", ELSEWHERE, "1", "0x" + "e" * 64)
    texts = [caplog.text, str(info.value), repr(info.value), repr(client), repr(wallet), str(wallet)]
    assert not any(secret in text for text in texts for secret in (key, api_key, "e" * 64,
                                                                  wallet.mnemonic.reveal()))
