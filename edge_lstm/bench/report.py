"""What a benchmark figure is only meaningful with: the machine, the interpreter, the versions."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any


def cpu_model() -> str:
    """The CPU's marketing name (x86 ``model name``, Raspberry Pi ``Model``), else the arch."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() not in fields:
            fields[key.strip()] = value.strip()
    # A Pi's /proc/cpuinfo has no "model name" for the SoC but names the board.
    for key in ("model name", "Model", "Hardware", "cpu model"):
        if fields.get(key):
            return fields[key]
    return platform.processor() or platform.machine()


def memory_total_bytes() -> int | None:
    """Physical memory from /proc/meminfo, or None where that does not exist."""
    try:
        for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def package_version(name: str) -> str | None:
    """The installed distribution's version, or None."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


_BACKEND_DISTS = {
    "ai_edge_litert": "ai-edge-litert",
    "tflite_runtime": "tflite-runtime",
    "tensorflow": "tensorflow",
}


def machine_info(backend: str | None = None) -> dict[str, Any]:
    """The machine and software a run measured, as JSON-able values."""
    from .. import __version__

    versions: dict[str, str | None] = {
        "edge-lstm": __version__,
        "python": platform.python_version(),
        "numpy": package_version("numpy"),
        "paho-mqtt": package_version("paho-mqtt"),
    }
    if backend is not None:
        dist = _BACKEND_DISTS.get(backend, backend)
        versions[dist] = package_version(dist) or (
            package_version("tensorflow-cpu") if backend == "tensorflow" else None
        )
    return {
        "cpu": cpu_model(),
        "arch": platform.machine(),
        "cores": os.cpu_count(),
        "memory_bytes": memory_total_bytes(),
        "os": f"{platform.system()} {platform.release()}",
        "python_implementation": sys.implementation.name,
        "backend": backend,
        "versions": versions,
    }


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages, or None where the OS has none."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator`` or None when either is missing or the denominator is 0."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator
