"""A read for a version the event log does not hold is refused at once, where the writer knows."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest

from clinical_platform.eventlog.errors import NotPartitionOwnerError
from clinical_platform.reads import VersionNotRecorded, require_recorded

pytestmark = pytest.mark.unit

RECORDED = uuid4()


class OwnerOfOne:
    """Owns the partition of ``RECORDED`` (at version 3); another replica owns the rest."""

    def current_version(self, aggregate_id: UUID) -> int:
        if aggregate_id != RECORDED:
            raise NotPartitionOwnerError(4, "10.0.0.12:18052")
        return 3


@pytest.mark.parametrize("min_version", [0, 1, 3])
def test_a_version_the_log_holds_is_left_to_the_read_model(min_version: int) -> None:
    require_recorded(OwnerOfOne(), RECORDED, min_version)


@pytest.mark.parametrize("min_version", [4, 2**63 - 1])
def test_a_version_beyond_the_log_is_refused_on_its_field(min_version: int) -> None:
    with pytest.raises(VersionNotRecorded) as beyond:
        require_recorded(OwnerOfOne(), RECORDED, min_version, field="order_min_version")

    assert beyond.value.field == "order_min_version"
    assert str(min_version) not in str(beyond.value)


def test_a_replica_that_does_not_own_the_partition_lets_the_read_wait() -> None:
    require_recorded(OwnerOfOne(), uuid4(), 2**63 - 1)
