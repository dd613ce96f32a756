"""``edge-lstm evaluate`` and its parts: CSV loading, replay, scores, plot, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edge_lstm.cli.app import app
from edge_lstm.cli.evaluate import EXIT_BAD_DATA
from edge_lstm.model.forecaster import Forecaster
from edge_lstm.offline.csvdata import DataError, load_csv
from edge_lstm.offline.evaluate import band_coverage, evaluate
from edge_lstm.stream.timestamps import parse_timestamp as parse_time

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "data" / "tmy_hourly_temperature.csv"
runner = CliRunner()


def write_slice(path: Path, rows: int, columns: str = "time,greensboro,sand_point,miami") -> Path:
    """The first ``rows`` rows of the shipped data, with only ``columns``."""
    lines = SHIPPED.read_text(encoding="utf-8").splitlines()
    header = lines[0].split(",")
    keep = [header.index(c) for c in columns.split(",")]
    out = [",".join(line.split(",")[i] for i in keep) for line in lines[: rows + 1]]
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def miami(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_slice(tmp_path_factory.mktemp("csv") / "miami.csv", 240, "time,miami")


# -- CSV loading ---------------------------------------------------------------------------------


def test_parse_time_accepts_iso_zones_and_epoch() -> None:
    assert parse_time("2019-01-01T00:00:00Z") == 1546300800.0
    assert parse_time("2019-01-01 02:00:00+02:00") == 1546300800.0
    assert parse_time("2019-01-01T00:00") == 1546300800.0  # no zone: UTC
    assert parse_time("1546300800") == 1546300800.0
    with pytest.raises(ValueError):
        parse_time("yesterday")


def test_load_csv_reads_columns_missing_cells_and_sorts(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text(
        "t,a,b\n1546304400,2.5,\n1546300800,1.0,NaN\n1546308000,3,4\n", encoding="utf-8"
    )
    series = load_csv(path, ["b", "a"], time_column="t")
    assert series.columns == ("b", "a")
    assert series.times.tolist() == [1546300800.0, 1546304400.0, 1546308000.0]
    assert series.column("a").tolist() == [1.0, 2.5, 3.0]
    b = series.column("b")
    assert np.isnan(b[:2]).all() and b[2] == 4.0


@pytest.mark.parametrize(
    ("text", "columns", "message"),
    [
        ("time,a\n2019-01-01T00:00Z,1\n", ["zz"], "column 'zz' not found"),
        ("when,a\n2019-01-01T00:00Z,1\n", None, "no time column 'time'"),
        ("time,a\nsoon,1\n", None, "line 2: cannot parse time 'soon'"),
        ("time,a\n2019-01-01T00:00Z,1\n2019-01-01T01:00Z,warm\n", None, "line 3, column 'a'"),
        ("time,a\n2019-01-01T00:00Z,inf\n", None, "is not finite"),
        ("", None, "empty file"),
        ("time,a\n", None, "no data rows"),
    ],
)
def test_bad_csv_is_one_clear_error(
    tmp_path: Path, text: str, columns: list[str] | None, message: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        load_csv(path, columns)


def test_missing_file_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found"):
        load_csv(tmp_path / "nope.csv")


# -- the replay and its scores ---------------------------------------------------------------------


def test_scores_match_a_hand_replay_of_the_forecaster(default_model: Path, miami: Path) -> None:
    """On gapless hourly data the daemon's path equals plain observe/forecast calls."""
    series = load_csv(miami)
    result = evaluate(Forecaster.load(default_model), series, horizon=6, season=24)
    y = series.column("miami")
    fc = Forecaster.load(default_model)
    warmup = max(fc.meta.warmup_steps, 24)
    errors: dict[str, list[list[float]]] = {"lstm": [[] for _ in range(6)]}
    errors["naive"] = [[] for _ in range(6)]
    errors["seasonal_naive"] = [[] for _ in range(6)]
    for t, value in enumerate(y):
        fc.observe("m", value, at=float(series.times[t]))
        if t + 1 < warmup:
            continue
        forecast = fc.forecast("m", 6)[:, 0]
        for k in range(1, 7):
            if t + k < len(y):
                errors["lstm"][k - 1].append(abs(forecast[k - 1] - y[t + k]))
                errors["naive"][k - 1].append(abs(y[t] - y[t + k]))
                errors["seasonal_naive"][k - 1].append(abs(y[t + k - 24] - y[t + k]))
    for method, per_step in errors.items():
        expected = [float(np.mean(e)) for e in per_step]
        assert result.methods[method].mae == pytest.approx(expected, abs=1e-4), method
    assert result.points == tuple(len(e) for e in errors["naive"])
    scale = float(np.mean(np.abs(np.diff(y))))
    assert result.methods["naive"].mase[0] == pytest.approx(
        float(np.mean(errors["naive"][0])) / scale, rel=1e-6
    )
    rmse = [float(np.sqrt(np.mean(np.square(e)))) for e in errors["lstm"]]
    assert result.methods["lstm"].rmse == pytest.approx(rmse, abs=1e-4)
    assert (
        0.0
        <= result.win_share["both"]
        <= min(result.win_share["naive"], result.win_share["seasonal_naive"])
    )


