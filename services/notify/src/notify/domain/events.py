"""Clinical events as notify sees them: what a subscription can match, with no payload detail."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from notify.domain.subscription import Filter, Topic

# HL7 ObservationInterpretation codes that make a result abnormal.
ABNORMAL = frozenset({"L", "H", "LL", "HH", "A", "AA"})


@dataclass(frozen=True)
class ClinicalEvent:
    """One order or result event, with the facts filters look at.

    The facts come from the decrypted payloads (and, for order events that carry none, from
    the order as it was placed); they stay in memory and in notify's own index, never in logs.
    """

    topic: Topic
    event_id: str
    patient_id: str
    order_id: str
    result_id: str
    version: int
    occurred_at: datetime
    orderer: str = ""
    priority: str = ""
    loinc_codes: frozenset[str] = frozenset()
    abnormal: bool = False


def matches(event_filter: Filter, event: ClinicalEvent) -> bool:
    """Whether the event passes every non-empty field of the filter."""
    f = event_filter
    if f.patient_ids and event.patient_id not in f.patient_ids:
        return False
    if f.orderers and event.orderer not in f.orderers:
        return False
    if f.priorities and event.priority not in f.priorities:
        return False
    if f.loinc_codes and event.loinc_codes.isdisjoint(f.loinc_codes):
        return False
    is_result = event.topic in (Topic.RESULT_POSTED, Topic.RESULT_AMENDED)
    return not (f.abnormal_only and is_result and not event.abnormal)
