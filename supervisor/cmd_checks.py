"""`treasury cmd` inputs checked at the edge, before anything is built, signed or published.

The message schema and the actors check again; this layer refuses what they would accept but the
operator did not mean (a multiplier bet without a target, a coin flip with one, a certain win),
and makes the few syntaxes one (a Kelly fraction is `full|half|quarter|0<F<=1` everywhere).
Every refusal is a `ConfigError`: one line, exit 2, nothing sent.
"""

from __future__ import annotations

import argparse
from typing import Mapping

from actors.kelly import NAMED_FRACTIONS, KellyInputError, exact_input, parse_fraction
from messages.base import validate_agent_id
from messages.errors import ConfigError
from messages.money import parse_usd
from supervisor.cli_common import reason_text, safe_text

GAME_FLAGS = {"coin_flip": {"side"}, "dice": {"direction", "threshold"}, "multiplier": {"target"}}
"""Which game flags belong to which game; any other given flag is refused."""

FREE_TEXT = ("description", "proof", "memo")
"""Free-text flags other than --reason: each checked with `reason_text` (visible text, 1 kB, no control
characters); `supervisor.cmd_schema.check_body` catches a control character in any other text field."""

GAME_DEFAULTS = {"side": "heads", "direction": "over", "threshold": 50}

FIELD_FLAGS = {
    "counterparty": "--to", "escrow_id": "ESCROW_ID", "message_id": "MESSAGE_ID", "position_id": "POSITION_ID",
    "stop_distance": "--stop", "source": "--from", "dest": "--to", "settings": "NAME=VALUE",
}
"""Message fields whose flag (or positional) is not `--<field-with-dashes>`, for plain-words errors."""


def kelly_fraction(text: str, flag: str = "--kelly") -> str | float:
    """The one Kelly fraction syntax: `full`, `half`, `quarter`, or a number in (0, 1].
    Returns the name, or the number as a float (what `PlaceBet.kelly` carries)."""
    if text.lower() in NAMED_FRACTIONS:
        return text.lower()
    try:
        value = parse_fraction(text)
    except KellyInputError:
        raise ConfigError(f"{flag} {text!r}: use full, half, quarter or a number in (0, 1], e.g. 0.25") from None
    return float(value)


def check_bet(a: argparse.Namespace) -> None:
    """Game flags match the game; a multiplier bet names its target; win-prob is in (0, 1)."""
    given = {name for names in GAME_FLAGS.values() for name in names if getattr(a, name, None) is not None}
    stray = sorted(given - GAME_FLAGS[a.game])
    if stray:
        raise ConfigError(f"--{stray[0]} does not apply to --game {a.game} (it takes: "
                          f"{', '.join('--' + f for f in sorted(GAME_FLAGS[a.game]))})")
    if a.game == "multiplier" and a.target is None:
        raise ConfigError("--game multiplier needs --target (the payout multiple, 1.01 to 1000, e.g. 2.5)")
    for name, value in GAME_DEFAULTS.items():
        if getattr(a, name, None) is None:
            setattr(a, name, value)
    if a.win_prob is not None and not 0 < a.win_prob < 1:
        raise ConfigError(f"--win-prob {a.win_prob:g}: must be strictly between 0 and 1 (a certain bet is no "
                          f"estimate)")
    if a.win_prob is not None:
        try:
            exact_input(a.win_prob, "--win-prob")
        except KellyInputError as exc:  # what the casino would refuse: refused here, before anything is sent
            raise ConfigError(str(exc)) from None
    a.kelly = kelly_fraction(a.kelly)


def check_policy_settings(items: list[str], overrides: Mapping[str, int | str] | None = None) -> dict[str, int | str]:
    """`NAME=VALUE` items as settings, checked against the policy's names and ranges (merged with
    the agent's current overrides, as the rebalancer will) before anything is published."""
    import msgspec

    from actors.policy.buckets import MONEY_SETTINGS, Policy, PolicyError
    from actors.policy.effective import merge_policy

    settings: dict[str, int | str] = {}
    known = set(msgspec.structs.asdict(Policy()))
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ConfigError(f"policy setting {item!r} is not NAME=VALUE")
        if name not in known:
            raise ConfigError(f"unknown policy setting {name!r}; known: {', '.join(sorted(known))}")
        if name in settings:  # the last one would win silently: say which value was meant
            raise ConfigError(f"policy setting {name!r} is given twice; give each setting once")
        if name == "kelly_fraction":
            settings[name] = str(kelly_fraction(value, "kelly_fraction"))
            continue
        if name in MONEY_SETTINGS:  # USD, like every other amount of the CLI; stored in micro-USD
            settings[name] = parse_usd(value, field=name)
            continue
        if not value.isascii() or not value.lstrip("-").isdigit():
            raise ConfigError(f"policy setting {name}={value!r}: expected a whole number (bp, ms or hours, as "
                              f"the name says)")
        settings[name] = int(value)
    try:
        merge_policy({**(overrides or {}), **settings})  # as the Rebalancer will (actors.policy.effective)
    except PolicyError as exc:
        raise ConfigError(f"policy refused before sending: {exc}") from None
    return settings


