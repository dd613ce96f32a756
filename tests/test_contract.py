"""Every forecaster passes the shared contract: the LSTM and the naive baselines."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_lstm.model.baselines import NaiveForecaster, SeasonalNaiveForecaster
from edge_lstm.model.forecaster import Forecaster, SensorForecaster
from edge_lstm.model.runtime import StepModel

from .forecaster_contract import CHECKS, Make


@pytest.fixture(scope="module")
def golden_step(golden_model: Path) -> StepModel:
    return StepModel.load(golden_model)


def makers(golden_step: StepModel) -> dict[str, Make]:
    def lstm() -> SensorForecaster:
        return Forecaster(golden_step, max_sensors=64)

    return {
        "lstm": lstm,
        "naive": lambda: NaiveForecaster(n_features=2),
        "seasonal_naive": lambda: SeasonalNaiveForecaster(season=3, n_features=2),
    }


@pytest.mark.parametrize("kind", ["lstm", "naive", "seasonal_naive"])
@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_contract(kind: str, check: object, golden_step: StepModel) -> None:
    assert callable(check)
    check(makers(golden_step)[kind])
