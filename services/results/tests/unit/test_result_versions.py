"""A result at an earlier version: that revision's status and observations, its revisions up
to it; the revision current at an instant."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from clinical_platform.reads import VersionNotRecorded
from results.domain.errors import ResultNotFound
from results.domain.observation import Observation, Quantity
from results.domain.result import ResultStatus
from results.ports import ResultView, Revision

pytestmark = pytest.mark.unit

POSTED_AT = datetime(2026, 12, 7, 10, tzinfo=UTC)


def glucose(value: str) -> tuple[Observation, ...]:
    return (Observation("2345-7", "Glucose", Quantity(Decimal(value), "mg/dL"), None, None,
                        None, None),)  # fmt: skip


def amended_result() -> ResultView:
    revisions = (
        Revision(1, ResultStatus.FINAL, glucose("85"), "lab-1", POSTED_AT, ""),
        Revision(2, ResultStatus.AMENDED, glucose("120"), "lab-1",
                 POSTED_AT + timedelta(hours=1), "new sample"),
    )  # fmt: skip
    return ResultView(str(uuid.uuid4()), 2, "o-1", "p-1", ResultStatus.AMENDED, glucose("120"),
                      "lab-1", POSTED_AT, POSTED_AT, revisions)  # fmt: skip


@pytest.mark.parametrize("wanted", [1, POSTED_AT, POSTED_AT + timedelta(minutes=59)])
def test_the_first_version_of_an_amended_result_is_final_with_its_first_values(
    wanted: int | datetime,
) -> None:
    first = amended_result().at(wanted)
    assert (first.version, first.status, first.observations) == (1, ResultStatus.FINAL,
                                                                 glucose("85"))  # fmt: skip
    assert [r.version for r in first.revisions] == [1]
    assert first.recorded_at == POSTED_AT


def test_the_current_version_and_a_later_instant_show_the_amendment() -> None:
    current = amended_result()
    assert current.at(2) == current
    assert current.at(POSTED_AT + timedelta(days=1)) == current
    assert current.recorded_at == POSTED_AT + timedelta(hours=1)


def test_a_version_never_recorded_or_an_instant_before_the_post_is_refused() -> None:
    with pytest.raises(VersionNotRecorded):
        amended_result().at(3)
    with pytest.raises(ResultNotFound):
        amended_result().at(POSTED_AT - timedelta(microseconds=1))
