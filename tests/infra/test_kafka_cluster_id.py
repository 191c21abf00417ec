"""The local broker's cluster id is always one the storage tool accepts."""

from __future__ import annotations

import pytest

from localinfra.kafka import new_cluster_id

pytestmark = pytest.mark.unit


def test_no_cluster_id_starts_with_a_dash_the_storage_tool_would_read_as_an_option() -> None:
    # One id in 64 would start with "-" if nothing prevented it; 5,000 draws miss that with
    # a chance of (63/64)**5000, about 1e-34.
    ids = [new_cluster_id() for _ in range(5000)]
    assert not [cluster_id for cluster_id in ids if cluster_id.startswith("-")]
    assert all(len(cluster_id) == 22 for cluster_id in ids)
