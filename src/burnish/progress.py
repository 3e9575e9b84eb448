"""One progress bar for all long work (training steps, merged tensors, evaluated problems).

``with progress_bar(total, "eval addition") as advance: ... advance(1, info="acc 0.50")``.
A disabled bar is a no-op, so library code can always call ``advance``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["Advance", "progress_bar"]

# advance(steps=1, info="", completed=None): move the bar; ``completed`` sets it absolutely.
Advance = Callable[..., None]


@contextmanager
def progress_bar(total: int, label: str, enabled: bool = True, done: int = 0) -> Iterator[Advance]:
    """A rich progress bar (label, bar, n/total, time left, a free-text info column)."""
    if not enabled:
        yield lambda *args, **kwargs: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
    )
    with Progress(*columns) as bar:
        task = bar.add_task(label, total=total, completed=done, info="")

        def advance(steps: int = 1, info: str = "", completed: int | None = None) -> None:
            if completed is None:
                bar.update(task, advance=steps, info=info)
            else:
                bar.update(task, completed=completed, info=info)

        yield advance
