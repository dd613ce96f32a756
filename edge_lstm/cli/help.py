"""How every ``edge-lstm`` command renders its ``--help`` and usage line.

Typer 0.2x labels every option with a type, flags included (``--json <bool>``, ``--help <bool>``),
and writes a required argument as ``{model}`` in the usage line. A flag takes no value, so it
gets no label, and the usage line names arguments the way man pages do (``MODEL``). Done through
click's public hooks on a command class (``cls=``), so nothing breaks if typer changes its own.
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperCommand


class EdgeCommand(TyperCommand):
    """A typer command whose help shows no type on flags and ``MODEL`` for arguments."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if getattr(param, "is_flag", False):
                param.metavar = ""

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return [
            piece.strip("{}").upper() if piece.startswith("{") else piece
            for piece in super().collect_usage_pieces(ctx)
        ]
