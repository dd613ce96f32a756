"""``edge-lstm bench``: engine, end-to-end and memory figures, baselines in the same run."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import EdgeLstmError, ModelError
from .common import BackendOption, ModelOption, broker_or, client_address, fail, json_safe

if TYPE_CHECKING:  # Rich is imported when a bar is shown: not in every command's process
    from .progress import SectionProgress

SECTIONS = ("engine", "inputs", "e2e", "memory", "soak", "scaling")
LOCAL_SECTIONS = ("engine", "inputs")  # the others need a broker


def bench(
    model: ModelOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    quick: Annotated[
        bool, typer.Option("--quick", help="Small counts and short runs (CI smoke test).")
    ] = False,
    only: Annotated[
        str | None,
        typer.Option(
            help=f"Comma-separated sections to run: {', '.join(SECTIONS)} (default: all)."
        ),
    ] = None,
    broker: Annotated[
        str | None, broker_or("e2e, memory, soak and scaling start a Mosquitto from the PATH")
    ] = None,
    backend: BackendOption = None,
    keras: Annotated[
        bool, typer.Option(help="Also time Keras predict when TensorFlow is installed.")
    ] = True,
    output: Annotated[Path | None, typer.Option(help="Also write the JSON report here.")] = None,
) -> None:
    """Measure sensor-steps/s, the cost of seasonal inputs, end-to-end readings/s and latency,
    daemon memory, and a simulated year of the daemon (soak). ``--model`` applies to engine,
    e2e, memory and soak; ``inputs`` always compares its two shipped same-size models."""
    import shutil

    from ..bench.report import load_average, machine_info
    from ..model.paths import default_model_path

    if broker is not None:
        client_address(broker)  # a bad address fails here, before anything starts
    sections = [s.strip() for s in only.split(",")] if only else list(SECTIONS)
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        fail(f"unknown section {unknown[0]!r} (choose from {', '.join(SECTIONS)})")
    model_path = model or default_model_path()
    say: Callable[[str], None] = (
        (lambda m: typer.echo(m, err=True)) if not as_json else (lambda m: None)
    )
    import time

    report: dict[str, Any] = {
        "quick": quick,
        "model": str(model_path),
        "command": _command_line(quick, only, model, broker, backend, keras, output, as_json),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    # A shared machine's load moves every figure: the run says what it ran beside.
    load_before = load_average()
    needs_broker = [s for s in sections if s not in LOCAL_SECTIONS]
    skipped: dict[str, str] = {}
    if needs_broker and broker is None and shutil.which("mosquitto") is None:
        for s in needs_broker:
            skipped[s] = "no --broker given and no mosquitto on the PATH"
        sections = [s for s in sections if s not in needs_broker]
    bar = None
    if not as_json and sys.stderr.isatty():
        from .progress import section_progress

        bar = section_progress(len(sections))
    if bar is not None:
        say = bar.say
    try:
        with bar or contextlib.nullcontext():
            _run_sections(sections, report, model_path, quick, backend, keras, broker, say, bar)
    except (EdgeLstmError, OSError) as exc:
        fail(str(exc))
    report["skipped"] = skipped
    measured = report.get("engine") or report.get("inputs") or {}
    report["machine"] = machine_info(measured.get("backend") or _daemon_backend(backend))
    report["load_average"] = {"before": load_before, "after": load_average()}
    text = json.dumps(json_safe(report), indent=2)
    if output is not None:
        output.write_text(text + "\n", encoding="utf-8")
    typer.echo(text if as_json else format_report(report))


def _daemon_backend(backend: str | None) -> str | None:
    """The backend the daemons of the broker sections load (they run no interpreter here)."""
    from ..model.runtime import resolve_backend

    try:
        return resolve_backend(backend)
    except ModelError:
        return None


def _command_line(
    quick: bool,
    only: str | None,
    model: Path | None,
    broker: str | None,
    backend: str | None,
    keras: bool,
    output: Path | None,
    as_json: bool,
) -> str:
    """The command that gives this run's options (recorded with its figures)."""
    import shlex

    args = ["edge-lstm", "bench"] + (["--quick"] if quick else [])
    for flag, value in (("--only", only), ("--model", model), ("--broker", broker),
                        ("--backend", backend), ("--output", output)):  # fmt: skip
        args += [flag, str(value)] if value is not None else []
    args += ([] if keras else ["--no-keras"]) + (["--json"] if as_json else [])
    return shlex.join(args)


