"""The authorization matrix of patient reads: role x care relationship x RPC, on the real services.

One ward is set up for the module (patient, orders and results in-process): patient P with a
care team, an order for P placed by one clinician and its result; then every principal calls
every read of P's data. A denial is PERMISSION_DENIED and an access record (DENIED); a
break-glass read is served and its access record carries the flag and the reason.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from clinical_testing.access import read_access_records
from clinical_testing.endpoints import ServerEndpoints
from clinical_testing.tokens import TokenMint
from clinical_testing.waiting import eventually, once_recorded
from pymongo import AsyncMongoClient

from clinical.audit.v1 import access_pb2
from clinical.orders.v1 import orders_pb2
from clinical.patient.v1 import patient_pb2
from clinical.results.v1 import results_pb2
from clinical_platform.care.relationships import CARE_RELATIONSHIPS, relationship_id
from clinical_platform.principals import Role

pytestmark = pytest.mark.integration

Hospital = Any  # conftest's Hospital: the three services' stubs, topics and tokens
Metadata = tuple[tuple[str, str], ...]

TIMEOUT_S = 10.0
REASON = "unconscious in the emergency department, no team assigned"
BREAK_GLASS = (("x-purpose-of-use", "ETREAT"), ("x-break-glass-reason", REASON))
READS = ("GetPatient", "GetOrder", "ListOrders", "GetResult", "ListResults")
ALL, NONE = frozenset(READS), frozenset[str]()


@dataclass(frozen=True)
class Ward:
    hospital: Hospital
    patient_id: str
    other_patient_id: str
    order_id: str
    result_id: str

    def reads(self, patient_id: str = "", order_id: str = "", result_id: str = "") -> dict[
        str, Callable[[Metadata], Awaitable[Any]]
    ]:  # fmt: skip
        """Each read of the ward's patient's data (or of the ids given), by RPC name."""
        h, patient = self.hospital, patient_id or self.patient_id
        order, result = order_id or self.order_id, result_id or self.result_id
        return {
            "GetPatient": lambda m: h.patient.GetPatient(
                patient_pb2.GetPatientRequest(patient_id=patient), metadata=m, timeout=TIMEOUT_S
            ),
            "GetOrder": lambda m: h.orders.GetOrder(
                orders_pb2.GetOrderRequest(order_id=order), metadata=m, timeout=TIMEOUT_S
            ),
            "ListOrders": lambda m: h.orders.ListOrders(
                orders_pb2.ListOrdersRequest(patient_id=patient), metadata=m, timeout=TIMEOUT_S
            ),
            "GetResult": lambda m: h.results.GetResult(
                results_pb2.GetResultRequest(result_id=result), metadata=m, timeout=TIMEOUT_S
            ),
            "ListResults": lambda m: h.results.ListResults(
                results_pb2.ListResultsRequest(patient_id=patient), metadata=m, timeout=TIMEOUT_S
            ),
        }


@pytest.fixture(scope="module")
async def ward(module_hospital: Hospital, servers: ServerEndpoints) -> Ward:
    """P with dr-team on its care team, dr-ended once on it, dr-orderer's order signed by
    dr-signing and its result; Q, another patient. Waits until every service knows the
    relationships."""
    hospital = module_hospital
    registrar = hospital.registrar()
    patient_id = await _register(hospital, "Thornton")
    other_patient_id = await _register(hospital, "Berry")
    for subject in ("dr-team", "dr-ended"):
        await hospital.patient.AssignCareTeamMember(
            patient_pb2.AssignCareTeamMemberRequest(
                request_id=str(uuid.uuid4()), patient_id=patient_id, member_subject=subject
            ),
            metadata=registrar, timeout=TIMEOUT_S,
        )  # fmt: skip
    await hospital.patient.EndCareTeamMember(
        patient_pb2.EndCareTeamMemberRequest(
            request_id=str(uuid.uuid4()), patient_id=patient_id, member_subject="dr-ended",
            reason="moved to another ward",
        ),
        metadata=registrar, timeout=TIMEOUT_S,
    )  # fmt: skip
    order_id, result_id = await _order_and_result(hospital, patient_id)
    mongo: AsyncMongoClient[Any] = AsyncMongoClient(servers.mongodb_url)
    try:
        for suffix in ("_p", "_o", "_r"):
            relationships = mongo[f"{hospital.database}{suffix}"][CARE_RELATIONSHIPS]
            await _await_relationships(relationships, patient_id)
    finally:
        await mongo.close()
    return Ward(hospital, patient_id, other_patient_id, order_id, result_id)


async def _register(hospital: Hospital, family: str) -> str:
    registered = await hospital.patient.RegisterPatient(
        patient_pb2.RegisterPatientRequest(
            request_id=str(uuid.uuid4()),
            demographics=patient_pb2.Demographics(
                name=patient_pb2.HumanName(given=[uuid.uuid4().hex], family=family),
                birth_date="1961-04-12",
            ),
        ),
        metadata=hospital.registrar(), timeout=TIMEOUT_S,
    )  # fmt: skip
    patient_id: str = registered.patient_id
    return patient_id


async def _order_and_result(hospital: Hospital, patient_id: str) -> tuple[str, str]:
    orderer = hospital.mint.metadata("dr-orderer", Role.CLINICIAN)
    placed = await hospital.orders.PlaceOrder(
        orders_pb2.PlaceOrderRequest(
            request_id=str(uuid.uuid4()), patient_id=patient_id, test_code="2823-3",
            priority=orders_pb2.PRIORITY_STAT,
            reason_codes=[orders_pb2.ReasonCode(system=orders_pb2.CODE_SYSTEM_ICD10, code="N18.3")],
        ),
        metadata=orderer, timeout=TIMEOUT_S,
    )  # fmt: skip
    signed = await hospital.orders.SignOrder(
        orders_pb2.SignOrderRequest(request_id=str(uuid.uuid4()), order_id=placed.order_id),
        metadata=hospital.signer(), timeout=TIMEOUT_S,
    )  # fmt: skip
    posted = await hospital.results.PostResult(
        results_pb2.PostResultRequest(
            request_id=str(uuid.uuid4()), order_id=placed.order_id,
            order_min_version=signed.version,
            observations=[results_pb2.Observation(
                code="2823-3", quantity=results_pb2.Quantity(value="4.1", unit="mmol/L"))],
        ),
        metadata=hospital.lab(), timeout=TIMEOUT_S,
    )  # fmt: skip
    await once_recorded(lambda: hospital.results.GetResult(
        results_pb2.GetResultRequest(result_id=posted.result_id, min_version=posted.version),
        metadata=hospital.lab(), timeout=TIMEOUT_S,
    ))  # fmt: skip
    return placed.order_id, posted.result_id


async def _await_relationships(collection: Any, patient_id: str) -> None:
    expected = {
        relationship_id(patient_id, "dr-team", "care-team"): True,
        relationship_id(patient_id, "dr-ended", "care-team"): False,
        relationship_id(patient_id, "dr-orderer", "ordering"): True,
        relationship_id(patient_id, "dr-signing", "signing"): True,
    }

    async def known() -> bool:
        found = {d["_id"]: d["active"] async for d in collection.find({"patient_id": patient_id})}
        return found == expected

    assert await eventually(known, within_s=30), f"relationships never reached {collection}"


def _principal(ward: Ward, name: str) -> Metadata:
    mint: TokenMint = ward.hospital.mint
    clinician = name.partition("+")[0]
    metadata: dict[str, Metadata] = {
        "registrar": mint.metadata("registrar-1", Role.REGISTRAR),
        "lab": mint.metadata("lab-1", Role.LAB),
        "auditor": mint.metadata("auditor-1", Role.AUDITOR),
        "own patient": mint.metadata("p-1", Role.PATIENT, patient_id=ward.patient_id),
        "another patient": mint.metadata("p-2", Role.PATIENT, patient_id=ward.other_patient_id),
    }
    if name in metadata:
        return metadata[name]
    own = mint.metadata(clinician, Role.CLINICIAN)
    if name.endswith("+break-glass"):
        return (*own, *BREAK_GLASS)
    if name.endswith("+etreat"):
        return (*own, ("x-purpose-of-use", "ETREAT"))
    return own


MATRIX = [
    ("registrar", frozenset({"GetPatient"})),
    ("lab", ALL - {"GetPatient"}),
    ("auditor", NONE),
    ("own patient", ALL),
    ("another patient", NONE),
    ("dr-team", ALL),  # on the care team
    ("dr-orderer", ALL),  # placed the patient's order
    ("dr-signing", ALL),  # signed it
    ("dr-ended", NONE),  # the assignment ended
    ("dr-none", NONE),  # no relationship
    ("dr-none+etreat", NONE),  # an emergency without a reason is no break-glass
    ("dr-none+break-glass", ALL),
]


async def _call(read: Callable[[Metadata], Awaitable[Any]], metadata: Metadata) -> grpc.StatusCode:
    try:
        await read(metadata)
    except grpc.aio.AioRpcError as failed:
        code: grpc.StatusCode = failed.code()
        return code
    return grpc.StatusCode.OK


@pytest.mark.parametrize(("principal", "allowed"), MATRIX, ids=[row[0] for row in MATRIX])
async def test_each_principal_reads_what_its_role_and_relationship_allow_and_is_audited(
    ward: Ward, principal: str, allowed: frozenset[str]
) -> None:
    metadata = _principal(ward, principal)
    request_ids = {rpc: str(uuid.uuid4()) for rpc in READS}

    served = {
        rpc: await _call(read, (*metadata, ("x-request-id", request_ids[rpc])))
        for rpc, read in ward.reads().items()
    }

    expected = {
        rpc: grpc.StatusCode.OK if rpc in allowed else grpc.StatusCode.PERMISSION_DENIED
        for rpc in READS
    }
    assert served == expected
    records = await _access_records(ward, set(request_ids.values()))
    for rpc in READS:
        recorded = records[request_ids[rpc]]
        assert all(r.operation == rpc for r in recorded)
        if rpc not in allowed:
            assert [r.outcome for r in recorded] == [access_pb2.ACCESS_OUTCOME_DENIED]
            assert recorded[0].reason
        else:
            assert {r.outcome for r in recorded} == {access_pb2.ACCESS_OUTCOME_SUCCESS}
            break_glass = principal.endswith("+break-glass")
            assert {(r.break_glass, r.break_glass_reason) for r in recorded} == {
                (True, REASON) if break_glass else (False, "")
            }


@pytest.mark.parametrize("rpc", ["GetPatient", "GetOrder", "GetResult"])
async def test_a_clinician_outside_care_cannot_tell_an_unknown_id_from_a_known_one(
    ward: Ward, rpc: str
) -> None:
    stranger = ward.hospital.mint.metadata("dr-none", Role.CLINICIAN)
    unknown = str(uuid.uuid4())
    reads = {"known": ward.reads()[rpc],
             "unknown": ward.reads(patient_id=unknown, order_id=unknown,
                                   result_id=unknown)[rpc]}  # fmt: skip
    answers = {}
    for name, read in reads.items():
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await read(stranger)
        answers[name] = (refused.value.code(), refused.value.details())

    assert answers["known"] == answers["unknown"]
    assert answers["known"][0] == grpc.StatusCode.PERMISSION_DENIED


async def test_a_clinician_without_the_right_cannot_put_themself_on_a_care_team(
    ward: Ward,
) -> None:
    def assign(subject: str) -> patient_pb2.AssignCareTeamMemberRequest:
        return patient_pb2.AssignCareTeamMemberRequest(
            request_id=str(uuid.uuid4()), patient_id=ward.other_patient_id, member_subject=subject
        )

    mint, patient = ward.hospital.mint, ward.hospital.patient
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await patient.AssignCareTeamMember(
            assign("dr-none"), metadata=mint.metadata("dr-none", Role.CLINICIAN), timeout=TIMEOUT_S
        )
    lead = mint.metadata("dr-lead", Role.CLINICIAN, privileges=["care-team:manage"])
    assigned = await patient.AssignCareTeamMember(
        assign("dr-new"), metadata=lead, timeout=TIMEOUT_S
    )

    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert assigned.version > 1


async def _access_records(
    ward: Ward, request_ids: set[str]
) -> dict[str, list[access_pb2.AccessRecord]]:
    """The access records of these requests, once every one of them has at least one."""

    async def published() -> dict[str, list[access_pb2.AccessRecord]] | None:
        by_request: dict[str, list[access_pb2.AccessRecord]] = {}
        hospital = ward.hospital
        for _, record in await read_access_records(hospital.bootstrap_servers,
                                                   hospital.access_topic):  # fmt: skip
            if record.request_id in request_ids:
                by_request.setdefault(record.request_id, []).append(record)
        return by_request if set(by_request) == request_ids else None

    found = await eventually(published, within_s=20, interval_s=0.3)
    assert found is not None, "some reads were never audited"
    return found
