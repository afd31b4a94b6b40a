"""Who may change an agent's risk state, and how: the lattice and its one table.

The risk states are ordered **ACTIVE < PAUSED < HALTED**. Within PAUSED, a pause with a later end
is stricter than one with an earlier end, and a pause "until resumed" (no end) is the strictest
pause. A change to a state at least as strict as the current one only makes the treasury safer;
a change to a laxer one *relaxes* it and needs the authority the table names.

Authorities, weakest first:

- `internal`: an unsigned internal message (a poke) — carries no authority of its own;
- `expiry`: the clock — a pause whose end has passed lapses to ACTIVE;
- `breaker`: RiskGuard's own breakers;
- `agent`: a command signed with an agent-scope key;
- `operator`: a command signed with an operator-scope key (or a writer the deployment trusts:
  a bus run without a command gate).

| from \\ to | ACTIVE | PAUSED (stricter or equal) | PAUSED (laxer: earlier end) | HALTED |
|---|---|---|---|---|
| ACTIVE | — | breaker, agent, operator | — | breaker, agent, operator |
| PAUSED | expiry (end passed), operator | breaker, agent, operator | operator | breaker, agent, operator |
| HALTED | operator | — | operator | breaker, agent, operator |

A PAUSED whose end has passed counts as ACTIVE (the fence treats it so too). `may_change` is the
only place this table is applied: RiskGuard calls it for every state change, breaker or command.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

RANK = {"ACTIVE": 0, "PAUSED": 1, "HALTED": 2}
"""The lattice: a higher rank is stricter."""

Authority = Literal["internal", "expiry", "breaker", "agent", "operator"]
TIGHTEN: frozenset[str] = frozenset({"breaker", "agent", "operator"})
"""Who may make the state stricter (or restate it)."""
RELAX: frozenset[str] = frozenset({"operator"})
"""Who may make it laxer; `expiry` may, in addition, lift a pause whose end has passed."""

NO_END = 0
"""`until_ms` of a state with no end (a pause until resumed, a halt)."""


def effective(state: str, until_ms: int, now_ms: int) -> tuple[str, int]:
    """The state as it holds at `now_ms`: a PAUSED whose end has passed is ACTIVE."""
    if state == "PAUSED" and until_ms != NO_END and until_ms <= now_ms:
        return "ACTIVE", NO_END
    return state, until_ms


def strictness(state: str, until_ms: int) -> tuple[int, int, int]:
    """A sortable strictness: the state's rank, then (for a pause) whether it has no end, then its
    end in epoch ms (integers only: a pause with no end is later than any end)."""
    if state not in RANK:
        raise ValueError(f"unknown risk state {state!r}")
    if state != "PAUSED":
        return RANK[state], 0, 0
    return (RANK[state], 1, 0) if until_ms == NO_END else (RANK[state], 0, until_ms)


def may_change(state: str, until_ms: int, new_state: str, new_until_ms: int, authority: str | None,
               now_ms: int) -> str | None:
    """Whether `authority` may move the risk state from (`state`, `until_ms`) to (`new_state`,
    `new_until_ms`) at `now_ms`: None if it may, else a one-line reason.

    `authority` None is a trusted writer (no command gate on the bus) and counts as `operator`.
    `until_ms` 0 means no end. Raises `ValueError` for an unknown state name.
    """
    who = "operator" if authority is None else authority
    current, current_until = effective(state or "ACTIVE", until_ms, now_ms)
    if strictness(new_state, new_until_ms) >= strictness(current, current_until):
        if current == "ACTIVE" and new_state == "ACTIVE":
            return None if who in RELAX | {"expiry"} else f"{who} may not restate ACTIVE"
        return None if who in TIGHTEN else f"{who} may not change the risk state"
    if who in RELAX:
        return None
    return (f"{_label(current, current_until)} -> {_label(new_state, new_until_ms)} relaxes the risk state and needs "
            f"an operator key (this command carries {who} authority)")


def _label(state: str, until_ms: int) -> str:
    """A state for a reason sentence: a pause with an end names it as a UTC time, not epoch ms."""
    if state != "PAUSED" or until_ms == NO_END:
        return state
    return f"PAUSED until {datetime.fromtimestamp(until_ms / 1000, tz=UTC):%Y-%m-%d %H:%M:%S} UTC"
