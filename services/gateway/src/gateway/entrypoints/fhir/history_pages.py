"""A ``_history``'s parameters and links: ``_since`` (an instant with its zone: the changes
recorded at or after it), ``_count`` (1-100, 20 by default) and ``_page_token`` (the audit
service's opaque token, carried in the ``next`` link: forward only, newest first)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from gateway.entrypoints.fhir.listing import list_query
from gateway.entrypoints.fhir.records import instant

_PAGING = ("_count", "_page_token")


@dataclass(frozen=True)
class HistoryPage:
    """Which page of a history the caller asks for."""

    since: str  # a protobuf JSON Timestamp (UTC), "" for every change
    count: int
    page_token: str
    paged: bool  # _count or _page_token given (an instance's history is whole without)

    def window(self) -> dict[str, Any]:
        """History's ``recorded`` range for ``since`` (none without it)."""
        return {"recorded": {"since": self.since}} if self.since else {}

    def links(self, url: str, next_token: str) -> list[dict[str, str]]:
        """``self``, ``first`` and (when more follow) ``next`` of the history at ``url``."""

        def link(relation: str, token: str) -> dict[str, str]:
            params = [("_since", self.since)] if self.since else []
            if self.paged or token:
                params.append(("_count", str(self.count)))
            if token:
                params.append(("_page_token", token))
            return {"relation": relation, "url": f"{url}?{urlencode(params)}" if params else url}

        links = [link("self", self.page_token), link("first", "")]
        if next_token:
            links.append(link("next", next_token))
        return links


def history_page(params: Sequence[tuple[str, str]], *, strict: bool) -> HistoryPage:
    """The page ``params`` ask for; FhirError 400 naming ``_since`` or ``_count`` when one is
    not a value we read, or for an unknown parameter when ``strict``."""
    query = list_query(params, {}, strict=strict, filters=("_since",))
    since = query.filters.get("_since")
    return HistoryPage(
        since=instant(since, "_since") if since is not None else "",
        count=query.count,
        page_token=str(query.values.get("page_token", "")),
        paged=any(name in _PAGING for name, _ in params),
    )
