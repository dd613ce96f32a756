"""A Rich progress bar over the sections of a long command, fed by its progress messages."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)


class SectionProgress:
    """``say(message)`` shows what runs now (and keeps it above the bar); ``done`` advances."""

    def __init__(self, total: int, console: Console | None = None) -> None:
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.fields[section]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.description}"),
            console=console or Console(stderr=True),
        )
        self._task = self._progress.add_task("", total=total, section="")

    def say(self, message: str) -> None:
        """A progress message: printed above the bar, and the bar's current step."""
        self._progress.console.print(message, highlight=False, markup=False)
        self._progress.update(self._task, description=message.strip()[:60])

    def done(self, section: str) -> None:
        """One section finished."""
        self._progress.update(self._task, advance=1, section=f"{section} done")

    def __enter__(self) -> SectionProgress:
        self._progress.__enter__()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.__exit__(kind, exc, tb)


def section_progress(total: int) -> SectionProgress:
    """A progress bar on stderr over ``total`` sections."""
    return SectionProgress(total)
