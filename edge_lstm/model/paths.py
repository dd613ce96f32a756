"""Where the shipped default model lives, for editable and wheel installs."""

from __future__ import annotations

import sys
from pathlib import Path

DEFAULT_MODEL = Path("models") / "default.tflite"


def default_model_candidates() -> list[Path]:
    """Places searched for the default model, in order."""
    repo = Path(__file__).resolve().parents[2]  # editable install / source checkout
    return [
        repo / DEFAULT_MODEL,
        Path(sys.prefix) / "share" / "edge-lstm" / DEFAULT_MODEL,  # wheel data-files
    ]


def default_model_path() -> Path:
    """The first existing default model, else the first candidate (its error names it)."""
    candidates = default_model_candidates()
    for path in candidates:
        if path.is_file():
            return path
    return candidates[0]
