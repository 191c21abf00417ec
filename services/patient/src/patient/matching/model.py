"""The Fellegi-Sunter model: per field and comparator level, m and u probabilities.

m = P(level | the records are the same person), u = P(level | they are not). A level's weight
is log2(m/u); a record pair's score is the sum over fields whose values are both present
(a missing value weighs 0: it is no evidence either way). docs/matching.md says where each
number comes from: u from how often unrelated people agree by chance (name and date frequency
arguments), m from expected data-entry error rates, both then checked by EM over blocked pairs
of the FEBRL1 data (`python -m patient.evaluation --calibrate`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from patient.matching.comparators import (
    DISAGREE,
    EXACT,
    MOST,
    ONE_PART_DIFFERS,
    PHONETIC,
    SIMILAR,
    SOME,
    SWAPPED,
)

NAME_SWAPPED = "swapped_with_other_name"

MATCHER_VERSION = "fs-2025.1"


@dataclass(frozen=True)
class LevelProbabilities:
    m: float
    u: float

    @property
    def weight(self) -> float:
        return math.log2(self.m / self.u)


@dataclass(frozen=True)
class FieldModel:
    levels: Mapping[str, LevelProbabilities]

    def weight(self, level: str) -> float:
        return self.levels[level].weight


def _field(**levels: tuple[float, float]) -> FieldModel:
    return FieldModel({name: LevelProbabilities(m, u) for name, (m, u) in levels.items()})


MatchModel = Mapping[str, FieldModel]

DEFAULT_MODEL: MatchModel = {
    "given_name": _field(
        exact=(0.75, 0.004), similar=(0.1, 0.004), swapped_with_other_name=(0.05, 0.0002),
        phonetic=(0.01, 0.01), disagree=(0.09, 0.982),
    ),
    "family_name": _field(
        exact=(0.72, 0.002), similar=(0.15, 0.002), swapped_with_other_name=(0.05, 0.0002),
        phonetic=(0.01, 0.006), disagree=(0.07, 0.9898),
    ),
    "birth_date": _field(
        exact=(0.92, 0.0001), day_month_swapped=(0.01, 0.0001),
        one_part_differs=(0.02, 0.004), disagree=(0.05, 0.9958),
    ),
    "sex": _field(exact=(0.97, 0.5), disagree=(0.03, 0.5)),
    "street_number": _field(exact=(0.85, 0.02), disagree=(0.15, 0.98)),
    "address": _field(
        exact=(0.45, 0.0005), most=(0.45, 0.002), some=(0.05, 0.05), disagree=(0.05, 0.9475)
    ),
    "city": _field(exact=(0.78, 0.002), similar=(0.15, 0.001), disagree=(0.07, 0.997)),
    "district": _field(exact=(0.95, 0.2), disagree=(0.05, 0.8)),
    "postal_code": _field(exact=(0.83, 0.002), similar=(0.15, 0.015), disagree=(0.02, 0.983)),
    "phone": _field(exact=(0.9, 0.0001), disagree=(0.1, 0.9999)),
    "email": _field(exact=(0.9, 0.0001), disagree=(0.1, 0.9999)),
    "identifier": _field(exact=(0.97, 0.00001), disagree=(0.03, 0.99999)),
}  # fmt: skip

LEVELS_BY_FIELD: Mapping[str, tuple[str, ...]] = {
    field: tuple(model.levels) for field, model in DEFAULT_MODEL.items()
}

# Re-exported so callers name levels through the model they are weighed by.
__all__ = [
    "DEFAULT_MODEL", "DISAGREE", "EXACT", "MATCHER_VERSION", "MOST", "NAME_SWAPPED",
    "ONE_PART_DIFFERS", "PHONETIC", "SIMILAR", "SOME", "SWAPPED", "FieldModel",
    "LevelProbabilities", "MatchModel",
]  # fmt: skip
