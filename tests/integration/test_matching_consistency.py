"""Matching through the running service sees every registration committed before it.

FEBRL2 (5000 records, up to five duplicates of one person, typos) is registered through the
real patient service one record after another without reading anything back, as a migration
does, while the read model's projection runs behind. The links the service records must be the
matcher's links offline over the same records in the same order: precision and recall within
0.005 (``python -m bench.matching_eval --consistency``, run as the Makefile would run it).
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
TOLERANCE = 0.005
FIGURES = re.compile(
    r"(?P<label>FEBRL2 through RegisterPatient, no read-back|the matcher offline): "
    r"(?P<records>\d+) records.*?precision (?P<precision>[\d.]+)\s+recall (?P<recall>[\d.]+)",
    re.DOTALL,
)


@pytest.mark.timeout(900)
def test_registering_without_read_back_links_as_the_matcher_does_offline(
    servers: ServerEndpoints,
) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bench.matching_eval", "--consistency"],
        cwd=REPO_ROOT, env={**os.environ, **servers.as_env()}, capture_output=True, text=True,
        timeout=840, check=False,
    )  # fmt: skip

    assert run.returncode == 0, run.stdout + run.stderr
    figures = {found["label"]: found for found in FIGURES.finditer(run.stdout)}
    service = figures["FEBRL2 through RegisterPatient, no read-back"]
    offline = figures["the matcher offline"]
    assert int(service["records"]) == int(offline["records"]) >= 4900
    for name in ("precision", "recall"):
        assert abs(float(service[name]) - float(offline[name])) <= TOLERANCE, run.stdout
    assert float(offline["precision"]) >= 0.999, run.stdout
    assert "consistent with the offline matcher" in run.stdout
