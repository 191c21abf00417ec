"""Where the append path spends its time: one extra append phase under cProfile.

Not part of the figures (the profiler slows everything down). Only this process's event loop
thread is profiled: gRPC's core, the broker and SQLite's C code show up as the calls into them.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import re
from collections import Counter
from pathlib import Path
from uuid import uuid4

from bench.append_path import counter_endpoint
from bench.load import Phase, command_requests, drive
from clinical_platform.eventlog.store import EventStoreConfig

_TOP = 25
# "<method 'execute' of 'sqlite3.Cursor' objects>", "<built-in method zstd.compress>"
_C_MODULE = re.compile(r"of '_?(\w+)|built-in method _?(\w+)\.")


async def profile_append(config: EventStoreConfig, phase: Phase, *, dump: Path) -> str:
    """Profile the served append path (store start-up excluded); dump the raw stats to `dump`.

    Returns own time by code owner, then the top functions by own and by cumulative time.
    """
    requests = command_requests([uuid4() for _ in range(phase.concurrency)])
    profiler = cProfile.Profile()
    async with counter_endpoint(config) as call:
        profiler.enable()
        try:
            await drive(call, requests, phase)
        finally:
            profiler.disable()
    dump.parent.mkdir(parents=True, exist_ok=True)
    profiler.dump_stats(dump)
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    out.write(_own_time_by_owner(stats))
    stats.strip_dirs()
    stats.sort_stats(pstats.SortKey.TIME).print_stats(_TOP)
    stats.sort_stats(pstats.SortKey.CUMULATIVE).print_stats(_TOP)
    return out.getvalue()


def _own_time_by_owner(stats: pstats.Stats) -> str:
    own: Counter[str] = Counter()
    # pstats keeps (file, line, function) -> (primitive calls, calls, own time, cumulative, ...).
    for (filename, _line, function), row in stats.stats.items():  # type: ignore[attr-defined]
        own[_owner(filename, function)] += row[2]
    total = sum(own.values())
    lines = [f"own time by code owner (of {total:.2f} s profiled):"]
    lines += [
        f"  {seconds / total:6.1%}  {seconds:6.2f} s  {owner}"
        for owner, seconds in own.most_common(_TOP)
    ]
    return "\n".join(lines) + "\n\n"


def _owner(filename: str, function: str) -> str:
    """Our modules by file, installed packages by name, the standard library by module."""
    if filename == "~":
        match = _C_MODULE.search(function)
        return f"C: {next(filter(None, match.groups()))}" if match else "C: builtins"
    path = Path(filename)
    if "site-packages" in path.parts:
        return path.parts[path.parts.index("site-packages") + 1]
    for root in ("clinical_platform", "bench"):
        if root in path.parts:
            return "/".join(path.parts[path.parts.index(root) :])
    if "asyncio" in path.parts:
        return "stdlib: asyncio"
    return f"stdlib: {path.stem}"
