"""``python -m bench.matching_eval --calibrate``: EM estimates of m and u over FEBRL1."""

from __future__ import annotations

import random

from bench.matching.febrl import febrl1
from patient.matching.blocking import blocking_keys
from patient.matching.calibration import estimate, level_frequencies
from patient.matching.matcher import compare_records
from patient.matching.model import DEFAULT_MODEL
from patient.matching.record import match_record


def calibrate() -> None:
    """EM estimates over FEBRL1's blocked pairs, u fixed from random pairs; print the table."""
    records, _ = febrl1()
    features = {rec_id: match_record(d) for rec_id, d in records.items()}
    seen: dict[str, list[str]] = {}
    blocked = set()
    for rec_id, record in features.items():
        for key in blocking_keys(record):
            blocked |= {frozenset((rec_id, other)) for other in seen.get(key, [])}
            seen.setdefault(key, []).append(rec_id)
    rng = random.Random(7)  # noqa: S311 - a reproducible sample, not a secret
    ids = list(features)
    sample = (rng.sample(ids, 2) for _ in range(50_000))
    with_u = level_frequencies(
        (compare_records(features[a], features[b]) for a, b in sample), DEFAULT_MODEL
    )
    pairs = [compare_records(*(features[r] for r in pair)) for pair in blocked]
    result = estimate(pairs, with_u, match_share=0.5, fixed_u=True)
    share, rounds = result.match_share, result.iterations
    print(f"{len(pairs)} blocked pairs, match share {share:.3f}, {rounds} EM rounds")
    print(f"{'field':14} {'level':26} {'m':>8} {'u':>9} {'EM w':>7} {'shipped w':>9}")
    for field, model in result.model.items():
        for level, p in model.levels.items():
            shipped = DEFAULT_MODEL[field].levels[level].weight
            print(f"{field:14} {level:26} {p.m:8.4f} {p.u:9.5f} {p.weight:7.2f} {shipped:9.2f}")
