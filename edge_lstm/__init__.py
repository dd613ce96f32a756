"""edge-lstm: rolling LSTM forecasts for MQTT sensor streams on edge devices."""

from typing import TYPE_CHECKING

from .errors import (
    BrokerError,
    ConfigError,
    EdgeLstmError,
    ModelError,
    PayloadError,
    StateFileError,
    UnknownSensorError,
)

if TYPE_CHECKING:  # the real imports are lazy (below), for type checkers they are plain
    from .model.baselines import NaiveForecaster, SeasonalNaiveForecaster
    from .model.forecaster import Forecaster

__version__ = "0.1.0"

__all__ = [
    "BrokerError",
    "ConfigError",
    "EdgeLstmError",
    "Forecaster",
    "ModelError",
    "NaiveForecaster",
    "PayloadError",
    "SeasonalNaiveForecaster",
    "StateFileError",
    "UnknownSensorError",
    "__version__",
]


def __getattr__(name: str) -> object:
    # Lazy, so that `import edge_lstm.model.metadata` (exporter, pure tests) loads no interpreter.
    if name == "Forecaster":
        from .model.forecaster import Forecaster

        return Forecaster
    if name in ("NaiveForecaster", "SeasonalNaiveForecaster"):
        from .model import baselines

        return getattr(baselines, name)
    raise AttributeError(f"module 'edge_lstm' has no attribute {name!r}")
