"""``Patient.link`` on update: linking and unlinking records of the same person.

The index records one kind of link, "these two records are the same person", so a record's
links read as ``seealso``, and an update changes them by sending the links it should have:

- a ``link`` (type ``seealso``) to a record not linked yet: LinkPatients;
- a linked record left out of ``link``: UnlinkPatients;
- one such change per update, with the demographics as they are (else 422, nothing written),
  since the two records' link and the demographics are separate writes that cannot be one;
- other types (``replaced-by``, ``replaces``, ``refer``) are refused (422): the index does not
  record which record replaces which.

Links are the registrar's (the service refuses anyone else: 403); a link is recorded on the pair's
anchor, the record with the lower id, so the version it makes may be the other record's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.entrypoints.fhir.listing import RECORD_ID
from gateway.entrypoints.fhir.outcomes import FhirError

LINK_TYPE = "seealso"
UNLINK_REASON = "unlinked by an update of Patient.link"


@dataclass(frozen=True)
class LinkChange:
    """One link to add (``linked``) or remove (not ``linked``) between the record and another."""

    other_patient_id: str
    linked: bool


def _refused(diagnostics: str, expression: str) -> FhirError:
    return FhirError.of(422, "processing", diagnostics, expression=(expression,))


def wanted_links(resource: Mapping[str, Any], patient_id: str) -> set[str]:
    """The ids of the records ``resource.link`` names; FhirError 422 for a link not kept."""
    wanted: set[str] = set()
    links: Sequence[Mapping[str, Any]] = resource.get("link") or []
    for index, link in enumerate(links):
        where = f"Patient.link[{index}]"
        if link.get("type") != LINK_TYPE:
            raise _refused(f"only {LINK_TYPE} links are kept: the index records that two "
                           "records are the same person, not which replaces which",
                           f"{where}.type")  # fmt: skip
        reference = str((link.get("other") or {}).get("reference", ""))
        kind, _, other = reference.partition("/")
        if kind != "Patient" or not RECORD_ID.match(other) or other == patient_id:
            raise _refused("other must reference another Patient: Patient/<id>",
                           f"{where}.other")  # fmt: skip
        wanted.add(other)
    return wanted


def link_change(current: Sequence[str], wanted: set[str]) -> LinkChange | None:
    """The one change from ``current`` to ``wanted`` links; None when they are the same;
    FhirError 422 for more than one."""
    added, removed = sorted(wanted - set(current)), sorted(set(current) - wanted)
    changes = [LinkChange(p, linked=True) for p in added]
    changes += [LinkChange(p, linked=False) for p in removed]
    if len(changes) > 1:
        raise _refused("change one link per update (add or remove one)", "Patient.link")
    return changes[0] if changes else None
