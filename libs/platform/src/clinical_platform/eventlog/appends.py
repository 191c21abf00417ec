"""One command's append on its way through a partition writer, and the outcome it gets."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from clinical.events.v1.envelope_pb2 import Envelope
from clinical_platform.eventlog.errors import EventLogUnavailableError


@dataclass(frozen=True)
class AppendResult:
    """The aggregate's version after the command; ``replayed`` when the request id was known."""

    aggregate_id: str
    version: int
    replayed: bool = False


@dataclass
class PendingAppend:
    """Envelopes of one command for one aggregate, versions expected_version+1 onwards."""

    aggregate_id: str
    expected_version: int
    request_id: str
    envelopes: list[Envelope]
    done: asyncio.Future[AppendResult] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def resolve(self, result: AppendResult) -> None:
        if not self.done.done():
            self.done.set_result(result)

    def fail(self, error: Exception) -> None:
        if not self.done.done():
            self.done.set_exception(error)


def follow(leader: PendingAppend, follower: PendingAppend) -> None:
    """A duplicate of an in-flight command gets the same outcome as the first one."""

    def copy(done: asyncio.Future[AppendResult]) -> None:
        if done.cancelled():
            follower.fail(EventLogUnavailableError("the first attempt was cancelled"))
        elif (error := done.exception()) is not None:
            follower.fail(error if isinstance(error, Exception) else RuntimeError(str(error)))
        else:
            result = done.result()
            follower.resolve(AppendResult(result.aggregate_id, result.version, replayed=True))

    leader.done.add_done_callback(copy)
