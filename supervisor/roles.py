"""Which actor serves which role: a worker builds its actor from here.

Each actor module exposes `build(steps, clock, new_id, venues) -> pykka.ActorRef`, where `venues`
maps service names (casino, escrow, faucet, trading, wallet) to base URLs.
"""

from __future__ import annotations

import importlib

ROLE_MODULES = {
    "casino": "actors.casino",
    "risk": "actors.risk_guard",
    "trading": "actors.trading.actor",
    "escrow": "actors.escrow.manager",
    "reserve": "actors.reserve",
    "referral": "actors.referral",
    "rebalancer": "actors.rebalancer",
    "silo": "actors.silo.actor",
}


def available_roles() -> list[str]:
    """Roles whose actor module is present in this installation."""
    roles = []
    for role, module in ROLE_MODULES.items():
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            continue
        roles.append(role)
    return roles


def build_actor(role: str, steps, clock, new_id, venues: dict[str, str]):
    if role not in ROLE_MODULES:
        raise ValueError(f"unknown role {role!r}; known: {', '.join(ROLE_MODULES)}")
    module = importlib.import_module(ROLE_MODULES[role])
    return module.build(steps, clock, new_id, venues)
