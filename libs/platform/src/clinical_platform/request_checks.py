"""Checks every servicer runs on request fields, collected into one INVALID_ARGUMENT."""

from __future__ import annotations

from uuid import UUID

from clinical_platform.eventlog.errors import FieldViolation

MAX_REQUEST_ID_CHARS = 128


class Violations(list[FieldViolation]):
    """The problems found while parsing one request (services add their own checks)."""

    def uuid(self, field: str, text: str) -> UUID:
        """``text`` as a UUID, or a violation (and the nil UUID) unless it is canonical."""
        try:
            parsed = UUID(text)
        except ValueError:
            parsed = None
        if parsed is None or str(parsed) != text:
            self.append(FieldViolation(field, "must be a lowercase hyphenated UUID"))
            return UUID(int=0)
        return parsed

    def request_id(self, text: str) -> None:
        if not (0 < len(text) <= MAX_REQUEST_ID_CHARS and text.isprintable()):
            description = f"must be 1 to {MAX_REQUEST_ID_CHARS} printable characters"
            self.append(FieldViolation("request_id", description))

    def page_size(self, size: int, *, default: int, maximum: int) -> int:
        """A page size in [0, maximum]; 0 means ``default``."""
        if size < 0 or size > maximum:
            self.append(FieldViolation("page_size", f"must be between 0 and {maximum}"))
        return size or default
