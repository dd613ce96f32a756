"""A full sensor table keeps its live sensors: newcomers are rejected (``sensor_limit``) until
one of them has been silent longer than a gap the resampler would fill."""

from __future__ import annotations

import json
from pathlib import Path

from edge_lstm.daemon.config import Config
from edge_lstm.daemon.pipeline import Pipeline
from edge_lstm.model.forecaster import Forecaster
from edge_lstm.stream.readings import Inbound

T0 = 1_704_067_200.0


def _msg(sensor: str, ts: float, arrival: float) -> Inbound:
    payload = json.dumps({"value": [20.0, 50.0], "ts": ts}).encode()
    return Inbound(f"sensors/{sensor}", payload, 1, 1, arrival, 0.0)


def test_flood_of_new_ids_cannot_evict_live_sensors(golden_model: Path) -> None:
    config = Config.load(overrides={"max_sensors": 3, "max_gap_steps": 2, "grace_s": 1.0})
    pipeline = Pipeline(Forecaster.load(golden_model, max_sensors=3), config)
    step = pipeline.meta.step_s
    live = ["a", "b", "c"]
    pipeline.accept([_msg(s, T0, T0) for s in live], T0)
    flood = [_msg(f"new-{i}", T0, T0 + 1) for i in range(50)]
    _, accepted = pipeline.accept(flood, T0 + 1)
    assert accepted == []
    assert pipeline.counters.rejected["sensor_limit"] == 50
    assert len(pipeline.table) == 3 and all(s in pipeline.table for s in live)
    # "a" falls silent for longer than max_gap_steps + 1 steps plus grace: it may be replaced.
    later = T0 + (2 + 1) * step + 1.0 + 5
    pipeline.accept([_msg(s, T0 + step, later) for s in ["b", "c"]], later)
    _, accepted = pipeline.accept([_msg("newcomer", T0, later)], later)
    assert [r.sensor_id for r in accepted] == ["newcomer"]
    assert len(pipeline.table) == 3 and "a" not in pipeline.table
    assert all(s in pipeline.table for s in ["b", "c", "newcomer"])
    _, accepted = pipeline.accept([_msg("another", T0, later)], later)
    assert accepted == [] and pipeline.counters.rejected["sensor_limit"] == 51
