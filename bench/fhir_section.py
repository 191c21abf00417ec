"""The fhir section: FHIR R4 Patient read and search through the gateway, and the same read
straight to the patient service over gRPC, on a realistic set of patients.

The patient service runs in this process (gRPC, access log, event store on Kafka, Vault-encrypted
PHI, projection), trusting only the gateway's key; the gateway runs as its own process trusting
the local Keycloak. Patients are registered through RegisterPatient (synthetic people drawn from
FEBRL's names and addresses, bench/matching/synthetic.py) and read back at their version, so the
read model holds every one before anything is measured. The reader is the registrar: registrars
read every record (docs/security.md), so no read looks up a care relationship, as the gateway
section's lab reader does for orders.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory

import aiohttp
import grpc
from clinical_testing.endpoints import ServerEndpoints
from clinical_testing.keycloak import running_keycloak
from clinical_testing.service_process import ServiceProcess, free_tcp_port

from bench.load import percentile_ms
from bench.matching.synthetic import synthetic_people
from bench.matching_eval import eval_settings
from bench.options import Options, progress
from bench.report import Figure
from bench.topics import delete_topics
from clinical.patient.v1 import patient_pb2 as pb
from clinical.patient.v1.patient_pb2_grpc import PatientServiceStub
from clinical_platform.clients.mongo import build_mongo_client
from clinical_platform.eventlog.topics import events_topic
from clinical_platform.grpc_server import start_grpc_server
from clinical_platform.principals import Principal, Role
from clinical_platform.projections import dead_letter_topic
from clinical_platform.tokens import TokenVerifier
from gateway.adapters.internal_tokens import InternalTokenIssuer, rotate_key_file
from patient.bootstrap import running_patient
from patient.entrypoints.translate import demographics_to
from patient.settings import PatientSettings

_CALLERS = 16
_SEEDERS = 4
_AUDIENCE = "clinical-patient"
_CALL_TIMEOUT_S = 30
# Quick mode checks that every figure is computed, well inside CI's minute.
_QUICK = {"patients": 40, "seconds": 1.0}
_FULL = {"patients": 1000, "seconds": 5.0}
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
Call = Callable[[], Awaitable[object]]


@dataclass(frozen=True)
class Measured:
    """One closed-loop window: answered calls per second, each call's latency, and the CPU the
    gateway process and this process (patient service and callers) used per wall second."""

    per_s: float
    latencies_s: list[float]
    cores_used: float


async def run_section(options: Options, servers: ServerEndpoints) -> list[Figure]:
    size = _QUICK if options.quick else _FULL
    patients, seconds = int(size["patients"]), size["seconds"]
    with running_keycloak() as keycloak, TemporaryDirectory(prefix="bench-fhir-") as tmp:
        token = keycloak.user_token("registrar", "user/Patient.cruds")
        keys = Path(tmp) / "keys.pem"
        rotate_key_file(keys)
        async with _patient_and_gateway(servers, keycloak.issuer, keys, token, patients) as calls:
            read, search, direct, gateway_pid = calls
            progress(f"fhir: Patient read, search and GetPatient, {_CALLERS} callers, "
                     f"{patients} patients")  # fmt: skip
            for call in (read, search, direct):
                await _closed_loop(call, min(seconds, 1.0), gateway_pid)  # warm-up
            read_run = await _closed_loop(read, seconds, gateway_pid)
            search_run = await _closed_loop(search, seconds, gateway_pid)
            direct_run = await _closed_loop(direct, seconds, gateway_pid)
    return [
        *_figures("fhir_read", read_run,
                  f"GET /fhir/r4/Patient/{{id}} through the gateway, {_CALLERS} callers"),
        *_figures("fhir_search", search_run,
                  "GET /fhir/r4/Patient?family=... (a seeded family name) through the gateway"),
        *_figures("fhir_grpc_read", direct_run,
                  "the same read as GetPatient straight to the patient service (gRPC)"),
        Figure("fhir_vs_grpc", read_run.per_s / direct_run.per_s, "ratio", 2,
               "fhir_read_rps / fhir_grpc_read_rps"),
        Figure("fhir_read_cores_used", read_run.cores_used, "cores", 2,
               "CPU of the gateway process and this one (patient service and callers) per "
               "wall second, during the read"),
        Figure("fhir_read_rps_per_core", read_run.per_s / read_run.cores_used, "/s", 0,
               "fhir_read_rps / fhir_read_cores_used (anchors: docs/gateway.md)"),
        Figure("fhir_search_rps_per_core", search_run.per_s / search_run.cores_used, "/s", 0,
               "fhir_search_rps over the cores used during the search"),
    ]  # fmt: skip


def _figures(name: str, run: Measured, about: str) -> list[Figure]:
    return [
        Figure(f"{name}_rps", run.per_s, "/s", 0, about),
        Figure(f"{name}_p50_ms", percentile_ms(run.latencies_s, 50), "ms", 2,
               f"its median, {_CALLERS} in flight"),
        Figure(f"{name}_p99_ms", percentile_ms(run.latencies_s, 99), "ms", 2, "its 99th pct"),
    ]  # fmt: skip


async def _closed_loop(call: Call, seconds: float, gateway_pid: int) -> Measured:
    latencies_s: list[float] = []
    until = time.perf_counter() + seconds

    async def caller() -> None:
        while time.perf_counter() < until:
            sent = time.perf_counter()
            await call()
            latencies_s.append(time.perf_counter() - sent)

    cpu_before = _cpu_s(gateway_pid)
    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(_CALLERS)))
    wall_s = time.perf_counter() - started
    cores = (_cpu_s(gateway_pid) - cpu_before) / wall_s
    return Measured(len(latencies_s) / wall_s, latencies_s, cores)


def _cpu_s(gateway_pid: int) -> float:
    """CPU seconds so far of the gateway process and of this one (every thread)."""
    # /proc/<pid>/stat: utime and stime are fields 14 and 15, after the "(comm)" field.
    fields = Path(f"/proc/{gateway_pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS + time.process_time()


@asynccontextmanager
async def _patient_and_gateway(
    servers: ServerEndpoints, issuer: str, keys: Path, token: str, patients: int
) -> AsyncIterator[tuple[Call, Call, Call, int]]:
    tokens = InternalTokenIssuer.from_pem_file(keys, issuer="clinical-platform", ttl_s=900)
    verifier = TokenVerifier.from_pem(tokens.public_pem(), issuer="clinical-platform",
                                      audience=_AUDIENCE)  # fmt: skip
    registrar = Principal("bench-registrar", frozenset({Role.REGISTRAR}))
    service = f"bench-fhir-{uuid.uuid4().hex[:10]}"
    with eval_settings(servers) as settings:
        try:
            async with AsyncExitStack() as stack:
                patient = await stack.enter_async_context(
                    running_patient(settings, service=service, verifier=verifier)
                )
                server = await start_grpc_server(host="127.0.0.1", port=0,
                                                 services=patient.services)  # fmt: skip
                stack.push_async_callback(server.stop, 0)
                channel = await stack.enter_async_context(
                    grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
                )
                stub = PatientServiceStub(channel)

                def auth() -> tuple[tuple[str, str]]:
                    # A token of its own per call, as the gateway mints them: each serves one.
                    minted = tokens.mint(registrar, audience=_AUDIENCE)
                    return (("authorization", f"Bearer {minted}"),)

                progress(f"fhir: registering {patients} patients through RegisterPatient")
                ids, families = await _seed(stub, auth, patients)
                http_port = free_tcp_port()
                gateway = stack.enter_context(ServiceProcess.on_free_port(
                    "gateway", port_variable="GATEWAY_GRPC_PORT", env={
                        "GATEWAY_HTTP_PORT": str(http_port), "GATEWAY_OIDC_ISSUER": issuer,
                        "GATEWAY_SIGNING_KEYS_FILE": str(keys),
                        "GATEWAY_RATE_LIMIT": "10000000/minute",
                        "GATEWAY_PATIENT_ADDRESS": f"127.0.0.1:{server.port}",
                        "GATEWAY_PATIENT_AUDIENCE": _AUDIENCE, "LOG_LEVEL": "WARNING",
                        "GATEWAY_STATE_DIR": str(keys.parent / "gateway"),
                        "ACCESS_AUDIT_TOPIC": settings.access_audit_topic,
                    },
                ))  # fmt: skip
                await gateway.wait_serving()
                client = await stack.enter_async_context(aiohttp.ClientSession(
                    f"http://127.0.0.1:{http_port}",
                    connector=aiohttp.TCPConnector(limit=_CALLERS),
                    headers={"authorization": f"Bearer {token}",
                             "accept": "application/fhir+json"},
                ))  # fmt: skip
                next_id, next_family = itertools.cycle(ids), itertools.cycle(families)

                async def read() -> object:
                    return await _get(client, f"/fhir/r4/Patient/{next(next_id)}")

                async def search() -> object:
                    return await _get(client, f"/fhir/r4/Patient?family={next(next_family)}")

                async def direct() -> object:
                    request = pb.GetPatientRequest(patient_id=next(next_id))
                    return await stub.GetPatient(request, metadata=auth(),
                                                 timeout=_CALL_TIMEOUT_S)  # fmt: skip

                yield read, search, direct, gateway.process.pid
        finally:
            await _clean_up(settings, service)


async def _clean_up(settings: PatientSettings, service: str) -> None:
    """Delete this run's topics (events, dead letters, access records) and drop its database."""
    topic = events_topic(service)
    await delete_topics(settings.kafka_bootstrap_servers,
                        [topic, dead_letter_topic(topic), settings.access_audit_topic])  # fmt: skip
    mongo = build_mongo_client(settings)
    try:
        await mongo.drop_database(settings.mongodb_database)
    finally:
        await mongo.close()


