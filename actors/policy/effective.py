"""The one source of an agent's policy: the defaults merged with the operator's `set-policy` overrides.

This is the only module of `actors.policy` that reads Redis; every actor asks it, at each decision,
for the numbers it applies (bet cap, daily loss, drawdowns, escrow share, session stop, drift…), so
an override stored by the Rebalancer's `SetPolicy` handler takes effect everywhere at once.

Where the values come from: `<prefix>:{S}:policy:<agent>` (`Keys.policy`), a hash of setting name
to value as text (integers as decimal digits, `kelly_fraction` as its text). Only the Rebalancer
writes it, and only after validating the whole resulting policy, so what is stored always loads.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from actors.policy.buckets import DEFAULT_POLICY, Policy, PolicyConfigError

SETTINGS: tuple[str, ...] = tuple(Policy.__struct_fields__)
"""Every name `set-policy` accepts (the fields of `Policy`)."""


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def parse_setting(text: str) -> int | str:
    """A stored or typed setting value: an integer when it is one, else the text (`kelly_fraction`)."""
    return int(text) if text.lstrip("-").isdigit() else text


def read_overrides(client, keys, agent: str) -> dict[str, int | str]:
    """The agent's stored overrides, name → value (empty when the operator changed nothing)."""
    return overrides_from(client.hgetall(keys.policy(agent)))


def overrides_from(raw: Mapping) -> dict[str, int | str]:
    """Overrides from the policy hash's fields as HGETALL returns them (e.g. from a pipeline)."""
    return {_text(k): parse_setting(_text(v)) for k, v in raw.items()}


def merge_policy(overrides: Mapping[str, int | str], base: Policy = DEFAULT_POLICY) -> Policy:
    """`base` with `overrides` applied, validated whole.

    Raises `PolicyConfigError` naming the setting for an unknown name, a wrong type, a value out of
    its range or an inconsistent result (targets not summing to 100 %, a floor above its target).
    """
    unknown = sorted(set(overrides) - set(SETTINGS))
    if unknown:
        raise PolicyConfigError(f"unknown policy setting {unknown[0]!r} (known: {', '.join(SETTINGS)})")
    if not overrides:
        return base
    return Policy.load({**msgspec.structs.asdict(base), **overrides})


def effective_policy(client, keys, agent: str, base: Policy = DEFAULT_POLICY) -> Policy:
    """The policy in force for `agent`: `base` (the product's defaults) with its stored overrides.

    `client` is a redis client, `keys` the deployment's `runtime.keys.Keys`. One HGETALL per call,
    so a decision always sees the latest `set-policy`. Raises `PolicyConfigError` only if the
    stored hash was written by something other than the validating handler; the decision that
    asked then fails and its command is dead-lettered with the reason, so a spend is never
    judged by numbers nobody set (fail closed).
    """
    return merge_policy(read_overrides(client, keys, agent), base)


def policy_from(raw: Mapping, base: Policy = DEFAULT_POLICY) -> Policy:
    """`effective_policy` from the policy hash already read (`HGETALL Keys.policy(agent)`, say in a
    pipeline with the rest of a decision's reads); raises as `effective_policy`."""
    return merge_policy(overrides_from(raw), base) if raw else base
