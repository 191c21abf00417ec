"""The timeline's filters, read from its form: actor, kind of entry, time range (UTC)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

KINDS = ("", "change", "access")
# A token's subject: Keycloak's are UUIDs; other providers' are short printable ids.
_SUBJECT = re.compile(r"^[A-Za-z0-9._:@-]{1,128}$")


class InvalidFilterError(ValueError):
    """A filter the form cannot mean; the message names the field, never its value."""


@dataclass(frozen=True)
class TimelineFilter:
    actor: str = ""
    kind: str = ""  # "" (both), "change" or "access"
    since: datetime | None = None
    until: datetime | None = None

    def time_range(self) -> dict[str, str]:
        """The audit service's TimeRange, in protobuf's JSON mapping."""
        bounds = {"since": self.since, "until": self.until}
        return {name: f"{at.isoformat().removesuffix('+00:00')}Z"
                for name, at in bounds.items() if at is not None}  # fmt: skip

    def form_value(self, at: datetime | None) -> str:
        return at.strftime("%Y-%m-%dT%H:%M") if at else ""


def parse_filter(form: Mapping[str, str]) -> TimelineFilter:
    actor = form.get("actor", "").strip()
    if actor and not _SUBJECT.match(actor):
        raise InvalidFilterError("actor: a user's subject (letters, digits, . _ : @ -)")
    kind = form.get("kind", "")
    if kind not in KINDS:
        raise InvalidFilterError("kind: changes, accesses or both")
    since, until = _instant(form, "since"), _instant(form, "until")
    if since and until and since >= until:
        raise InvalidFilterError("since must be before until")
    return TimelineFilter(actor, kind, since, until)


def _instant(form: Mapping[str, str], name: str) -> datetime | None:
    """A datetime-local value, read as UTC (the console shows times in UTC)."""
    text = form.get(name, "").strip()
    if not text:
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M").replace(tzinfo=UTC)
    except ValueError:
        raise InvalidFilterError(f"{name}: a date and time, YYYY-MM-DDTHH:MM") from None
