"""The project's exception hierarchy: library errors are translated into these at the boundary."""

from __future__ import annotations


class EdgeLstmError(Exception):
    """Base class of every error edge-lstm raises on purpose."""


class ModelError(EdgeLstmError):
    """A model file or its metadata is missing, corrupt or inconsistent."""


class ConfigError(EdgeLstmError):
    """The configuration is invalid (unknown key, wrong type, missing file)."""


class PayloadError(EdgeLstmError, ValueError):
    """An incoming message cannot be turned into a reading; ``reason`` is a short counter key."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class UnknownSensorError(EdgeLstmError, LookupError):
    """A sensor id that the forecaster holds no state for."""

    def __str__(self) -> str:  # LookupError would quote the message like a dict key
        return str(self.args[0]) if self.args else "unknown sensor"


class StateFileError(EdgeLstmError):
    """A state snapshot is unreadable, corrupt, or belongs to another model."""


class BrokerError(EdgeLstmError):
    """The MQTT broker refused us or cannot be reached."""