def test_gaps_are_filled_not_scored_and_long_gaps_reset(
    default_model: Path, tmp_path: Path
) -> None:
    warm = Forecaster.load(default_model).meta.warmup_steps
    full = write_slice(tmp_path / "full.csv", 2 * warm + 176, "time,miami")
    lines = full.read_text(encoding="utf-8").splitlines()
    g = warm + 77  # a gap after the warm-up, with room to warm up again after it
    short_gap = lines[:g] + lines[g + 2 :]  # 2 steps missing: filled
    (tmp_path / "short.csv").write_text("\n".join(short_gap) + "\n", encoding="utf-8")
    long_gap = lines[:g] + lines[g + 10 :]  # 10 steps missing: reset, warm-up again
    (tmp_path / "long.csv").write_text("\n".join(long_gap) + "\n", encoding="utf-8")
    fc = Forecaster.load(default_model)
    base = evaluate(fc, load_csv(full), horizon=3, season=24)
    short = evaluate(Forecaster.load(default_model), load_csv(tmp_path / "short.csv"), 3, 24)
    long = evaluate(Forecaster.load(default_model), load_csv(tmp_path / "long.csv"), 3, 24)
    assert short.steps_observed == base.steps_observed - 2
    # No forecast is issued from the two missing hours, and the one-step forecast from the hour
    # before them aims at a missing hour: three one-step points fewer.
    assert short.points[0] == base.points[0] - 3
    assert long.steps_observed == base.steps_observed - 10
    # After the reset the sensor needs a full warm-up before forecasts count again.
    assert long.points[0] <= base.points[0] - 10 - warm


def test_multi_feature_model_needs_one_column_per_feature(golden_model: Path, miami: Path) -> None:
    with pytest.raises(DataError, match="takes 2 features"):
        evaluate(Forecaster.load(golden_model), load_csv(miami))


# -- the command -----------------------------------------------------------------------------------


