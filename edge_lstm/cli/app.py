"""The ``edge-lstm`` command line: thin typer commands that delegate to library code.

Each command lives in its own ``cmd_*.py`` module and is registered here; heavy imports
(TensorFlow, the interpreter) happen inside the command that needs them.
"""

from __future__ import annotations

import typer

from .bench import bench
from .demo import demo
from .evaluate import evaluate
from .export import export
from .help import EdgeCommand
from .inspect import inspect
from .replay import replay
from .run import run
from .status import status

app = typer.Typer(
    name="edge-lstm",
    help="Rolling LSTM forecasts for MQTT sensor streams on edge devices.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# Registration: one line per command module (keep sorted).
app.command("bench", cls=EdgeCommand)(bench)
app.command("demo", cls=EdgeCommand)(demo)
app.command("evaluate", cls=EdgeCommand)(evaluate)
app.command("export", cls=EdgeCommand)(export)
app.command("inspect", cls=EdgeCommand)(inspect)
app.command("replay", cls=EdgeCommand)(replay)
app.command("run", cls=EdgeCommand)(run)
app.command("status", cls=EdgeCommand)(status)


@app.command("version", cls=EdgeCommand)
def version() -> None:
    """Print the edge-lstm version and the TFLite interpreter backend it would use."""
    from .. import __version__
    from ..model.runtime import available_backends

    typer.echo(
        f"edge-lstm {__version__}; interpreters: {', '.join(available_backends()) or 'none'}"
    )
