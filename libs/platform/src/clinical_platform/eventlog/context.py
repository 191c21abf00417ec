"""Who asks, why, and from where: the provenance every recorded event carries."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Actor:
    """The principal behind a command (from the verified token once authentication lands)."""

    subject: str
    roles: tuple[str, ...] = ()
    client_id: str = ""
    on_behalf_of: str = ""


@dataclass(frozen=True)
class CommandContext:
    """Provenance of one command; copied into the envelope of every event it records.

    ``request_id`` is the caller's idempotency key: a retried command with the same key returns
    the first outcome and records nothing new. ``purpose_of_use`` is an HL7 PurposeOfUse code
    such as ``TREAT``.
    """

    actor: Actor
    request_id: str
    purpose_of_use: str = "TREAT"
    source_ip: str = ""
    user_agent: str = ""
    correlation_id: str = ""
    causation_id: str = ""
    trace_context: dict[str, str] = field(default_factory=dict)
