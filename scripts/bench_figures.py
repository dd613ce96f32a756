"""Write the figures of an ``edge-lstm bench --output FILE`` report into the docs.

Usage: ``python scripts/bench_figures.py bench.json [--check]``. Replaces the blocks between
``<!-- figures:bench-NAME -->`` and ``<!-- /figures:bench-NAME -->`` in ``README.md`` and
``docs/bench.md`` with tables made from the report: every figure comes from the command's JSON,
none is typed by hand. Unlike the accuracy figures, the bench is not re-run here: it takes minutes
and its figures belong to the machine it ran on, which the report names. ``--check`` exits 1 if
the docs differ from what the report gives.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BENCH_DOC = ROOT / "docs" / "bench.md"
OPS = ("observe", "forecast", "cycle")


def _n(value: float | None, fmt: str = ",.0f") -> str:
    return "-" if value is None else format(value, fmt)


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _rows(section: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {row["sensors"]: row for row in section.get("rows", [])}


def _shown(path: str) -> str:
    """A model path as the docs show it: relative to the repository, else its file name."""
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return Path(path).name


def run_line(report: dict[str, Any], measured_at: str) -> str:
    """What ran where: command, machine, versions, load."""
    m = report["machine"]
    v = m["versions"]
    backend = m["backend"]
    backend_version = v.get({"ai_edge_litert": "ai-edge-litert"}.get(backend, backend or ""))
    memory = f", {m['memory_bytes'] / 2**30:.1f} GiB" if m.get("memory_bytes") else ""
    broker = (report.get("e2e") or report.get("memory") or {}).get("broker")
    load = report.get("load_average") or {}
    before, after = load.get("before"), load.get("after")
    loads = (
        f" Load average (1/5/15 min) {'/'.join(f'{x:.2f}' for x in before)} before the run, "
        f"{'/'.join(f'{x:.2f}' for x in after)} after"
        if before and after
        else ""
    )
    command = report.get("command") or "edge-lstm bench" + (" --quick" if report["quick"] else "")
    # Where the run wrote its JSON is the runner's business: the docs show the file name only.
    args = shlex.split(command)
    args = [Path(a).name if i and args[i - 1] in ("--output", "--model") else a
            for i, a in enumerate(args)]  # fmt: skip
    command = shlex.join(args)
    system, _, release = m["os"].partition(" ")
    os_name = f"{system} {'.'.join(release.split('.')[:2])}".strip()
    return (
        f"Measured {measured_at} with `{command}` on **{m['cpu']} ({m['arch']}), "
        f"{m['cores']} cores{memory}**, {os_name}, Python {v.get('python')}, numpy "
        f"{v.get('numpy')}, {backend} {backend_version}, paho-mqtt {v.get('paho-mqtt')}"
        + (f", broker {broker}" if broker else "")
        + f".{loads} (the machine is shared: other work ran beside the bench)."
    )


def engine_table(report: dict[str, Any]) -> list[str]:
    engine = report.get("engine")
    if not engine:
        return ["(no engine section in this report)"]
    lines = [
        "| sensors | Forecaster | step() | loop (1 call/sensor) | Keras predict "
        "| Forecaster / loop | forecasts/s (h=12) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in engine["rows"]:
        lines.append(
            f"| {r['sensors']:,} | {_n(r['forecaster_steps_per_s'])} | "
            f"{_n(r['step_steps_per_s'])} | {_n(r['loop_steps_per_s'])} | "
            f"{_n(r['keras_steps_per_s'])} | {_n(r['speedup_vs_loop'], '.1f')}x | "
            f"{_n(r['forecast_per_s'])} |"
        )
    lines += ["", f"Model: `{engine['model']['name']}` (`{_shown(engine['model']['path'])}`)."]
    return lines


def inputs_table(report: dict[str, Any]) -> list[str]:
    inputs = report.get("inputs")
    if not inputs:
        return ["(no inputs section in this report)"]
    seasonal = inputs["models"]["seasonal"]
    spec = seasonal["inputs"]
    lines = [
        f"CPU microseconds per sensor-step, median of {inputs['rounds']} interleaved rounds "
        f"(at least {inputs['min_time_s']:g} s of CPU per model, operation and round); "
        f"`plain`: {', '.join(seasonal['layers'])} without extra inputs; `seasonal`: the same "
        f"with lags {spec['lags']}, {' and '.join(spec['calendar'])} in {spec['timezone']}, "
        f"level over {spec['level_window']} steps (input width {seasonal['input_width']})"
        f"{_companion_words(seasonal)}. "
        "In brackets: the lowest and highest ratio of a single round. The last column: the "
        "cycle of `seasonal` without its companion (the same file, the lags, calendar and "
        "level alone), timed in the same rounds.",
        "",
        "| sensors | observe: plain / seasonal µs | ratio | forecast (h=12): plain / seasonal µs "
        "| ratio | observe + forecast + band: plain / seasonal µs | ratio | the same without "
        "the companion: µs | ratio |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    bare = "cycle_no_companion"
    for r in inputs["rows"]:
        cells = []
        for op in OPS:
            cells.append(f"{r[f'{op}_plain_us']:.2f} / {r[f'{op}_seasonal_us']:.2f}")
            cells.append(_ranged(r, f"{op}_ratio"))
        if f"{bare}_us" in r:
            cells += [f"{r[f'{bare}_us']:.2f}", _ranged(r, f"{bare}_ratio")]
        lines.append(f"| {r['sensors']:,} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Largest ratio: {_x(inputs['max_ratio'])}; without the companion (cycle): "
        f"{_x(inputs.get('max_cycle_ratio_no_companion'))} (issue 11 asks for at most "
        f"{inputs['limit']:g}x).",
    ]
    return lines


def _ranged(row: dict[str, Any], key: str) -> str:
    """A ratio in bold with the lowest and highest single-round ratio."""
    low, high = row[f"{key}_range"]
    return f"**{_x(row[key])}** ({low:.2f}-{high:.2f})"


def _alike(e2e: dict[str, Any]) -> str:
    """The like-for-like baseline's protocol (the daemon's), for a table label."""
    version = e2e.get("daemon_mqtt_version")
    return f", MQTT {version}, QoS 1 (the daemon's protocol)" if version else ""


def _version(e2e: dict[str, Any]) -> str:
    """The daemon's MQTT version (reports before it was recorded: 5, the daemon's default)."""
    return str(e2e.get("daemon_mqtt_version", "5"))


def _paired(e2e: dict[str, Any], version: str, ratio: float) -> str:
    """A daemon / bare ``ratio`` as e2e.py takes it, the median of each run's own ratio, with
    those runs' range (the rates beside it are medians of their own: they need not divide to
    it). ``version``: the bare subscriber's protocol."""
    bare = {"5": "bare_mqtt5_per_s", "3.1.1": "bare_mqtt311_per_s"}[version]
    runs = [r["daemon_per_s"] / r[bare] for r in e2e.get("runs", []) if r.get(bare)]
    if len(runs) < 2:
        return _n(ratio, ".0%")
    return f"{ratio:.0%} (median of {len(runs)} paired runs: {min(runs):.0%}–{max(runs):.0%})"


