"""Regenerate the two models of ``edge-lstm bench``'s ``inputs`` section.

Usage: ``python scripts/make_bench_models.py [--out edge_lstm/bench/models]`` (needs the ``train``
extra). Writes ``plain.tflite`` and ``seasonal.tflite`` with their sidecars: the same size as the
default model (1 x LSTM(32), one feature, step 1 h, horizon 12, the same held-out band), built by
the export package from a fixed seed without training (the bench measures cost, not accuracy).
``seasonal`` adds lags of a day and a week, time of day and day of week in Europe/London, a
24-step level and the longest companion ``scripts/train.py`` chooses (the last 14 days' changes,
blended at every step); ``plain`` is a format-1 model. They ship inside the package so the
bench runs on a device without TensorFlow.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the test kit's model builder, shared rather than copied

from edge_lstm.model.companion import Companion  # noqa: E402
from edge_lstm.model.features import InputSpec  # noqa: E402
from edge_lstm.model.metadata import ModelMeta, Scaler, sidecar_path  # noqa: E402
from tests.covariate_model import build_model  # noqa: E402

UNITS = 32
HORIZON = 12
SEASONAL = InputSpec(
    lags=(24, 168),
    calendar=("time_of_day", "day_of_week"),
    timezone="Europe/London",
    level_window=24,
)
COMPANION = Companion(
    lags=tuple(24 * k for k in range(1, 15)),
    weights=((1 / 14,),) * 14,
    constant=(0.0,),
    share=(0.5,) * HORIZON,
)
# A band that widens like a random walk over the horizon, as real residual quantiles do.
BAND = (
    [-math.sqrt(k) for k in range(1, HORIZON + 1)],
    [math.sqrt(k) for k in range(1, HORIZON + 1)],
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "edge_lstm" / "bench" / "models")
    args = parser.parse_args()
    scaler = Scaler((15.0,), (5.0,))
    for name, spec in (("plain", None), ("seasonal", SEASONAL)):
        path = build_model(
            args.out / f"{name}.tflite", spec, scaler, units=UNITS, horizon=HORIZON, band=BAND
        )
        if spec is not None:
            meta = ModelMeta.load(sidecar_path(path))
            replace(meta, companion=COMPANION).save(sidecar_path(path))
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
