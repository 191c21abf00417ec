"""GetPatient, SearchPatients, FindMatches over gRPC: read-your-writes, permissions, errors."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest
from clinical_testing.tokens import TokenMint
from clinical_testing.waiting import eventually

from clinical.patient.v1 import patient_pb2 as pb
from clinical.patient.v1 import patient_pb2_grpc
from clinical_platform.principals import Role

pytestmark = pytest.mark.integration

Metadata = tuple[tuple[str, str]]
Register = Callable[..., Awaitable[pb.RegisterPatientResponse]]
CareFor = Callable[[str], Awaitable[int]]
Stub = patient_pb2_grpc.PatientServiceStub
TIMEOUT_S = 20.0


async def _status(call: Awaitable[Any]) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await call
    code: grpc.StatusCode = failed.value.code()
    return code


async def test_get_waits_for_the_version_and_shows_links_and_the_golden_record(
    register: Register, stub: Stub, clinician: Metadata,
    margaret_pb: Callable[..., pb.Demographics], care_for: CareFor,
) -> None:  # fmt: skip
    first = await register()
    second = await register(margaret_pb(phone="", identifiers=[]))
    await care_for(first.patient_id)
    anchor = min(first.patient_id, second.patient_id)
    read = await stub.GetPatient(
        pb.GetPatientRequest(patient_id=first.patient_id,
                             min_version=first.version if anchor != first.patient_id else 3),
        metadata=clinician, timeout=TIMEOUT_S,
    )  # fmt: skip
    assert read.patient.demographics.name.family == "Thornton"
    assert list(read.patient.linked_patient_ids) == [second.patient_id]
    golden = read.golden_record
    assert sorted(golden.member_patient_ids) == sorted([first.patient_id, second.patient_id])
    assert golden.demographics.phone == "+61 7 3350 1234"
    sources = {s.field: list(s.patient_ids) for s in golden.sources}
    assert sources["phone"] == [first.patient_id]


async def test_a_patient_reads_only_their_own_record(
    register: Register, stub: Stub, token_mint: TokenMint, stranger: pb.Demographics
) -> None:
    mine, theirs = await register(), await register(stranger)
    me = token_mint.metadata("patient-1", Role.PATIENT, patient_id=mine.patient_id)
    own = await stub.GetPatient(
        pb.GetPatientRequest(patient_id=mine.patient_id), metadata=me, timeout=TIMEOUT_S
    )
    assert own.patient.patient_id == mine.patient_id
    assert (
        await _status(
            stub.GetPatient(pb.GetPatientRequest(patient_id=theirs.patient_id), metadata=me)
        )
        == grpc.StatusCode.PERMISSION_DENIED
    )
    search = pb.SearchPatientsRequest(family_name="Thornton")
    assert await _status(stub.SearchPatients(search, metadata=me)) == (
        grpc.StatusCode.PERMISSION_DENIED
    )


async def test_a_patient_sees_neither_links_nor_the_golden_record_of_a_record_matched_to_theirs(  # noqa: PLR0917 - pytest passes fixtures by name
    register: Register, stub: Stub, token_mint: TokenMint, clinician: Metadata,
    margaret_pb: Callable[..., pb.Demographics], care_for: CareFor,
) -> None:  # fmt: skip
    # A registration crafted to match a victim's record is linked to it automatically.
    victim = await register()
    crafted = await register(margaret_pb(phone="", identifiers=[]))
    await care_for(crafted.patient_id)

    async def golden_members() -> list[str]:
        read: pb.GetPatientResponse = await stub.GetPatient(
            pb.GetPatientRequest(patient_id=crafted.patient_id, min_version=crafted.version),
            metadata=clinician, timeout=TIMEOUT_S,
        )  # fmt: skip
        return list(read.golden_record.member_patient_ids)

    linked = await eventually(golden_members, within_s=TIMEOUT_S)
    assert victim.patient_id in linked  # staff see the golden record merging both
    owner = token_mint.metadata("crafter", Role.PATIENT, patient_id=crafted.patient_id)

    own = await stub.GetPatient(
        pb.GetPatientRequest(patient_id=crafted.patient_id), metadata=owner, timeout=TIMEOUT_S
    )

    assert not own.HasField("golden_record")
    assert list(own.patient.linked_patient_ids) == []
    assert victim.patient_id not in str(own)
    assert "+61 7 3350 1234" not in str(own)  # the victim's phone, only on their record


@pytest.mark.parametrize("role", [Role.AUDITOR, Role.LAB])
async def test_auditors_and_lab_staff_read_no_demographics(
    register: Register, stub: Stub, token_mint: TokenMint, role: Role
) -> None:
    patient = await register()
    metadata = token_mint.metadata("staff", role)
    read = stub.GetPatient(pb.GetPatientRequest(patient_id=patient.patient_id), metadata=metadata)
    search = stub.SearchPatients(
        pb.SearchPatientsRequest(family_name="Thornton"), metadata=metadata
    )

    assert await _status(read) == grpc.StatusCode.PERMISSION_DENIED
    assert await _status(search) == grpc.StatusCode.PERMISSION_DENIED


async def test_get_errors(
    register: Register, stub: Stub, registrar: Metadata, clinician: Metadata
) -> None:
    # Registrars read every record, so they may hear that one does not exist; a clinician is
    # refused first (no care relationship with a record that does not exist).
    unknown = pb.GetPatientRequest(patient_id=str(uuid.uuid4()))
    assert await _status(stub.GetPatient(unknown, metadata=registrar)) == grpc.StatusCode.NOT_FOUND
    assert await _status(stub.GetPatient(unknown, metadata=clinician)) == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    bad = pb.GetPatientRequest(patient_id="42")
    assert await _status(stub.GetPatient(bad, metadata=registrar)) == (
        grpc.StatusCode.INVALID_ARGUMENT
    )
    patient = await register()
    # A version the log does not hold is refused at once, not waited for until the deadline.
    ahead = pb.GetPatientRequest(patient_id=patient.patient_id, min_version=patient.version + 5)
    assert await _status(stub.GetPatient(ahead, metadata=registrar, timeout=60)) == (
        grpc.StatusCode.OUT_OF_RANGE
    )
    assert await _status(stub.GetPatient(unknown)) == grpc.StatusCode.UNAUTHENTICATED


async def test_search_by_normalised_name_nickname_birth_date_and_identifier(
    register: Register, stub: Stub, clinician: Metadata, stranger: pb.Demographics,
    care_for: CareFor,
) -> None:  # fmt: skip
    margaret, _ = await register(), await register(stranger)
    await care_for(margaret.patient_id)

    async def found(**criteria: Any) -> list[str]:
        response = await stub.SearchPatients(
            pb.SearchPatientsRequest(**criteria), metadata=clinician, timeout=TIMEOUT_S
        )
        return [p.patient_id for p in response.patients]

    assert await found(family_name="THORNTON ") == [margaret.patient_id]
    assert await found(family_name="thornton", given_name="Peggy") == [margaret.patient_id]
    assert await found(birth_date="1961-04-12") == [margaret.patient_id]
    identifier = pb.Identifier(system="urn:mrn:kedron-hospital", value="k123456")
    assert await found(identifier=identifier) == [margaret.patient_id]
    assert await found(family_name="Nobody") == []
    assert await found(family_name="Thornton", written_patient_id=margaret.patient_id,
                       min_version=margaret.version) == [margaret.patient_id]  # fmt: skip


async def test_a_clinicians_search_finds_only_records_in_their_care_unless_by_break_glass(  # noqa: PLR0917 - pytest passes fixtures by name
    register: Register, stub: Stub, clinician: Metadata, registrar: Metadata,
    care_for: CareFor, margaret_pb: Callable[..., pb.Demographics],
) -> None:  # fmt: skip
    family = f"Thornton{uuid.uuid4().hex}"
    cared_for = await register(margaret_pb(name=pb.HumanName(given=["Ann"], family=family)))
    other = await register(margaret_pb(name=pb.HumanName(given=["Bea"], family=family),
                                       identifiers=[], phone=""))  # fmt: skip
    await care_for(cared_for.patient_id)
    search = pb.SearchPatientsRequest(family_name=family)
    glass = (*clinician, ("x-purpose-of-use", "ETREAT"), ("x-break-glass-reason", "arrest"))

    def ids(response: pb.SearchPatientsResponse) -> set[str]:
        return {p.patient_id for p in response.patients}

    both = {cared_for.patient_id, other.patient_id}
    assert ids(await stub.SearchPatients(search, metadata=registrar, timeout=TIMEOUT_S)) == both
    mine = await stub.SearchPatients(search, metadata=clinician, timeout=TIMEOUT_S)
    assert ids(mine) == {cared_for.patient_id}
    assert ids(await stub.SearchPatients(search, metadata=glass, timeout=TIMEOUT_S)) == both


async def test_search_needs_a_criterion(stub: Stub, clinician: Metadata) -> None:
    assert await _status(stub.SearchPatients(pb.SearchPatientsRequest(), metadata=clinician)) == (
        grpc.StatusCode.INVALID_ARGUMENT
    )


async def test_find_matches_explains_each_candidate_field_by_field(
    register: Register, stub: Stub, registrar: Metadata, margaret_pb: Callable[..., pb.Demographics]
) -> None:
    registered = await register()
    probe = margaret_pb(birth_date="1961-12-04", identifiers=[])
    response = await stub.FindMatches(
        pb.FindMatchesRequest(demographics=probe), metadata=registrar, timeout=TIMEOUT_S
    )
    best = response.candidates[0]
    assert best.patient_id == registered.patient_id
    assert best.grade == pb.MATCH_GRADE_MATCH
    levels = {f.field: f.level for f in best.fields}
    assert levels["birth_date"] == "day_month_swapped"
    assert best.score == pytest.approx(sum(f.weight for f in best.fields), abs=0.01)


async def test_find_matches_for_a_record_excludes_itself(
    register: Register, stub: Stub, registrar: Metadata, stranger: pb.Demographics
) -> None:
    first = await register()
    await register(stranger)
    response = await stub.FindMatches(
        pb.FindMatchesRequest(patient_id=first.patient_id, min_version=first.version),
        metadata=registrar, timeout=TIMEOUT_S,
    )  # fmt: skip
    assert first.patient_id not in [c.patient_id for c in response.candidates]


async def test_find_matches_errors(stub: Stub, registrar: Metadata, token_mint: TokenMint) -> None:
    unknown = pb.FindMatchesRequest(patient_id=str(uuid.uuid4()))
    assert await _status(stub.FindMatches(unknown, metadata=registrar)) == (
        grpc.StatusCode.NOT_FOUND
    )
    assert await _status(stub.FindMatches(pb.FindMatchesRequest(), metadata=registrar)) == (
        grpc.StatusCode.INVALID_ARGUMENT
    )
    lab = token_mint.metadata("lab-1", Role.LAB)
    assert await _status(stub.FindMatches(unknown, metadata=lab)) == (
        grpc.StatusCode.PERMISSION_DENIED
    )
