"""PNG plots for ``evaluate`` and ``demo``; the only module that imports matplotlib (Agg)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import EdgeLstmError

if TYPE_CHECKING:
    from .evaluate import Evaluation

_COLORS = {
    "lstm": "tab:blue",
    "naive": "tab:orange",
    "seasonal_naive": "tab:green",
    "mstl": "tab:purple",
}
_LABELS = {"lstm": "LSTM", "naive": "naive", "seasonal_naive": "seasonal naive", "mstl": "MSTL"}


@dataclass
class Panel:
    """One sensor's actual values and forecast lines (epoch seconds, original units)."""

    name: str
    actual_t: list[float] = field(default_factory=list)
    actual_v: list[float] = field(default_factory=list)
    lines: dict[str, tuple[list[float], list[float]]] = field(default_factory=dict)


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as exc:
        raise EdgeLstmError(
            "plots need matplotlib: pip install 'edge-lstm[demo]' (or matplotlib)"
        ) from exc
    matplotlib.use("Agg")  # never a window: this runs on headless Pis and in CI
    import matplotlib.pyplot as plt

    return plt


def _dates(ts: Sequence[float]) -> list[datetime]:
    return [datetime.fromtimestamp(t, tz=timezone.utc) for t in ts]


def _draw_panel(ax: Any, panel: Panel) -> None:
    ax.plot(_dates(panel.actual_t), panel.actual_v, color="black", lw=1.4, label="actual")
    styles = ["-", "--", ":", "-."]
    for i, (label, (t, v)) in enumerate(panel.lines.items()):
        ax.plot(_dates(t), v, lw=1.0, ls=styles[i % len(styles)], label=label)
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator()  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    ax.set_title(panel.name, fontsize=10, loc="left")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)


def save_panels(
    panels: Sequence[Panel],
    path: Path,
    title: str,
    errors: Mapping[str, Sequence[float]] | None = None,
    unit: str = "",
) -> Path:
    """One row per panel (plus an error-per-horizon-step row when ``errors`` is given)."""
    plt = _pyplot()
    rows = len(panels) + (1 if errors else 0)
    fig, axes = plt.subplots(rows, 1, figsize=(12, 2.6 * rows + 0.6), squeeze=False)
    for ax, panel in zip(axes[:, 0], panels, strict=False):  # the error row has no panel
        _draw_panel(ax, panel)
        if unit:
            ax.set_ylabel(unit)
    if errors:
        ax = axes[-1, 0]
        for name, values in errors.items():
            steps = list(range(1, len(values) + 1))
            ax.plot(
                steps,
                values,
                marker="o",
                ms=3,
                color=_COLORS.get(name),
                label=_LABELS.get(name, name),
            )
        ax.set_xlabel("horizon step")
        ax.set_ylabel(f"MAE{f' ({unit})' if unit else ''}")
        ax.set_title("error per horizon step", fontsize=10, loc="left")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(path, dpi=110)
    except OSError as exc:
        raise EdgeLstmError(f"{path}: cannot write plot ({exc.strerror})") from exc
    finally:
        plt.close(fig)
    return path


def evaluation_panels(
    evaluation: Evaluation, horizons: Sequence[int] | None = None, window_steps: int | None = None
) -> list[Panel]:
    """Actual vs LSTM forecast at a few horizons over the last ``window_steps`` of each sensor."""
    h = evaluation.horizon
    shown = sorted(set(horizons or [1, (h + 1) // 2, h]) & set(range(1, h + 1)))
    window = window_steps or 7 * max(evaluation.season, 24)
    step_s = evaluation.step_s
    panels = []
    for sensor, trace in evaluation.traces.items():
        if not trace.issued:
            continue
        end = trace.issued[-1] + h
        start = end - window
        steps = [s for s in sorted(trace.steps) if start <= s <= end]
        panel = Panel(
            name=sensor,
            actual_t=[s * step_s for s in steps],
            actual_v=[float(trace.steps[s][0]) for s in steps],
        )
        for k in shown:
            pairs = [
                ((b + k) * step_s, float(f[k - 1][0]))
                for b, f in zip(trace.issued, trace.forecasts["lstm"], strict=True)
                if start <= b + k <= end
            ]
            panel.lines[f"LSTM, {k} step(s) ahead"] = ([p[0] for p in pairs], [p[1] for p in pairs])
        panels.append(panel)
    return panels


def plot_evaluation(evaluation: Evaluation, path: Path) -> Path:
    """The ``evaluate --plot`` figure: actual vs forecast per sensor, then MAE per step."""
    mae = {name: list(scores.mae) for name, scores in evaluation.methods.items()}
    title = f"{evaluation.model['name']}: MAE over {evaluation.horizon} steps — " + ", ".join(
        f"{_LABELS.get(n, n)} {s.mae_mean:.2f}" for n, s in evaluation.methods.items()
    )
    return save_panels(evaluation_panels(evaluation), path, title, errors=mae)
