"""The one family of errors the project raises for bad input.

Every layer (codec, money parsing, CLI, bus) raises a subclass of `TreasuryError`, so callers can
catch one type and print one clear line, and the bus can put the text on the dead stream.
"""


MAX_ERROR_CHARS = 500


def one_line(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """`text` made safe to print as one line: control characters (newlines, escapes, bidi
    overrides) shown as escapes, and at most `limit` characters. Input echoed in an error (a field
    name, a value) must never break a log line or reach a terminal raw."""
    out = []
    for ch in text:
        code = ord(ch)
        if ch == "\\" or code < 0x20 or code == 0x7F or 0x80 <= code < 0xA0 or 0x202A <= code <= 0x202E \
                or 0x2066 <= code <= 0x2069:
            out.append(ch.encode("unicode_escape").decode("ascii") if ch != "\\" else "\\\\")
        else:
            out.append(ch)
    line = "".join(out)
    return line if len(line) <= limit else line[: limit - 1] + "…"


class TreasuryError(Exception):
    """Base of every error the treasury raises on purpose."""


class MoneyError(TreasuryError, ValueError):
    """An amount that is not a finite, exact, in-range number of micro-USD."""


class MessageDecodeError(TreasuryError):
    """Bytes that are not a valid encoded envelope (bad msgpack, unknown type, wrong field).
    Its text is always one printable line (see `one_line`): it quotes what was received."""

    def __init__(self, message: str) -> None:
        super().__init__(one_line(str(message)))


class ConfigError(TreasuryError):
    """A setting or argument that cannot be used."""


class BadAgentId(TreasuryError, ValueError):
    """An agent name that breaks the one rule messages use (`messages.base.AGENT_ID_PATTERN`)."""
