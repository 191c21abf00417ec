"""What one bench run was asked for (``python -m bench --help``)."""

from __future__ import annotations

import sys
from dataclasses import dataclass

from bench.load import Phase


@dataclass(frozen=True)
class Options:
    phase: Phase
    profile: bool
    notify_orders: int
    # A short run (small data sets) that checks every section works; its figures are not the
    # ones to quote.
    quick: bool
    sections: tuple[str, ...]


def progress(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)
