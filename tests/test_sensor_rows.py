"""Moving a sensor between daemons (scaling): ``export_sensor`` / ``import_sensor`` and the
``owns`` intake filter, on the real ``Pipeline`` with the shipped default model (history ring,
calendar inputs and a calibrated band) in the real interpreter."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edge_lstm.daemon.config import Config
from edge_lstm.daemon.pipeline import Outgoing, Pipeline
from edge_lstm.model.forecaster import Forecaster
from edge_lstm.stream.readings import Inbound

T0 = 1_704_067_200.0
STEP = 3600.0
LAG = 86_400.0  # arrivals a day after the readings' ts: the clock offset must travel too


def _pipeline(model: Path, **kwargs: object) -> Pipeline:
    config = Config.load(overrides={"grace_s": 1.0})
    return Pipeline(Forecaster.load(model), config, **kwargs)  # type: ignore[arg-type]


def _msg(sensor: str, k: int, j: int = 0) -> Inbound:
    ts = T0 + k * STEP + j * 600.0
    payload = json.dumps({"value": 10.0 + 5.0 * np.sin(k / 4.0) + j, "ts": ts}).encode()
    return Inbound(f"sensors/{sensor}", payload, 1, 1, ts + LAG, 0.0)


def _feed(p: Pipeline, messages: list[Inbound]) -> list[Outgoing]:
    now = messages[-1].arrival_ts
    events, _ = p.accept(messages, now)
    return p.advance(events, now)


def _forecasts(out: list[Outgoing]) -> list[object]:
    return [json.loads(o.payload)["forecast"] for o in out]


def test_an_exported_sensor_resumes_warm_and_identical_elsewhere(default_model: Path) -> None:
    origin, target = _pipeline(default_model), _pipeline(default_model)
    for k in range(40):
        _feed(origin, [_msg("s", k, 0), _msg("s", k, 1)])
    _feed(origin, [_msg("s", 40, 0)])  # a half-filled step travels as the open bucket
    fields = origin.export_sensor("s")
    assert fields is not None and int(fields["steps"]) == 40
    assert float(fields["clock_offset_s"]) == LAG and int(fields["track_count"]) == 1
    assert target.import_sensor("s", fields)
    assert target.forecaster.steps_seen("s") == 40
    # Both go on with the same readings: the same forecasts and bands, bit for bit.
    for k in range(40, 44):
        tail = [_msg("s", k, 1)] if k == 40 else [_msg("s", k, 0), _msg("s", k, 1)]
        assert _forecasts(_feed(target, tail)) == _forecasts(_feed(origin, tail))
    wall = T0 + 45 * STEP + LAG  # the wall-clock close uses the imported clock offset
    closed = target.tick(wall)
    assert closed and _forecasts(closed) == _forecasts(origin.tick(wall))
    exported, again = origin.export_sensor("s"), target.export_sensor("s")
    assert exported is not None and again is not None
    for name, value in exported.items():
        if name not in ("heard_at", "announced"):
            np.testing.assert_array_equal(again[name], value, err_msg=name)


def test_import_refuses_what_does_not_fit_and_changes_nothing(
    default_model: Path, golden_model: Path
) -> None:
    origin, target = _pipeline(default_model), _pipeline(default_model)
    _feed(origin, [_msg("s", 0), _msg("s", 1)])
    fields = origin.export_sensor("s")
    assert fields is not None and origin.export_sensor("unknown") is None
    bad_dtype = {**fields, "history": fields["history"].astype(np.float16)}
    bad_shape = {**fields, "state": fields["state"][:-1]}
    missing = {k: v for k, v in fields.items() if k != "track_last_ts"}
    extra = {**fields, "surprise": np.array(1.0)}
    for bad in (bad_dtype, bad_shape, missing, extra):
        assert not target.import_sensor("s", bad)
    assert target.export_sensor("s") is None and target.forecaster.sensors() == []
    other = _pipeline(golden_model)  # another model: other layout
    assert not other.import_sensor("s", fields) and other.export_sensor("s") is None
    _feed(target, [_msg("s", 0)])  # the sensor has state here now: refused, kept
    before = target.export_sensor("s")
    assert not target.import_sensor("s", fields)
    after = target.export_sensor("s")
    assert before is not None and after is not None
    assert all(np.array_equal(after[k], v, equal_nan=True) for k, v in before.items())


def test_readings_of_other_shards_are_skipped_counted_and_touch_nothing(
    default_model: Path,
) -> None:
    p = _pipeline(default_model, owns=lambda sensor: sensor != "theirs")
    _, readings = p.accept([_msg("mine", 0), _msg("theirs", 0), _msg("theirs", 1)], T0)
    assert [r.sensor_id for r in readings] == ["mine"]
    assert p.counters.other_shard == 2 and p.counters.rejected == {}
    assert p.export_sensor("theirs") is None and "theirs" not in p.table
    assert p.counters.as_dict()["readings_other_shard"] == 2
