"""Copied records on disk: one JSON line per record, bytes in base64, exactly as on Kafka.

Key, value, headers and timestamp are kept byte for byte (the value is the sealed envelope the
hash chain covers, its payload still encrypted); nothing is parsed or re-serialized.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class CopiedRecord:
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()

    @classmethod
    def of(cls, record: Any) -> CopiedRecord:
        """From an aiokafka ConsumerRecord."""
        headers = tuple((name, bytes(value or b"")) for name, value in record.headers or ())
        return cls(record.offset, record.timestamp, record.key, record.value, headers)


def encode(record: CopiedRecord) -> str:
    return json.dumps({
        "offset": record.offset, "timestamp": record.timestamp,
        "key": _b64(record.key), "value": _b64(record.value),
        "headers": [[name, _b64(value)] for name, value in record.headers],
    }, separators=(",", ":"))  # fmt: skip


def decode(line: str) -> CopiedRecord:
    fields = json.loads(line)
    return CopiedRecord(
        offset=int(fields["offset"]),
        timestamp=int(fields["timestamp"]),
        key=_bytes(fields["key"]),
        value=_bytes(fields["value"]),
        headers=tuple((str(name), _bytes(value) or b"") for name, value in fields["headers"]),
    )


def read_records(path: Path) -> Iterator[CopiedRecord]:
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            yield decode(line)


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def _bytes(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text, validate=True)
