"""notify's webhook POST and stream message join the trace of the event they carry."""

from __future__ import annotations

import pytest
from clinical_testing.observability import Publish
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from clinical_platform.observability.messaging import processing
from clinical_platform.observability.metrics import REGISTRY
from clinical_platform.observability.webhooks import (
    inject_trace_headers,
    record_outcome,
    stream_message,
    webhook_backlog,
    webhook_backlog_gone,
    webhook_post,
)

pytestmark = pytest.mark.unit


def test_the_webhook_post_is_a_child_of_the_span_that_matched_its_event_and_carries_it(
    spans: InMemorySpanExporter, publish: Publish
) -> None:
    record, envelope = publish()
    with processing(record, "notify.matcher"):
        pass
    headers: dict[str, str] = {}

    with webhook_post(envelope.event_id) as span:
        inject_trace_headers(headers)
        record_outcome(span, "HTTP 503")

    matched = next(s for s in spans.get_finished_spans() if s.kind == SpanKind.CONSUMER)
    post = next(s for s in spans.get_finished_spans() if s.kind == SpanKind.CLIENT)
    assert post.parent is not None
    assert post.parent.span_id == matched.context.span_id
    post_ids = [f"{post.context.trace_id:032x}", f"{post.context.span_id:016x}"]
    assert headers["traceparent"].split("-")[1:3] == post_ids
    attributes = dict(post.attributes or {})
    assert attributes["http.response.status_code"] == 503
    assert post.status.status_code == StatusCode.ERROR
    # Method, status and error class only: never the URL, a header or the body.
    assert set(attributes) == {
        "http.request.method",
        "http.response.status_code",
        "error.type",
    }


def test_a_notification_of_an_unknown_event_is_posted_in_a_trace_of_its_own(
    spans: InMemorySpanExporter,
) -> None:
    with webhook_post("never-seen"):
        pass

    [post] = spans.get_finished_spans()
    assert post.parent is None


def test_a_stream_message_joins_the_trace_of_its_event(
    spans: InMemorySpanExporter, publish: Publish
) -> None:
    record, envelope = publish()
    with processing(record, "notify.matcher"):
        pass

    with stream_message(envelope.event_id, "Subscribe"):
        pass

    matched = next(s for s in spans.get_finished_spans() if s.kind == SpanKind.CONSUMER)
    message = next(s for s in spans.get_finished_spans() if s.name == "Subscribe message")
    assert message.context.trace_id == matched.context.trace_id


def test_the_queue_depth_sums_the_workers_backlogs_without_a_series_per_subscription() -> None:
    webhook_backlog("sub-a", target=5, head=9)
    webhook_backlog("sub-b", target=3, head=2)  # caught up
    webhook_backlog("sub-c", target=1, head=None)  # nothing numbered here yet
    depth = REGISTRY.get_sample_value("clinical_webhook_queue_depth")
    webhook_backlog_gone("sub-a")

    assert depth is not None
    assert depth >= 5
    assert REGISTRY.get_sample_value("clinical_webhook_queue_depth") == depth - 5
