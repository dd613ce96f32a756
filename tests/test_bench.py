"""``edge-lstm bench --quick``: every section runs for real and its JSON carries the fields."""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from edge_lstm.bench.engine import QUICK_COUNTS, StepClock, measure_rate
from edge_lstm.bench.inputs import bench_model_paths
from edge_lstm.bench.report import cpu_model, machine_info, ratio
from edge_lstm.cli.app import app
from edge_lstm.model.runtime import resolve_backend
from edge_lstm.mqttkit.broker import Mosquitto

runner = CliRunner()


def bench_json(*args: str) -> dict[str, Any]:
    result = runner.invoke(app, ["bench", "--quick", "--json", *args])
    assert result.exit_code == 0, result.output
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def test_machine_info_names_cpu_cores_backend_and_versions() -> None:
    info = machine_info("ai_edge_litert")
    assert info["cpu"] == cpu_model() and info["cpu"]
    assert info["cores"] == os.cpu_count()
    assert info["backend"] == "ai_edge_litert"
    assert info["versions"]["edge-lstm"] and info["versions"]["numpy"]
    assert "ai-edge-litert" in info["versions"]


def test_ratio_and_rate_helpers() -> None:
    assert ratio(10.0, 4.0) == 2.5
    assert ratio(None, 4.0) is None and ratio(1.0, 0.0) is None
    calls = []
    rate = measure_rate(lambda: calls.append(1), units=100, min_time_s=0.01)
    assert rate > 0 and len(calls) >= 2  # one warm-up call, then timed calls


ROOT = Path(__file__).resolve().parent.parent
# Format 1 (the bench's plain model) beside the default, format 2 (lags of a day and a week,
# time of day and day of week, a per-sensor level): every section runs either.
# (Where the installed package has it: the Debian 13 phase runs these tests against the wheel.)
PLAIN_MODEL = bench_model_paths()["plain"]


@pytest.fixture(params=["default", "plain"])
def any_model(request: pytest.FixtureRequest, default_model: Path) -> Path:
    return default_model if request.param == "default" else PLAIN_MODEL


def test_step_clock_is_epoch_aligned_and_advances_one_step_per_call() -> None:
    clock = StepClock(3600.0, start_s=1_700_001_234.5)
    assert [clock.next(), clock.next()] == [1_700_002_800.0, 1_700_006_400.0]


def test_engine_quick_json(any_model: Path) -> None:
    doc = bench_json("--only", "engine", "--no-keras", "--model", str(any_model))
    engine = doc["engine"]
    assert engine["backend"] == doc["machine"]["backend"]
    assert engine["keras"] is None
    assert [row["sensors"] for row in engine["rows"]] == list(QUICK_COUNTS)
    for row in engine["rows"]:
        for key in (
            "forecaster_steps_per_s",
            "step_steps_per_s",
            "loop_steps_per_s",
            "forecast_per_s",
        ):
            assert row[key] > 0, key
        assert row["keras_steps_per_s"] is None
        assert row["speedup_vs_loop"] == pytest.approx(
            row["forecaster_steps_per_s"] / row["loop_steps_per_s"]
        )
        assert row["forecaster_us_per_sensor"] == pytest.approx(1e6 / row["forecaster_steps_per_s"])
    # Batching must pay off already at 64 sensors, even on a loaded CI machine.
    assert engine["rows"][-1]["step_speedup_vs_loop"] > 2
    machine = doc["machine"]
    assert machine["cpu"] and machine["cores"] >= 1 and machine["versions"]["python"]
    assert doc["command"] == (
        f"edge-lstm bench --quick --only engine --model {any_model} --no-keras --json"
    )
    assert doc["started_at"].endswith("Z")
    load = doc["load_average"]
    assert len(load["before"]) == len(load["after"]) == 3 and min(load["before"]) >= 0
    assert set(doc["skipped"]) == set()


