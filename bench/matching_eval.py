"""``python -m bench.matching_eval``: link quality on FEBRL1, through the real RegisterPatient path.

Feeds the FEBRL1 records (1000 records, 500 true duplicate pairs) one at a time to
RegisterPatient over gRPC, served in-process by the real application on the real event store,
read model and key service, with the identifiers (soc_sec_id) withheld. After each
registration it reads the record back with GetPatient(min_version), as a client would, so the
next registration's blocking sees it. A predicted link is a MATCH decision between two records;
precision, recall and F1 compare those with the data set's true pairs.

``--records N`` (``make eval-matching QUICK=1``) registers a subset: the records of the first
N/2 true pairs, in the data set's order. It checks the figures against the FEBRL1 targets and
exits 1 when one is missed. Servers come from KAFKA_BOOTSTRAP_SERVERS, MONGODB_URL, VAULT_ADDR
and VAULT_TOKEN when all four are set, otherwise the native servers are started. ``--calibrate``
instead prints the EM estimates of m and u over blocked FEBRL1 pairs (no servers needed);
docs/matching.md explains.

``--consistency`` registers FEBRL2 (5000 records, duplicates up to 5 per person) through the
service without reading back, as a migration does, runs the matcher offline over the same
records in the same order, and exits 1 unless the two agree (precision and recall within 0.005).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from clinical_testing.endpoints import ServerEndpoints

from bench.matching.calibrate import calibrate
from bench.matching.consistency import inconsistencies, match_offline
from bench.matching.febrl import febrl1, febrl2, pairs_subset
from bench.matching.register import Figures, register_all
from bench.servers import running_servers
from patient.matching.matcher import Thresholds
from patient.settings import PatientSettings

REPO_ROOT = Path(__file__).resolve().parent.parent
# What the matcher must reach on FEBRL1 (docs/matching.md): a wrong automatic link merges two
# people's records, so precision comes first.
PRECISION_TARGET = 0.999
F1_TARGET = 0.99
QUICK_RECORDS = 200


def missed_targets(figures: Figures) -> list[str]:
    """The targets the figures fall short of (none: all met)."""
    missed = []
    if figures.precision < PRECISION_TARGET:
        missed.append(f"precision {figures.precision:.4f} < {PRECISION_TARGET}")
    if figures.f1 < F1_TARGET:
        missed.append(f"F1 {figures.f1:.4f} < {F1_TARGET}")
    return missed


async def evaluate(settings: PatientSettings, records: int | None = None) -> Figures:
    """Register FEBRL1 (or the records of its first ``records`` / 2 true pairs) and score it."""
    dataset, truth = febrl1()
    if records is not None:
        dataset, truth = pairs_subset(dataset, truth, records)
    return await register_all(settings, dataset, truth)


async def check_consistency(settings: PatientSettings) -> list[str]:
    """FEBRL2 through the service without read-back, and offline; print both; the strays."""
    dataset, truth = febrl2()
    service = await register_all(
        settings, dataset, truth, read_back=False,
        label="FEBRL2 through RegisterPatient, no read-back",
    )  # fmt: skip
    thresholds = Thresholds(match=settings.match_threshold, review=settings.review_threshold)
    offline = match_offline(dataset, truth, thresholds)
    print(service.render())
    print(offline.render())
    print(f"  links only the service made {len(service.links - offline.links)}, "
          f"only offline {len(offline.links - service.links)}")  # fmt: skip
    return inconsistencies(service, offline)


@contextmanager
def eval_settings(endpoints: ServerEndpoints) -> Iterator[PatientSettings]:
    """Patient settings on ``endpoints``, with a database and state of this run's own."""
    run = uuid.uuid4().hex[:10]
    with tempfile.TemporaryDirectory(prefix="patient-eval-") as state_dir:
        yield PatientSettings.model_validate(
            {**endpoints.as_env(), "grpc_port": 0, "state_dir": state_dir,
             "event_partitions": 3, "mongodb_database": f"eval_{run}",
             "ACCESS_AUDIT_TOPIC": f"clinical.audit.access-eval.{run}",
             "ACCESS_AUDIT_PARTITIONS": 1}
        )  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calibrate", action="store_true", help="print EM estimates of m and u")
    parser.add_argument(
        "--records", type=int, default=None, metavar="N",
        help=f"register the records of the first N/2 true pairs and check the targets "
        f"(make eval-matching QUICK=1 registers {QUICK_RECORDS})",
    )  # fmt: skip
    parser.add_argument(
        "--consistency", action="store_true",
        help="FEBRL2 through the service without read-back gives the offline matcher's links",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.calibrate:
        calibrate()
        return
    if args.consistency:
        with running_servers(REPO_ROOT) as endpoints, eval_settings(endpoints) as settings:
            strays = asyncio.run(check_consistency(settings))
        if strays:
            print(f"  inconsistent with the offline matcher: {'; '.join(strays)}", file=sys.stderr)
            sys.exit(1)
        print("  consistent with the offline matcher")
        return
    with running_servers(REPO_ROOT) as endpoints, eval_settings(endpoints) as settings:
        figures = asyncio.run(evaluate(settings, args.records))
    print(figures.render())
    if args.records is None:
        return
    missed = missed_targets(figures)
    if missed:
        print(f"  FEBRL1 targets missed: {'; '.join(missed)}", file=sys.stderr)
        sys.exit(1)
    print(f"  FEBRL1 targets met: precision >= {PRECISION_TARGET}, F1 >= {F1_TARGET}")


if __name__ == "__main__":
    main()
