"""Who is calling: the verified principal of a request and the roles the platform knows."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from clinical_platform.eventlog.context import Actor


class Role(StrEnum):
    CLINICIAN = "clinician"
    LAB = "lab"
    REGISTRAR = "registrar"
    PATIENT = "patient"
    AUDITOR = "auditor"
    SERVICE = "service"


@dataclass(frozen=True)
class Principal:
    """The verified caller of an RPC."""

    subject: str
    roles: frozenset[Role] = frozenset()
    privileges: frozenset[str] = frozenset()
    mfa: bool = False
    # When the user last authenticated (seconds since the epoch; 0 when the token does not say).
    auth_time: int = 0
    patient_id: str = ""
    client_id: str = ""
    on_behalf_of: str = ""

    def has(self, *roles: Role) -> bool:
        """True when the principal holds any of ``roles``."""
        return not self.roles.isdisjoint(roles)

    def authenticated_with_mfa_within(self, seconds: float, *, now: float) -> bool:
        """True when the token asserts MFA at a login no more than ``seconds`` before ``now``."""
        return self.mfa and self.auth_time > 0 and now - self.auth_time <= seconds

    @property
    def actor(self) -> Actor:
        """The principal as recorded in event envelopes."""
        return Actor(
            subject=self.subject,
            roles=tuple(sorted(self.roles)),
            client_id=self.client_id,
            on_behalf_of=self.on_behalf_of,
        )
