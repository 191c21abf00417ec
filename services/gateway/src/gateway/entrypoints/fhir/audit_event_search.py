"""AuditEvent's search parameters as an ExportAuditEvents request: ``patient`` (required),
``date`` (at most two: a lower and an upper bound), ``agent`` (a user's subject, which the
gateway applies to each page), ``_count`` and ``_page_token``."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta

from gateway.entrypoints.fhir.listing import (
    ListQuery,
    invalid,
    list_query,
    patient_reference,
)
from gateway.entrypoints.fhir.outcomes import FhirError

_DAY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_INSTANT = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})$"
)
_DATE_FORMS = ("date: give [ge|gt|le|lt|eq]YYYY-MM-DD, or ge, gt, le or lt and an instant "
               "with its zone")  # fmt: skip
# The users' subjects (OIDC sub): printable, no separators; never shown back.
_SUBJECT = re.compile(r"^[A-Za-z0-9._@:-]{1,255}$")
_ONE_INSTANT = timedelta(microseconds=1)


@dataclass(frozen=True)
class Bound:
    """One end of the ``date`` window: ``since`` (inclusive) or ``until`` (exclusive)."""

    end: str  # "since" or "until"
    at: datetime


def date_bounds(value: str) -> tuple[Bound, ...]:
    """The window ends one ``date`` value sets; FhirError 400 when it is none we read."""
    prefix, text = (value[:2], value[2:]) if value[:2].isalpha() else ("eq", value)
    if prefix not in {"eq", "ge", "gt", "le", "lt"}:
        raise invalid(_DATE_FORMS)
    if _DAY.match(text):
        try:
            start = datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
        except ValueError:
            raise invalid(_DATE_FORMS) from None
        after = start + timedelta(days=1)
        return {
            "eq": (Bound("since", start), Bound("until", after)),
            "ge": (Bound("since", start),), "gt": (Bound("since", after),),
            "le": (Bound("until", after),), "lt": (Bound("until", start),),
        }[prefix]  # fmt: skip
    if prefix == "eq" or not _INSTANT.match(text):
        raise invalid(_DATE_FORMS)
    try:
        # Python reads 6 fractional digits at most: the rest is below the trail's resolution.
        at = datetime.fromisoformat(re.sub(r"(\.[0-9]{6})[0-9]+", r"\1", text))
    except ValueError:
        raise invalid(_DATE_FORMS) from None
    return {
        "ge": (Bound("since", at),), "gt": (Bound("since", at + _ONE_INSTANT),),
        "le": (Bound("until", at + _ONE_INSTANT),), "lt": (Bound("until", at),),
    }[prefix]  # fmt: skip


def audit_event_query(params: Sequence[tuple[str, str]], *, strict: bool) -> ListQuery:
    """The ExportAuditEvents request of a search, ``agent`` as a filter of each page."""
    dates = [v for k, v in params if k == "date"]
    if len(dates) > 2:  # a lower and an upper bound
        raise invalid("date: at most two values, a lower and an upper bound")
    query = list_query([(k, v) for k, v in params if k != "date"],
                       {"patient": patient_reference("patient")}, strict=strict,
                       filters=("agent",))  # fmt: skip
    if "patient_id" not in query.values:
        raise FhirError.of(400, "required", "patient is required: Patient/<id>",
                           expression=("patient",))  # fmt: skip
    if not _SUBJECT.match(query.filters.get("agent", "-")):
        raise invalid("agent: give a user's subject (the token's sub)")
    period: dict[str, datetime] = {}
    for bound in (b for value in dates for b in date_bounds(value)):
        if bound.end in period:
            raise invalid("date: one lower and one upper bound at most")
        period[bound.end] = bound.at
    if "since" in period and "until" in period and period["since"] >= period["until"]:
        raise invalid("date: the lower bound must be before the upper one")
    values = dict(query.values)
    if period:
        values["period"] = {end: _timestamp(at) for end, at in period.items()}
    applied = (*query.applied, *(("date", v) for v in dates))
    return replace(query, values=values, applied=applied)


def _timestamp(at: datetime) -> str:
    """An instant as protobuf's JSON Timestamp (UTC, ``Z``)."""
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")
