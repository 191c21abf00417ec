"""RegisterPatient, UpdateDemographics, LinkPatients, UnlinkPatients, ForgetPatient over gRPC."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest

from clinical.patient.v1 import patient_pb2 as pb
from clinical.patient.v1 import patient_pb2_grpc
from clinical_platform.logs import configure_logging

pytestmark = pytest.mark.integration

Metadata = tuple[tuple[str, str]]
Register = Callable[..., Awaitable[pb.RegisterPatientResponse]]
Stub = patient_pb2_grpc.PatientServiceStub
TIMEOUT_S = 20.0


async def _status(call: Awaitable[Any]) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await call
    code: grpc.StatusCode = failed.value.code()
    return code


def _rid() -> str:
    return str(uuid.uuid4())


async def test_registration_returns_the_version_and_no_match_for_a_new_person(
    register: Register,
) -> None:
    response = await register()
    assert response.version == 2  # PatientRegistered, PatientMatchAssessed
    assert response.outcome == pb.MATCH_GRADE_NO_MATCH


async def test_a_duplicate_registration_is_matched_linked_and_explained(
    register: Register, stub: Stub, registrar: Metadata, margaret_pb: Callable[..., pb.Demographics]
) -> None:
    first = await register()
    second = await register(margaret_pb(name=pb.HumanName(given=["Peggy"], family="Thornten"),
                                     identifiers=[]))  # fmt: skip
    assert second.outcome == pb.MATCH_GRADE_MATCH
    assert list(second.linked_patient_ids) == [first.patient_id]
    fields = {f.field: f.level for f in second.candidates[0].fields}
    assert fields["given_name"] == "exact"  # peggy is margaret
    assert fields["family_name"] == "similar"


async def test_a_retried_registration_lands_on_the_same_record(
    stub: Stub, registrar: Metadata, margaret_pb: Callable[..., pb.Demographics]
) -> None:
    request = pb.RegisterPatientRequest(request_id=_rid(), demographics=margaret_pb())
    first = await stub.RegisterPatient(request, metadata=registrar, timeout=TIMEOUT_S)
    again = await stub.RegisterPatient(request, metadata=registrar, timeout=TIMEOUT_S)
    assert (again.patient_id, again.version) == (first.patient_id, first.version)


async def test_registration_refuses_invalid_demographics_and_missing_request_ids(
    stub: Stub, registrar: Metadata, margaret_pb: Callable[..., pb.Demographics]
) -> None:
    bad_date = pb.RegisterPatientRequest(
        request_id=_rid(), demographics=margaret_pb(birth_date="1961-02-30")
    )
    assert await _status(stub.RegisterPatient(bad_date, metadata=registrar)) == (
        grpc.StatusCode.INVALID_ARGUMENT
    )
    no_id = pb.RegisterPatientRequest(demographics=margaret_pb())
    assert await _status(stub.RegisterPatient(no_id, metadata=registrar)) == (
        grpc.StatusCode.INVALID_ARGUMENT
    )


async def test_registration_needs_a_token_and_a_registrar_or_clinician(
    stub: Stub, auditor: Metadata, clinician: Metadata, margaret_pb: Callable[..., pb.Demographics]
) -> None:
    request = pb.RegisterPatientRequest(request_id=_rid(), demographics=margaret_pb())
    assert await _status(stub.RegisterPatient(request)) == grpc.StatusCode.UNAUTHENTICATED
    assert await _status(stub.RegisterPatient(request, metadata=auditor)) == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    registered = await stub.RegisterPatient(request, metadata=clinician, timeout=TIMEOUT_S)
    assert registered.version == 2


async def test_update_replaces_demographics_and_checks_the_expected_version(
    register: Register, stub: Stub, clinician: Metadata, margaret_pb: Callable[..., pb.Demographics]
) -> None:
    patient = await register()
    update = pb.UpdateDemographicsRequest(
        request_id=_rid(), patient_id=patient.patient_id, demographics=margaret_pb(phone=""),
        expected_version=patient.version,
    )  # fmt: skip
    updated = await stub.UpdateDemographics(update, metadata=clinician, timeout=TIMEOUT_S)
    assert updated.version == patient.version + 1
    stale = pb.UpdateDemographicsRequest(
        request_id=_rid(), patient_id=patient.patient_id, demographics=margaret_pb(),
        expected_version=patient.version,
    )  # fmt: skip
    assert await _status(stub.UpdateDemographics(stale, metadata=clinician)) == (
        grpc.StatusCode.ABORTED
    )


async def test_update_errors(
    register: Register, stub: Stub, clinician: Metadata, auditor: Metadata,
    margaret_pb: Callable[..., pb.Demographics],
) -> None:  # fmt: skip
    def update(patient_id: str) -> pb.UpdateDemographicsRequest:
        return pb.UpdateDemographicsRequest(
            request_id=_rid(), patient_id=patient_id, demographics=margaret_pb()
        )

    assert await _status(
        stub.UpdateDemographics(update(str(uuid.uuid4())), metadata=clinician)
    ) == (grpc.StatusCode.NOT_FOUND)
    assert await _status(stub.UpdateDemographics(update("not-a-uuid"), metadata=clinician)) == (
        grpc.StatusCode.INVALID_ARGUMENT
    )
    patient = await register()
    assert await _status(stub.UpdateDemographics(update(patient.patient_id), metadata=auditor)) == (
        grpc.StatusCode.PERMISSION_DENIED
    )


async def test_link_and_unlink_are_reversible_and_refuse_repeats(
    register: Register, stub: Stub, registrar: Metadata, stranger: pb.Demographics
) -> None:
    first, second = await register(), await register(stranger)
    link = pb.LinkPatientsRequest(
        request_id=_rid(), patient_id=first.patient_id, other_patient_id=second.patient_id
    )
    linked = await stub.LinkPatients(link, metadata=registrar, timeout=TIMEOUT_S)
    assert linked.anchor_patient_id == min(first.patient_id, second.patient_id)
    link_again = pb.LinkPatientsRequest(
        request_id=_rid(), patient_id=second.patient_id, other_patient_id=first.patient_id
    )
    assert await _status(stub.LinkPatients(link_again, metadata=registrar)) == (
        grpc.StatusCode.FAILED_PRECONDITION
    )
    unlink = pb.UnlinkPatientsRequest(
        request_id=_rid(), patient_id=first.patient_id, other_patient_id=second.patient_id,
        reason="different people",
    )  # fmt: skip
    unlinked = await stub.UnlinkPatients(unlink, metadata=registrar, timeout=TIMEOUT_S)
    assert unlinked.version == linked.version + 1
    unlink.request_id = _rid()
    assert await _status(stub.UnlinkPatients(unlink, metadata=registrar)) == (
        grpc.StatusCode.FAILED_PRECONDITION
    )


async def test_link_errors(
    register: Register, stub: Stub, registrar: Metadata, clinician: Metadata
) -> None:
    patient = await register()

    def link(other: str, patient_id: str = patient.patient_id) -> pb.LinkPatientsRequest:
        return pb.LinkPatientsRequest(request_id=_rid(), patient_id=patient_id,
                                      other_patient_id=other)  # fmt: skip

    assert await _status(stub.LinkPatients(link(patient.patient_id), metadata=registrar)) == (
        grpc.StatusCode.INVALID_ARGUMENT
    )
    assert await _status(stub.LinkPatients(link(str(uuid.uuid4())), metadata=registrar)) == (
        grpc.StatusCode.NOT_FOUND
    )
    assert await _status(stub.LinkPatients(link(str(uuid.uuid4())), metadata=clinician)) == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    unlink = pb.UnlinkPatientsRequest(
        request_id=_rid(), patient_id=patient.patient_id, other_patient_id=str(uuid.uuid4())
    )
    assert await _status(stub.UnlinkPatients(unlink, metadata=clinician)) == (
        grpc.StatusCode.PERMISSION_DENIED
    )


async def test_forget_records_the_erasure_once_is_idempotent_and_blocks_changes(
    register: Register, stub: Stub, registrar: Metadata, clinician: Metadata,
    margaret_pb: Callable[..., pb.Demographics],
) -> None:  # fmt: skip
    patient = await register()
    forget = pb.ForgetPatientRequest(
        request_id=_rid(), patient_id=patient.patient_id, reason="erasure request"
    )
    assert await _status(stub.ForgetPatient(forget, metadata=clinician)) == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    forgotten = await stub.ForgetPatient(forget, metadata=registrar, timeout=TIMEOUT_S)
    assert forgotten.version == patient.version + 1
    # Forgetting is idempotent: a retry with a new request id (say the first call's key
    # destruction failed) finishes the erasure and answers the recorded version.
    forget.request_id = _rid()
    again = await stub.ForgetPatient(forget, metadata=registrar, timeout=TIMEOUT_S)
    assert again.version == forgotten.version
    update = pb.UpdateDemographicsRequest(
        request_id=_rid(), patient_id=patient.patient_id, demographics=margaret_pb()
    )
    assert await _status(stub.UpdateDemographics(update, metadata=registrar)) == (
        grpc.StatusCode.FAILED_PRECONDITION
    )
    unknown = pb.ForgetPatientRequest(request_id=_rid(), patient_id=str(uuid.uuid4()))
    assert await _status(stub.ForgetPatient(unknown, metadata=registrar)) == (
        grpc.StatusCode.NOT_FOUND
    )
    read = await stub.GetPatient(
        pb.GetPatientRequest(patient_id=patient.patient_id, min_version=forgotten.version),
        metadata=registrar, timeout=TIMEOUT_S,
    )  # fmt: skip
    assert read.patient.forgotten
    assert read.patient.demographics.name.family == ""


async def test_no_names_or_birth_dates_reach_the_logs(
    register: Register, stub: Stub, registrar: Metadata, *, caplog: pytest.LogCaptureFixture,
    phi_margaret_pb: pb.Demographics, phi_values: tuple[str, ...],
) -> None:  # fmt: skip
    configure_logging(service="patient", level="DEBUG")  # as the service does at LOG_LEVEL=DEBUG
    caplog.set_level(logging.DEBUG)
    patient = await register(phi_margaret_pb)
    # A duplicate: matched and linked, with its own log lines.
    duplicate = await register(phi_margaret_pb)
    assert list(duplicate.linked_patient_ids) == [patient.patient_id]
    bad = pb.UpdateDemographicsRequest(
        request_id=_rid(), patient_id=patient.patient_id,
        demographics=pb.Demographics(
            name=phi_margaret_pb.name, address=phi_margaret_pb.address, birth_date="1961-13-45"
        ),
    )  # fmt: skip
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.UpdateDemographics(bad, metadata=registrar)
    # Every attribute of every record: no id or clock reading can hold a canary by chance.
    logged = caplog.text + " ".join(str(vars(record)) for record in caplog.records)
    for value in (*phi_values, "1961-13-45"):
        assert value not in logged
        assert value not in (refused.value.details() or "")
