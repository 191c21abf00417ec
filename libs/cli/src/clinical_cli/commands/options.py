"""Options several commands share."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer

from clinical_cli.errors import UsageError

RequestId = Annotated[str, typer.Option(
    "--request-id", help="Idempotency key: a retried command with the same id has one effect.",
    default_factory=lambda: str(uuid.uuid4()), show_default="a new UUID")
]  # fmt: skip
MinVersion = Annotated[int, typer.Option(
    "--min-version", help="Wait until the read model holds at least this version.")
]  # fmt: skip
ExpectedVersion = Annotated[int | None, typer.Option(
    "--expected-version", help="Refuse unless the record is at this version.",
    show_default=False)
]  # fmt: skip


def system_and_value(text: str, option: str) -> dict[str, str]:
    """``system|value`` (as FHIR's identifier search) into an Identifier."""
    system, bar, value = text.partition("|")
    if not bar or not system or not value:
        msg = f"{option} takes SYSTEM|VALUE"
        raise UsageError(msg)
    return {"system": system, "value": value}


def without_empty(values: dict[str, object]) -> dict[str, object]:
    """Leave unset options out of the request (proto3 defaults)."""
    return {k: v for k, v in values.items() if v not in (None, "", [], {}, 0)}


def read_json(source: Path, option: str) -> Any:
    """The JSON in file ``source`` (``-``: standard input); a usage error naming ``option``
    when it cannot be read (the file's content is never quoted: it is a patient's data)."""
    try:
        text = typer.get_text_stream("stdin").read() if str(source) == "-" else source.read_text()
        return json.loads(text)
    except (OSError, ValueError):
        msg = f"{option}: not a readable JSON file"
        raise UsageError(msg) from None
