"""Per-feature affine scaling of a model's values (its metadata's ``scaler``). Pure numpy."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt

from .arrays import FloatArray


@dataclass(frozen=True)
class Scaler:
    """Per-feature affine scaling: the model sees ``(x - mean) / scale``."""

    mean: tuple[float, ...]
    scale: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.mean) != len(self.scale):
            raise ValueError("scaler mean and scale differ in length")
        if not all(math.isfinite(m) for m in self.mean):
            raise ValueError("scaler mean must be finite")
        if not all(math.isfinite(s) and s > 0 for s in self.scale):
            raise ValueError("scaler scale must be finite and > 0")

    @cached_property
    def mean_array(self) -> npt.NDArray[np.float64]:
        return np.asarray(self.mean, dtype=np.float64)

    @cached_property
    def scale_array(self) -> npt.NDArray[np.float64]:
        return np.asarray(self.scale, dtype=np.float64)

    @classmethod
    def identity(cls, n_features: int) -> Scaler:
        return cls((0.0,) * n_features, (1.0,) * n_features)

    def transform(self, values: npt.ArrayLike) -> FloatArray:
        """Original units to model units (broadcast over the last axis)."""
        x = np.asarray(values, dtype=np.float64)
        scaled: FloatArray = ((x - np.asarray(self.mean)) / np.asarray(self.scale)).astype(
            np.float32
        )
        return scaled

    def inverse(self, values: npt.ArrayLike) -> FloatArray:
        """Model units to original units (broadcast over the last axis)."""
        y = np.asarray(values, dtype=np.float64)
        unscaled: FloatArray = (y * np.asarray(self.scale) + np.asarray(self.mean)).astype(
            np.float32
        )
        return unscaled
