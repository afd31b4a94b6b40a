"""The `silo-transfer` story: money physically leaves the wallet and lands in the casino and the
trading collateral through the sandbox's deposit path, a withdrawal back from the casino pays the
casino's $0.50 fee, and the reconciliation is clean at the end. Its summary carries each silo's
venue balance and ledger figure and every transfer with its fees (`supervisor/silo_report.py`)."""

from __future__ import annotations

import time

from messages.money import format_usd, parse_usd
from supervisor.scenario_harness import ScenarioRun

DEPOSIT_DELAY_MS = 1_500
"""The sandbox's deposit poll in this story, in the sandbox's (wall-clock) milliseconds."""


def _await_deposits(run: ScenarioRun, timeout_s: float = 30.0) -> None:
    """Wait until the sandbox has credited every deposit it holds (its poller runs every 0.25 s)."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        rows = httpx.get(run.sandbox.urls["wallet"] + "/_sandbox/deposits", timeout=10).json()["deposits"]
        if all(r["status"] != "pending" for r in rows):
            return
        time.sleep(0.1)
    raise TimeoutError("the sandbox did not credit the deposits")


def silo_transfer(run: ScenarioRun) -> None:
    from messages.silo_msgs import MoveFunds, Reconcile, SiloTick
    from messages.treasury_msgs import RebalanceTick
    from venue.client import SandboxAdmin

    admin = SandboxAdmin(run.sandbox.urls["casino"])
    for service in ("casino", "trading"):
        admin.set_deposit_delay(service, DEPOSIT_DELAY_MS)
    run.onboard(parse_usd("1000"), {"reserve": parse_usd("550"), "trading": parse_usd("300"),
                                    "casino": parse_usd("50"), "referral": parse_usd("100")})
    run.send("silo", Reconcile(reason="before the rebalance"))
    run.say("the reserve (on-chain USDC) is at 55 %, the casino at 5 %: both beyond the 5 % drift limit")
    events = run.send("rebalancer", RebalanceTick())
    planned = next(e.body for e in events if type(e.body).__name__ == "RebalancePlanned")
    run.say("planned: " + ", ".join(f"{m.source} -> {m.dest} {format_usd(m.amount)} (held {format_usd(m.hold)})"
                                    for m in planned.moves))
    sent = [e.body for e in run.journal() if type(e.body).__name__ == "SiloTransferSent"]
    run.say("sent from the wallet: " + ", ".join(f"{format_usd(s.amount)} to the {s.to_silo} deposit address"
                                                 for s in sent))
    _await_deposits(run)
    run.advance(61_000)
    run.send("silo", SiloTick())
    landed = [e.body for e in run.journal() if type(e.body).__name__ == "SiloTransferLanded"]
    run.say("landed: " + ", ".join(f"{format_usd(x.credited)} in the {x.to_silo} silo" for x in landed))
    run.send("rebalancer", MoveFunds(source="casino", dest="reserve", amount=parse_usd("40"),
                                     reason="bank part of the casino float"), operator=True)
    run.send("silo", SiloTick())
    fees = [e.body for e in run.journal() if type(e.body).__name__ == "FeeBooked"]
    run.say("an operator moves $40 back to the reserve by a casino withdrawal: "
            + "; ".join(f"{format_usd(f.amount)} fee booked out of the {f.bucket} bucket" for f in fees))
    run.send("silo", Reconcile(reason="after the transfers"))
    check = [e.body for e in run.journal() if type(e.body).__name__ == "ReconciliationChecked"][-1]
    run.say(f"reconciliation: {'clean' if check.clean else 'NOT clean'}")
