"""The matcher offline over the same records in the same order: what the service must match.

Offline, each record is assessed against an index holding every record before it, exactly as
the service's blocking index holds every committed registration. The service's links must be
the same (precision and recall within ``TOLERANCE`` of the offline run's).
"""

from __future__ import annotations

import time
import uuid

from bench.matching.febrl import Pair, Records
from bench.matching.register import Figures
from patient.domain.assessment import MatchGrade
from patient.matching.blocking import blocking_keys
from patient.matching.candidate_index import CandidateIndex
from patient.matching.matcher import Matcher, Thresholds
from patient.matching.record import match_record

TOLERANCE = 0.005


def match_offline(records: Records, truth: set[Pair], thresholds: Thresholds) -> Figures:
    """Register ``records`` in order into an in-memory index; a MATCH is a predicted link."""
    matcher = Matcher(thresholds=thresholds)
    index = CandidateIndex()
    record_of: dict[uuid.UUID, str] = {}
    predicted: set[Pair] = set()
    outcomes: dict[str, int] = {}
    started = time.perf_counter()
    for rec_id, demographics in records.items():
        patient_id = uuid.uuid4()
        candidates = index.lookup(blocking_keys(match_record(demographics)))
        assessment = matcher.assess(demographics, candidates)
        outcomes[assessment.outcome.name] = outcomes.get(assessment.outcome.name, 0) + 1
        predicted |= {
            frozenset((rec_id, record_of[c.patient_id]))
            for c in assessment.candidates
            if c.grade is MatchGrade.MATCH
        }
        index.record(patient_id, 1, demographics)
        record_of[patient_id] = rec_id
    return Figures(
        records=len(records), true_pairs=len(truth), predicted=len(predicted),
        true_positives=len(predicted & truth), outcomes=outcomes, queued=0,
        seconds=time.perf_counter() - started, links=frozenset(predicted),
        label="the matcher offline",
    )  # fmt: skip


def inconsistencies(service: Figures, offline: Figures) -> list[str]:
    """How the service's links stray from the offline run's beyond the tolerance (none: same)."""
    missed = []
    for name in ("precision", "recall"):
        ours, theirs = getattr(service, name), getattr(offline, name)
        if abs(ours - theirs) > TOLERANCE:
            missed.append(f"{name} {ours:.4f} vs offline {theirs:.4f}")
    return missed
