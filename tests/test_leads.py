"""Pending values by lead (model/leads.py): one ring per lead, H(H+1)/2 cells per sensor."""

from __future__ import annotations

import numpy as np
import pytest

from edge_lstm.model.leads import cell_count, from_grid, lead_cells


@pytest.mark.parametrize("horizon", [1, 2, 5, 12, 13])
def test_an_issue_and_its_target_find_the_same_cell(horizon: int) -> None:
    issues = np.arange(-3, 200)
    by_issue = lead_cells(issues, horizon)
    for k in range(1, horizon + 1):
        assert (lead_cells(issues + k, horizon)[:, k - 1] == by_issue[:, k - 1]).all()
    assert by_issue.min() == 0 and by_issue.max() == cell_count(horizon) - 1


@pytest.mark.parametrize("horizon", [1, 2, 5, 12, 13])
def test_values_pending_at_the_same_time_never_share_a_cell(horizon: int) -> None:
    """At step t the issues t-k+1 .. t of each lead k are pending: all in distinct cells."""
    for t in range(3 * horizon):
        pending = [(s, k) for k in range(1, horizon + 1) for s in range(t - k + 1, t + 1)]
        cells = [int(lead_cells([s], horizon)[0, k - 1]) for s, k in pending]
        assert len(set(cells)) == len(cells) == cell_count(horizon)


def test_a_grid_of_targets_by_leads_becomes_rings() -> None:
    """The layout earlier snapshots saved: values[sensor, target % H, lead - 1]."""
    horizon, now = 3, 10  # targets 11, 12, 13 are pending
    grid = np.zeros((1, horizon, horizon, 1), dtype=np.float32)
    kept = np.zeros((1, horizon, horizon), dtype=np.bool_)
    targets = np.zeros((1, horizon), dtype=np.int64)
    for target in range(now + 1, now + horizon + 1):
        targets[0, target % horizon] = target
        for k in range(target - now, horizon + 1):  # issued at target - k <= now
            grid[0, target % horizon, k - 1] = 100 * target + k
            kept[0, target % horizon, k - 1] = True
    rings = from_grid(grid, kept, targets)
    assert rings.shape == (1, cell_count(horizon), 1)
    for target in range(now + 1, now + horizon + 1):
        for k in range(target - now, horizon + 1):
            assert rings[0, lead_cells([target], horizon)[0, k - 1], 0] == 100 * target + k
