"""The notify domain: filters, who may subscribe and receive, retry timing, the aggregate."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from notify.domain.backoff import RetrySchedule
from notify.domain.errors import InvalidSubscription
from notify.domain.events import ClinicalEvent, matches
from notify.domain.subscription import (
    Content,
    Filter,
    Owner,
    Subscription,
    Topic,
)
from notify.domain.webhook import WebhookSecret, webhook_url_problem
from notify.policy import Decision, Refusal, Withheld, creation_refusal, decide, scoped_filter

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
PATIENT = str(uuid.uuid4())
CLINICIAN = Owner("dr-a", ("clinician",))
PATIENT_OWNER = Owner("pat-1", ("patient",), patient_id=PATIENT)


def event(**fields: object) -> ClinicalEvent:
    defaults: dict[str, object] = {
        "topic": Topic.RESULT_POSTED, "event_id": "e-1", "patient_id": PATIENT,
        "order_id": "o-1", "result_id": "r-1", "version": 1, "occurred_at": NOW,
        "orderer": "dr-a", "priority": "stat", "loinc_codes": frozenset({"2823-3"}),
        "abnormal": False,
    }  # fmt: skip
    return ClinicalEvent(**(defaults | fields))  # type: ignore[arg-type]


def test_an_empty_filter_matches_everything() -> None:
    assert matches(Filter(), event())


@pytest.mark.parametrize(
    ("event_filter", "expected"),
    [
        (Filter(patient_ids=(PATIENT,)), True),
        (Filter(patient_ids=(str(uuid.uuid4()),)), False),
        (Filter(orderers=("dr-a", "dr-b")), True),
        (Filter(orderers=("dr-b",)), False),
        (Filter(loinc_codes=("2345-7", "2823-3")), True),
        (Filter(loinc_codes=("2345-7",)), False),
        (Filter(priorities=("routine",)), False),
        (Filter(priorities=("stat",), orderers=("dr-a",)), True),
        (Filter(abnormal_only=True), False),
    ],
)
def test_every_filter_field_must_match(event_filter: Filter, expected: bool) -> None:
    assert matches(event_filter, event()) is expected


def test_abnormal_only_keeps_abnormal_results_and_leaves_orders_alone() -> None:
    only_abnormal = Filter(abnormal_only=True)
    assert matches(only_abnormal, event(abnormal=True))
    assert matches(only_abnormal, event(topic=Topic.ORDER_SIGNED))


def test_a_patient_subscribes_only_to_their_own_record() -> None:
    assert creation_refusal(PATIENT_OWNER, Filter()) is None
    assert creation_refusal(PATIENT_OWNER, Filter(patient_ids=(PATIENT,))) is None
    other = Filter(patient_ids=(str(uuid.uuid4()),))
    assert creation_refusal(PATIENT_OWNER, other) is Refusal.OTHER_PATIENT
    assert creation_refusal(Owner("pat-2", ("patient",)), Filter()) is Refusal.NO_PATIENT
    assert creation_refusal(Owner("reg", ("registrar",)), Filter()) is Refusal.ROLE
    assert scoped_filter(PATIENT_OWNER, Filter()).patient_ids == (PATIENT,)
    assert scoped_filter(CLINICIAN, Filter()).patient_ids == ()


def test_delivery_is_re_checked_against_scope_and_forgetting() -> None:
    mine = Filter(patient_ids=(PATIENT,))
    assert decide(CLINICIAN, Content.FULL, PATIENT, forgotten=False, event_filter=mine) == (
        Decision(None, Content.FULL)
    )
    forgotten = decide(CLINICIAN, Content.FULL, PATIENT, forgotten=True, event_filter=mine)
    assert forgotten.withheld is Withheld.FORGOTTEN
    other = str(uuid.uuid4())
    refused = decide(PATIENT_OWNER, Content.FULL, other, forgotten=False, event_filter=Filter())
    assert refused.withheld is Withheld.OUT_OF_SCOPE


def test_backoff_grows_exponentially_with_jitter_up_to_the_cap() -> None:
    schedule = RetrySchedule(
        first=timedelta(seconds=5), maximum=timedelta(hours=2), horizon=timedelta(hours=72)
    )
    rng = random.Random(7)  # noqa: S311 - jitter, not cryptography
    delays = [schedule.delay(n, rng).total_seconds() for n in range(1, 20)]
    for attempt, delay in enumerate(delays, start=1):
        ceiling = min(5 * 2 ** (attempt - 1), 7200)
        assert ceiling / 2 <= delay <= ceiling
    assert schedule.delay(10_000, rng) <= timedelta(hours=2)


def test_retries_stop_at_the_horizon() -> None:
    schedule = RetrySchedule(
        first=timedelta(seconds=5), maximum=timedelta(hours=2), horizon=timedelta(hours=72)
    )
    first = NOW
    late = first + timedelta(hours=71, minutes=59)
    retry = schedule.next_attempt(40, first, late)
    assert retry is not None
    assert retry <= first + timedelta(hours=72)
    assert schedule.next_attempt(41, first, first + timedelta(hours=72)) is None


@pytest.mark.parametrize(
    ("url", "allow_http", "problem"),
    [
        ("https://app.example/hook", False, None),
        ("http://127.0.0.1:8080/hook", True, None),
        ("http://app.example/hook", False, "must be an https URL"),
        ("https:///hook", False, "has no host"),
        ("https://user:pw@app.example/hook", False, "must not carry credentials"),
        ("https://app.example/hook#x", False, "must not have a fragment"),
        ("https://app.example:99999/hook", False, "is not a URL"),
    ],
)
def test_webhook_urls(url: str, allow_http: bool, problem: str | None) -> None:
    assert webhook_url_problem(url, allow_http=allow_http) == problem


def subscription(**fields: object) -> Subscription:
    defaults: dict[str, object] = {
        "subscription_id": uuid.uuid4(), "owner": CLINICIAN, "topics": [Topic.ORDER_SIGNED],
        "event_filter": Filter(), "content": Content.ID_ONLY,
        "webhook_url": "https://app.example/hook", "secret": WebhookSecret("vault:v1:a"),
        "at": NOW,
    }  # fmt: skip
    return Subscription.create(**(defaults | fields))  # type: ignore[arg-type]


def test_a_subscription_needs_topics_and_valid_filters() -> None:
    with pytest.raises(InvalidSubscription) as invalid:
        subscription(topics=[], event_filter=Filter(priorities=("asap",)))
    assert [v.field for v in invalid.value.violations] == ["topics", "filter.priorities[0]"]


def test_a_rotated_secret_signs_alongside_the_new_one_until_the_overlap_ends() -> None:
    created = subscription()
    created.rotate_secret(WebhookSecret("vault:v1:b"), at=NOW, overlap=timedelta(hours=24))
    current, previous = created.secrets
    assert current == WebhookSecret("vault:v1:b")
    assert previous == WebhookSecret("vault:v1:a", NOW + timedelta(hours=24))
    created.delete(by="dr-a", at=NOW)
    created.delete(by="dr-a", at=NOW)
    assert created.deleted
    assert len(created.collect_events()) == 3