CASINO_MIN_BET = 10_000
"""The casino's smallest stake, micro-USD ($0.01: `amount` ≥ 0.01 on every game, purple-flea-api.md)."""


def check_against_policy(body, policy) -> None:
    """The limits the actors would refuse a well-formed command for, checked against the agent's
    effective `policy` before publishing (`ConfigError`): an escrow under the service's minimum or
    with a timeout outside 1 to `escrow_max_timeout_hours`, a position under the venue's minimum
    notional. Limits that depend on balances (bet cap, escrow lock share) stay with the actors."""
    from actors.policy.escrow_rules import ESCROW_MIN
    from actors.policy.escrow_rules import timeout_problem as escrow_timeout_problem
    from actors.trading.sizing import MIN_NOTIONAL
    from messages.escrow_msgs import CreateEscrow
    from messages.money import format_usd, format_usd_exact
    from messages.trading_msgs import OpenPosition

    if isinstance(body, CreateEscrow):
        if body.amount < ESCROW_MIN:
            raise ConfigError(f"--amount {format_usd_exact(body.amount)}: the escrow service's minimum is "
                              f"{format_usd(ESCROW_MIN)}")
        if escrow_timeout_problem(body.timeout_hours, policy) is not None:
            raise ConfigError(f"--timeout-hours {body.timeout_hours}: must be between 1 and "
                              f"{policy.escrow_max_timeout_hours} hours (the agent's policy)")
    if isinstance(body, OpenPosition) and body.notional is not None and body.notional < MIN_NOTIONAL:
        raise ConfigError(f"--notional {format_usd_exact(body.notional)}: the venue's minimum is "
                          f"{format_usd(MIN_NOTIONAL)}")
    from messages.schema import PlaceBet

    if isinstance(body, PlaceBet) and body.fixed_stake is not None and body.fixed_stake < CASINO_MIN_BET:
        from messages.money import format_usd_exact

        raise ConfigError(f"--fixed-stake {format_usd_exact(body.fixed_stake)}: the casino's minimum bet is "
                          f"{format_usd(CASINO_MIN_BET)}")


def check_against_ledger(body, client, keys, agent: str, policy) -> None:
    """What the actors would refuse from the balances, checked before publishing where the CLI can
    read them (`ConfigError`, one line, nothing sent): an operator's move of more than its source has
    available or that would take the reserve under its floor (the rule the rebalancer applies again,
    `actors.policy.operator_moves.move_problem`), parking more reserve money at the casino than is
    available, bringing home more than is parked, money leaving the casino silo under its minimum
    withdrawal, an adjustment that would take a bucket's available balance below 0. The actors decide
    again when the command arrives."""
    from actors.ledger import read_ledger
    from actors.policy.operator_moves import move_problem
    from actors.rebalancer import balances_of
    from messages.money import format_usd
    from messages.silo_msgs import MoveFunds, PlaceFunds

    if isinstance(body, MoveFunds):
        ledger = read_ledger(client, keys, agent)
        problem = move_problem(body.source, body.dest, body.amount, ledger.available, balances_of(ledger), policy)
        if problem is not None:
            raise ConfigError(f"--amount {format_usd(body.amount)}: {problem}")
        from actors.silo.reconcile import HOME

        if HOME[body.source] == "casino" != HOME[body.dest]:
            _check_casino_withdrawal(body.amount, f"a move from {body.source} to {body.dest}", "moved")
    if isinstance(body, PlaceFunds) and body.silo == "wallet":
        _check_casino_withdrawal(body.amount, "bringing parked money home", "sent")
    from messages.silo_msgs import AdjustLedger

    if isinstance(body, AdjustLedger) and body.amount < 0:  # the bucket's actor refuses it again on arrival
        have = read_ledger(client, keys, agent).available.get(body.bucket, 0)
        if have + body.amount < 0:
            raise ConfigError(f"--amount {format_usd(body.amount)}: {body.bucket} has only {format_usd(have)} "
                              f"available; the adjustment would make it negative; nothing was sent")
    if isinstance(body, PlaceFunds):
        from actors.silo.reconcile import parked_left

        if body.silo == "casino":
            have = read_ledger(client, keys, agent).available.get(body.bucket, 0)
            what = f"the {body.bucket} has only {format_usd(have)} available"
        else:
            have = parked_left(client, keys, agent, body.bucket)  # net of what escrows locked and spent
            what = f"only {format_usd(have)} of the {body.bucket} is parked at the casino"
        if body.amount > have:
            raise ConfigError(f"--amount {format_usd(body.amount)}: {what}; nothing was sent")


