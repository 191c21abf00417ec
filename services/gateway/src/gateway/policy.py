"""Edge policy: which SMART scopes a request needs. Roles and MFA are the services' to decide
(orders refuses a signature without MFA): the gateway checks what only it can see, the scopes
the user granted the application. No I/O here."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.domain.identity import Caller
from gateway.domain.scopes import Context, Interaction, granted

PREFERRED_CONTEXTS = (Context.SYSTEM, Context.USER, Context.PATIENT)


@dataclass(frozen=True)
class Operation:
    """What a route does, in FHIR terms: an interaction on a resource type."""

    name: str  # the RPC, e.g. "SignOrder"
    resource: str  # the FHIR resource type, e.g. "ServiceRequest"
    interaction: Interaction


def scope_refusal(caller: Caller, operation: Operation) -> str | None:
    """None when the caller's scopes allow ``operation``; else the scope it would need."""
    if granted(caller.scopes, caller.contexts, operation.resource, operation.interaction):
        return None
    context = next(c for c in PREFERRED_CONTEXTS if c in caller.contexts)
    return f"{context.value}/{operation.resource}.{operation.interaction.value}"
