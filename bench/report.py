"""The figures of one run: a table to read, ``name=value`` lines to grep, the machine used."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Figure:
    """One measured value; ``name`` is stable across runs, so scripts can grep for it."""

    name: str
    value: float
    unit: str
    digits: int
    about: str


def machine_line() -> str:
    """Cores, CPU model, Python, and the load when the run started (2 cores are easily shared)."""
    cores = os.cpu_count() or 0
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"machine: {cores} cores, {_cpu_model()}, "
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"load average {load:.2f} at start"
    )


def render(figures: list[Figure]) -> str:
    """A table, then one ``name=value`` line per figure."""
    name_width = max(len(figure.name) for figure in figures)
    values = [f"{figure.value:.{figure.digits}f}" for figure in figures]
    value_width = max(len(value) for value in values)
    unit_width = max(len(figure.unit) for figure in figures)
    rows = [
        f"{figure.name:<{name_width}}  {value:>{value_width}}  {figure.unit:<{unit_width}}  "
        f"{figure.about}"
        for figure, value in zip(figures, values, strict=True)
    ]
    lines = [f"{figure.name}={value}" for figure, value in zip(figures, values, strict=True)]
    return "\n".join([*rows, "", *lines])


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                return value.strip()
    return platform.processor() or "unknown CPU"