async def _get(client: aiohttp.ClientSession, path: str) -> bytes:
    async with client.get(path) as answer:
        answer.raise_for_status()
        return await answer.read()


async def _seed(stub: PatientServiceStub, auth: Callable[[], tuple[tuple[str, str]]],
                count: int) -> tuple[list[str], list[str]]:  # fmt: skip
    """Register ``count`` synthetic people, wait until each reads back; their ids and the
    distinct family names among them (the search's criteria)."""
    people = list(synthetic_people(count))
    queue = list(enumerate(people))
    written: dict[int, tuple[str, int]] = {}

    async def seeder() -> None:
        while queue:
            number, demographics = queue.pop()
            request = pb.RegisterPatientRequest(
                request_id=str(uuid.uuid4()), demographics=demographics_to(demographics)
            )
            answer = await stub.RegisterPatient(request, metadata=auth(),
                                                timeout=_CALL_TIMEOUT_S)  # fmt: skip
            written[number] = (answer.patient_id, answer.version)

    await asyncio.gather(*(seeder() for _ in range(_SEEDERS)))
    for patient_id, version in written.values():
        read_back = pb.GetPatientRequest(patient_id=patient_id, min_version=version)
        await stub.GetPatient(read_back, metadata=auth(), timeout=_CALL_TIMEOUT_S)
    families = sorted({p.name.family for p in people if p.name.family.isalpha()})
    return [patient_id for patient_id, _ in written.values()], families
