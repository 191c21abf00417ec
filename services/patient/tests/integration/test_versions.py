"""Earlier versions over gRPC: GetPatient at a version or an instant, SearchPatients at an
instant and its total, ListPatients, and a forgotten patient's versions gone."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from clinical.patient.v1 import patient_pb2 as pb
from clinical.patient.v1 import patient_pb2_grpc
from patient.adapters.patient_versions import PATIENT_VERSIONS

pytestmark = pytest.mark.integration

Metadata = tuple[tuple[str, str]]
Register = Callable[..., Awaitable[pb.RegisterPatientResponse]]
Stub = patient_pb2_grpc.PatientServiceStub
TIMEOUT_S = 20.0
PatientUnderTest = Any  # conftest's PatientUnderTest: the running service and its stub


async def _status(call: Awaitable[Any]) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await call
    code: grpc.StatusCode = failed.value.code()
    return code


def _renamed(family: str) -> pb.Demographics:
    return pb.Demographics(name=pb.HumanName(given=["Ines"], family=family),
                           birth_date="1988-03-09")  # fmt: skip


async def _get(stub: Stub, metadata: Metadata, patient_id: str, **asked: Any) -> pb.Patient:
    answer = await stub.GetPatient(pb.GetPatientRequest(patient_id=patient_id, **asked),
                                   metadata=metadata, timeout=TIMEOUT_S)  # fmt: skip
    patient: pb.Patient = answer.patient
    return patient


async def _update(stub: Stub, registrar: Metadata, patient_id: str, family: str) -> int:
    updated = await stub.UpdateDemographics(
        pb.UpdateDemographicsRequest(request_id=str(uuid.uuid4()), patient_id=patient_id,
                                     demographics=_renamed(family)),
        metadata=registrar, timeout=TIMEOUT_S,
    )  # fmt: skip
    version: int = updated.version
    return version


async def test_every_version_is_read_by_number_or_instant_and_searched_as_it_stood(
    register: Register, stub: Stub, registrar: Metadata, stranger: pb.Demographics
) -> None:
    first, second = await register(_renamed("Vasquez")), await register(stranger)
    anchor, other = sorted((first.patient_id, second.patient_id))
    await _update(stub, registrar, anchor, "Vasquez")  # whichever it was, now Vasquez
    middle = await _update(stub, registrar, anchor, "Okonkwo")
    last = await _update(stub, registrar, anchor, "Lindqvist")
    linked = await stub.LinkPatients(
        pb.LinkPatientsRequest(request_id=str(uuid.uuid4()), patient_id=anchor,
                               other_patient_id=other),
        metadata=registrar, timeout=TIMEOUT_S,
    )  # fmt: skip

    current = await _get(stub, registrar, anchor, min_version=linked.version)
    at_middle = await _get(stub, registrar, anchor, version=middle)
    assert (at_middle.version, at_middle.demographics.name.family) == (middle, "Okonkwo")
    assert list(at_middle.linked_patient_ids) == []
    at_link = await _get(stub, registrar, anchor, version=linked.version)
    assert list(at_link.linked_patient_ids) == [other]
    # The match assessment (version 2) shows what the registration recorded.
    assert (await _get(stub, registrar, anchor, version=2)).version == 2
    assert current.recorded_at.ToDatetime() > at_middle.recorded_at.ToDatetime()

    then = await _get(stub, registrar, anchor, as_of=at_middle.recorded_at)
    assert (then.version, then.demographics.name.family) == (middle, "Okonkwo")
    before = Timestamp()
    registered = await _get(stub, registrar, anchor, version=1)
    before.FromDatetime(registered.recorded_at.ToDatetime() - timedelta(seconds=1))
    missing = stub.GetPatient(pb.GetPatientRequest(patient_id=anchor, as_of=before),
                              metadata=registrar, timeout=TIMEOUT_S)  # fmt: skip
    assert await _status(missing) == grpc.StatusCode.NOT_FOUND
    beyond = stub.GetPatient(pb.GetPatientRequest(patient_id=anchor, version=last + 50),
                             metadata=registrar, timeout=TIMEOUT_S)  # fmt: skip
    assert await _status(beyond) == grpc.StatusCode.OUT_OF_RANGE

    async def found(family: str, as_of: Timestamp | None = None) -> list[str]:
        request = pb.SearchPatientsRequest(family_name=family, as_of=as_of)
        answer = await stub.SearchPatients(request, metadata=registrar, timeout=TIMEOUT_S)
        assert answer.total == len(answer.patients)
        return [p.patient_id for p in answer.patients]

    assert await found("Okonkwo", at_middle.recorded_at) == [anchor]
    assert await found("Lindqvist", at_middle.recorded_at) == []
    assert await found("Lindqvist") == [anchor]
    assert await found("Okonkwo") == []


async def test_list_pages_every_patient_and_never_a_forgotten_one(
    register: Register, stub: Stub, registrar: Metadata, clinician: Metadata,
    patient_service: PatientUnderTest,
) -> None:  # fmt: skip
    ids = sorted([(await register(_renamed(f"Family{n}"))).patient_id for n in range(3)])
    forgotten = ids[1]
    forgetting = await stub.ForgetPatient(
        pb.ForgetPatientRequest(request_id=str(uuid.uuid4()), patient_id=forgotten,
                                reason="erasure request"),
        metadata=registrar, timeout=TIMEOUT_S,
    )  # fmt: skip
    await _get(stub, registrar, forgotten, min_version=forgetting.version)
    gone = await _get(stub, registrar, forgotten, version=1)
    assert gone.forgotten
    assert not gone.demographics.name.family
    versions = patient_service.database[PATIENT_VERSIONS]
    assert await versions.count_documents({"patient_id": forgotten}) == 0
    assert await versions.count_documents({"patient_id": ids[0]}) >= 1

    listed: list[str] = []
    token = ""
    while True:
        page = await stub.ListPatients(pb.ListPatientsRequest(page_size=1, page_token=token),
                                       metadata=registrar, timeout=TIMEOUT_S)  # fmt: skip
        listed += [p.patient_id for p in page.patients]
        token = page.next_page_token
        if not token:
            break
    assert listed == [ids[0], ids[2]]
    refused = stub.ListPatients(pb.ListPatientsRequest(), metadata=clinician, timeout=TIMEOUT_S)
    assert await _status(refused) == grpc.StatusCode.PERMISSION_DENIED
    not_an_id = pb.ListPatientsRequest(page_token="x")  # noqa: S106 - a page token
    bad = stub.ListPatients(not_an_id, metadata=registrar)
    assert await _status(bad) == grpc.StatusCode.INVALID_ARGUMENT
