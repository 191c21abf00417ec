"""After ForgetPatient and a full rebuild of every read model of every service, none of the
patient's PHI exists anywhere the platform keeps data: MongoDB (live and rebuilt read models),
the services' local state (event stores, snapshots, outboxes), the access trail, the dead-letter
topics. Checked with high-entropy canaries, on the real servers."""

from __future__ import annotations

import asyncio
import json
import secrets
import string
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import hvac
import pytest
from clinical_testing.endpoints import ServerEndpoints
from clinical_testing.kafka import read_records
from pymongo.asynchronous.database import AsyncDatabase

from clinical.orders.v1 import orders_pb2
from clinical.patient.v1 import patient_pb2
from clinical.results.v1 import results_pb2
from clinical_platform.clients.kafka import KafkaConnection
from clinical_platform.projections import dead_letter_topic, rebuild_projection
from clinical_platform.security.envelope_cipher import EnvelopeCipher
from clinical_platform.security.wiring import build_keyring
from orders.bootstrap import orders_projections
from orders.settings import OrdersSettings
from patient.bootstrap import patient_projection
from results.bootstrap import results_projections
from results.settings import ResultsSettings

pytestmark = pytest.mark.integration

Hospital = Any  # conftest's Hospital: the three services' stubs, topics and tokens
TIMEOUT_S = 20.0


def _letters(length: int = 18) -> str:
    # 26^18 possibilities: it cannot occur anywhere by chance.
    return "".join(secrets.choice(string.ascii_lowercase) for _ in range(length)).capitalize()


class Replay:
    """A projection under another name: replayed from offset 0 into fresh collections by its
    own consumer group, while the live one keeps running."""

    def __init__(self, projection: Any, database: str) -> None:
        self._projection = projection
        self.name = f"{projection.name}.replay-{database}"

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._projection, attribute)


async def test_no_phi_of_a_forgotten_patient_survives_anywhere_after_a_full_rebuild(
    hospital: Hospital, servers: ServerEndpoints, mongo_database: AsyncDatabase[Any],
    tmp_path: Path,
) -> None:  # fmt: skip
    given, family = _letters(), _letters()
    mrn, value = (
        f"MRN-{secrets.token_hex(12)}",
        f"{secrets.randbelow(10**9)}.{secrets.randbelow(10**6):06d}",
    )
    canaries = [given, family, mrn, value]
    patient_id, order_id, result_id = await _story(hospital, given, family, mrn, value)

    await hospital.patient.ForgetPatient(
        patient_pb2.ForgetPatientRequest(
            request_id=str(uuid.uuid4()), patient_id=patient_id, reason="erasure request"
        ),
        metadata=hospital.registrar(), timeout=TIMEOUT_S,
    )  # fmt: skip
    await _refused(lambda: hospital.orders.GetOrder(
        orders_pb2.GetOrderRequest(order_id=order_id), metadata=hospital.clinician(),
        timeout=TIMEOUT_S,
    ))  # fmt: skip
    await _refused(lambda: hospital.results.GetResult(
        results_pb2.GetResultRequest(result_id=result_id), metadata=hospital.clinician(),
        timeout=TIMEOUT_S,
    ))  # fmt: skip

    rebuilt = await _rebuild_everything(hospital, servers, mongo_database)

    client = mongo_database.client
    databases = [n for n in await client.list_database_names() if n.startswith(mongo_database.name)]
    assert {f"{mongo_database.name}_{s}" for s in ("p", "o", "r")} | set(rebuilt) <= set(databases)
    for name in databases:
        for collection in await client[name].list_collection_names():
            async for document in client[name][collection].find():
                _absent(canaries, json.dumps(document, default=str), f"{name}.{collection}")
    for path, content in await asyncio.to_thread(_files, tmp_path):
        _absent(canaries, content, str(path))
    topics = [hospital.access_topic, *(dead_letter_topic(t) for t in _event_topics(hospital))]
    for topic in topics:
        for record in await read_records(hospital.bootstrap_servers, topic, committed=False):
            _absent(canaries, (record.value or b"").decode("latin-1"), topic)


def _absent(canaries: list[str], text: str, where: str) -> None:
    found = [canary for canary in canaries if canary in text]
    assert not found, f"PHI of the forgotten patient in {where}"


