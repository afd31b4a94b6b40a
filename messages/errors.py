"""The one family of errors the project raises for bad input.

Every layer (codec, money parsing, CLI, bus) raises a subclass of `TreasuryError`, so callers can
catch one type and print one clear line, and the bus can put the text on the dead stream.
"""


class TreasuryError(Exception):
    """Base of every error the treasury raises on purpose."""


class MoneyError(TreasuryError, ValueError):
    """An amount that is not a finite, exact, in-range number of micro-USD."""


class MessageDecodeError(TreasuryError):
    """Bytes that are not a valid encoded envelope (bad msgpack, unknown type, wrong field)."""


class ConfigError(TreasuryError):
    """A setting or argument that cannot be used."""


class BadAgentId(TreasuryError, ValueError):
    """An agent name that breaks the one rule messages use (`messages.base.AGENT_ID_PATTERN`)."""