def _run_sections(
    sections: list[str],
    report: dict[str, Any],
    model_path: Path,
    quick: bool,
    backend: str | None,
    keras: bool,
    broker: str | None,
    say: Callable[[str], None],
    bar: SectionProgress | None,
) -> None:
    for section in sections:
        if section == "engine":
            from ..bench.engine import FULL_COUNTS, QUICK_COUNTS, run_engine

            report["engine"] = run_engine(
                model_path,
                counts=QUICK_COUNTS if quick else FULL_COUNTS,
                backend=backend,
                min_time_s=0.05 if quick else 1.0,
                keras=keras,
                progress=say,
            )
        elif section == "inputs":
            from ..bench.inputs import FULL_COUNTS as COUNTS
            from ..bench.inputs import QUICK_COUNTS as FEW
            from ..bench.inputs import run_inputs

            report["inputs"] = (
                run_inputs(FEW, rounds=3, min_time_s=0.02, backend=backend, progress=say)
                if quick
                else run_inputs(COUNTS, backend=backend, progress=say)
            )
        elif section == "e2e":
            from ..bench.e2e import run_e2e

            report["e2e"] = (
                run_e2e(model_path, broker, 50, 4, 100.0, 1.0, say, repeats=2)
                if quick
                else run_e2e(model_path, broker, 1000, 20, 1000.0, 10.0, say)
            )
        elif section == "memory":
            from ..bench.memory import run_memory

            counts = (10, 100) if quick else (100, 10_000)
            report["memory"] = run_memory(model_path, broker, counts, say)
        elif section == "soak":
            from ..bench.soak import run_soak

            sensors, months = (10, 2) if quick else (100, 12)
            report["soak"] = run_soak(model_path, broker, sensors, months, say)
        elif section == "scaling":  # issue 13's costs (bench/scaling.py)
            from ..bench.scaling import run_scaling

            sizes = (50, 4) if quick else (1000, 20)
            report["scaling"] = run_scaling(model_path, broker, *sizes, progress=say)
        if bar is not None:
            bar.done(section)


def format_inputs(inputs: dict[str, Any]) -> list[str]:
    """The ``inputs`` table: CPU per sensor-step, seasonal / plain, per operation."""
    seasonal = inputs["models"]["seasonal"]
    lines = [
        f"inputs: CPU us per sensor-step, {inputs['models']['plain']['layers'][0]} without and "
        f"with lags/calendar/level{'/companion' if seasonal.get('companion') else ''} "
        f"(D={seasonal['input_width']}), median of "
        f"{inputs['rounds']} interleaved rounds:",
        f"{'sensors':>8}" + "".join(f"{op + ' plain':>16}{'seasonal':>10}{'ratio':>7}" for op in
                                    ("observe", "forecast", "cycle")),
    ]  # fmt: skip
    for r in inputs["rows"]:
        cells = "".join(
            f"{_num(r[f'{op}_plain_us'], ',.2f'):>16}{_num(r[f'{op}_seasonal_us'], ',.2f'):>10}"
            f"{_num(r[f'{op}_ratio'], '.2f'):>6}x"
            for op in ("observe", "forecast", "cycle")
        )
        lines.append(f"{r['sensors']:>8}{cells}")
    lines.append(
        f"  largest ratio {_num(inputs['max_ratio'], '.2f')}x (the issue's bound: "
        f"{inputs['limit']:g}x)"
    )
    return lines


