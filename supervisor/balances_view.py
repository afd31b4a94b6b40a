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

from actors.chain_view import ChainBalances
from actors.policy.chains import CHAINS

NO_USDC = "no USDC on this chain"


def _native_not_readable(name: str) -> str:
    return f"the wallet API reads no {CHAINS[name].native} balance on {name}"


def token_states(b: ChainBalances) -> dict[str, dict]:
    """Per chain (all eight, in `CHAINS` order): `address`, `source` (wallet, cache or null),
    `usdc` and `native` as described in the module docstring. USDC amounts in `amount_micros`
    (micro-USD), native ones in `amount_units` (the coin's smallest unit) with `symbol`."""
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
            native = {"status": "read", "amount_units": h.native, "symbol": spec.native}
        else:
            native = {"status": "unknown", "reason": failed or "not in the wallet's answer", "symbol": spec.native}
        source = None if h is None else ("wallet" if name in b.refreshed else "cache")
        out[name] = {"address": h.address if h is not None else None, "source": source, "usdc": usdc,
                     "native": native}
    return out


def cell(token: dict, usd) -> str:
    """One token as a table cell: the amount, "not read: <reason>", or the reason it is absent."""
    if token["status"] == "read":
        if "amount_micros" in token:
            return usd(token["amount_micros"])
        return f"{token['amount_units']} {token['symbol']} units"
    if token["status"] == "none":
        return token["reason"]
    return f"not read: {token['reason']}"
