"""OperationOutcome answers: every refusal and failure of the FHIR API, with its HTTP status.

Diagnostics name elements, rules and versions, never a value from the request or the record
(a search or a resource may name a patient).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fhir.resources.R4B.operationoutcome import OperationOutcome

from gateway.ports import DownstreamAnswer

FHIR_JSON = "application/fhir+json"
BASE_PATH = "/fhir/r4"

# gRPC status of a service -> (HTTP status, OperationOutcome issue type). ABORTED is a version
# conflict: 412 when the caller sent If-Match (see `status_error`), else 409.
GRPC_STATUS: Mapping[str, tuple[int, str]] = {
    "INVALID_ARGUMENT": (400, "invalid"), "OUT_OF_RANGE": (400, "invalid"),
    "UNAUTHENTICATED": (401, "login"), "PERMISSION_DENIED": (403, "forbidden"),
    "NOT_FOUND": (404, "not-found"), "ALREADY_EXISTS": (409, "duplicate"),
    "ABORTED": (409, "conflict"), "FAILED_PRECONDITION": (422, "business-rule"),
    "RESOURCE_EXHAUSTED": (429, "throttled"), "UNAVAILABLE": (503, "transient"),
    "DEADLINE_EXCEEDED": (504, "timeout"), "UNIMPLEMENTED": (501, "not-supported"),
}  # fmt: skip


@dataclass(frozen=True)
class Issue:
    """One OperationOutcome.issue: what went wrong, and where (FHIRPath expressions)."""

    code: str
    diagnostics: str
    expression: tuple[str, ...] = ()
    severity: str = "error"

    def as_json(self) -> dict[str, Any]:
        issue: dict[str, Any] = {"severity": self.severity, "code": self.code,
                                 "diagnostics": self.diagnostics}  # fmt: skip
        if self.expression:
            issue["expression"] = list(self.expression)
        return issue


@dataclass
class FhirError(Exception):
    """An answer other than success: its HTTP status, issues and extra headers."""

    status: int
    issues: tuple[Issue, ...]
    headers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        Exception.__init__(self, f"{self.status}: {self.issues[0].diagnostics}")

    @classmethod
    def of(cls, status: int, code: str, diagnostics: str, *, expression: Iterable[str] = (),
           headers: Mapping[str, str] | None = None) -> FhirError:  # fmt: skip
        """One issue's error."""
        issue = Issue(code, diagnostics, tuple(expression))
        return cls(status, (issue,), dict(headers or {}))


def operation_outcome(issues: Iterable[Issue]) -> dict[str, Any]:
    """An OperationOutcome resource, checked by the R4B model."""
    resource = {"resourceType": "OperationOutcome", "issue": [i.as_json() for i in issues]}
    return OperationOutcome.model_validate(resource).model_dump(mode="json", exclude_none=True)


def status_error(
    answer: DownstreamAnswer,
    *,
    expression_of: Callable[[str], str] | None = None,
    version_precondition: bool = False,
) -> FhirError:
    """The FhirError for a service's non-OK answer; field violations become issues whose
    ``expression`` is ``expression_of(field)`` (a proto field path to a FHIRPath)."""
    status, code = GRPC_STATUS.get(answer.status, (502, "exception"))
    if answer.status == "ABORTED" and version_precondition:
        status = 412
    if answer.violations:
        where = expression_of or (lambda field: field)
        issues = tuple(
            Issue("invalid", f"{where(v['field'])} {v['description']}", (where(v["field"]),))
            for v in answer.violations
        )
        return FhirError(status, issues)
    headers = {"Retry-After": "5"} if status in {429, 503} else {}
    return FhirError.of(status, code, answer.message or _PLAIN.get(status, "failed"),
                        headers=headers)  # fmt: skip


_PLAIN = {404: "not found", 403: "not allowed", 502: "the service failed"}
