"""Break-glass: reading a patient's records without a care relationship, declared per call.

A clinician in an emergency declares purpose of use ``ETREAT`` (HL7 PurposeOfUse: emergency
treatment; the value set has no ``BTG``) and says why in ``x-break-glass-reason``. The reason
is checked with the other request limits, before authentication or any I/O: one header,
1-500 printable characters, and only together with ``ETREAT``, so a malformed declaration is
INVALID_ARGUMENT with a field violation rather than a read that silently lacks it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from clinical_platform.grpc_context import PURPOSE_OF_USE_HEADER
from clinical_platform.validation import FieldViolation

BREAK_GLASS_REASON_HEADER = "x-break-glass-reason"
BREAK_GLASS_PURPOSE = "ETREAT"
MAX_REASON_CHARS = 500


@dataclass(frozen=True)
class BreakGlass:
    """A declared break-glass: the emergency purpose and the clinician's reason."""

    reason: str


Metadata = Iterable[tuple[str, str | bytes]]


def break_glass_violation(metadata: Metadata) -> FieldViolation | None:
    """What is wrong with a declared break-glass reason; None when there is none or it is fine."""
    pairs = list(metadata)
    reasons = [value for key, value in pairs if key == BREAK_GLASS_REASON_HEADER]
    if not reasons:
        return None
    purposes = [value for key, value in pairs if key == PURPOSE_OF_USE_HEADER]
    reason = reasons[0]
    if (
        len(reasons) > 1
        or not isinstance(reason, str)
        or not reason.strip()
        or len(reason) > MAX_REASON_CHARS
        or not reason.isprintable()
    ):
        return FieldViolation(
            BREAK_GLASS_REASON_HEADER,
            f"must be one reason of 1 to {MAX_REASON_CHARS} printable characters",
        )
    if purposes != [BREAK_GLASS_PURPOSE]:
        return FieldViolation(
            BREAK_GLASS_REASON_HEADER,
            f"is only accepted with {PURPOSE_OF_USE_HEADER} {BREAK_GLASS_PURPOSE}",
        )
    return None


def declared_break_glass(metadata: Metadata) -> BreakGlass | None:
    """The call's break-glass, when it declares one (the request guard has checked its form)."""
    pairs = list(metadata)
    reasons = [value for key, value in pairs if key == BREAK_GLASS_REASON_HEADER]
    if not reasons or break_glass_violation(pairs) is not None:
        return None
    return BreakGlass(str(reasons[0]).strip())
