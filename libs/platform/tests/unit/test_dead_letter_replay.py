"""A dead letter turned back into the record it was on its source topic, for the projection's
applier to apply (or set aside) exactly as the runner would have."""

from __future__ import annotations

import pytest
from aiokafka import ConsumerRecord

from clinical_platform.projections.replay import as_on_source

pytestmark = pytest.mark.unit


def dead_letter(headers: tuple[tuple[str, bytes], ...]) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        "clinical.orders.events.v1.dlq", 0, 41, 0, 0, b"key", b"value", None, 3, 5, headers
    )


def test_a_dead_letter_is_its_source_record_again_without_the_quarantine_headers() -> None:
    record = dead_letter((
        ("traceparent", b"00-abc-def-01"), ("dlq_error", b"ValueError"),
        ("dlq_topic", b"clinical.orders.events.v1"), ("dlq_partition", b"2"),
        ("dlq_offset", b"1207"),
    ))  # fmt: skip

    source = as_on_source(record)

    assert (source.topic, source.partition, source.offset) == ("clinical.orders.events.v1", 2, 1207)
    assert source.headers == (("traceparent", b"00-abc-def-01"),)
    assert (source.key, source.value) == (b"key", b"value")


def test_a_dead_letter_with_missing_or_bad_origin_headers_keeps_its_own_place() -> None:
    record = dead_letter((("dlq_partition", b"two"), ("dlq_offset", b"-1")))

    source = as_on_source(record)

    assert (source.topic, source.partition, source.offset) == ("clinical.orders.events.v1", 0, 41)
    assert source.headers == ()
