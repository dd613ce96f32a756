"""``python -m edge_lstm`` is ``edge-lstm``."""

from .cli import app

app()