def _check_casino_withdrawal(amount: int, what: str, verb: str) -> None:
    """Money leaving the casino silo is a casino withdrawal: under its minimum the silo actor would
    fail the transfer after the move was booked, so it is refused here (`ConfigError`)."""
    from actors.silo.planning import CASINO_MIN_WITHDRAW
    from messages.money import format_usd, format_usd_exact

    if amount < CASINO_MIN_WITHDRAW:
        raise ConfigError(f"--amount {format_usd_exact(amount)}: {what} is a casino withdrawal, and the casino's "
                          f"minimum withdrawal is {format_usd(CASINO_MIN_WITHDRAW)}; nothing was {verb}")


DESCRIPTION_MIN, DESCRIPTION_MAX = 3, 200
"""An escrow description: the escrow service wants at least 3 characters once spaces at its ends are
trimmed (`invalid_description`); it sets no maximum, the treasury caps it at 200 characters so the
` [ref:<message id>]` tag it appends fits (`messages.escrow_msgs.Description`)."""


def check_description(text: str) -> None:
    """`--description`: 3 to 200 characters, at least 3 once trimmed (`ConfigError` otherwise)."""
    if len(text.strip()) < DESCRIPTION_MIN:
        raise ConfigError(f"--description {ascii(text)[:60]}: must be {DESCRIPTION_MIN} to {DESCRIPTION_MAX} "
                          f"characters, at least {DESCRIPTION_MIN} besides spaces at its ends (the escrow service's "
                          f"rule)")
    if len(text) > DESCRIPTION_MAX:
        raise ConfigError(f"--description is {len(text)} characters: must be {DESCRIPTION_MIN} to {DESCRIPTION_MAX} "
                          f"characters (the treasury appends a reference tag)")


def venue_markets(url: str) -> set[str] | None:
    """The tickers the trading venue at `url` lists (upper case, `BTC`), or None when it cannot be
    asked (unreachable, an odd answer): then the trading actor decides alone, as it always does."""
    from venue.client.trading import TradingClient
    from venue.errors import VenueError

    client = TradingClient(url, timeout_s=5.0, retries=1)
    try:
        markets = client.markets()
    except (VenueError, OSError, ValueError):
        return None
    finally:
        client.close()
    return {m.coin.replace("xyz:", "").upper() for m in markets} | {m.ticker.upper() for m in markets}


def check_trade(body, client, keys, agent: str, venues: dict[str, str]) -> None:
    """What the trading actor would refuse, checked before sending where the CLI can see it
    (`ConfigError`, one line, exit 2, nothing sent), with or without `--wait`: `open` of a coin the
    trading venue does not list; `close` of a position id that is not in the agent's book."""
    from actors.trading.book import read_positions
    from messages.trading_msgs import ClosePosition, OpenPosition

    if isinstance(body, OpenPosition) and "trading" in venues:
        known = venue_markets(venues["trading"])
        if known is not None and body.coin.replace("xyz:", "").upper() not in known:
            some = ", ".join(sorted(known)[:8]) + (", ..." if len(known) > 8 else "")
            raise ConfigError(f"--coin {safe_text(body.coin)!r}: not a market at the trading venue (it lists "
                              f"{len(known)}: {some})")
    if isinstance(body, ClosePosition):
        book = read_positions(client, keys, agent)
        if body.position_id not in book:
            held = ", ".join(sorted(book)[:5]) or "none"
            raise ConfigError(f"no open position {safe_text(body.position_id)!r} for {safe_text(agent)} (open: {held}; "
                              f"`treasury trade list {safe_text(agent)}` shows them)")


def check_cmd_args(a: argparse.Namespace) -> None:
    """Every check of this module that applies to the parsed `treasury cmd` line (mutates `a`)."""
    validate_agent_id(a.agent)
    if getattr(a, "reason", None) is not None or a.cmd in ("pause", "halt", "resume", "dispute"):
        a.reason = reason_text(a.reason or "")
    for name in FREE_TEXT:  # the same rule as --reason for every free-text flag
        if getattr(a, name, None) is not None:
            setattr(a, name, reason_text(getattr(a, name), flag="--" + name))
    if a.cmd == "pay":
        check_description(a.description)
    if a.cmd == "bet":
        check_bet(a)
    if getattr(a, "timeout", None) is not None and not a.timeout > 0:
        raise ConfigError(f"--timeout {a.timeout:g}: must be more than 0 seconds")