def test_inputs_quick_json_compares_two_same_size_models() -> None:
    doc = bench_json("--only", "inputs")
    inputs = doc["inputs"]
    plain, seasonal = inputs["models"]["plain"], inputs["models"]["seasonal"]
    assert plain["layers"] == seasonal["layers"] == ["lstm(32)"]
    assert plain["inputs"] is None and plain["input_width"] == 1
    assert seasonal["inputs"]["lags"] == [24, 168] and seasonal["inputs"]["level_window"] == 24
    assert seasonal["inputs"]["calendar"] == ["time_of_day", "day_of_week"]
    assert seasonal["input_width"] == 7
    assert inputs["backend"] == doc["machine"]["backend"] and inputs["limit"] == 1.5
    assert [row["sensors"] for row in inputs["rows"]] == list(QUICK_COUNTS)
    ratios = []
    for row in inputs["rows"]:
        for op in ("observe", "forecast", "cycle"):
            plain_us, seasonal_us = row[f"{op}_plain_us"], row[f"{op}_seasonal_us"]
            assert plain_us > 0 and seasonal_us > 0, op
            assert row[f"{op}_ratio"] == pytest.approx(seasonal_us / plain_us)
            low, high = row[f"{op}_ratio_range"]
            assert low <= high
            ratios.append(row[f"{op}_ratio"])
        # the seasonal model without its companion, timed in the same rounds (cycle only)
        bare_us, low, high = row["cycle_no_companion_us"], *row["cycle_no_companion_ratio_range"]
        assert bare_us > 0 and low <= high
        assert row["cycle_no_companion_ratio"] == pytest.approx(bare_us / row["cycle_plain_us"])
    assert inputs["max_ratio"] == max(ratios)
    assert inputs["max_cycle_ratio_no_companion"] == max(
        row["cycle_no_companion_ratio"] for row in inputs["rows"]
    )


def test_shipped_bench_models_load_and_differ_only_in_inputs() -> None:
    from edge_lstm.bench.inputs import bench_model_paths
    from edge_lstm.model.forecaster import Forecaster

    plain, seasonal = (Forecaster.load(p) for p in bench_model_paths().values())
    assert plain.meta.layers == seasonal.meta.layers
    assert [s.size for s in plain.meta.state] == [s.size for s in seasonal.meta.state] == [32, 32]
    assert (plain.meta.step_s, plain.meta.horizon) == (seasonal.meta.step_s, seasonal.meta.horizon)
    assert plain.has_bands and seasonal.has_bands
    assert plain.spec.is_plain and seasonal.spec.max_lag == 168
    with pytest.raises(ValueError, match="at="):
        seasonal.observe("s", 15.0)  # a calendar model needs the step time


