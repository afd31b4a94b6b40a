"""Onboarding many agents at once: in parallel, with a progress bar.

Each agent's onboarding is independent and idempotent (actors/onboarding.py), and its time is
spent waiting on the venues, so agents are onboarded by `parallel` threads sharing each venue's
connection pool (venue/client/pool.py). A failed agent is reported with its one-line error and
the others go on; running it again finishes what is missing.
"""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Callable

from messages.base import validate_agent_id
from messages.envelope import random_ids
from messages.errors import ConfigError, TreasuryError
from messages.money import format_usd
from runtime.atomic import AtomicSteps
from runtime.clock import SystemClock
from runtime.keys import Keys

DEFAULT_PARALLEL = 16


def add_agent(client, keys: Keys, venues: dict[str, str], mode: str, name: str, capital: int, *,
              faucet_limit=None) -> str:
    """Onboard one agent (idempotent: a known agent is neither registered nor funded again, and the
    line returned says plainly that nothing was done).

    `name` is validated first (`BadAgentId`); `capital` is micro-USD and must be > 0;
    `faucet_limit` (actors.onboarding.FaucetLimit) is shared by the agents of one batch."""
    from actors.onboarding import onboard_agent

    validate_agent_id(name)
    if capital <= 0:
        raise ConfigError(f"capital for {name} must be more than $0")
    if client.exists(keys.ledger(name)):  # known: touch nothing at the venues or in Redis
        return exists_line(client, keys, name, capital)
    steps = AtomicSteps(client, keys)
    result = onboard_agent(steps, name, capital, venues=venues, now_ms=SystemClock().now_ms(), new_id=random_ids(),
                           faucet_limit=faucet_limit)
    client.sadd(keys.agents(), name)
    if result.allocation != "ok":
        return exists_line(client, keys, name, capital)
    if mode == "paper":
        from supervisor.paper import fund_paper_silos

        fund_paper_silos(steps, name, venues)
        funded = "the sandbox silos funded to match"
    else:
        funded = "deposit the capital to the venues before the agent spends"
    ids = ", ".join(f"{service} {venue_id}" for service, venue_id in sorted(result.venue_agent_ids.items()))
    return f"agent {name}: {ids}; capital {format_usd(capital)} allocated ({result.allocation}); {funded}"


def exists_line(client, keys: Keys, name: str, capital: int) -> str:
    """What `agent add` says for an agent that has a ledger already: nothing was done, and why."""
    from actors.ledger import read_ledger

    total = read_ledger(client, keys, name).total
    return (f"agent {name} exists already: nothing was done (--capital {format_usd(capital)} not applied; it "
            f"holds {format_usd(total)} as before; `treasury agent list` shows it)")


@dataclass
class OnboardReport:
    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)


def onboard_many(client, keys: Keys, venues: dict[str, str], mode: str, agents: list[tuple[str, int]], *,
                 parallel: int = DEFAULT_PARALLEL, progress: Callable[[int, int], None] | None = None,
                 on_line: Callable[[str], None] | None = None, add: Callable | None = None) -> OnboardReport:
    """Onboard `agents` ((name, capital in micro-USD) pairs) `parallel` at a time.

    `progress(done, total)` is called after each agent, `on_line(text)` with its outcome line,
    both from the calling thread. Returns who was onboarded and who failed (with the error's
    text); nothing is left half-registered that a rerun would not finish.
    """
    if parallel < 1:
        raise ValueError("parallel must be at least 1")
    if add is None:
        from actors.onboarding import FaucetLimit

        add = functools.partial(add_agent, faucet_limit=FaucetLimit())
    report = OnboardReport()
    total = len(agents)
    with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="onboard") as pool:
        futures = {pool.submit(add, client, keys, venues, mode, name, capital): name for name, capital in agents}
        for n, future in enumerate(as_completed(futures), 1):
            name = futures[future]
            try:
                line = future.result()
                report.lines.append(line)
                report.done.append(name)
            except (TreasuryError, OSError) as exc:
                report.failed[name] = f"{type(exc).__name__}: {exc}"
                line = f"{name}: not onboarded ({report.failed[name]}); run again to finish"
            if on_line is not None:
                on_line(line)
            if progress is not None:
                progress(n, total)
    return report


def onboard_with_bar(client, keys: Keys, venues: dict[str, str], mode: str, agents: list[tuple[str, int]],
                     parallel: int = DEFAULT_PARALLEL, console=None, quiet: bool = False) -> OnboardReport:
    """`onboard_many` with the progress bar of `supervisor.progress` on `console` (stderr by default)."""
    from rich.console import Console

    from supervisor.progress import progress

    console = console or Console(stderr=True)
    with progress(console, "onboarding agents", len(agents), quiet=quiet) as step:
        return onboard_many(client, keys, venues, mode, agents, parallel=parallel, on_line=step)
