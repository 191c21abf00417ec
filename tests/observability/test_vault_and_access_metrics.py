"""Vault operations are named by mount and verb only; cache lookups, the access outbox and the
age of unattested events are exported."""

from __future__ import annotations

import gc

import pytest

from clinical_platform.observability.access import outbox_depth
from clinical_platform.observability.checkpoints import watch_checkpointer
from clinical_platform.observability.metrics import REGISTRY
from clinical_platform.observability.vault import data_key_lookup, vault_operation

pytestmark = pytest.mark.unit

PATIENT = "5b0c7a53-7d0b-4d3e-9a40-2f3e3c1d6a01"


@pytest.mark.parametrize(
    ("url", "operation"),
    [
        ("/v1/transit/encrypt/clinical-phi", "transit/encrypt"),
        (f"/v1/clinical-keys/data/patients/{PATIENT}", "clinical-keys/data"),
        (f"/v1/clinical-keys/metadata/patients/{PATIENT}?version=2", "clinical-keys/metadata"),
        ("/v1/sys/health", "sys/health"),
        ("/v1/auth/token/renew-self", "auth/token"),
        ("/", "other"),
    ],
)
def test_a_vault_operation_is_its_mount_and_verb_never_a_key_or_a_patient(
    url: str, operation: str
) -> None:
    assert vault_operation(url) == operation


def test_data_key_lookups_are_counted_by_result() -> None:
    hits = REGISTRY.get_sample_value("clinical_data_key_cache_lookups_total", {"result": "hit"})

    data_key_lookup(hit=True)
    data_key_lookup(hit=False)

    after = REGISTRY.get_sample_value("clinical_data_key_cache_lookups_total", {"result": "hit"})
    assert after == (hits or 0) + 1


def test_the_outbox_depth_is_the_last_count_seen() -> None:
    outbox_depth(12)
    outbox_depth(3)

    assert REGISTRY.get_sample_value("clinical_access_audit_outbox_depth") == 3


class Checkpointer:
    def __init__(self, partition: int, waited_s: float) -> None:
        self.topic, self.partition, self._waited_s = (
            "clinical.orders.events.v1",
            partition,
            waited_s,
        )

    def unattested_for(self) -> float:
        return self._waited_s


def test_checkpoint_age_is_per_partition_and_leaves_with_its_checkpointer() -> None:
    labels = {"topic": "clinical.orders.events.v1", "partition": "4"}
    stuck, idle = Checkpointer(4, 42.0), Checkpointer(5, 0.0)
    watch_checkpointer(stuck)
    watch_checkpointer(idle)

    exported = REGISTRY.get_sample_value("clinical_checkpoint_age_seconds", labels)
    idle_age = REGISTRY.get_sample_value(
        "clinical_checkpoint_age_seconds", labels | {"partition": "5"}
    )
    del stuck
    gc.collect()

    assert (exported, idle_age) == (42.0, 0.0)
    assert REGISTRY.get_sample_value("clinical_checkpoint_age_seconds", labels) is None
