"""Values issued for future steps, kept until their target step: one ring per lead. Pure numpy.

A forecast issued at step ``s`` holds a value for each lead ``k = 1..H`` (target step
``s + k``). The value for lead ``k`` is pending from ``s`` until ``s + k``, so at any time only
the last ``k`` issues of lead ``k`` are pending: lead ``k`` gets a ring of ``k`` cells, and the
value goes to cell ``k(k-1)/2 + s mod k``, which is also ``k(k-1)/2 + (s + k) mod k``: the
issue and the target step find the same cell. That is ``H(H+1)/2`` cells per sensor where a
grid of ``H`` targets by ``H`` leads takes ``H*H`` (78 instead of 144 at ``H = 12``).

A cell is written again by issue ``s + k`` only: after its target ``s + k`` has been scored,
since the callers score a step's actual before they issue the forecast made after it.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]


def cell_count(horizon: int) -> int:
    """Cells per sensor for leads ``1..horizon``."""
    return horizon * (horizon + 1) // 2


@lru_cache(maxsize=8)
def _rings(horizon: int) -> tuple[IntArray, IntArray]:
    leads = np.arange(1, horizon + 1, dtype=np.int64)
    return leads * (leads - 1) // 2, leads


def lead_cells(steps: npt.ArrayLike, horizon: int, leads: int | None = None) -> IntArray:
    """The cells of leads ``1..leads`` (default ``horizon``) of each step, ``(N, leads)``.

    ``steps`` are issue steps or target steps (the same cells, see the module docstring).
    """
    first, size = _rings(horizon)
    n = horizon if leads is None else leads
    at = np.asarray(steps, dtype=np.int64)[:, None]
    cells: IntArray = first[None, :n] + at % size[None, :n]
    return cells


def from_grid(
    values: npt.NDArray[np.generic], kept: npt.NDArray[np.bool_], targets: IntArray
) -> npt.NDArray[np.generic]:
    """Rings from the grid earlier releases saved: ``values[sensor, target % H, lead - 1]``.

    ``kept`` marks the grid entries still pending and ``targets`` ``(N, H)`` gives the target
    step of each grid row; the other cells get zero (False).
    """
    n, horizon = kept.shape[:2]
    cells = lead_cells(targets.reshape(-1), horizon).reshape(n, horizon, horizon)
    sensors = np.broadcast_to(np.arange(n)[:, None, None], cells.shape)
    out = np.zeros((n, cell_count(horizon), *values.shape[3:]), dtype=values.dtype)
    out[sensors[kept], cells[kept]] = values[kept]
    return out