def test_cli_json_reports_every_method_per_step(default_model: Path, tmp_path: Path) -> None:
    data = write_slice(tmp_path / "three.csv", 240)
    plot = tmp_path / "eval.png"
    result = runner.invoke(
        app,
        ["evaluate", "--model", str(default_model), "--data", str(data), "--horizon", "6",
         "--json", "--plot", str(plot)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["sensors"] == ["greensboro", "sand_point", "miami"]
    assert doc["horizon"] == 6 and doc["season"] == 24
    for method in ("lstm", "naive", "seasonal_naive"):
        scores = doc["methods"][method]
        assert len(scores["mae"]) == len(scores["rmse"]) == len(scores["mase"]) == 6
        assert scores["mae_mean"] == pytest.approx(np.mean(scores["mae"]))
        assert all(r >= m > 0 for r, m in zip(scores["rmse"], scores["mae"], strict=True))
    assert set(doc["lstm_win_share"]) == {"naive", "seasonal_naive", "both"}
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot.stat().st_size > 20_000  # axes, lines and labels, not an empty canvas


def test_cli_table_names_the_methods(default_model: Path, miami: Path) -> None:
    result = runner.invoke(app, ["evaluate", "--model", str(default_model), "--data", str(miami)])
    assert result.exit_code == 0, result.output
    assert "seasonal naive (24)" in result.stdout
    per_step = result.stdout.split("MAE per horizon step:")[1].strip().splitlines()[1:]
    assert [int(line.split()[0]) for line in per_step] == list(range(1, 13))
    assert all(len(line.split()) == 4 for line in per_step)  # step, LSTM, naive, seasonal


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        ("time,a\n2019-01-01T00:00Z,1\n", ["--columns", "b"], "column 'b' not found"),
        ("time,a\nnot-a-time,1\n", [], "cannot parse time"),
        (
            "time,a\n" + "".join(f"{1546300800 + 3600 * i},{i}\n" for i in range(20)),
            [],
            "too short",
        ),
    ],
)
def test_cli_bad_csv_exits_2_with_one_line(
    default_model: Path, tmp_path: Path, content: str, args: list[str], message: str
) -> None:
    data = tmp_path / "bad.csv"
    data.write_text(content, encoding="utf-8")
    result = runner.invoke(
        app, ["evaluate", "--model", str(default_model), "--data", str(data), *args]
    )
    assert result.exit_code == EXIT_BAD_DATA
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_cli_bad_model_exits_1(tmp_path: Path, miami: Path) -> None:
    result = runner.invoke(
        app, ["evaluate", "--model", str(tmp_path / "none.tflite"), "--data", str(miami)]
    )
    assert result.exit_code == 1
    assert "not found" in result.stderr


def test_default_model_beats_both_baselines_on_shipped_data(
    default_model: Path, tmp_path: Path
) -> None:
    """The newcomer's question, on three weeks of the shipped data (all three sensors)."""
    data = write_slice(tmp_path / "weeks.csv", 24 * 21)
    result = evaluate(Forecaster.load(default_model), load_csv(data))
    lstm = result.methods["lstm"].mae_mean
    assert lstm < result.methods["naive"].mae_mean
    assert lstm < result.methods["seasonal_naive"].mae_mean
    assert result.win_share["naive"] > 0.5


