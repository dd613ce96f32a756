"""Measure a trained model's online band coverage on its held-out part again, as train.py does.

    .venv/bin/python scripts/rescore_band.py models/default models/accuracy/electricity ...

For each model (a ``.tflite`` path or its stem), the training command in its metadata
(``info.command``) gives the data and the split. The held-out part is replayed from the first row
with the band published at every step and recalibrated online by the daemon's calibration as it
is now, and ``info.band_coverage_online_held_out`` is rewritten with what it measures (the old
and new figures are printed). For when the calibration changes: the model file, its quantiles and
the rest of its metadata are left as they are; no TensorFlow needed.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from train import grid_of, parse_args, span_of  # noqa: E402

from edge_lstm.model.metadata import ModelMeta, sidecar_path  # noqa: E402
from edge_lstm.offline.csvdata import DataError  # noqa: E402
from edge_lstm.offline.heldout import replay  # noqa: E402

KEY = "band_coverage_online_held_out"


def training_args(meta: ModelMeta) -> argparse.Namespace:
    """The arguments ``scripts/train.py`` was run with, data paths from the repository root."""
    command = meta.info.get("command")
    if not isinstance(command, str) or "train.py" not in command:
        raise DataError(f"model {meta.name!r}: no train.py command in its metadata")
    words = shlex.split(command)
    script = [i for i, word in enumerate(words) if word.endswith("train.py")]
    if not script:
        raise DataError(f"model {meta.name!r}: no train.py in its command {command!r}")
    args = parse_args(words[script[0] + 1 :])
    if not args.data.is_absolute():
        args.data = ROOT / args.data
    return args


def rescore(model: Path) -> tuple[object, list[float]]:
    """Rewrite ``model``'s online coverage; returns the figure before and the new one."""
    tflite = model if model.suffix == ".tflite" else model.with_suffix(".tflite")
    meta = ModelMeta.load(sidecar_path(tflite))
    args = training_args(meta)
    grid = grid_of(args)
    span = span_of(args, grid, meta.input_spec)
    evaluation = replay(tflite, grid.raw, span, True, online_band=True)
    if evaluation.online_band is None:
        raise DataError(f"{tflite}: the held-out replay published no band")
    coverage = [round(c, 3) for c in evaluation.online_band.coverage()]
    replace(meta, info={**meta.info, KEY: coverage}).save(sidecar_path(tflite))
    return meta.info.get(KEY), coverage


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", type=Path, help="model .tflite files or their stems")
    for model in parser.parse_args(argv).models:
        try:
            before, after = rescore(model)
        except (DataError, ValueError, OSError) as exc:
            print(f"error: {model}: {exc}", file=sys.stderr)
            raise SystemExit(1) from None
        print(f"{model}: {KEY} {before} -> {after}")


if __name__ == "__main__":
    main()
