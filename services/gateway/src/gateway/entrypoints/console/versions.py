"""A record's version history: one version per event of its aggregate, and what each changed.

The audit service's History gives each event's clear envelope, never its payload (patient data,
usually encrypted; the audit service does not decrypt it). So between two versions the console
names the record's fields the event recorded (their paths, from the payload type's schema) with
their values withheld, and compares the envelope's own fields (who, through which client, why,
from where), whose values an auditor reads on the timeline anyway.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf import descriptor_pool
from google.protobuf.descriptor import Descriptor

# Imported for their descriptors: each payload type is looked up by its full name.
from clinical.events.v1 import (  # noqa: F401
    orders_events_pb2,
    patient_events_pb2,
    results_events_pb2,
)
from gateway.entrypoints.console.trail import TimelineEntry, change_entry

# The envelope's fields an auditor may read, compared from version to version (Change's names).
PROVENANCE_FIELDS = (
    "event_type", "schema_version", "payload_type", "actor.subject", "actor.roles",
    "actor.client_id", "actor.on_behalf_of", "purpose_of_use", "source_ip", "user_agent",
    "source", "payload_encrypted",
)  # fmt: skip
_MAX_DEPTH = 3  # demographics.name.family: deep enough to say which part of a record


@dataclass(frozen=True)
class FieldChange:
    """One field that differs from the previous version; values only where they may be shown."""

    path: str
    before: str
    after: str
    withheld: bool = False  # the record's content: patient data, not shown


@dataclass(frozen=True)
class RecordVersion:
    version: int
    entry: TimelineEntry
    event_type: str
    changes: tuple[FieldChange, ...]
    chain: str  # "first", "follows version N", or what is wrong with the link


@dataclass(frozen=True)
class RecordHistory:
    record_type: str
    record_id: str
    patient_id: str
    versions: tuple[RecordVersion, ...]
    complete: bool


def record_history(
    record_id: str, changes: Sequence[Mapping[str, Any]], *, complete: bool
) -> RecordHistory:
    """The record's versions, oldest first, each with its changes from the one before."""
    ordered = sorted(changes, key=lambda c: int(c.get("aggregate_version", 0)))
    versions = tuple(
        _version(change, ordered[i - 1] if i else None) for i, change in enumerate(ordered)
    )
    first = ordered[0] if ordered else {}
    return RecordHistory(str(first.get("aggregate_type", "")), record_id,
                         str(first.get("patient_id", "")), versions, complete)  # fmt: skip


def _version(change: Mapping[str, Any], previous: Mapping[str, Any] | None) -> RecordVersion:
    version = int(change.get("aggregate_version", 0))
    content = tuple(FieldChange(path, "", "", withheld=True)
                    for path in payload_fields(str(change.get("payload_type", ""))))  # fmt: skip
    # The first version lists what it has; each later one what differs from the one before.
    provenance = tuple(
        FieldChange(path, _value(previous or {}, path), _value(change, path))
        for path in PROVENANCE_FIELDS
        if _value(previous or {}, path) != _value(change, path)
    )
    return RecordVersion(version, change_entry(change), str(change.get("event_type", "")),
                         content + provenance, _chain(change, previous))  # fmt: skip


def payload_fields(payload_type: str) -> tuple[str, ...]:
    """The field paths a payload type records (its schema: no value is read); () if unknown."""
    try:
        message = descriptor_pool.Default().FindMessageTypeByName(payload_type)
    except KeyError:
        return ()
    return tuple(_paths(message, "", 1))


def _paths(message: Descriptor, prefix: str, depth: int) -> list[str]:
    paths: list[str] = []
    for field in message.fields:
        path = f"{prefix}{field.name}"
        nested = field.message_type
        # A list or a timestamp is one field to an auditor; a record's part is worth naming.
        if (nested is None or depth >= _MAX_DEPTH or field.is_repeated
                or nested.full_name.startswith("google.protobuf.")):  # fmt: skip
            paths.append(path)
        else:
            paths += _paths(nested, f"{path}.", depth + 1)
    return paths


def _value(change: Mapping[str, Any], path: str) -> str:
    value: Any = change
    for part in path.split("."):
        value = value.get(part, "") if isinstance(value, Mapping) else ""
    if isinstance(value, list):
        return ", ".join(map(str, value))
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value).removeprefix("PURPOSE_OF_USE_")


def _chain(change: Mapping[str, Any], previous: Mapping[str, Any] | None) -> str:
    """Whether this version's link to the previous one holds (prev_hash is its hash)."""
    version = int(change.get("aggregate_version", 0))
    if previous is None:
        return "first" if version == 1 else f"versions before {version} not listed"
    before = int(previous.get("aggregate_version", 0))
    if before != version - 1:
        return f"versions {before + 1} to {version - 1} missing"
    if not change.get("prev_hash") or change.get("prev_hash") != previous.get("hash"):
        return f"BROKEN: does not follow version {before}"
    return f"follows version {before}"
