"""The client types say which fields the real services guarantee and which are optional: a
guaranteed field has no default (an answer without it is refused), an optional one defaults to
None (absence stays visible). No wire field may default to a value such as 0, "" or []."""

from __future__ import annotations

import inspect

import msgspec
import pytest

import venue.client.casino as casino_client
import venue.client.trading_types as trading_types
import venue.client.types as types
import venue.client.wallet_types as wallet_types


def _structs() -> list[type[msgspec.Struct]]:
    found = []
    for module in (types, trading_types, wallet_types, casino_client):
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, msgspec.Struct) and cls.__module__ == module.__name__ and cls not in types.CLIENT_BUILT:
                found.append(cls)
    return found


@pytest.mark.parametrize("cls", _structs(), ids=lambda c: f"{c.__module__.rsplit('.', 1)[-1]}.{c.__name__}")
def test_no_wire_field_defaults_to_a_value(cls: type[msgspec.Struct]) -> None:
    for info in msgspec.structs.fields(cls):
        if info.name in types.CLIENT_FILLED_FIELDS:
            continue
        assert info.default_factory is msgspec.NODEFAULT, f"{cls.__name__}.{info.name} defaults to a factory"
        assert info.default in (msgspec.NODEFAULT, None), f"{cls.__name__}.{info.name} defaults to {info.default!r}"


def test_a_missing_guaranteed_field_is_refused() -> None:
    with pytest.raises(msgspec.ValidationError):
        types.FaucetStats.__struct_fields__  # noqa: B018 - the type exists
        from venue.client.base import decode

        decode({"total_claims": 1, "total_agents": 1, "avg_per_agent": 1}, types.FaucetStats)
