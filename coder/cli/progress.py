"""Progress bars for the steps that take more than a second (import, suggest, train, report).

Drawn with rich on standard error, so a command's output stays clean for pipes; shown when
standard error is a terminal, or always with CODER_PROGRESS=1 (and never with
CODER_PROGRESS=0). The library only calls ``progress(done, total)``; what is drawn is decided
here.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

ENV = "CODER_PROGRESS"


def wanted() -> bool:
    value = os.environ.get(ENV, "").strip()
    if value in ("0", "1"):
        return value == "1"
    return sys.stderr.isatty()


def _console():
    from rich.console import Console

    # force_terminal: CODER_PROGRESS=1 draws even into a file or pipe (tests, logs)
    return Console(stderr=True, force_terminal=True if wanted() else None)


@contextmanager
def bar(label: str) -> Iterator[Callable[[int, int], None] | None]:
    """A ``progress(done, total)`` callback drawing one bar, or None when none is wanted."""
    if not wanted():
        yield None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=_console(),
                  transient=False) as shown:
        task = shown.add_task(label, total=None)

        def progress(done: int, total: int) -> None:
            shown.update(task, completed=done, total=total)

        yield progress


@contextmanager
def working(label: str) -> Iterator[None]:
    """A spinner with the time taken, for a step with no count to show."""
    if not wanted():
        yield
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=_console(), transient=False) as shown:
        task = shown.add_task(label, total=None)
        yield
        shown.update(task, total=1, completed=1)
