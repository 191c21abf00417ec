"""RFC 6750 at the edge: the bearer token of a request and the challenges of a refusal, the same
for the gateway's JSON API and its FHIR API."""

from __future__ import annotations

from starlette.requests import Request

REALM = 'Bearer realm="clinical"'


def bearer_of(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def token_challenge(error: str) -> str:
    """``WWW-Authenticate`` of a 401: ``error`` is "" when no token was sent."""
    return REALM if not error else f'{REALM}, error="{error}"'


def scope_challenge(scope: str) -> str:
    """``WWW-Authenticate`` of a 403 for want of a scope; ``scope`` is one that would do."""
    return f'{REALM}, error="insufficient_scope", scope="{scope}"'
