"""The worker's intake in process: poison messages, clocks that lie, replay after a crash.

Real parts: the golden ``.tflite`` model in the real interpreter, the real ``Pipeline`` and
``WriteAheadLog``. No broker: the daemon-level versions of these faults are in
``test_fault_poison.py`` and ``test_fault_crash.py``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from edge_lstm.daemon.config import Config
from edge_lstm.daemon.pipeline import Outgoing, Pipeline
from edge_lstm.daemon.wal import WriteAheadLog
from edge_lstm.errors import PayloadError
from edge_lstm.model.forecaster import Forecaster
from edge_lstm.stream.readings import REASONS, Inbound, parse_payload
from edge_lstm.stream.resample import Reading, Resampler, StepEvent

T0 = 1_704_067_200.0  # 2024-01-01, far behind the wall clock of any test run
HUGE = 10**400
TWO = ("temperature", "humidity")


def _pipeline(golden_model: Path, **settings: object) -> Pipeline:
    config = Config.load(overrides={"grace_s": 1.0, **settings})
    return Pipeline(Forecaster.load(golden_model), config)


def _msg(sensor: str, payload: bytes | dict[str, object], arrival: float, mid: int = 1) -> Inbound:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return Inbound(f"sensors/{sensor}", raw, mid, 1, arrival, 0.0)


def _reading(sensor: str, value: float, ts: float, arrival: float) -> Inbound:
    return _msg(sensor, {"value": [value, 50.0], "ts": ts}, arrival)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"value": [%d, 1]}' % HUGE, "not_finite"),
        (b'{"value": [1, -%d]}' % HUGE, "not_finite"),
        (b'{"temperature": %d, "humidity": 1}' % HUGE, "not_finite"),
        (b'{"value": [1, 2], "ts": %d}' % HUGE, "bad_ts"),
        (b'{"value": [1, 2], "ts": -%d}' % HUGE, "bad_ts"),
        (b"9" * 400, "not_finite"),  # a plain number: float() gives inf
        (b'{"value": [1, 2], "ts": %s}' % (b"9" * 5000), "bad_json"),  # beyond int's 4300 digits
        (b'{"value": [%s, 1]}' % (b"9" * 5000), "bad_json"),
        (b'{"value": [1, 2], "ts": "9999-12-31T23:59:59+00:00"}', "bad_ts"),
        (b'{"value": [1e308, 1e308]}', None),  # the largest floats are still readings
    ],
)
def test_integers_beyond_float64_are_refused_by_reason(payload: bytes, reason: str | None) -> None:
    """The poison message of issue 9: ``OverflowError`` in ``float()`` killed the worker."""
    if reason is None:
        assert parse_payload(payload, "s", TWO, T0, 10**6).values == (1e308, 1e308)
        return
    features = TWO if payload.startswith(b"{") else ("t",)  # plain numbers: one feature
    with pytest.raises(PayloadError) as info:
        parse_payload(payload, "s", features, T0, 10**6)
    assert info.value.reason == reason and info.value.reason in REASONS
    assert len(str(info.value)) < 200, "the message must not quote a 400-digit number"


class _Boom(Resampler):
    """A resampler with a bug for one sensor id: anything can raise inside intake."""

    def add(self, reading: Reading) -> list[StepEvent]:
        if reading.sensor_id.startswith("boom"):
            raise ZeroDivisionError("a bug")
        return super().add(reading)


def test_any_exception_costs_one_message_not_the_batch(
    golden_model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline = _pipeline(golden_model)
    good = pipeline.resampler
    boom = _Boom(good.step_s, good.n_features, good.max_gap_steps, good.grace_s, good.max_sensors)
    pipeline.table.resampler = boom
    batch = [
        _reading("a", 20.0, T0, T0),
        _reading("boom-1", 20.0, T0, T0),
        _reading("b", 21.0, T0, T0),
        _reading("boom-2", 20.0, T0, T0),
        _reading("a", 22.0, T0 + 60, T0 + 60),
    ]
    with caplog.at_level(logging.ERROR):
        events, readings = pipeline.accept(batch, T0)
    assert [r.sensor_id for r in readings] == ["a", "b", "a"]
    assert pipeline.counters.rejected["internal_error"] == 2
    assert [e.sensor_id for e in events] == ["a"]  # a's first step closed: the batch went on
    # Logged once (rate-limited) with its traceback.
    errors = [r for r in caplog.records if "internal_error" in r.getMessage()]
    assert len(errors) == 1 and errors[0].exc_info is not None
    assert "ZeroDivisionError" in caplog.text


def test_future_reading_is_refused_and_touches_no_state(golden_model: Path) -> None:
    pipeline = _pipeline(golden_model, max_clock_skew_s=300.0)
    now = T0 + 10_000
    pipeline.accept([_reading("s", 20.0, now - 5, now)], now)
    before = pipeline.resampler.to_dict()
    offsets = dict(pipeline.table.offsets)
    # 2099: inside the accepted 2000..2100, far ahead of its arrival.
    _, readings = pipeline.accept([_reading("s", 99.0, 4_070_908_800.0, now + 1)], now + 1)
    assert readings == [] and pipeline.counters.rejected["future"] == 1
    assert pipeline.resampler.to_dict() == before and dict(pipeline.table.offsets) == offsets
    # Real readings after it are still accepted (before the fix: `late` until 2100).
    _, readings = pipeline.accept([_reading("s", 21.0, now + 55, now + 60)], now + 60)
    assert len(readings) == 1
    # Within the skew is fine: a clock a little ahead keeps working.
    _, readings = pipeline.accept([_reading("s", 21.0, now + 350, now + 61)], now + 61)
    assert len(readings) == 1


def test_sensor_clock_behind_keeps_working_and_a_corrected_clock_recovers(
    golden_model: Path,
) -> None:
    pipeline = _pipeline(golden_model, max_gap_steps=3)
    step = pipeline.meta.step_s
    lag = 86_400.0 * 30  # a gateway a month behind
    now = T0 + lag
    published = 0
    for k in range(6):
        arrival = now + k * step
        _, readings = pipeline.accept([_reading("s", 20.0 + k, T0 + k * step, arrival)], arrival)
        assert len(readings) == 1
        published += len(pipeline.tick(arrival + 0.5))
    # Its buckets are closed by its readings, not cut short by our wall clock.
    assert published == 0 and pipeline.counters.rejected == {}
    # The clock is corrected (jumps a month ahead): the first reading already counts; the
    # sensor restarts from a fresh state (a gap longer than max_gap_steps).
    arrival = now + 6 * step
    _, readings = pipeline.accept([_reading("s", 30.0, arrival, arrival)], arrival)
    assert len(readings) == 1
    assert pipeline.table.clock_of("s") == 0.0


def test_clock_ahead_then_corrected_recovers_within_the_skew(golden_model: Path) -> None:
    skew = 120.0
    pipeline = _pipeline(golden_model, max_clock_skew_s=skew)
    now = T0 + 1_000_000
    pipeline.accept([_reading("s", 20.0, now + skew - 1, now)], now)  # 2 minutes fast
    accepted_at = []
    for i in range(1, 8):  # corrected: readings every 30 s with the true time
        arrival = now + 30 * i
        _, readings = pipeline.accept([_reading("s", 21.0, arrival, arrival)], arrival)
        if readings:
            accepted_at.append(i)
    # Refused as `late` only until real time passes the last fast timestamp: ≤ skew seconds.
    assert accepted_at and accepted_at[0] * 30 <= skew + 30
    assert accepted_at == list(range(accepted_at[0], 8))


def _forecasts(out: list[Outgoing]) -> list[tuple[str, list[object]]]:
    return [(o.topic, json.loads(o.payload)["forecast"]) for o in out]


def test_replay_restores_clock_offsets_and_closes_steps_like_the_live_run(
    golden_model: Path, tmp_path: Path
) -> None:
    """Issue 9, item 2 in process: a half-filled step must not be closed by the first wall
    clock check after a restart when the readings' `ts` is behind the wall clock."""
    step = 60.0
    lag = 3 * 86_400.0
    arrivals = []
    live = _pipeline(golden_model)
    wal = WriteAheadLog(tmp_path / "readings.wal", fsync=False)
    live.journal = wal
    messages = []
    for k in range(4):
        for j in range(3):  # three readings a step
            ts = T0 + k * step + j * 20
            arrival = ts + lag
            messages.append(_reading("s", 20.0 + k + j, ts, arrival))
            arrivals.append(arrival)
    # Crash after the 2nd reading of step 3 (the batch before it was journaled).
    head = messages[:11]
    events, readings = live.accept(head, arrivals[10])
    live.journal_readings(readings, arrivals[10])
    live.advance(events, arrivals[10])
    wal.close()

    restarted = _pipeline(golden_model)
    replayed = restarted.replay(WriteAheadLog(tmp_path / "readings.wal").replay_records())
    assert replayed == 11
    assert dict(restarted.table.offsets) == dict(live.table.offsets)
    # The restarted daemon's first wall-clock check (a little later): nothing to close yet.
    wall = arrivals[10] + 5
    assert restarted.tick(wall) == live.tick(wall) == []
    # The rest of the step arrives: accepted by both, and both close the step the same way.
    tail = messages[11:]
    out_live = live.handle(tail, arrivals[-1]).publish + live.tick(arrivals[-1] + step + 2)
    out_restarted = restarted.handle(tail, arrivals[-1]).publish
    out_restarted += restarted.tick(arrivals[-1] + step + 2)
    assert restarted.counters.rejected == live.counters.rejected == {}
    assert _forecasts(out_restarted) == _forecasts(out_live) != []


