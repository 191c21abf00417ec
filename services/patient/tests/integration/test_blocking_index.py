"""The matcher's blocking index: current at commit, rebuilt from the log, forgetting respected."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from clinical.patient.v1 import patient_pb2 as pb
from patient.bootstrap import running_patient
from patient.domain.demographics import PatientDemographics
from patient.settings import PatientSettings

pytestmark = pytest.mark.integration
TIMEOUT_S = 20.0
Metadata = tuple[tuple[str, str]]
PatientUnderTest = Any  # conftest's PatientUnderTest: the running service and its stub


def _rid() -> str:
    return str(uuid.uuid4())


async def _register(
    service: PatientUnderTest, registrar: Metadata, demographics: pb.Demographics
) -> pb.RegisterPatientResponse:
    request = pb.RegisterPatientRequest(request_id=_rid(), demographics=demographics)
    response: pb.RegisterPatientResponse = await service.stub.RegisterPatient(
        request, metadata=registrar, timeout=TIMEOUT_S
    )
    return response


async def _indexed_after_restart(
    service: PatientUnderTest, tmp_path: Path, demographics: PatientDemographics
) -> list[UUID]:
    """Start another instance on the same log (empty state): what its rebuilt index offers."""
    settings: PatientSettings = service.settings.model_copy(
        update={"state_dir": tmp_path / "restarted"}
    )
    async with running_patient(settings, service=service.service) as restarted:
        found = await restarted.app.find_matches(demographics, limit=10)
        return [match.patient_id for match in found]


async def test_a_duplicate_registered_right_after_is_matched_without_reading_back(
    patient_service: PatientUnderTest, registrar: Metadata,
    margaret_pb: Callable[..., pb.Demographics],
) -> None:  # fmt: skip
    first = await _register(patient_service, registrar, margaret_pb())
    retyped = margaret_pb(name=pb.HumanName(given=["Peggy"], family="Thornton"))

    second = await _register(patient_service, registrar, retyped)

    assert second.outcome == pb.MATCH_GRADE_MATCH
    assert list(second.linked_patient_ids) == [first.patient_id]


async def test_a_restarted_service_rebuilds_its_index_from_the_log(
    patient_service: PatientUnderTest, registrar: Metadata, tmp_path: Path,
    margaret_pb: Callable[..., pb.Demographics], margaret: PatientDemographics,
) -> None:  # fmt: skip
    first = await _register(patient_service, registrar, margaret_pb())

    found = await _indexed_after_restart(patient_service, tmp_path, replace(margaret, phone=""))

    assert found == [UUID(first.patient_id)]


async def test_a_forgotten_patient_leaves_the_index_and_a_rebuild_does_not_bring_them_back(
    patient_service: PatientUnderTest, registrar: Metadata, tmp_path: Path,
    margaret_pb: Callable[..., pb.Demographics], margaret: PatientDemographics,
) -> None:  # fmt: skip
    first = await _register(patient_service, registrar, margaret_pb())
    forget = pb.ForgetPatientRequest(
        request_id=_rid(), patient_id=first.patient_id, reason="erasure request"
    )
    await patient_service.stub.ForgetPatient(forget, metadata=registrar, timeout=TIMEOUT_S)

    assert await patient_service.running.app.find_matches(margaret, limit=10) == []
    assert await _indexed_after_restart(patient_service, tmp_path, margaret) == []
