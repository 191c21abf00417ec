"""clinical subscribe: a live tail, one line per notification, resumable after the last one."""

from __future__ import annotations

import json

import pytest

from clinical_cli.errors import CommandError, ExitCode

from .fakes import FakePlatform, invoke

pytestmark = pytest.mark.unit


def notification(sequence: int) -> dict[str, object]:
    return {"notification": {"sequence": str(sequence), "type": "result.posted",
                             "result_id": f"r-{sequence}", "patient_id": "p-1",
                             "version": "1"}}  # fmt: skip


def test_a_new_subscription_is_created_and_followed_line_by_line() -> None:
    platform = FakePlatform(
        answers={"CreateSubscription": {"subscription": {"subscription_id": "s-1"}}},
        streams={"Subscribe": [{"heartbeat": {}}, notification(1), notification(2)]},
    )

    result = invoke(platform, ["--token", "t", "--direct", "subscribe", "--topic",
                               "result.posted", "--count", "2"])  # fmt: skip

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "#1 result.posted result=r-1 patient=p-1 version=1",
        "#2 result.posted result=r-2 patient=p-1 version=1",
    ]
    assert "resume with: --subscription s-1 --from 2" in result.stderr
    created = platform.calls[0][1]
    assert created["topics"] == ["TOPIC_RESULT_POSTED"]
    assert platform.calls[1] == ("Subscribe", {"subscription_id": "s-1", "resume_after": "0"})


def test_from_resumes_after_a_number_and_json_prints_json_lines() -> None:
    platform = FakePlatform(streams={"Subscribe": [notification(8)]})

    result = invoke(platform, ["--token", "t", "--direct", "-o", "json", "subscribe",
                               "--subscription", "s-1", "--from", "7"])  # fmt: skip

    assert result.exit_code == 0
    assert [json.loads(line)["sequence"] for line in result.stdout.splitlines()] == ["8"]
    assert platform.calls == [("Subscribe", {"subscription_id": "s-1", "resume_after": "7"})]


def test_subscribe_needs_direct_and_a_refused_stream_exits_with_its_code() -> None:
    through_gateway = invoke(FakePlatform(), ["--token", "t", "subscribe"])
    refused = invoke(
        FakePlatform(streams={"Subscribe": [CommandError("PERMISSION_DENIED", "not yours")]}),
        ["--token", "t", "--direct", "subscribe", "--subscription", "s-2"],
    )

    assert through_gateway.exit_code == ExitCode.USAGE
    assert "add --direct" in through_gateway.stderr
    assert refused.exit_code == ExitCode.PERMISSION_DENIED
    assert refused.stderr == "error: PERMISSION_DENIED: not yours\n"
