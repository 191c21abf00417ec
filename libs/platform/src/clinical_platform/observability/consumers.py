"""A record handler wrapped in its consumer span, its progress counted for the lag metrics."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from clinical_platform.observability.consumer_lag import LagWatcher
from clinical_platform.observability.messaging import IncomingRecord, processing

RecordT = TypeVar("RecordT", bound=IncomingRecord)


def traced_handler(
    handle: Callable[[RecordT], Awaitable[Any]], group: str, lag: LagWatcher | None = None
) -> Callable[[RecordT], Awaitable[None]]:
    """``handle``, each call inside a ``process`` span continuing the record's trace."""

    async def handle_traced(record: RecordT) -> None:
        with processing(record, group):
            await handle(record)
        if lag is not None:
            lag.applied([record])

    return handle_traced
