"""Property-based fuzzing of the notify translators: any request parses or is InvalidRequest.

Requests are drawn from the protos' descriptors (`clinical_testing.strategies`): any string,
any number, unknown enum numbers, repeated fields past their caps.
"""

from __future__ import annotations

import pytest
from clinical_testing.strategies import FUZZ, parsed_or_refused, requests, texts
from hypothesis import given

from clinical.notify.v1 import notify_pb2 as pb
from clinical_platform.validation import Violations
from notify.entrypoints import translate

pytestmark = pytest.mark.unit


def _create(request: pb.CreateSubscriptionRequest) -> object:
    violations = Violations()
    command = translate.create_subscription(request, violations)
    violations.raise_if_any()
    return command


@FUZZ
@given(requests(pb.CreateSubscriptionRequest))
def test_subscriptions_parse_or_are_refused(request: pb.CreateSubscriptionRequest) -> None:
    parsed_or_refused(lambda: _create(request))


@FUZZ
@given(
    requests(pb.GetSubscriptionRequest)
    | requests(pb.SubscribeRequest)
    | requests(pb.GetStatusRequest)
    | requests(pb.ResendRequest)
)
def test_subscription_ids_parse_or_are_refused(request: pb.GetSubscriptionRequest) -> None:
    parsed_or_refused(lambda: translate.subscription_id_from(request))


@FUZZ
@given(
    requests(pb.DeleteSubscriptionRequest)
    | requests(pb.RotateWebhookSecretRequest)
    | requests(pb.RenewSubscriptionRequest)
    | requests(pb.RevokeSubscriptionRequest)
)
def test_subscription_commands_parse_or_are_refused(request: pb.DeleteSubscriptionRequest) -> None:
    parsed_or_refused(
        lambda: translate.subscription_id_from(request, request_id=request.request_id)
    )


@FUZZ
@given(requests(pb.RevokeOwnerSubscriptionsRequest))
def test_owner_revocations_parse_or_are_refused(
    request: pb.RevokeOwnerSubscriptionsRequest,
) -> None:
    parsed_or_refused(lambda: translate.owner_from(request))


@FUZZ
@given(requests(pb.ListSubscriptionsRequest))
def test_subscription_pages_parse_or_are_refused(request: pb.ListSubscriptionsRequest) -> None:
    parsed_or_refused(lambda: translate.subscriptions_page(request))


@FUZZ
@given(requests(pb.ListEventsRequest))
def test_event_pages_parse_or_are_refused(request: pb.ListEventsRequest) -> None:
    parsed_or_refused(lambda: translate.events_page(request))


@FUZZ
@given(texts())
def test_page_tokens_parse_or_are_refused(token: str) -> None:
    violations = Violations()
    translate.after_token(token, violations)
    parsed_or_refused(violations.raise_if_any)