def load_bench_figures() -> Any:
    import importlib.util

    path = ROOT / "scripts" / "bench_figures.py"
    spec = importlib.util.spec_from_file_location("bench_figures", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_figures_write_the_report_into_the_marked_blocks() -> None:
    figures = load_bench_figures()
    doc = bench_json("--only", "inputs")
    rows = {row["sensors"]: row for row in doc["inputs"]["rows"]}
    table = "\n".join(figures.inputs_table(doc))
    for n, row in rows.items():
        observe = f"{row['observe_plain_us']:.2f} / {row['observe_seasonal_us']:.2f}"
        assert f"| {n:,} | {observe} |" in table
        assert f"**{row['cycle_ratio']:.2f}x**" in table
        bare = f"| {row['cycle_no_companion_us']:.2f} | **{row['cycle_no_companion_ratio']:.2f}x**"
        assert bare in table
    readme = "\n".join(figures.readme_table(doc))
    assert " / ".join(f"{row['cycle_ratio']:.2f}x" for row in rows.values()) in readme
    bare_ratios = " / ".join(f"{row['cycle_no_companion_ratio']:.2f}x" for row in rows.values())
    assert "(no companion: the default model's inputs) | | " in readme and bare_ratios in readme
    run = figures.run_line(doc, "today")
    assert doc["command"] in run and f"{doc['load_average']['before'][0]:.2f}" in run
    text = "a\n<!-- figures:bench-x -->\nold\n<!-- /figures:bench-x -->\nb\n"
    new = figures.replace_block(text, "bench-x", ["new", "lines"])
    assert new == "a\n<!-- figures:bench-x -->\nnew\nlines\n<!-- /figures:bench-x -->\nb\n"
    with pytest.raises(SystemExit, match="bench-y"):
        figures.replace_block(text, "bench-y", [])


def test_bench_figures_show_the_paired_runs_behind_an_e2e_ratio() -> None:
    """The ratio is the median of each run's own daemon / bare ratio, so the medians of the
    rates beside it need not divide to it: the table gives the runs' range too."""
    runs = [
        {"daemon_per_s": 18.0, "bare_mqtt5_per_s": 20.0, "bare_mqtt311_per_s": 30.0},
        {"daemon_per_s": 15.0, "bare_mqtt5_per_s": 20.0, "bare_mqtt311_per_s": 30.0},
        {"daemon_per_s": 16.0, "bare_mqtt5_per_s": 16.0, "bare_mqtt311_per_s": 32.0},
    ]
    e2e = {"runs": runs}
    paired = load_bench_figures()._paired
    assert paired(e2e, "5", 0.9) == "90% (median of 3 paired runs: 75%–100%)"
    assert paired(e2e, "3.1.1", 0.5) == "50% (median of 3 paired runs: 50%–60%)"
    assert paired({}, "5", 0.9) == "90%"  # a report without its runs


@pytest.mark.train
def test_engine_times_keras_predict_when_tensorflow_is_there(any_model: Path) -> None:
    doc = bench_json("--only", "engine", "--model", str(any_model))
    assert doc["engine"]["keras"] == "same architecture, random weights"
    assert all(row["keras_steps_per_s"] > 0 for row in doc["engine"]["rows"])


@pytest.mark.broker
@pytest.mark.slow
def test_e2e_and_memory_quick_json(any_model: Path, mosquitto: Mosquitto) -> None:
    doc = bench_json(
        "--only", "e2e,memory", "--model", str(any_model), "--broker",
        f"{mosquitto.host}:{mosquitto.port}",
    )  # fmt: skip
    e2e = doc["e2e"]
    assert e2e["broker"].startswith("given")
    assert e2e["bare_paho"]["received"] == e2e["bare_paho"]["readings"] == 200
    assert e2e["bare_paho"]["rate_per_s"] > 0
    assert e2e["daemon"]["completed"] is True and e2e["daemon"]["rate_per_s"] > 0
    # Like for like: the headline baseline speaks the daemon's protocol, QoS 1.
    assert e2e["daemon_mqtt_version"] == "5"
    assert e2e["bare_paho"] == e2e["bare_paho_mqtt5"]
    assert e2e["bare_paho"]["mqtt_version"] == "5" and e2e["bare_paho"]["qos"] == 1
    assert e2e["bare_paho_mqtt311"]["mqtt_version"] == "3.1.1"
    for key in ("mqtt5", "mqtt311"):
        bare = e2e[f"bare_paho_{key}"]
        assert bare["received"] == bare["readings"] == 200
        assert bare["rate_per_s"] == pytest.approx(
            statistics.median(r[f"bare_{key}_per_s"] for r in e2e["runs"])
        )
        assert e2e[f"daemon_vs_bare_{key}"] == pytest.approx(
            statistics.median(r["daemon_per_s"] / r[f"bare_{key}_per_s"] for r in e2e["runs"])
        )
    # Paired runs: medians over --quick's two, each ratio taken against its own bare runs.
    assert e2e["repeats"] == len(e2e["runs"]) == 2
    assert e2e["daemon"]["rate_per_s"] == pytest.approx(
        statistics.median(r["daemon_per_s"] for r in e2e["runs"])
    )
    assert e2e["daemon_vs_bare"] == pytest.approx(
        statistics.median(r["daemon_per_s"] / r["bare_mqtt5_per_s"] for r in e2e["runs"])
    )
    assert 0 < e2e["start_to_online_s"] <= e2e["start_to_online_max_s"] < 60
    assert e2e["readings_lost"] == 0 and e2e["readings_sent"] == e2e["readings_accepted"]
    lat = e2e["latency"]
    assert lat["forecasts_matched"] > 0
    assert 0 < lat["p50_ms"] <= lat["p99_ms"] <= lat["max_ms"]
    assert e2e["daemon_exit_code"] == 0
    memory = doc["memory"]
    assert [r["sensors"] for r in memory["rows"]] == [10, 100]
    assert [r["sensors_active"] for r in memory["rows"]] == [10, 100]
    assert all(r["rss_bytes"] >= memory["idle_rss_bytes"] * 0.9 for r in memory["rows"])
    assert all(r["peak_rss_bytes"] >= r["rss_bytes"] for r in memory["rows"])
    table = "\n".join(load_bench_figures().memory_table(doc))
    idle = memory["idle_rss_bytes"]
    assert f"| 0 (idle) | {idle / 2**20:.1f} MiB ({idle / 1e6:.1f} MB) |" in table
    assert f"{memory['table_bytes_per_sensor']:,} bytes" in table


@pytest.mark.broker
@pytest.mark.slow
def test_soak_runs_months_of_readings_through_the_daemon_with_its_state(
    default_model: Path, mosquitto: Mosquitto
) -> None:
    doc = bench_json(
        "--only", "soak", "--model", str(default_model), "--broker",
        f"{mosquitto.host}:{mosquitto.port}",
    )  # fmt: skip
    soak = doc["soak"]
    assert (soak["sensors"], soak["months"], soak["steps_per_month"]) == (10, 2, 730)
    rows = soak["rows"]
    assert [r["month"] for r in rows] == [1, 2]
    # Every reading of every month accepted (the bench waits for them), nothing refused.
    assert [r["readings_sent"] for r in rows] == [7300, 14600]
    assert [r["readings_accepted"] for r in rows] == [7300, 14600]
    assert 0 < rows[0]["forecasts_published"] < rows[1]["forecasts_published"]
    assert all(r["state_files_bytes"] > 0 and r["peak_rss_bytes"] >= r["rss_bytes"] for r in rows)
    assert all(0.0 < r["band_coverage"] <= 1.0 for r in rows)  # bands issued and scored
    assert soak["readings_lost"] == soak["readings_rejected"] == 0
    assert soak["snapshot_errors"] == soak["journal_errors"] == soak["queue_dropped"] == 0
    assert soak["exit_code"] == 0
    table = "\n".join(load_bench_figures().soak_table(doc))
    assert "| 2 | 14,600 |" in table and "exit code 0." in table
    assert f"| {rows[1]['band_coverage']:.1%} |" in table


@pytest.mark.broker
def test_bench_starts_its_own_mosquitto_from_the_path(default_model: Path) -> None:
    doc = bench_json("--only", "memory", "--model", str(default_model))
    assert doc["memory"]["broker"].startswith("started: mosquitto")
    # No interpreter ran in this process: the machine names the one the daemon loaded.
    backend = doc["machine"]["backend"]
    assert backend == resolve_backend() and doc["machine"]["versions"][backend.replace("_", "-")]


def test_unknown_section_is_one_line_error() -> None:
    result = runner.invoke(app, ["bench", "--only", "engine,gpu"])
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "error: unknown section 'gpu' (choose from engine, inputs, e2e, memory, soak, scaling)"
    )


def test_unreachable_broker_is_one_line_error(default_model: Path) -> None:
    result = runner.invoke(
        app, ["bench", "--quick", "--only", "e2e", "--model", str(default_model), "--broker",
              "127.0.0.1:1"],
    )  # fmt: skip
    assert result.exit_code == 1
    assert "cannot connect to MQTT broker 127.0.0.1:1" in result.stderr
    assert "Traceback" not in result.output
