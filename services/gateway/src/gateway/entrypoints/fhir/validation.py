"""Incoming resources checked by their R4B model: 400 naming each failing element, never
echoing the value that failed."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from fhir.resources.R4B.resource import Resource
from pydantic import ValidationError

from gateway.entrypoints.fhir.outcomes import FhirError, Issue

Model = TypeVar("Model", bound=Resource)


def validated(model: type[Model], resource: Mapping[str, Any]) -> Model:
    """``resource`` as ``model``, or FhirError 400 with one issue per failing element."""
    kind = model.get_resource_type()
    if resource.get("resourceType") != kind:
        raise FhirError.of(400, "invalid", f"the resource must be a {kind}",
                           expression=(f"{kind}.resourceType",))  # fmt: skip
    try:
        return model.model_validate(dict(resource))
    except ValidationError as invalid:
        raise FhirError(400, tuple(_issue(kind, e) for e in invalid.errors())) from None


def _issue(kind: str, error: Mapping[str, Any]) -> Issue:
    path = kind + "".join(
        f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"]
    )
    message = str(error["msg"]).split("\n")[0]
    # A validator's message may quote the value it refused: never echo it.
    given = error.get("input")
    if isinstance(given, str) and given and given in message:
        message = "is not valid"
    code = "structure" if error["type"] == "extra_forbidden" else "value"
    return Issue(code, f"{path} {message}", (path,))


def unstorable(paths: Iterable[str], what: str) -> FhirError | None:
    """422 for elements a record cannot hold (``what`` says what it can), None if no path."""
    issues = tuple(Issue("not-supported", f"{p} cannot be recorded: {what}", (p,)) for p in paths)
    return FhirError(422, issues) if issues else None