def test_long_data_draws_progress_on_stderr_and_keeps_json_clean(
    default_model: Path, tmp_path: Path
) -> None:
    data = write_slice(tmp_path / "long.csv", 2_100, "time,miami")
    result = runner.invoke(
        app, ["evaluate", "--model", str(default_model), "--data", str(data), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert "replaying" in result.stderr
    assert json.loads(result.stdout)["rows"] == 2_100


# -- rolling origin and the MSTL peer ----------------------------------------------------------


def test_held_out_share_and_every_pick_the_origins(default_model: Path, tmp_path: Path) -> None:
    data = load_csv(write_slice(tmp_path / "month.csv", 24 * 30, "time,miami"))
    everything = evaluate(Forecaster.load(default_model), data)
    start = float(data.times[-1] - 0.25 * (data.times[-1] - data.times[0]))
    tail = evaluate(Forecaster.load(default_model), data, score_from_s=start, every=5)
    assert 0 < tail.points[0] < everything.points[0] / 4
    issued = tail.traces["miami"].issued
    assert all(step % 5 == 0 and step * 3600.0 >= start for step in issued)


@pytest.mark.peer
def test_peer_mstl_is_scored_on_the_same_origins(default_model: Path, tmp_path: Path) -> None:
    data = write_slice(tmp_path / "month.csv", 24 * 30, "time,miami")
    result = runner.invoke(
        app,
        ["evaluate", "--model", str(default_model), "--data", str(data), "--peer", "mstl",
         "--held-out", "0.25", "--every", "7", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert set(doc["methods"]) == {"lstm", "naive", "seasonal_naive", "mstl"}
    mstl = doc["methods"]["mstl"]
    assert len(mstl["mae"]) == 12 and all(m > 0 for m in mstl["mae"])
    # MSTL is a real forecaster: on hourly temperature it is not the seasonal-naive copy.
    assert mstl["mae_mean"] != pytest.approx(doc["methods"]["seasonal_naive"]["mae_mean"])
    table = runner.invoke(
        app,
        ["evaluate", "--model", str(default_model), "--data", str(data), "--peer", "mstl",
         "--held-out", "0.25", "--every", "7"],
    )  # fmt: skip
    assert "MSTL" in table.stdout and "/ s.naive" in table.stdout


def test_peer_without_statsforecast_names_the_extra(default_model: Path, miami: Path) -> None:
    code = (
        "import sys; sys.modules['statsforecast'] = None; from edge_lstm.cli.app import app; app()"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, "evaluate", "--model", str(default_model),
         "--data", str(miami), "--peer", "mstl"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1
    lines = [line for line in done.stderr.strip().splitlines() if "XNNPACK" not in line]
    assert len(lines) == 1, done.stderr
    assert "statsforecast" in lines[0] and "pip install 'edge-lstm[peer]'" in lines[0]


def _narrowed(model: Path, tmp_path: Path, factor: float) -> Path:
    """A copy of ``model`` whose metadata band is ``factor`` times as wide (same weights)."""
    copy = tmp_path / model.name
    copy.write_bytes(model.read_bytes())
    doc = json.loads(model.with_suffix(".json").read_text())
    for key in ("residual_q10", "residual_q90"):
        doc["validation"][key] = [[v * factor for v in row] for row in doc["validation"][key]]
    copy.with_suffix(".json").write_text(json.dumps(doc))
    return copy


def test_online_band_recalibrates_a_band_that_is_too_narrow(
    default_model: Path, tmp_path: Path
) -> None:
    """The metadata's band made 4x too narrow covers far less than 80% as it stands; published at
    every step with the daemon's online calibration it covers about 80% per step and sensor."""
    data = load_csv(write_slice(tmp_path / "two_months.csv", 24 * 60))
    model = _narrowed(default_model, tmp_path, 0.25)
    start = float(data.times[-1] - 0.5 * (data.times[-1] - data.times[0]))
    result = evaluate(Forecaster.load(model), data, score_from_s=start, online_band=True)
    band = result.online_band
    assert band is not None and set(band.scored) == {"greensboro", "sand_point", "miami"}
    assert all(n >= 500 for n in np.sum(list(band.scored.values()), axis=0))
    for sensor in band.scored:
        assert all(0.7 <= c <= 0.9 for c in band.coverage(sensor)), band.coverage(sensor)
    # The same band without the calibration, on the same forecasts: far from 80%.
    static = evaluate(Forecaster.load(model), data, score_from_s=start)
    meta = Forecaster.load(model).meta
    assert meta.validation is not None
    q10, q90 = meta.validation.band(1)
    assert max(band_coverage(static, q10, q90)) < 0.6


def test_cli_band_reports_the_online_coverage(default_model: Path, tmp_path: Path) -> None:
    data = write_slice(tmp_path / "month.csv", 24 * 30, "time,miami")
    args = ["evaluate", "--data", str(data), "--model", str(default_model), "--band"]
    table = runner.invoke(app, args)
    assert table.exit_code == 0, table.output
    assert "80% band recalibrated online" in table.output
    doc = json.loads(runner.invoke(app, [*args, "--json"]).output)
    assert set(doc["online_band"]["per_sensor"]) == {"miami"}
    assert len(doc["online_band"]["coverage"]) == doc["horizon"]
