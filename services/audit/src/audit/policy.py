"""Who may read the audit trail: the service's authorization decision, in one place.

The decision answers with the reason for a refusal, or None when the principal may go ahead.
The reason is sent to the caller and kept in the access audit, so it is the service's own words.
"""

from __future__ import annotations

from clinical_platform.principals import Principal, Role


def refusal_to_read_trail(principal: Principal) -> str | None:
    """Auditors only: the trail says who looked at which patient's records."""
    return None if principal.has(Role.AUDITOR) else "only auditors may read the audit trail"
