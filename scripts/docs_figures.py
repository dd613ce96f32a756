"""Run the accuracy commands and write their figures into the docs (never typed by hand).

Usage: ``python scripts/docs_figures.py [--check]``. For every shipped series with a model in
``models/`` it runs::

    edge-lstm evaluate --model M --data D --held-out 0.25 --max-gap-steps 168 --peer mstl --json

(the last quarter of the series, which ``scripts/train.py`` held out; a rolling origin about 100
times per series; MSTL needs the ``peer`` extra) and replaces the block between
``<!-- figures:accuracy -->`` and ``<!-- /figures:accuracy -->`` in ``docs/evaluate.md`` and the
README with a table of the printed means. ``--check`` exits 1 if the docs differ from a fresh run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = (ROOT / "docs" / "evaluate.md", ROOT / "README.md")
BEGIN, END = "<!-- figures:accuracy -->", "<!-- /figures:accuracy -->"

#: (series label, model stem, data file, columns)
SERIES = (
    (
        "TMY air temperature, 3 sites",
        "models/default",
        "data/tmy_hourly_temperature.csv",
        "",
    ),
    ("electricity demand", "models/accuracy/electricity", "data/electricity_hourly.csv", ""),
    ("I-94 traffic volume", "models/accuracy/i94", "data/i94_traffic_volume_hourly.csv", ""),
    (
        "freeway occupancy",
        "models/accuracy/sf_occupancy",
        "data/sf_freeway_occupancy_hourly.csv",
        "",
    ),
    ("pipeline water flow", "models/accuracy/water_flow", "data/water_flow_hourly.csv", ""),
)


def command(model: str, data: str, columns: str) -> list[str]:
    args = ["edge-lstm", "evaluate", "--model", f"{model}.tflite", "--data", data]
    args += ["--columns", columns] if columns else []
    # Gaps up to a week are filled, as scripts/train.py's report does (the water-flow series has
    # gaps of up to 31 hours; a shorter limit resets the sensor, which then warms up for a week).
    # --band: the 80% band published at every step and recalibrated online, as the daemon does.
    return [*args, "--held-out", "0.25", "--max-gap-steps", "168", "--peer", "mstl", "--band"]


def run(model: str, data: str, columns: str) -> dict[str, object]:
    args = command(model, data, columns)
    done = subprocess.run(
        [sys.executable, "-m", "edge_lstm", *args[1:], "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed: {done.stderr.strip()}")
    doc: dict[str, object] = json.loads(done.stdout)
    return doc


def coverage_range(band: dict[str, object]) -> str:
    """``lo–hi`` of the overall coverage over the horizon steps, and the lowest sensor's lowest."""
    coverage, per_sensor = band["coverage"], band["per_sensor"]
    assert isinstance(coverage, list) and isinstance(per_sensor, dict)
    overall = [float(c) for c in coverage]
    lowest = min(min(float(c) for c in steps) for steps in per_sensor.values())
    return f"{min(overall):.0%}–{max(overall):.0%} ({lowest:.0%})"


def table() -> str:
    lines = [
        "| series | LSTM | naive | seasonal naive | MSTL | LSTM / s. naive | MSTL / s. naive | "
        "origins | 80% band coverage, online (steps 1..12, lowest sensor) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    commands = []
    present = [row for row in SERIES if (ROOT / f"{row[1]}.tflite").is_file()]
    # Each run is its own process, mostly MSTL refits: two at a time halve the wall time.
    with ThreadPoolExecutor(max_workers=2) as pool:
        docs = list(pool.map(lambda row: run(*row[1:]), present))
    for (label, model, data, columns), doc in zip(present, docs, strict=True):
        methods = doc["methods"]
        assert isinstance(methods, dict)
        mae = {name: float(scores["mae_mean"]) for name, scores in methods.items()}
        ref = mae["seasonal_naive"]
        points = doc["points_per_step"]
        band = doc["online_band"]
        assert isinstance(points, list) and isinstance(band, dict)
        lines.append(
            f"| {label} | {mae['lstm']:.4g} | {mae['naive']:.4g} | {ref:.4g} | "
            f"{mae['mstl']:.4g} | **{mae['lstm'] / ref:.2f}** | {mae['mstl'] / ref:.2f} | "
            f"{points[0]} | {coverage_range(band)} |"
        )
        commands.append(" ".join(command(model, data, columns)))
        print(lines[-1], flush=True)
    lines += ["", "Produced by `.venv/bin/python scripts/docs_figures.py`, which ran:", "", "```sh"]
    lines += [*commands, "```"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the docs are stale")
    args = parser.parse_args()
    block = table()
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        if BEGIN not in text or END not in text:
            raise SystemExit(f"{doc}: markers {BEGIN} ... {END} not found")
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        fresh = f"{head}{BEGIN}\n{block}\n{END}{tail}"
        if args.check:
            if fresh != text:
                raise SystemExit(f"{doc} is stale: run python scripts/docs_figures.py")
            continue
        doc.write_text(fresh, encoding="utf-8")
        print(f"wrote {doc}")


if __name__ == "__main__":
    main()
