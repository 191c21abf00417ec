"""``make eval-matching QUICK=1`` through the real patient service meets the FEBRL1 targets.

The short mode runs as the Makefile runs it (``python -m bench.matching_eval --records N`` from
the repository root), against the session's servers: every server variable is passed, Vault's
included, so PHI encryption works as in production.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from clinical_testing.endpoints import ServerEndpoints

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
RECORDS = 200  # as make eval-matching QUICK=1: the records of the first 100 true pairs
PRECISION_TARGET = 0.999
F1_TARGET = 0.99
FIGURES = re.compile(
    r"precision (?P<precision>[\d.]+)\s+recall (?P<recall>[\d.]+)\s+F1 (?P<f1>[\d.]+)"
)


@pytest.mark.timeout(900)
def test_the_short_evaluation_meets_the_febrl1_targets(servers: ServerEndpoints) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bench.matching_eval", "--records", str(RECORDS)],
        cwd=REPO_ROOT, env={**os.environ, **servers.as_env()}, capture_output=True, text=True,
        timeout=840, check=False,
    )  # fmt: skip

    assert run.returncode == 0, run.stdout + run.stderr
    assert f"{RECORDS} records, {RECORDS // 2} true pairs" in run.stdout
    figures = FIGURES.search(run.stdout)
    assert figures is not None, run.stdout
    assert float(figures["precision"]) >= PRECISION_TARGET
    assert float(figures["f1"]) >= F1_TARGET
    assert "targets met" in run.stdout
