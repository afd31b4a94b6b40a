"""What `treasury balances` says about each chain and token: read, not read (and why), or absent.

The wallet API reads the chains unevenly (`actors/policy/chains.py`): USDC on six chains, none on
bitcoin and monero, which carry no USDC; the native coin everywhere but arbitrum and bsc. So each
token of each chain is one of:

- `{"status": "read", ...amount}`: what the wallet answered (or the 5-minute cache holds);
- `{"status": "unknown", "reason": ...}`: it could not be read (the wallet failed, no address,
  or the wallet API has no read for it); never shown as zero;
- `{"status": "none", "reason": "no USDC on this chain"}`: there is nothing to read.
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal

from actors.chain_view import ChainBalances
from actors.policy.chains import CHAINS
from messages.money import MICRO, floor_to_cent

NO_USDC = "no USDC on this chain"


def _native_not_readable(name: str) -> str:
    return f"the wallet API reads no {CHAINS[name].native} balance on {name}"


def token_states(b: ChainBalances) -> dict[str, dict]:
    """Per chain (all eight, in `CHAINS` order): `address`, `source` (wallet, cache or null),
    `usdc` and `native` as described in the module docstring. USDC amounts in `amount_micros`
    (micro-USD), native ones in `amount_units` (the coin's smallest unit) with `symbol`, the same in
    whole coins as text (`amount_coins`) and their USD value (`value_micros`, when priced)."""
    out: dict[str, dict] = {}
    for name, spec in CHAINS.items():
        h = b.holdings.get(name)
        failed = b.unread.get(name)
        usdc: dict
        native: dict
        if not spec.reads_usdc:
            usdc = {"status": "none", "reason": NO_USDC}
        elif h is not None and h.usdc is not None:
            usdc = {"status": "read", "amount_micros": h.usdc}
        else:
            usdc = {"status": "unknown", "reason": failed or "not in the wallet's answer"}
        if not spec.reads_native:
            native = {"status": "unknown", "reason": _native_not_readable(name), "symbol": spec.native}
        elif h is not None and h.native is not None:
            native = {"status": "read", "amount_units": h.native, "amount_coins": coins_text(h.native_coins),
                      "symbol": spec.native}
            value = native_value_micros(h.native_coins, b.prices.get(spec.native))
            if value is not None:
                native["value_micros"] = value
        else:
            native = {"status": "unknown", "reason": failed or "not in the wallet's answer", "symbol": spec.native}
        source = None if h is None else ("wallet" if name in b.refreshed else "cache")
        out[name] = {"address": h.address if h is not None else None, "source": source, "usdc": usdc,
                     "native": native}
    return out


def coins_text(coins: Decimal) -> str:
    """Whole coins as plain decimal text, no exponent, no trailing zeros: `0.01`, `0`, `12.5`."""
    text = f"{coins:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def native_value_micros(coins: Decimal, price: Decimal | None) -> int | None:
    """The USD value of `coins` at `price` (USD per coin), micro-USD floored; 0 for no coins; None
    when a held coin has no price."""
    if coins == 0:
        return 0
    if price is None:
        return None
    return int((coins * price * MICRO).to_integral_value(rounding=ROUND_FLOOR))


def shown_micros(token: dict) -> int:
    """The micro-USD a read token's cell shows, floored to the cent as `format_usd` shows it (0 for a
    token not read or without a value): the headline total is the sum of these, so it adds up."""
    if token["status"] != "read":
        return 0
    return floor_to_cent(token.get("amount_micros", token.get("value_micros")) or 0)


def cell(token: dict, usd) -> str:
    """One token as a table cell: dollars for USDC; whole coins with their symbol and their value in
    dollars for a native coin (`0.01 ETH ($33.18)`); "not read: <reason>"; or why it is absent."""
    if token["status"] == "read":
        if "amount_micros" in token:
            return usd(token["amount_micros"])
        coins = f"{token['amount_coins']} {token['symbol']}"
        if "value_micros" in token:
            return f"{coins} ({usd(token['value_micros'])})"
        return f"{coins} (no price)"
    if token["status"] == "none":
        return token["reason"]
    return f"not read: {token['reason']}"
