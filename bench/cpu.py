"""Where the CPU went during a window: this loop's thread, and the whole machine.

On 2 cores the client, the server, the event store and the broker all compete, so a ratio
means little without knowing whether the machine had any CPU left.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

_PROC_STAT = Path("/proc/stat")
# /proc/stat's first line: cpu user nice system idle iowait irq softirq steal ...
_IDLE_COLUMNS = (3, 4)


@dataclass(frozen=True)
class CpuReading:
    wall_s: float
    thread_s: float
    machine: tuple[int, int] | None
    """Busy and total jiffies of all cores since boot; None where /proc/stat does not exist."""


def read_cpu() -> CpuReading:
    """Take a reading on the event loop's thread (its own CPU time is the loop's)."""
    return CpuReading(time.perf_counter(), time.thread_time(), _machine_jiffies())


@dataclass(frozen=True)
class CpuUse:
    wall_s: float
    loop_cpu_s: float
    """CPU time of the loop's thread: client, server and event store code alike."""
    machine_busy: float
    """The share of all cores' time spent busy (any process); near 1 the machine is saturated."""


def cpu_use(start: CpuReading, end: CpuReading) -> CpuUse:
    wall_s = end.wall_s - start.wall_s
    machine_busy = float("nan")
    if start.machine is not None and end.machine is not None:
        busy = end.machine[0] - start.machine[0]
        total = end.machine[1] - start.machine[1]
        machine_busy = busy / total if total else float("nan")
    return CpuUse(wall_s, end.thread_s - start.thread_s, machine_busy)


def _machine_jiffies() -> tuple[int, int] | None:
    try:
        first_line = _PROC_STAT.read_text().splitlines()[0]
    except OSError:
        return None
    jiffies = [int(column) for column in first_line.split()[1:]]
    total = sum(jiffies[:8])  # guest time is already counted in user time
    idle = sum(jiffies[column] for column in _IDLE_COLUMNS)
    return total - idle, total
