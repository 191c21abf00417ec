"""What a failed command exits with, and the one line it prints.

Scripts rely on the exit codes (docs/cli.md lists them); the line names the gRPC status code
and the field violations, never a value the command sent (request values are PHI).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1  # anything not listed below (INTERNAL, UNKNOWN, a malformed answer)
    USAGE = 2  # click's own code for a bad command line, kept for ours
    AUTH = 3
    PERMISSION_DENIED = 4
    NOT_FOUND = 5
    INVALID_ARGUMENT = 6
    CONFLICT = 7
    UNAVAILABLE = 8
    LOG_VERIFICATION_FAILED = 9  # `admin verify`: a broken hash chain or checkpoint
    DEAD_LETTERS_STILL_FAILING = 10  # `admin replay-dead-letters`: some were set aside again


EXIT_CODE_OF_STATUS = {
    "UNAUTHENTICATED": ExitCode.AUTH,
    "PERMISSION_DENIED": ExitCode.PERMISSION_DENIED,
    "NOT_FOUND": ExitCode.NOT_FOUND,
    "INVALID_ARGUMENT": ExitCode.INVALID_ARGUMENT,
    "OUT_OF_RANGE": ExitCode.INVALID_ARGUMENT,
    "FAILED_PRECONDITION": ExitCode.CONFLICT,
    "ABORTED": ExitCode.CONFLICT,
    "ALREADY_EXISTS": ExitCode.CONFLICT,
    "UNAVAILABLE": ExitCode.UNAVAILABLE,
    "DEADLINE_EXCEEDED": ExitCode.UNAVAILABLE,
    "RESOURCE_EXHAUSTED": ExitCode.UNAVAILABLE,
}

# Shorter values (a sex code, "1") would blank out words of the message for no gain.
_SHORTEST_REDACTED = 3


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


@dataclass
class CommandError(Exception):
    """A call the platform refused (``status`` is a gRPC status code name) or could not make."""

    status: str
    message: str
    violations: list[FieldViolation] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(self.status, self.message)

    @property
    def exit_code(self) -> ExitCode:
        return EXIT_CODE_OF_STATUS.get(self.status, ExitCode.FAILED)

    def line(self, sent: Mapping[str, Any] | None = None) -> str:
        """``error: NOT_FOUND: order not found``, violations after a `` | ``; every value of
        ``sent`` (the request) that the answer echoes is redacted."""
        text = f"error: {self.status}: {self.message}"
        if self.violations:
            text += " | " + "; ".join(f"{v.field}: {v.description}" for v in self.violations)
        for value in sorted(_string_values(sent or {}), key=len, reverse=True):
            text = text.replace(value, "<redacted>")
        return " ".join(text.split())  # one line, whatever the message held


class UsageError(CommandError):
    """A command line the CLI itself refuses (exit 2), before calling anything."""

    def __init__(self, message: str) -> None:
        super().__init__("USAGE", message)

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.USAGE


def _string_values(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        if len(value) >= _SHORTEST_REDACTED:
            yield value
    elif isinstance(value, Mapping):
        for nested in value.values():
            yield from _string_values(nested)
    elif isinstance(value, list | tuple):
        for nested in value:
            yield from _string_values(nested)
