"""From an external identity (the verified claims of an access token) to the caller we serve.

Pure mapping, no I/O: the claims were verified by the OIDC adapter before they reach here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from clinical_platform.principals import Principal, Role
from gateway.domain.scopes import Context, SmartScope, parse_scopes

# Realm roles that grant a privilege rather than a role.
PRIVILEGE_ROLES = {"orders-signer": "orders:sign"}
# RFC 8176 methods that are a second factor (or say "multi-factor" outright).
SECOND_FACTORS = frozenset({"mfa", "otp", "hwk", "swk", "sms", "face", "fpt", "iris", "retina"})


class UnusableIdentityError(Exception):
    """Valid token, but it names no caller we can serve (e.g. no subject)."""


@dataclass(frozen=True)
class Caller:
    """The verified caller of a gateway request: who, through which app, with which grants."""

    principal: Principal
    scopes: frozenset[SmartScope]
    contexts: frozenset[Context]

    @property
    def rate_keys(self) -> tuple[str, str]:
        """The rate-limit buckets of the request: its client, and its user."""
        return (f"client:{self.principal.client_id}", f"user:{self.principal.subject}")


@dataclass(frozen=True)
class IdentityMapping:
    """How tokens of our identity provider say who someone is."""

    mfa_acr_values: frozenset[str] = frozenset({"2", "mfa", "otp"})

    def caller(self, claims: Mapping[str, Any]) -> Caller:
        """The caller a verified token names."""
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise UnusableIdentityError("the token names no subject")
        realm_roles = _strings((claims.get("realm_access") or {}).get("roles", ()))
        known = {r.value for r in Role}
        # A client-credentials token carries the client's id as its own claim (the realm's
        # session-note mapper); a user's token only names the client in `azp`.
        system_client = _string(claims.get("client_id"))
        client_id = system_client or _string(claims.get("azp"))
        acting = claims.get("act")
        on_behalf_of = _string(acting.get("sub")) if isinstance(acting, Mapping) else ""
        principal = Principal(
            subject=subject,
            roles=frozenset(Role(r) for r in realm_roles if r in known),
            privileges=frozenset(PRIVILEGE_ROLES[r] for r in realm_roles if r in PRIVILEGE_ROLES),
            mfa=self.asserts_mfa(claims),
            # Keycloak 26.7 leaves auth_time out of direct-grant tokens: their iat is the login.
            # (A refreshed token's iat is later than its login: docs/security.md says so.)
            auth_time=_whole_seconds(claims.get("auth_time")) or _whole_seconds(claims.get("iat")),
            patient_id=_string(claims.get("patient")),
            client_id=client_id,
            on_behalf_of=on_behalf_of,
        )
        contexts = {Context.SYSTEM} if system_client else {Context.USER}
        if principal.patient_id and not system_client:
            contexts.add(Context.PATIENT)
        return Caller(principal, parse_scopes(_scope_words(claims.get("scope"))),
                      frozenset(contexts))  # fmt: skip

    def asserts_mfa(self, claims: Mapping[str, Any]) -> bool:
        """True when the token says the session used a second factor (amr), or an acr the
        platform counts as multi-factor."""
        methods = set(_strings(claims.get("amr") or ()))
        return bool(methods & SECOND_FACTORS) or _string(claims.get("acr")) in self.mfa_acr_values


def _scope_words(scope: object) -> list[str]:
    if isinstance(scope, str):
        return scope.split()
    return _strings(scope) if isinstance(scope, list) else []


def _strings(values: Iterable[object] | object) -> list[str]:
    if not isinstance(values, (list, tuple)):
        return []
    return [v for v in values if isinstance(v, str)]


def _whole_seconds(value: object) -> int:
    # The verifier refused an auth_time in the future; anything but a number says nothing.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0
    return int(value)


def _string(value: object) -> str:
    return value if isinstance(value, str) else ""
