"""The demo's live table in a terminal (Rich, which comes with typer); plain text elsewhere."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.live import Live
from rich.table import Table

from .scoreboard import COLUMNS, Scoreboard, table_rows

_STATUS_STYLE = {"ok": "green", "warming_up": "yellow"}


def rich_table(board: Scoreboard, step_s: float) -> Table:
    """The scoreboard as a Rich table: one row per sensor, numbers right-aligned."""
    table = Table(title="edge-lstm demo: forecasts as they arrive", title_justify="left")
    for i, name in enumerate(COLUMNS):
        table.add_column(name, justify="right" if i in (2, 5, 6, 7) else "left", no_wrap=True)
    for row in table_rows(board, step_s):
        style = _STATUS_STYLE.get(row[4])
        table.add_row(*row[:4], f"[{style}]{row[4]}[/]" if style else row[4], *row[5:])
    return table


class LiveTable:
    """A table redrawn in place while the demo runs; it gives way to the summary at the end."""

    def __init__(self, console: Console | None = None) -> None:
        self._live = Live(console=console or Console(), auto_refresh=False, transient=True)

    def __enter__(self) -> LiveTable:
        self._live.__enter__()
        return self

    def update(self, board: Scoreboard, step_s: float) -> None:
        """Redraw with the scoreboard's current state."""
        self._live.update(rich_table(board, step_s), refresh=True)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._live.__exit__(kind, exc, tb)
