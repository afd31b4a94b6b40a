"""A progress bar for long operations (onboarding many agents, waiting for workers), drawn with
rich only on a terminal and never with `--json`; elsewhere each step is one plain line."""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text


@contextlib.contextmanager
def progress(console: Console, description: str, total: int, *, quiet: bool = False,
             prefix: str = "agent     ") -> Iterator[Callable[[str], None]]:
    """Yields `step(line)`: advance by one and show `line` (data in it is printed as text, not markup).

    With `quiet` (`--json`), or when `console` is not a terminal, no bar is drawn: each line is
    printed plainly."""
    if quiet or not console.is_terminal or total <= 1:
        yield lambda line: console.print(Text(prefix + line))
        return
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=console, transient=True)
    with bar:
        task = bar.add_task(description, total=total)

        def step(line: str) -> None:
            bar.console.print(Text(prefix + line))
            bar.advance(task)

        yield step
