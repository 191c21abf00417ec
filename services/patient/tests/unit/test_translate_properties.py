"""Property-based fuzzing of the patient translators: any request parses or is InvalidRequest.

Requests are drawn from the protos' descriptors (`clinical_testing.strategies`): any string,
any number, unknown enum numbers, Timestamps out of range, repeated fields past their caps.
Parsed demographics are also put through the domain's rules, which must not raise either.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from clinical_testing.strategies import FUZZ, parsed_or_refused, requests, texts
from google.protobuf.message import Message
from hypothesis import given

from clinical.patient.v1 import patient_pb2 as pb
from patient.domain.demographics import PatientDemographics, violations
from patient.entrypoints import translate

pytestmark = pytest.mark.unit

TODAY = date(2026, 1, 1)


def _parses_or_refuses(parse: Callable[[Any], object], request: Message) -> None:
    parsed = parsed_or_refused(lambda: parse(request))
    for value in parsed if isinstance(parsed, tuple) else (parsed,):
        if isinstance(value, PatientDemographics):
            violations(value, today=TODAY)


@FUZZ
@given(requests(pb.RegisterPatientRequest))
def test_registrations_parse_or_are_refused(request: pb.RegisterPatientRequest) -> None:
    _parses_or_refuses(translate.registration_from, request)


@FUZZ
@given(requests(pb.UpdateDemographicsRequest))
def test_updates_parse_or_are_refused(request: pb.UpdateDemographicsRequest) -> None:
    _parses_or_refuses(translate.update_from, request)


@FUZZ
@given(requests(pb.LinkPatientsRequest) | requests(pb.UnlinkPatientsRequest))
def test_links_and_unlinks_parse_or_are_refused(request: pb.LinkPatientsRequest) -> None:
    _parses_or_refuses(translate.pair_from, request)


@FUZZ
@given(requests(pb.ForgetPatientRequest))
def test_erasures_parse_or_are_refused(request: pb.ForgetPatientRequest) -> None:
    _parses_or_refuses(translate.forget_from, request)


@FUZZ
@given(texts())
def test_patient_ids_parse_or_are_refused(text: str) -> None:
    _parses_or_refuses(translate.patient_id_from, text)  # type: ignore[arg-type]


@FUZZ
@given(requests(pb.SearchPatientsRequest))
def test_searches_parse_or_are_refused(request: pb.SearchPatientsRequest) -> None:
    _parses_or_refuses(translate.search_from, request)


@FUZZ
@given(requests(pb.FindMatchesRequest))
def test_match_requests_parse_or_are_refused(request: pb.FindMatchesRequest) -> None:
    _parses_or_refuses(translate.match_subject_from, request)
    assert 0 < translate.match_limit(request) <= translate.MAX_PAGE
