"""The search parameters of ServiceRequest, DiagnosticReport and Observation that their services
apply (so every page is full): ``code`` (a LOINC token), a date (``authored``, ``date``) with at
most a lower and an upper bound, and ``status``.

A token is ``code`` (any system), ``system|code`` or ``|code`` (no system). The services hold
LOINC codes only, so a token of another system (or of none) matches no record: it is sent as
it is, a code no record has, and the service still decides who may search.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from gateway.entrypoints.fhir.audit_event_search import date_bounds
from gateway.entrypoints.fhir.listing import Criterion, ListQuery, list_query
from gateway.entrypoints.fhir.outcomes import FhirError

LOINC = "http://loinc.org"
_TOKEN = re.compile(r"^(?:([^|]*)\|)?([^|]+)$")
# A LOINC code (its check digit included), as the services hold them.
_LOINC_CODE = re.compile(r"^[0-9]{1,7}-[0-9]$")


def invalid_parameter(parameter: str, diagnostics: str) -> FhirError:
    """400 naming the parameter in ``expression``."""
    return FhirError.of(400, "invalid", f"{parameter}: {diagnostics}", expression=(parameter,))


def token(parameter: str, value: str) -> tuple[str | None, str]:
    """A token parameter's (system, code): None for any system, "" for none."""
    match = _TOKEN.match(value)
    if not match:
        raise invalid_parameter(parameter, "give a code, system|code or |code")
    return match[1], match[2]


def loinc_code(parameter: str, field: str) -> Criterion:
    """``code``: a LOINC token as the List request's ``field`` (a list of codes)."""

    def criterion(value: str) -> Mapping[str, Any]:
        system, code = token(parameter, value)
        if system not in (None, LOINC) or not _LOINC_CODE.match(code):
            # No record is coded so: a code none has (LOINC codes hold no "|" nor letters).
            return {field: ["|"]}
        return {field: [code]}

    return criterion


def one_of(parameter: str, field: str, values: Mapping[str, str]) -> Criterion:
    """A code of a fixed set (``status``) as the List request's ``field`` (a list of enums)."""

    def criterion(value: str) -> Mapping[str, Any]:
        if value not in values:
            raise invalid_parameter(parameter, f"give one of {', '.join(values)}")
        return {field: [values[value]]}

    return criterion


def dated_query(params: Sequence[tuple[str, str]], criteria: Mapping[str, Criterion], *,
                dated: str, window: tuple[str, str], strict: bool,
                filters: Collection[str] = ()) -> ListQuery:  # fmt: skip
    """`list_query` with the date parameter ``dated`` as the List request's ``window`` fields
    (inclusive start, exclusive end): at most two values, one lower and one upper bound, each
    a day (``YYYY-MM-DD``, UTC) or an instant with its zone, prefixed ``ge``, ``gt``, ``le``,
    ``lt`` or (a day only) ``eq``; a 400 naming ``dated`` for anything else."""
    dates = [value for name, value in params if name == dated]
    rest = [(name, value) for name, value in params if name != dated]
    query = list_query(rest, criteria, strict=strict, filters=tuple(filters))
    if not dates:
        return query
    if len(dates) > 2:
        raise invalid_parameter(dated, "at most two values, a lower and an upper bound")
    period: dict[str, datetime] = {}
    for value in dates:
        try:
            bounds = date_bounds(value)
        except FhirError:
            raise invalid_parameter(dated, "give [ge|gt|le|lt|eq]YYYY-MM-DD, or ge, gt, le or "
                                    "lt and an instant with its zone") from None  # fmt: skip
        for bound in bounds:
            if bound.end in period:
                raise invalid_parameter(dated, "one lower and one upper bound at most")
            period[bound.end] = bound.at
    if "since" in period and "until" in period and period["since"] >= period["until"]:
        raise invalid_parameter(dated, "the lower bound must be before the upper one")
    start, end = window
    values = dict(query.values)
    for field, end_name in ((start, "since"), (end, "until")):
        if end_name in period:
            values[field] = period[end_name].astimezone(UTC).isoformat().replace("+00:00", "Z")
    return replace(query, values=values, applied=(*query.applied, *((dated, v) for v in dates)))
