"""Who the platform's internal tokens are for, and how long they may live.

Kept apart from `tokens` (which needs the principal and JWT machinery) so that settings can
name the defaults without importing them.
"""

# The services that verify internal tokens; each accepts only tokens for its own audience.
PLATFORM_SERVICES = ("patient", "orders", "results", "notify", "audit")
# Internal tokens are exchanged per call (the gateway's live two minutes): a stolen one must
# be worthless soon. JWT_MAX_LIFETIME_SECONDS may widen it for local runs only.
DEFAULT_MAX_LIFETIME_S = 900


def service_audience(service: str) -> str:
    """The audience a platform service accepts, e.g. ``clinical-orders``."""
    return f"clinical-{service}"