def e2e_table(report: dict[str, Any]) -> list[str]:
    e2e = report.get("e2e")
    if not e2e:
        return ["(no e2e section in this report)"]
    lat = e2e["latency"]
    return [
        f"{e2e['sensors']:,} sensors, horizon {e2e['horizon']}, broker {e2e['broker']}:",
        "",
        "| figure | value |",
        "|---|---:|",
        f"| bare paho subscriber, receive rate{_alike(e2e)} | "
        f"{_n(e2e['bare_paho']['rate_per_s'])} readings/s |",
        f"| `edge-lstm run`, readings in to forecasts out | {_n(e2e['daemon']['rate_per_s'])} "
        "readings/s |",
        f"| daemon / bare paho | **{_paired(e2e, _version(e2e), e2e['daemon_vs_bare'])}** |",
        f"| latency publish -> forecast at {_n(lat['achieved_rate_per_s'])} readings/s, p50 / "
        f"p99 (max) | {_n(lat['p50_ms'], '.1f')} / {_n(lat['p99_ms'], '.1f')} "
        f"({_n(lat['max_ms'], '.1f')}) ms |",
        f"| readings lost | {e2e['readings_lost']} of {e2e['readings_sent']:,} "
        f"(queue drops {e2e['queue_dropped']}) |",
    ]


def memory_table(report: dict[str, Any]) -> list[str]:
    memory = report.get("memory")
    if not memory:
        return ["(no memory section in this report)"]
    lines = [
        "| active sensors | RSS, settled | per sensor over idle | peak so far |",
        "|---:|---:|---:|---:|",
        f"| 0 (idle) | {_mib_mb(memory['idle_rss_bytes'])} | | |",
    ]
    for r in memory["rows"]:
        lines.append(
            f"| {r['sensors']:,} | {_mib_mb(r['rss_bytes'])} | "
            f"{r['bytes_per_sensor_over_idle'] / 1000:.1f} KB | {_mib_mb(r['peak_rss_bytes'])} |"
        )
    row = memory["table_bytes_per_sensor"]
    return [*lines, "", f"One row of the sensor table (a warm sensor's state): {row:,} bytes."]


