"""``_format`` and ``Accept``: the gateway speaks FHIR JSON only.

``_format`` wins over ``Accept`` (a browser's link cannot set headers): ``json``,
``application/fhir+json`` or ``application/json`` are served, anything else (``xml``,
``application/fhir+xml``, ``ttl``, ``html``) is a 406 OperationOutcome. Without ``_format``, an
``Accept`` that names no JSON type (nor ``*/*``) is a 406 too.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.entrypoints.fhir.outcomes import FhirError

JSON_TYPES = frozenset({"application/fhir+json", "application/json", "application/json+fhir"})
JSON_FORMATS = JSON_TYPES | {"json"}
_ANY = frozenset({"*/*", "application/*"})


def check_format(params: Sequence[tuple[str, str]], accept: str) -> None:
    """Nothing when the answer can be JSON; FhirError 406 (400 for ``_format`` twice)."""
    formats = [value for name, value in params if name == "_format"]
    if len(formats) > 1:
        raise FhirError.of(400, "invalid", "_format is given twice: one value",
                           expression=("_format",))  # fmt: skip
    if formats:
        if _media_type(formats[0]) not in JSON_FORMATS:
            raise FhirError.of(406, "not-supported", "_format: only json is served",
                               expression=("_format",))  # fmt: skip
        return
    if not accepts_json(accept):
        raise FhirError.of(406, "not-supported", "only application/fhir+json is served")


def accepts_json(accept: str) -> bool:
    """Whether an ``Accept`` header allows a JSON answer (no header allows anything)."""
    if not accept.strip():
        return True
    offered = {_media_type(part) for part in accept.split(",")}
    return bool(offered & (JSON_TYPES | _ANY))


def _media_type(value: str) -> str:
    # An unencoded "+" in a query string arrives as a space: application/fhir json.
    return value.split(";", maxsplit=1)[0].strip().lower().replace(" ", "+")
