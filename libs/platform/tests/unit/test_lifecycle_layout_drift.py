"""A writer whose event topic's layout drifted stops the process in one line, like bad settings."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from clinical_testing.security import InMemorySigner

from clinical_platform.eventlog.errors import TopicLayoutError
from clinical_platform.eventlog.store import EventStore
from clinical_platform.lifecycle import ServiceParts
from clinical_platform.settings import BaseServiceSettings, load_settings

pytestmark = pytest.mark.unit


async def test_a_drifted_topic_layout_exits_with_status_2_and_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    async def drifted(_store: EventStore) -> None:
        raise TopicLayoutError("event topic clinical.test.events.v1 was laid out for 6 partitions")

    monkeypatch.setattr(EventStore, "start", drifted)
    settings = load_settings(
        BaseServiceSettings,
        grpc_port=50099,
        kafka_security_protocol="PLAINTEXT",
        state_dir=tmp_path,
    )
    security: Any = SimpleNamespace(signer=InMemorySigner())
    async with AsyncExitStack() as stack:
        parts = ServiceParts(settings, security, database=None, access_log=None, stack=stack)  # type: ignore[arg-type]

        with pytest.raises(SystemExit) as exited:
            await parts.event_store(service="test")

    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "refusing to start: event topic clinical.test.events.v1 was laid out for 6 partitions"
    ]
