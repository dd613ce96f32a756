"""The array types passed between the model's parts, named once. Pure."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

#: What the interpreter takes and gives: float32, any shape.
FloatArray = npt.NDArray[np.float32]