def test_running_accuracy_scores_ok_forecasts_only(golden_model: Path) -> None:
    """Issue 12, item 7: `warming_up` forecasts are not scored (the demo's rule)."""
    pipeline = _pipeline(golden_model)
    step = pipeline.meta.step_s
    warmup = pipeline.meta.warmup
    n = warmup + 3
    for k in range(n):
        ts = T0 + k * step
        pipeline.handle([_reading("s", 20.0 + np.sin(k), ts, ts)], ts)
    summary = pipeline.table.accuracy.summary()
    assert summary["scores"] == "ok_forecasts"
    # Forecasts after steps warmup..n-2 have their next step observed; earlier ones are not
    # scored although they were published (status warming_up).
    scored = summary["scored_by_step"]
    assert isinstance(scored, list) and scored[0] == n - 1 - warmup


def test_running_accuracy_beside_seasonal_naive_on_real_temperatures(default_model: Path) -> None:
    """The daemon scores seasonal naive (the value a season before) on the targets it scores
    its own forecasts on: a day of hourly steps for the default model. Once a day of actuals
    is kept every scored target is paired, so the model's paired MAE is the running MAE and
    seasonal naive's is the mean of ``|v_t - v_{t-24}|`` over the same targets."""
    pipeline = Pipeline(Forecaster.load(default_model), Config.load(overrides={"grace_s": 1.0}))
    step = pipeline.meta.step_s
    root = Path(__file__).resolve().parent.parent
    rows = (root / "data" / "tmy_hourly_temperature.csv").read_text().splitlines()[1:]
    values = [float(row.split(",")[1]) for row in rows]  # Greensboro, °C, from 2019-01-01
    n = pipeline.meta.warmup_steps + 60
    start = 1_546_300_800.0  # 2019-01-01T00:00:00Z, the file's first row
    for k in range(n):
        ts = start + k * step
        pipeline.handle([_msg("s", {"value": values[k], "ts": ts}, ts)], ts)
    summary = pipeline.table.accuracy.summary()
    reference = summary["seasonal_naive"]
    assert isinstance(reference, dict) and reference["season"] == 24
    scored = summary["scored_by_step"]
    assert isinstance(scored, list) and scored[0] == n - 1 - pipeline.meta.warmup_steps
    assert reference["scored_by_step"] == scored
    assert reference["model_mae_by_step"] == summary["mae_by_step"]
    last = n - 2  # the newest closed step: the last reading's is still open
    for k, count in enumerate(scored):
        targets = range(last - count + 1, last + 1)
        naive = np.mean([abs(values[t] - values[t - 24]) for t in targets])
        assert reference["mae_by_step"][k] == pytest.approx(naive, abs=1e-6)
        model_mae = summary["mae_by_step"][k]
        assert reference["skill_by_step"][k] == pytest.approx(model_mae / naive, abs=1e-3)
    assert pipeline.table.accuracy.sensor_summary("s") == summary  # one sensor: its own sums
