"""The operator commands' progress bars: one per thing worked through (a projection, a
partition, the key store), drawn on stderr so stdout holds only the summary."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

# (bar's name, units done, units in all): a bar is added the first time a name is told.
Advance = Callable[[str, int, int], None]


@contextmanager
def progress_bars(errors: Console, unit: str) -> Iterator[Advance]:
    """Bars of ``unit`` done of the total, elapsed time and ETA, while the block runs."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn(unit), TimeElapsedColumn(), TextColumn("ETA"),
               TimeRemainingColumn())  # fmt: skip
    progress = Progress(*columns, console=errors)
    tasks: dict[str, TaskID] = {}

    def advance(name: str, done: int, total: int) -> None:
        if not tasks:
            # Drawn from the first bar on: a command refused before any work prints its one
            # error line and nothing else.
            progress.start()
        if name not in tasks:
            tasks[name] = progress.add_task(name, total=total)
        progress.update(tasks[name], completed=done, total=total)

    try:
        yield advance
    finally:
        if tasks:
            progress.stop()
