"""The stories `treasury demo --scenario NAME` tells: one per breaker and rebalancing rule.

Each story runs the real system (workers in their own processes, the sandbox over HTTP, Redis)
and drives one agent until the rule acts, narrating as it goes. The summary carries the final
risk state of the treasury and of each bucket, every breaker that fired with its reason, the
balances in micro-USD and a conservation check of the ledger against the venue silos.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Callable

from actors.ledger import read_ledger, read_risk
from messages.money import format_usd, parse_usd
from messages.schema import BalancesChanged, BetRefused, BetSettled, CoinFlip, Dice, Multiplier, PlaceBet, StartSession
from runtime.clock import DAY_MS
from supervisor import replay_format
from supervisor.scenario_harness import AGENT, ScenarioRun, scenario_run
from supervisor.silo_scenario import silo_transfer

BET_STEP_MS = 60_000


def _long_shot(kelly: str = "full") -> PlaceBet:
    return PlaceBet(game=Multiplier(target=10.0), win_prob=0.12, kelly=kelly)


def _middling_shot(kelly: str = "full") -> PlaceBet:
    """×4 believed at 30 % (true odds about 24.75 %): steady enough that the day's loss, not a
    drawdown from an early lucky peak, is what stops the agent."""
    return PlaceBet(game=Multiplier(target=4.0), win_prob=0.3, kelly=kelly)


def _bet_until(run: ScenarioRun, done: Callable[[], bool], limit: int, bet=_long_shot) -> int:
    """Bet (long shots the agent believes in) until `done()` or `limit` bets; returns bets sent."""
    for n in range(1, limit + 1):
        run.send("casino", bet())
        run.advance(BET_STEP_MS)
        if done():
            return n
    return limit


def _state(run: ScenarioRun) -> str:
    return read_risk(run.client, run.keys, AGENT).state


def daily_loss(run: ScenarioRun) -> None:
    run.onboard(parse_usd("1000"))
    run.say("an agent with $1,000 bets ×4 shots it wrongly believes it has an edge on")
    n = _bet_until(run, lambda: _state(run) != "ACTIVE", 2000, bet=_middling_shot)
    risk = read_risk(run.client, run.keys, AGENT)
    run.say(f"after {n} bets: {risk.state} — {risk.reason}")
    [refused] = [e.body for e in run.send("casino", _middling_shot()) if isinstance(e.body, BetRefused)]
    run.say(f"the next bet is refused by the fence: {refused.code}")
    run.advance(DAY_MS)
    settled = [e.body for e in run.send("casino", _middling_shot()) if isinstance(e.body, BetSettled)]
    run.say(f"24 h later the pause has expired: the next bet is {'placed' if settled else 'refused'}")


def total_drawdown(run: ScenarioRun) -> None:
    capital = parse_usd("1000")
    run.onboard(capital, {"reserve": parse_usd("250"), "trading": parse_usd("50"), "casino": parse_usd("600"),
                          "referral": parse_usd("100")})
    run.say("a high-roller agent keeps 60 % of $1,000 in the casino and loses a little every day")
    for day in range(1, 30):
        _bet_until(run, lambda: _state(run) != "ACTIVE", 2000)
        risk = read_risk(run.client, run.keys, AGENT)
        total = read_ledger(run.client, run.keys, AGENT).total
        run.say(f"day {day}: {risk.state} by {risk.breaker}, treasury at {format_usd(total)}")
        if risk.state == "HALTED":
            break
        run.advance(DAY_MS)  # the daily pause expires; a new UTC day starts
    run.advance(30 * DAY_MS)
    refused = [e.body for e in run.send("casino", _long_shot()) if isinstance(e.body, BetRefused)]
    run.say(f"a month later a bet is still refused ({refused[0].code}): only an operator can resume")


def bet_cap(run: ScenarioRun) -> None:
    run.onboard(parse_usd("1000"))
    run.say("the casino bucket holds $150, so no single bet may exceed $3.00 (2 %)")
    placed = [e.body for e in run.send("casino", PlaceBet(game=Multiplier(target=10.0), win_prob=0.5, kelly="full"))
              if isinstance(e.body, BetSettled)]
    run.say(f"a bet Kelly sizes at 44 % of the bucket is capped: staked {format_usd(placed[0].stake)}")
    refused = [e.body for e in run.send("casino", PlaceBet(game=Dice(), fixed_stake=parse_usd("5")))
               if isinstance(e.body, BetRefused)]
    run.say(f"an opted-in fixed stake of $5.00 is rejected: {refused[0].reason}")
    refused = [e.body for e in run.send("casino", PlaceBet(game=Dice())) if isinstance(e.body, BetRefused)]
    run.say(f"a bet on the house's odds is refused: {refused[0].reason}")


def casino_session_stop(run: ScenarioRun) -> None:
    run.onboard(parse_usd("1000"))
    run.send("casino", StartSession(budget=parse_usd("20")))
    run.say("the agent opens a $20 casino session and bets coin flips it wrongly rates at 60 %, full Kelly")
    session_key = run.keys.session(AGENT)
    n = _bet_until(run, lambda: run.client.hget(session_key, "state") == b"stopped", 1000,
                   bet=lambda: PlaceBet(game=CoinFlip(side="heads"), win_prob=0.6, kelly="full"))
    run.say(f"{n} bets later the session is down half its budget")
    reason = run.client.hget(session_key, "reason").decode()
    run.say(f"the session stops: {reason}")
    refused = [e.body for e in run.send("casino", _long_shot()) if isinstance(e.body, BetRefused)]
    run.say(f"the next bet is refused: {refused[0].code}")
    reserve = read_ledger(run.client, run.keys, AGENT).bucket("reserve")
    run.say(f"what was left of the session went to the reserve, now {format_usd(reserve)}")


def reserve_floor(run: ScenarioRun) -> None:
    run.onboard(parse_usd("1000"), {"reserve": parse_usd("150"), "trading": parse_usd("400"),
                                    "casino": parse_usd("300"), "referral": parse_usd("150")})
    run.say("an agent opened with only 15 % in reserve, under the 20 % floor")
    run.send("risk", BalancesChanged(cause="a balance check"))
    reserve = read_ledger(run.client, run.keys, AGENT).bucket("reserve")
    run.say(f"RiskGuard asks for an emergency rebalance; the reserve ends at {format_usd(reserve)}")


def drift_rebalance(run: ScenarioRun) -> None:
    from messages.treasury_msgs import RebalanceTick

    run.onboard(parse_usd("1000"), {"reserve": parse_usd("300"), "trading": parse_usd("350"),
                                    "casino": parse_usd("250"), "referral": parse_usd("100")})
    run.say("reserve at 30 % and casino at 25 %: both drift 10 points from target, beyond the 5 % limit")
    run.send("rebalancer", RebalanceTick())
    ledger = read_ledger(run.client, run.keys, AGENT)
    run.say("after the tick: " + ", ".join(f"{b} {format_usd(ledger.bucket(b))}" for b in sorted(ledger.available)))


def escrow_overcommit(run: ScenarioRun) -> None:
    from messages.escrow_msgs import CreateEscrow, EscrowCreated, EscrowRefused
    from messages.treasury_msgs import RebalancePlanned, RebalanceSkipped
    from venue.client.casino import CasinoClient

    run.onboard(parse_usd("1000"), casino_float=parse_usd("200"))
    counterparty = CasinoClient(run.sandbox.urls["casino"]).register().agent_id
    run.say("the reserve holds $400, so at most $120 (30 %) may be locked in escrow, fees included")
    for amount in ("80", "40"):
        shown = format_usd(parse_usd(amount))
        events = run.send("escrow", CreateEscrow(counterparty=counterparty, amount=parse_usd(amount),
                                                 description=f"pay for work worth {shown}", timeout_hours=24))
        outcome = next(e.body for e in events if isinstance(e.body, (EscrowCreated, EscrowRefused)))
        if isinstance(outcome, EscrowCreated):
            run.say(f"an escrow of {shown}: created, {format_usd(outcome.locked_after)} now locked")
        else:
            run.say(f"an escrow of {shown}: refused — {outcome.reason}")
        asked = [e.body for e in events if isinstance(e.body, (RebalancePlanned, RebalanceSkipped))]
        if asked:
            run.say(f"  (a large escrow asks the Rebalancer to top the reserve up: {type(asked[0]).__name__})")


def trading_drawdown(run: ScenarioRun) -> None:
    from messages.trading_msgs import CheckExits, OpenPosition
    from venue.client import SandboxAdmin

    run.onboard(parse_usd("1000"))
    admin = SandboxAdmin(run.sandbox.urls["casino"])
    run.say("the agent trades BTC with a 2 % stop; the market keeps stopping it out")
    price = 100_000
    for trade in range(1, 60):
        admin.set_price("BTC", str(price))
        run.send("trading", OpenPosition(coin="BTC", side="long", win_rate="0.55", win_loss_ratio="2",
                                         stop_distance="0.02", leverage=3, take_profit_multiple="2"))
        price = price * 97 // 100
        admin.set_price("BTC", str(price))
        run.send("trading", CheckExits())
        risk = read_risk(run.client, run.keys, AGENT)
        if "trading" in risk.halted_buckets:
            run.say(f"after {trade} stopped-out trades the trading bucket is halted: {risk.halted_buckets['trading']}")
            break
        if trade % 2 == 0:
            run.advance(DAY_MS)  # spread the losses so the daily-loss breaker stays out of it
    events = run.send("trading", OpenPosition(coin="BTC", side="long", win_rate="0.55", win_loss_ratio="2",
                                              stop_distance="0.02", leverage=3, take_profit_multiple="2"))
    run.say(f"a new order is refused: {events[-1].body.code}")


SCENARIOS: dict[str, tuple[Callable[[ScenarioRun], None], list[str], str]] = {
    "daily-loss": (daily_loss, ["casino", "risk"], "5 % lost in a day pauses spending for 24 h"),
    "total-drawdown": (total_drawdown, ["casino", "risk"], "20 % below the peak halts until an operator resumes"),
    "trading-drawdown": (trading_drawdown, ["trading", "risk", "rebalancer", "reserve"],
                         "the trading bucket 20 % below its peak closes every position and halts trading"),
    "casino-session-stop": (casino_session_stop, ["casino", "risk", "rebalancer", "reserve"],
                            "a casino session down 50 % stops; what is left goes to the reserve"),
    "reserve-floor": (reserve_floor, ["risk", "rebalancer", "reserve", "casino", "trading", "referral"],
                      "a reserve under its 20 % floor triggers an emergency rebalance"),
    "bet-cap": (bet_cap, ["casino", "risk"], "no bet above 2 % of its bucket"),
    "escrow-overcommit": (escrow_overcommit, ["escrow", "risk", "rebalancer", "reserve", "casino", "trading",
                                              "referral"], "no more than 30 % of the reserve locked in escrow"),
    "drift-rebalance": (drift_rebalance, ["rebalancer", "reserve", "casino", "trading", "referral", "risk"],
                        "a bucket more than 5 % off target is rebalanced, reserve first, moves of $10 or more"),
    "silo-transfer": (silo_transfer, ["rebalancer", "reserve", "casino", "trading", "referral", "risk", "silo"],
                      "a rebalance moves money between silos through the venues; fees booked, reconciliation clean"),
}


def run_scenario(name: str, seed: int = 7, *, record: str | Path | None = None, inline: bool = False) -> dict:
    """Tell one story; with `record`, run its roles in-process and write the run's replay record
    there (`treasury replay FILE` plays it back). `inline` runs in-process without recording."""
    if name not in SCENARIOS:
        raise KeyError(name)
    story, roles, _ = SCENARIOS[name]
    started = time.monotonic()
    with scenario_run(seed, roles, inline=inline, record=name if record else None) as run:
        story(run)
        summary = run.summary(name)
        if record:
            replay_format.write(record, run.recording())
    summary["timing"] = {"wall_ms": round((time.monotonic() - started) * 1000)}
    return summary


def list_scenarios() -> list[tuple[str, str]]:
    return [(name, text) for name, (_, _, text) in SCENARIOS.items()]


__all__ = ["run_scenario", "list_scenarios", "SCENARIOS", "random"]
