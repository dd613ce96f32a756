"""``python -m edge_lstm`` is ``edge-lstm``."""

from .cli.app import app

app()