def _files(root: Path) -> list[tuple[Path, str]]:
    """Every file under ``root`` (the services' state folders), read as raw bytes."""
    return [(p, p.read_bytes().decode("latin-1")) for p in root.rglob("*") if p.is_file()]


def _event_topics(hospital: Hospital) -> list[str]:
    return [hospital.patient_topic, hospital.orders_topic, hospital.results_topic]


async def _story(
    hospital: Hospital, given: str, family: str, mrn: str, value: str
) -> tuple[str, str, str]:
    """Register the patient, read them back, place and sign an order, post its result."""
    demographics = patient_pb2.Demographics(
        name=patient_pb2.HumanName(given=[given], family=family), birth_date="1950-01-01",
        sex=patient_pb2.ADMINISTRATIVE_SEX_FEMALE,
        identifiers=[patient_pb2.Identifier(system="urn:mrn:erasure-hospital", value=mrn)],
    )  # fmt: skip
    registered = await hospital.patient.RegisterPatient(
        patient_pb2.RegisterPatientRequest(request_id=str(uuid.uuid4()), demographics=demographics),
        metadata=hospital.registrar(), timeout=TIMEOUT_S,
    )  # fmt: skip
    await hospital.put_in_care(registered.patient_id)  # the clinician reads their records
    await hospital.patient.GetPatient(
        patient_pb2.GetPatientRequest(
            patient_id=registered.patient_id, min_version=registered.version
        ),
        metadata=hospital.clinician(), timeout=TIMEOUT_S,
    )  # fmt: skip
    placed = await hospital.orders.PlaceOrder(
        orders_pb2.PlaceOrderRequest(
            request_id=str(uuid.uuid4()), patient_id=registered.patient_id, test_code="2823-3",
            priority=orders_pb2.PRIORITY_ROUTINE,
            reason_codes=[orders_pb2.ReasonCode(system=orders_pb2.CODE_SYSTEM_ICD10, code="N18.3")],
        ),
        metadata=hospital.clinician(), timeout=TIMEOUT_S,
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
                code="2823-3", quantity=results_pb2.Quantity(value=value, unit="mmol/L"),
            )],
        ),
        metadata=hospital.lab(), timeout=TIMEOUT_S,
    )  # fmt: skip
    return registered.patient_id, placed.order_id, posted.result_id


async def _refused(call: Callable[[], Awaitable[object]]) -> None:
    """Wait until the read is refused as forgotten (the listeners marked the read model)."""
    for _ in range(180):
        try:
            await call()
        except grpc.aio.AioRpcError as refused:
            if refused.code() == grpc.StatusCode.FAILED_PRECONDITION:
                return
        await asyncio.sleep(0.5)
    raise AssertionError("the read model never showed the patient as forgotten")


async def _rebuild_everything(
    hospital: Hospital, servers: ServerEndpoints, mongo_database: AsyncDatabase[Any]
) -> list[str]:
    """Every read model of every service, replayed from offset 0 into fresh databases with a
    keyring that never held the forgotten patient's key."""
    vault = hvac.Client(url=servers.vault_addr, token=servers.vault_token)
    cipher = EnvelopeCipher(build_keyring(vault, hospital.keyring_settings))
    orders_log = hospital.orders_topic.split(".")[1]
    results_log = hospital.results_topic.split(".")[1]
    common = {"KAFKA_BOOTSTRAP_SERVERS": servers.kafka_bootstrap_servers, "mongodb_database": "-"}
    orders = OrdersSettings.model_validate(
        common | {"event_log_name": orders_log, "results_events_topic": hospital.results_topic}
    )
    results = ResultsSettings.model_validate(
        common | {"event_log_name": results_log, "orders_events_topic": hospital.orders_topic}
    )
    patient_log = hospital.patient_topic.split(".")[1]
    per_database: dict[str, list[Any]] = {
        "p_rebuilt": [patient_projection(patient_log, hospital.patient_topic)],
        "o_rebuilt": orders_projections(orders),
        "r_rebuilt": results_projections(results),
    }
    kafka = KafkaConnection(servers.kafka_bootstrap_servers)
    rebuilt = []
    for suffix, projections in per_database.items():
        database = mongo_database.client[f"{mongo_database.name}_{suffix}"]
        for projection in projections:
            replay: Any = Replay(projection, suffix)
            await rebuild_projection(
                replay, kafka=kafka, database=database, progress=False, cipher=cipher
            )
        rebuilt.append(database.name)
    return rebuilt
