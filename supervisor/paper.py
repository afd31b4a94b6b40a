"""Paper-mode funding: the sandbox's stand-in for real deposits.

In paper mode the venue silos start empty; a simulated deposit (the sandbox's admin route) puts
exactly what the ledger says each venue-held bucket owns into the venue, so the ledger and the
venue agree from the first bet. The casino silo also holds the $1 the registration's faucet
claim may have credited, which the deposit tops up rather than ignores.
"""

from __future__ import annotations

from actors.bootstrap import open_treasury
from actors.chain_view import addresses_key
from actors.ledger import read_ledger
from messages.envelope import IdFactory
from runtime.atomic import AtomicSteps

PAPER_GAS_WEI = 10**16
"""0.01 ETH on Base: about 5,000 sends' gas in the sandbox."""


def top_up_casino(casino_url: str, casino_agent_id: str, api_key, want: int) -> None:
    """Bring the agent's casino balance up to `want` with a simulated deposit (never down)."""
    from venue.client import SandboxAdmin
    from venue.client.casino import CasinoClient

    have = CasinoClient(casino_url, api_key).balance().balance
    if want > have:
        SandboxAdmin(casino_url).credit(casino_agent_id, want - have)


def open_paper_casino_agent(steps: AtomicSteps, agent: str, capital: int, casino_url: str, *, now_ms: int,
                            new_id: IdFactory) -> str:
    """Register at the sandbox casino, open the treasury, fund the casino silo to the casino bucket.

    Idempotent: an agent whose credentials exist is left as it is. Returns the casino agent id.
    """
    from venue.client.casino import CasinoClient

    keys, client = steps.keys, steps.client
    known = client.hget(keys.credentials(agent), "casino_agent_id")
    if known is not None:
        return known.decode()
    registration = CasinoClient(casino_url).register()
    open_treasury(steps, agent, capital, now_ms=now_ms, new_id=new_id)
    top_up_casino(casino_url, registration.agent_id, registration.api_key,
                  read_ledger(client, keys, agent).available["casino"])
    client.hset(keys.credentials(agent), mapping={"casino_agent_id": registration.agent_id,
                                                  "casino_key": registration.api_key.reveal()})
    client.sadd(keys.agents(), agent)
    return registration.agent_id


def fund_paper_silos(steps: AtomicSteps, agent: str, venues: dict[str, str], *, casino_float: int = 0) -> None:
    """Deposit into each venue silo what the ledger says its buckets own there.

    The casino silo gets the casino and referral buckets (commissions land in the casino
    balance) plus `casino_float`, the reserve's money parked at the casino so escrows can be
    funded; the trading silo (exchange collateral) gets the trading bucket; the reserve's home,
    USDC on Base at the agent's wallet address, gets the reserve. Registration's faucet dollar
    already in the casino is topped up, not added to.
    """
    from venue.client import SandboxAdmin

    keys, client = steps.keys, steps.client
    creds = {k.decode(): v.decode() for k, v in client.hgetall(keys.credentials(agent)).items()}
    ledger = read_ledger(client, keys, agent)
    admin = SandboxAdmin(venues["casino"])
    top_up_casino(venues["casino"], creds["casino_agent_id"], creds["casino_key"],
                  ledger.available.get("casino", 0) + ledger.available.get("referral", 0) + casino_float)
    if "trading_agent_id" in creds and ledger.available.get("trading", 0):
        admin.fund_trading(creds["trading_agent_id"], ledger.available["trading"])
    base = client.hget(addresses_key(keys, agent), "base")
    on_chain = ledger.available.get("reserve", 0) - casino_float  # the float is reserve money at the casino
    if casino_float:  # reserve money parked at the casino: where the reconciliation looks for it
        from actors.silo.records import placement_key

        client.hsetnx(placement_key(keys, agent), "reserve@casino", casino_float)
    if base is not None and on_chain > 0:  # the reserve's home: USDC on Base
        admin.fund_wallet("base", base.decode(), on_chain)
    if base is not None:  # gas for the silo transfers' sends (ETH on Base; not treasury money)
        admin.fund_wallet("base", base.decode(), PAPER_GAS_WEI, token="native")