def _num(value: object, fmt: str = ",.0f") -> str:
    return "-" if value is None else format(value, fmt)


def format_report(report: dict[str, Any]) -> str:
    """Human tables of whatever sections the report holds."""
    m = report["machine"]
    lines = [f"machine: {m['cpu']} ({m['arch']}, {m['cores']} cores), backend {m['backend']}"]
    load = report.get("load_average") or {}
    if load.get("before") and load.get("after"):
        lines.append(
            "load average (1, 5, 15 min): before "
            + ", ".join(f"{v:.2f}" for v in load["before"])
            + "; after "
            + ", ".join(f"{v:.2f}" for v in load["after"])
        )
    engine = report.get("engine")
    if engine:
        lines += [
            "",
            "engine, sensor-steps/s (horizon-12 forecasts/s):",
            f"{'sensors':>8}{'Forecaster':>12}{'step()':>12}{'loop':>10}{'Keras':>10}"
            f"{'vs loop':>9}{'forecasts':>11}",
        ]
        for r in engine["rows"]:
            lines.append(
                f"{r['sensors']:>8}{_num(r['forecaster_steps_per_s']):>12}"
                f"{_num(r['step_steps_per_s']):>12}{_num(r['loop_steps_per_s']):>10}"
                f"{_num(r['keras_steps_per_s']):>10}{_num(r['speedup_vs_loop'], '.1f'):>8}x"
                f"{_num(r['forecast_per_s']):>11}"
            )
    inputs = report.get("inputs")
    if inputs:
        lines += ["", *format_inputs(inputs)]
    e2e = report.get("e2e")
    if e2e:
        lat = e2e["latency"]
        lines += [
            "",
            f"end to end ({e2e['broker']}), {e2e['sensors']} sensors, horizon {e2e['horizon']}:",
            f"  edge-lstm run (MQTT {e2e['daemon_mqtt_version']}, QoS 1) "
            f"{_num(e2e['daemon']['rate_per_s'])} readings/s (medians of "
            f"{e2e['repeats']} runs, each after its own bare runs)",
            *(
                f"  bare paho subscriber, MQTT {v}, QoS 1: "
                f"{_num(e2e[f'bare_paho_{key}']['rate_per_s'])} readings/s, daemon "
                f"{_num(e2e[f'daemon_vs_bare_{key}'], '.0%')} of it"
                + (" (like for like)" if v == e2e["daemon_mqtt_version"] else "")
                for v, key in (("5", "mqtt5"), ("3.1.1", "mqtt311"))
            ),
            f"  latency at {_num(lat['achieved_rate_per_s'])} readings/s: "
            f"p50 {_num(lat['p50_ms'], '.1f')} ms, p99 {_num(lat['p99_ms'], '.1f')} ms",
            f"  readings lost: {e2e['readings_lost']} of {e2e['readings_sent']}",
            f"  start to online (READY): {_num(e2e.get('start_to_online_s'), '.2f')} s "
            f"(slowest {_num(e2e.get('start_to_online_max_s'), '.2f')} s)",
        ]
    memory = report.get("memory")
    if memory:
        lines += ["", f"daemon memory: idle {memory['idle_rss_mib']:.1f} MiB"]
        for r in memory["rows"]:
            lines.append(
                f"  {r['sensors']:>6} active sensors: {r['rss_mib']:.1f} MiB"
                f" (peak so far {r['peak_rss_mib']:.1f} MiB)"
            )
    if report.get("soak"):
        from ..bench.soak import format_soak

        lines += ["", *format_soak(report["soak"])]
    if report.get("scaling"):
        from ..bench.scaling import format_scaling

        lines += ["", *format_scaling(report["scaling"])]
    for section, why in report.get("skipped", {}).items():
        lines.append(f"skipped {section}: {why}")
    return "\n".join(lines)
