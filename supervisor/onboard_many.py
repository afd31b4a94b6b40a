"""Onboarding many agents at once: in parallel, with a progress bar.

Each agent's onboarding is independent and idempotent (actors/onboarding.py), and its time is
spent waiting on the venues, so agents are onboarded by `parallel` threads sharing each venue's
connection pool (venue/client/pool.py). A failed agent is reported with its one-line error and
the others go on; running it again finishes what is missing.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Callable

from messages.envelope import random_ids
from messages.errors import TreasuryError
from messages.money import format_usd
from runtime.atomic import AtomicSteps
from runtime.clock import SystemClock
from runtime.keys import Keys

DEFAULT_PARALLEL = 16


def add_agent(client, keys: Keys, venues: dict[str, str], mode: str, name: str, capital: int) -> str:
    """Onboard one agent (idempotent: a known agent is neither registered nor funded again)."""
    from actors.onboarding import onboard_agent

    steps = AtomicSteps(client, keys)
    result = onboard_agent(steps, name, capital, venues=venues, now_ms=SystemClock().now_ms(), new_id=random_ids())
    client.sadd(keys.agents(), name)
    if result.allocation != "ok":
        funded = "already open, left as it was"
    elif mode == "paper":
        from supervisor.paper import fund_paper_silos

        fund_paper_silos(steps, name, venues)
        funded = "the sandbox silos funded to match"
    else:
        funded = "deposit the capital to the venues before the agent spends"
    ids = ", ".join(f"{service} {venue_id}" for service, venue_id in sorted(result.venue_agent_ids.items()))
    return f"agent {name}: {ids}; capital {format_usd(capital)} allocated ({result.allocation}); {funded}"


@dataclass
class OnboardReport:
    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)


def onboard_many(client, keys: Keys, venues: dict[str, str], mode: str, agents: list[tuple[str, int]], *,
                 parallel: int = DEFAULT_PARALLEL, progress: Callable[[int, int], None] | None = None,
                 add: Callable | None = None) -> OnboardReport:
    """Onboard `agents` ((name, capital in micro-USD) pairs) `parallel` at a time.

    `progress(done, total)` is called after each agent. Returns who was onboarded and who failed
    (with the error's text); nothing is left half-registered that a rerun would not finish.
    """
    if parallel < 1:
        raise ValueError("parallel must be at least 1")
    if add is None:
        add = add_agent
    report = OnboardReport()
    total = len(agents)
    with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="onboard") as pool:
        futures = {pool.submit(add, client, keys, venues, mode, name, capital): name for name, capital in agents}
        for n, future in enumerate(as_completed(futures), 1):
            name = futures[future]
            try:
                report.lines.append(future.result())
                report.done.append(name)
            except (TreasuryError, OSError) as exc:
                report.failed[name] = f"{type(exc).__name__}: {exc}"
            if progress is not None:
                progress(n, total)
    return report


def onboard_with_bar(client, keys: Keys, venues: dict[str, str], mode: str, agents: list[tuple[str, int]],
                     parallel: int = DEFAULT_PARALLEL, console=None) -> OnboardReport:
    """`onboard_many` with a rich progress bar (agents done, rate, time left) on `console`."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("onboarding"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.speed} agents/s"),
               TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("agents", total=len(agents))
        return onboard_many(client, keys, venues, mode, agents, parallel=parallel,
                            progress=lambda done, total: bar.update(task, completed=done))
