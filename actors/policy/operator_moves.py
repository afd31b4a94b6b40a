"""What an operator's move between buckets may not do (pure; no Redis).

An operator's `MoveFunds` is made whole or not at all: it is never trimmed to what the source
can fund (a rebalance's own planned moves are, `actors.rebalancer.allowed_moves`), and it may not
take the reserve under its floor (`Policy.reserve_floor_bp`, 20 % of the treasury by default).
The rebalancer's own floor top-up moves money *into* the reserve and is never refused by this.
The CLI asks the same question before publishing (`treasury cmd move`), from the ledger it can
read; the rebalancer asks it again, authoritatively, when the move arrives.
"""

from __future__ import annotations

from collections.abc import Mapping

from actors.policy.buckets import BP_SCALE, DEFAULT_POLICY, Policy, below_share, bp_text, percent, usd


def reserve_floor_micros(total: int, policy: Policy = DEFAULT_POLICY) -> int:
    """The smallest reserve (micro-USD) not below its floor for a treasury of `total` micro-USD."""
    return -((-total * policy.reserve_floor_bp) // BP_SCALE)  # ceiling: at the floor is not below it


def move_problem(source: str, dest: str, amount: int, available: Mapping[str, int], balances: Mapping[str, int],
                 policy: Policy = DEFAULT_POLICY) -> str | None:
    """Why moving `amount` micro-USD from bucket `source` to `dest` must be refused, or None.

    `available`: each bucket's available micro-USD (what is not reserved, locked or in margin);
    `balances`: each bucket's whole value (available + held), what the reserve floor is a share of.
    Refused: a move to itself, more than the source has available, and a move out of the reserve
    that would leave it below its floor (the reason names the most that may leave it)."""
    if source == dest:
        return f"a move from {source} to itself moves nothing"
    have = available.get(source, 0)
    if amount > have:
        return (f"{source} has only {usd(have)} available, less than the {usd(amount)} asked for; "
                f"nothing was moved")
    if source == "reserve":
        total = sum(balances.values())
        after = balances.get("reserve", 0) - amount
        if total > 0 and below_share(after, total, policy.reserve_floor_bp):
            most = max(0, min(have, balances.get("reserve", 0) - reserve_floor_micros(total, policy)))
            return (f"would take reserve under floor: {usd(after)} left is {percent(after, total)} of the "
                    f"{usd(total)} treasury, below its {bp_text(policy.reserve_floor_bp)} floor; at most "
                    f"{usd(most)} can leave the reserve; nothing was moved")
    return None
