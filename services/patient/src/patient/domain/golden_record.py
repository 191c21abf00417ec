"""The golden record of a linked set: the best value of each field, and which records gave it.

"Best" is the value most records of the set agree on (compared after normalisation); a tie goes
to the most recently updated record, then to the lower id, so the choice is deterministic and a
replayed read model computes the same golden record.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from patient.domain.demographics import (
    AdministrativeSex,
    PatientAddress,
    PatientDemographics,
    PatientName,
)
from patient.matching.normalize import compact, digits


@dataclass(frozen=True)
class MemberRecord:
    patient_id: str
    updated_at: datetime
    demographics: PatientDemographics
    forgotten: bool = False


@dataclass(frozen=True)
class GoldenRecord:
    golden_record_id: str
    member_patient_ids: tuple[str, ...]
    demographics: PatientDemographics
    sources: dict[str, tuple[str, ...]] = field(default_factory=dict)


def _name_key(name: PatientName) -> Hashable:
    return (tuple(compact(g) for g in name.given), compact(name.family))


_FIELDS: dict[str, tuple[Callable[[PatientDemographics], Any], Callable[[Any], Hashable]]] = {
    "name": (lambda d: d.name, _name_key),
    "birth_date": (lambda d: d.birth_date, lambda v: v),
    "sex": (lambda d: d.sex, lambda v: v),
    "address": (
        lambda d: d.address,
        lambda a: (tuple(compact(x) for x in a.lines), compact(a.city)),
    ),
    "phone": (lambda d: d.phone, digits),
    "email": (lambda d: d.email, lambda v: v.strip().casefold()),
}

_EMPTY: dict[str, Any] = {
    "name": PatientName(), "birth_date": "", "sex": AdministrativeSex.UNKNOWN,
    "address": PatientAddress(), "phone": "", "email": "",
}  # fmt: skip


def golden_record(members: Sequence[MemberRecord]) -> GoldenRecord:
    """Combine a linked set (its forgotten members contribute nothing)."""
    ids = tuple(sorted(m.patient_id for m in members))
    live = sorted(
        (m for m in members if not m.forgotten),
        key=lambda m: (m.updated_at, _descending(m.patient_id)),
        reverse=True,
    )
    chosen: dict[str, Any] = {}
    sources: dict[str, tuple[str, ...]] = {}
    for name, (value_of, key_of) in _FIELDS.items():
        groups: dict[Hashable, list[MemberRecord]] = defaultdict(list)
        for member in live:
            value = value_of(member.demographics)
            if value != _EMPTY[name]:
                groups[key_of(value)].append(member)
        if groups:
            # max() keeps the first of equals, and `live` lists the most recent first.
            best = max(groups.values(), key=len)
            chosen[name] = value_of(best[0].demographics)
            sources[name] = tuple(sorted(m.patient_id for m in best))
    identifiers = {}
    for member in reversed(live):  # the most recent record's value per system wins
        for identifier in member.demographics.identifiers:
            identifiers[identifier.system] = identifier
    if identifiers:
        sources["identifiers"] = tuple(
            sorted(m.patient_id for m in live if m.demographics.identifiers)
        )
    demographics = replace(
        PatientDemographics(**chosen),
        identifiers=tuple(identifiers[s] for s in sorted(identifiers)),
    )
    return GoldenRecord(ids[0] if ids else "", ids, demographics, sources)


def _descending(text: str) -> tuple[int, ...]:
    # Sorted in reverse with the timestamp, so the lower id must sort higher to win ties.
    return tuple(-ord(c) for c in text)
