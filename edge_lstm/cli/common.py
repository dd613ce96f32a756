"""Small helpers shared by the ``cmd_*`` modules."""

from __future__ import annotations

import math
from typing import NoReturn

import typer


def fail(message: str, code: int = 1) -> NoReturn:
    """One ``error: ...`` line on stderr, then exit with ``code`` (no traceback)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=code)


def json_safe(value: object) -> object:
    """NaN and inf are not JSON: a figure that does not exist becomes null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
