"""``scripts/train.py`` end to end on a slice of the shipped data (tiny model, few epochs)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.train
pytest.importorskip("tensorflow")

from edge_lstm.metadata import ModelMeta  # noqa: E402
from edge_lstm.runtime import StepModel  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _train_module() -> object:
    spec = importlib.util.spec_from_file_location("train_script", ROOT / "scripts" / "train.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["train_script"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("train")
    lines = (ROOT / "data" / "tmy_hourly_temperature.csv").read_text().splitlines()
    (tmp / "slice.csv").write_text("\n".join(lines[:1201]) + "\n")  # 50 days
    train = _train_module()
    train.main(  # type: ignore[attr-defined]
        [
            "--data", str(tmp / "slice.csv"), "--columns", "greensboro,miami",
            "--feature-name", "temperature", "--step", "2h", "--units", "4",
            "--epochs", "2", "--chunk", "24", "--window", "24", "--horizon", "6",
            "--season", "12", "--verbose", "0", "--out", str(tmp / "tiny"),
        ]
    )  # fmt: skip
    return tmp / "tiny.tflite"


def test_train_writes_keras_tflite_and_metadata(trained: Path) -> None:
    assert trained.with_suffix(".keras").is_file()
    meta = ModelMeta.load(trained.with_suffix(".json"))
    assert meta.features == ("temperature",)
    assert meta.step_s == 7200.0 and meta.horizon == 6
    assert meta.parity is not None and meta.parity.max_abs_error <= meta.parity.tolerance
    assert meta.info["trained_with"].split(",")[0] in ("stateful", "stateless")
    assert set(meta.info["validation_rollout_mae"]) == {"stateful", "stateless"}


def test_train_validation_report_is_complete(trained: Path) -> None:
    meta = StepModel.load(trained).meta
    v = meta.validation
    assert v is not None and v.horizon == 6 and v.season == 12 and v.rows > 0
    assert set(v.mae) == {"lstm", "naive", "seasonal_naive"}
    assert all(len(maes) == 6 and all(m > 0 for m in maes) for maes in v.mae.values())
    band = v.band(1)
    assert band is not None
    lo, hi = band
    assert lo.shape == hi.shape == (6, 1) and np.all(lo <= hi)


def test_scaler_comes_from_the_training_part(trained: Path) -> None:
    meta = StepModel.load(trained).meta
    # Greensboro and Miami in January-February: a mean between them, a spread of degrees.
    assert 5.0 < meta.scaler.mean[0] < 25.0
    assert 2.0 < meta.scaler.scale[0] < 15.0
