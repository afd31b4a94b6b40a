"""Tables that stay usable on a narrow terminal: when a table's narrowest drawing is wider than
the console, each row is printed as a card instead, with the ids an operator copies (agent
names, casino ids, position ids) whole, on their own line, never cut with an ellipsis."""

from __future__ import annotations

from collections.abc import Iterable

from rich.console import Console, RenderableType
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text


def fits(console: Console, table: Table) -> bool:
    """Whether `table` fits the console with its no-wrap columns (the ids) whole and every other
    cell wrapped no narrower than its longest word."""
    unbounded = console.options.update_width(1_000_000)
    return Measurement.get(console, unbounded, table).minimum <= console.width


def print_table_or_cards(console: Console, table: Table, cards: Iterable[RenderableType]) -> None:
    """`table` when it fits, else its title and one card per row (`cards`)."""
    if fits(console, table):
        console.print(table)
        return
    if table.title:
        console.print(Text(str(table.title), style="italic"))
    for card in cards:
        console.print(card, soft_wrap=False)


def card(head: str, *lines: str) -> Text:
    """`head` (the id, whole, bold) then each of `lines` indented; lines wrap at spaces only."""
    text = Text(head, style="bold", overflow="fold")
    for line in lines:
        text.append("\n  " + line)
    return text