def soak_table(report: dict[str, Any]) -> list[str]:
    soak = report.get("soak")
    if not soak:
        return ["(no soak section in this report)"]
    lines = [
        f"{soak['sensors']:,} sensors, {soak['steps_per_month']:,} steps a month; idle "
        f"{_mib_mb(soak['idle_rss_bytes'])}.",
        "",
        "| month | readings accepted | forecasts published | RSS | peak so far | state files "
        "| band coverage that month |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in soak["rows"]:
        share = r.get("band_coverage")
        lines.append(
            f"| {r['month']} | {r['readings_accepted']:,} | {r['forecasts_published']:,} | "
            f"{_mib_mb(r['rss_bytes'])} | {_mib_mb(r['peak_rss_bytes'])} | "
            f"{r['state_files_bytes'] / 1e6:.2f} MB | {'' if share is None else f'{share:.1%}'} |"
        )
    return [
        *lines,
        "",
        f"Lost {soak['readings_lost']}, refused {soak['readings_rejected']}, snapshot errors "
        f"{soak['snapshot_errors']}, journal errors {soak['journal_errors']}, queue drops "
        f"{soak['queue_dropped']}; exit code {soak['exit_code']}.",
    ]


def _mib_mb(n_bytes: float) -> str:
    """Binary and decimal: the issues' targets are in MB."""
    return f"{n_bytes / 2**20:.1f} MiB ({n_bytes / 1e6:.1f} MB)"


def readme_table(report: dict[str, Any]) -> list[str]:
    """The README's short table: one line per question a user asks."""
    engine, e2e = _rows(report.get("engine") or {}), report.get("e2e")
    inputs, memory = _rows(report.get("inputs") or {}), report.get("memory")
    lines = [
        "| figure | edge-lstm | baseline in the same run | ratio |",
        "|---|---:|---:|---:|",
    ]
    for n in (1000, 10_000):
        if n in engine:
            r = engine[n]
            lines.append(
                f"| sensor-steps/s, {n:,} sensors, `Forecaster.observe_batch` | "
                f"{_n(r['forecaster_steps_per_s'])} | {_n(r['loop_steps_per_s'])} (one "
                f"interpreter call per sensor) | {_n(r['speedup_vs_loop'], '.1f')}x |"
            )
    if 1 in engine and engine[1]["keras_steps_per_s"]:
        r = engine[1]
        lines.append(
            f"| one step, 1 sensor | {_n(r['forecaster_steps_per_s'])}/s | Keras "
            f"`model.predict`: {_n(r['keras_steps_per_s'])}/s | "
            f"{_n(r['speedup_vs_keras'], ',.0f')}x |"
        )
    if inputs:
        counts = " / ".join(f"{n:,}" for n in inputs)
        ratios = " / ".join(_x(r["cycle_ratio"]) for r in inputs.values())
        lines.append(
            "| CPU per sensor-step (observe + forecast + band) of a model with lags, calendar, "
            f"level{_companion_words(report['inputs']['models']['seasonal'], short=True)}, "
            f"{counts} sensors | | the same-size model without them | {ratios} |"
        )
        if all("cycle_no_companion_ratio" in r for r in inputs.values()):
            bare = " / ".join(_x(r["cycle_no_companion_ratio"]) for r in inputs.values())
            lines.append(
                "| the same with lags, calendar and level only (no companion: the default "
                f"model's inputs) | | the same-size model without them | {bare} |"
            )
    if e2e:
        lat = e2e["latency"]
        lines += [
            f"| readings/s through Mosquitto, {e2e['sensors']:,} sensors, horizon "
            f"{e2e['horizon']}, a forecast per closed step | {_n(e2e['daemon']['rate_per_s'])} | "
            f"{_n(e2e['bare_paho']['rate_per_s'])} (bare paho subscriber{_alike(e2e)}) | "
            f"{_paired(e2e, _version(e2e), e2e['daemon_vs_bare'])} |",
        ]
        if e2e.get("bare_paho_mqtt311") and e2e.get("daemon_mqtt_version") == "5":
            lines.append(
                f"| the same, against a bare paho subscriber over MQTT 3.1.1 (no properties "
                f"to decode) | | {_n(e2e['bare_paho_mqtt311']['rate_per_s'])} | "
                f"{_paired(e2e, '3.1.1', e2e['daemon_vs_bare_mqtt311'])} |"
            )
        if e2e.get("start_to_online_s") is not None:
            lines.append(f"| start to READY | {_n(e2e['start_to_online_s'], '.2f')} s | | |")
        lines += [
            f"| latency publish → forecast at {_n(lat['achieved_rate_per_s'])} readings/s | "
            f"p50 {_n(lat['p50_ms'], '.0f')} ms, p99 {_n(lat['p99_ms'], '.0f')} ms | | |",
            f"| readings lost | {e2e['readings_lost']} of {e2e['readings_sent']:,} | | |",
        ]
    scaling = report.get("scaling")
    if scaling:
        state, skip = scaling["broker_state"], scaling["other_shard"]
        lines += [
            f"| readings/s with `broker_state` (state published every "
            f"{_n(state['snapshot_interval_s'], 'g')} s), {scaling['sensors']:,} sensors | "
            f"{_n(state['rate_per_s'])}; {_n(state['bytes_per_sensor'])} bytes per sensor's "
            f"state | {_n(scaling['plain_rate_per_s'])} (plain daemon) | "
            f"{_n(state['vs_plain'], '.2f')}x |",
            f"| readings/s of another shard's sensors, skipped | {_n(skip['rate_per_s'])} | "
            f"{_n(scaling['plain_rate_per_s'])} (plain daemon) | {_n(skip['vs_plain'], '.2f')}x |",
        ]
    if memory:
        sizes = " / ".join(f"{r['sensors']:,}" for r in memory["rows"])
        rss = " / ".join(f"{r['rss_mib']:.1f}" for r in memory["rows"])
        lines.append(
            f"| daemon resident memory, idle / {sizes} sensors | "
            f"{memory['idle_rss_mib']:.1f} / {rss} MiB | | |"
        )
    soak = report.get("soak")
    if soak and soak["rows"]:
        first, last = soak["rows"][0], soak["rows"][-1]
        lines.append(
            f"| {soak['months']} simulated months of `edge-lstm run` with its state and log, "
            f"{soak['sensors']:,} sensors: RSS after month 1 / month {last['month']}; readings "
            f"lost | {first['rss_bytes'] / 2**20:.1f} / {last['rss_bytes'] / 2**20:.1f} MiB; "
            f"{soak['readings_lost']} of {last['readings_sent']:,} | | |"
        )
    return lines


def blocks(report: dict[str, Any], measured_at: str) -> dict[Path, dict[str, list[str]]]:
    run = [run_line(report, measured_at)]
    table: Callable[[dict[str, Any]], list[str]]
    doc: dict[str, list[str]] = {"bench-run": run}
    for name, table in (
        ("bench-engine", engine_table),
        ("bench-inputs", inputs_table),
        ("bench-e2e", e2e_table),
        ("bench-memory", memory_table),
        ("bench-soak", soak_table),
    ):
        doc[name] = table(report)
    return {README: {"bench-readme": [*run, "", *readme_table(report)]}, BENCH_DOC: doc}


def replace_block(text: str, name: str, lines: list[str]) -> str:
    begin, end = f"<!-- figures:{name} -->", f"<!-- /figures:{name} -->"
    if begin not in text or end not in text:
        raise SystemExit(f"marker {begin} ... {end} not found")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return head + begin + "\n" + "\n".join(lines) + "\n" + end + tail


def _companion_words(model: dict[str, Any], short: bool = False) -> str:
    """How the report describes the seasonal model's companion ('' without one)."""
    companion = model.get("companion")
    if not companion:
        return ""
    days = len(companion["lags"])
    if short:
        return f" and a {days}-day companion"
    return (
        f", and a companion of the last {days} days' changes blended at every step (a history "
        f"of {companion['history_len']} values a sensor)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("report", type=Path, help="the JSON of edge-lstm bench --output")
    parser.add_argument("--check", action="store_true", help="exit 1 if the docs differ")
    args = parser.parse_args()
    report = json.loads(args.report.read_text(encoding="utf-8"))
    measured_at = report.get("started_at") or datetime.fromtimestamp(
        args.report.stat().st_mtime, tz=timezone.utc
    ).strftime("%Y-%m-%d %H:%M UTC (report written)")
    stale = False
    for path, named in blocks(report, measured_at).items():
        text = path.read_text(encoding="utf-8")
        new = text
        for name, lines in named.items():
            new = replace_block(new, name, lines)
        if new != text:
            stale = True
            if not args.check:
                path.write_text(new, encoding="utf-8")
                print(f"updated {path.relative_to(ROOT)}")
    if args.check and stale:
        print("docs differ from the report: run python scripts/bench_figures.py REPORT")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
