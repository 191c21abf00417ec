"""Field violations and the request checks every servicer runs, collected into one refusal.

A neutral module: domains, the event log and servicers all speak of a refused field the same
way, and none of them has to import another to do so. The rules are the strictest any service
had: canonical UUIDs only, request ids of 1 to 128 printable characters.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from uuid import UUID

MAX_REQUEST_ID_CHARS = 128


@dataclass(frozen=True)
class FieldViolation:
    """One reason a command, query or event was refused, named after the offending field.

    The description states the rule, never the value: it reaches clients' logs.
    """

    field: str
    description: str


class InvalidRequest(Exception):  # noqa: N818 - the request is what is invalid
    """A request broke one or more field rules (INVALID_ARGUMENT with field violations)."""

    def __init__(self, violations: Iterable[FieldViolation]) -> None:
        self.violations = tuple(violations)
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in self.violations))


class Violations(list[FieldViolation]):
    """The problems found while parsing one request (services add their own checks)."""

    def __init__(self, found: Iterable[FieldViolation] = ()) -> None:
        super().__init__(found)
        self._unless_named: list[FieldViolation] = []

    def add(self, field: str, description: str) -> None:
        self.append(FieldViolation(field, description))

    def add_unless_named(self, violation: FieldViolation) -> None:
        """Report ``violation`` when raising, unless another violation names its field by
        then: a later check of the field, with its own description, says it better."""
        self._unless_named.append(violation)

    def uuid(self, field: str, text: str) -> UUID:
        """``text`` as a UUID, or a violation (and the nil UUID) unless it is canonical."""
        try:
            parsed = UUID(text)
        except ValueError:
            parsed = None
        if parsed is None or str(parsed) != text:
            self.add(field, "must be a lowercase hyphenated UUID")
            return UUID(int=0)
        return parsed

    def request_id(self, text: str) -> None:
        if not (0 < len(text) <= MAX_REQUEST_ID_CHARS and text.isprintable()):
            self.add("request_id", f"must be 1 to {MAX_REQUEST_ID_CHARS} printable characters")

    def page_size(self, size: int, *, default: int, maximum: int) -> int:
        """A page size in [0, maximum]; 0 means ``default``."""
        if size < 0 or size > maximum:
            self.add("page_size", f"must be between 0 and {maximum}")
        return size or default

    def raise_if_any(self) -> None:
        """Raise `InvalidRequest` with every violation found, if there is one."""
        named = {violation.field for violation in self}
        self.extend(v for v in self._unless_named if v.field not in named)
        self._unless_named.clear()
        if self:
            raise InvalidRequest(self)
