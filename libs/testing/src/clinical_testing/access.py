"""Read-access audit test helpers: an in-memory access topic, a fake call, and a topic reader."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NoReturn

import grpc
from aiokafka.errors import KafkaConnectionError

from clinical.audit.v1.access_pb2 import AccessRecord
from clinical_platform.access.outbox import OutboxEntry
from clinical_platform.access.publisher import AccessAuditConfig
from clinical_testing.kafka import read_records


class InMemoryAccessTopic:
    """A `RecordSink` that keeps what it is sent; ``available = False`` fails like a lost broker.

    Pass ``sink_factory=lambda _config: topic`` so every restart of the publisher reuses it.
    """

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, AccessRecord]] = []
        self.available = True
        self.starts = 0

    @property
    def records(self) -> list[AccessRecord]:
        return [record for _key, record in self.sent]

    def factory(self, _config: AccessAuditConfig) -> InMemoryAccessTopic:
        return self

    async def start(self) -> None:
        self.starts += 1
        self._check()

    async def send(self, entries: Sequence[OutboxEntry]) -> None:
        self._check()
        self.sent += [(entry.key, AccessRecord.FromString(entry.value)) for entry in entries]

    async def stop(self) -> None:
        return None

    def _check(self) -> None:
        if not self.available:
            raise KafkaConnectionError("the broker is away")


class AbortedError(Exception):
    """What `FakeServicerContext.abort` raises, as grpc.aio raises its own AbortError."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


@dataclass
class FakeServicerContext:
    """The parts of ``grpc.aio.ServicerContext`` the access log and ``deny`` read."""

    metadata: tuple[tuple[str, str], ...] = ()
    peer_address: str = "ipv4:10.1.2.3:50123"
    aborted: list[AbortedError] = field(default_factory=list)

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self.metadata

    def peer(self) -> str:
        return self.peer_address

    async def abort(self, code: grpc.StatusCode, details: str = "", **_: object) -> NoReturn:
        error = AbortedError(code, details)
        self.aborted.append(error)
        raise error


async def read_access_records(bootstrap: str, topic: str) -> list[tuple[bytes, AccessRecord]]:
    """Every (key, record) on the access topic, read by a plain consumer from offset 0."""
    records = await read_records(bootstrap, topic)
    return [(r.key, AccessRecord.FromString(r.value)) for r in records]
