"""The register section: RegisterPatient's rate with an empty index and with 100,000 patients.

Everything runs through the real service in this process (gRPC, access log, event store on
Kafka, Vault-encrypted PHI, the matcher's blocking index, the read model's projection). The
registrations measured are FEBRL2 records in the data set's order (duplicates included, so
links are recorded too). Between the two measurements the blocking index is seeded with
synthetic people (bench/matching/synthetic.py) through its bulk path, `CandidateIndex.record`,
the call a commit makes, without the Kafka append of each: seeding 100,000 registrations
through the append path would take longer than the whole bench. The seeded people are in the
matcher's index only, which is what a registration's cost depends on.

One in flight gives ``register_rps_at_0`` and ``register_rps_at_100k``; then, at 100k, a closed
loop of ``LOAD_CALLERS`` callers gives the maximum rate, and an open loop offering half of it
gives the latency at that load. Last, the patient projection replays the section's events into
a read model prefilled with as many patients (bench/matching/projection_pace.py).
"""

from __future__ import annotations

import asyncio
import gc
import time
import uuid
from collections.abc import Iterator
from itertools import islice

from clinical_testing.endpoints import ServerEndpoints

from bench.load import percentile_ms
from bench.matching.febrl import febrl2
from bench.matching.projection_lag import catch_up_after_burst
from bench.matching.projection_pace import patient_projection_eps
from bench.matching.register import ServedPatient, served_patient
from bench.matching.synthetic import synthetic_people
from bench.matching_eval import eval_settings
from bench.options import Options, progress
from bench.report import Figure
from patient.domain.demographics import PatientDemographics

SEEDED = 100_000
SEEDED_QUICK = 2_000
MEASURED = 300
MEASURED_QUICK = 60
LOAD_CALLERS = 16
# How long to watch the read model catch up (quick: long enough for a rate, not for the end).
CATCH_UP_WAIT_S = {False: 300.0, True: 10.0}
Records = Iterator[tuple[str, PatientDemographics]]


async def run_section(options: Options, servers: ServerEndpoints) -> list[Figure]:
    """Registration rate at 0 and at SEEDED patients, one in flight and at half the maximum."""
    seeded = SEEDED_QUICK if options.quick else SEEDED
    measured = MEASURED_QUICK if options.quick else MEASURED
    records: Records = iter(febrl2()[0].items())
    with eval_settings(servers) as settings:
        async with served_patient(settings) as patient:
            progress(f"register: {measured} registrations one in flight, index from 0")
            at_0 = await _one_in_flight(patient, islice(records, measured))
            progress(f"register: seeding the blocking index with {seeded} synthetic people")
            await _seed(patient, seeded)
            progress(f"register: {measured} registrations one in flight at {seeded}")
            at_seeded = await _one_in_flight(patient, islice(records, measured))
            progress(f"register: {LOAD_CALLERS} callers for the maximum rate")
            maximum = await _closed_loop(patient, islice(records, 2 * measured))
            offered = maximum / 2
            progress(f"register: an open loop offering {offered:.0f}/s")
            latencies = await _open_loop(patient, islice(records, measured), offered)
            progress("register: the read model catching up after the burst")
            caught_up = await catch_up_after_burst(
                patient.running, patient.registered, within_s=CATCH_UP_WAIT_S[options.quick]
            )
            progress(f"register: the patient projection over that backlog, {seeded} prefilled")
            pace = await patient_projection_eps(
                settings, patient.running, patient.service, patient.registered, prefill=seeded
            )
    size = f"{seeded // 1000}k"
    return [
        Figure("register_rps_at_0", at_0, "req/s", 1, "one in flight, index growing from 0"),
        Figure("register_rps_at_100k", at_seeded, "req/s", 1,
               f"one in flight, {size} patients indexed (target >= 100)"),
        Figure("register_flatness", at_seeded / at_0, "ratio", 3,
               "register_rps_at_100k / register_rps_at_0 (target >= 0.8)"),
        Figure("register_max_rps_at_100k", maximum, "req/s", 1,
               f"{LOAD_CALLERS} callers, {size} patients indexed"),
        Figure("register_p50_ms_at_half_load", percentile_ms(latencies, 50), "ms", 1,
               f"open loop at {offered:.0f}/s (half the maximum), {size} indexed"),
        Figure("register_p99_ms_at_half_load", percentile_ms(latencies, 99), "ms", 1,
               "the same, 99th percentile"),
        Figure("patient_projection_behind_events", caught_up.behind_events, "events", 0,
               "read model lag when the registrations stopped"),
        Figure("patient_projection_catch_up_s", caught_up.catch_up_s, "s", 2,
               "until the read model held every registration (FerretDB; nan: not within "
               f"{CATCH_UP_WAIT_S[options.quick]:.0f} s)"),
        Figure("patient_projection_eps", pace, "events/s", 1,
               f"the section's events replayed into a read model of {size} patients "
               "(target >= 1,000)"),
    ]  # fmt: skip


async def _seed(patient: ServedPatient, count: int) -> None:
    index = patient.running.candidates
    for number, demographics in enumerate(synthetic_people(count)):
        index.record(uuid.uuid4(), 1, demographics)
        if number % 500 == 0:
            await asyncio.sleep(0)  # the service's consumers must keep their heartbeats
    gc.freeze()  # as the service does after rebuilding its index from the log


async def _one_in_flight(patient: ServedPatient, records: Records) -> float:
    started = time.perf_counter()
    done = 0
    for rec_id, demographics in records:
        await patient.register(rec_id, demographics)
        done += 1
    return done / (time.perf_counter() - started)


async def _closed_loop(patient: ServedPatient, records: Records) -> float:
    queue = list(records)
    started = time.perf_counter()

    async def caller() -> None:
        while queue:
            rec_id, demographics = queue.pop(0)
            await patient.register(rec_id, demographics)

    total = len(queue)
    await asyncio.gather(*(caller() for _ in range(LOAD_CALLERS)))
    return total / (time.perf_counter() - started)


async def _open_loop(patient: ServedPatient, records: Records, per_s: float) -> list[float]:
    """Send at a fixed rate whatever the answers do; each call's latency in seconds."""
    latencies: list[float] = []

    async def timed(rec_id: str, demographics: PatientDemographics) -> None:
        sent = time.perf_counter()
        await patient.register(rec_id, demographics)
        latencies.append(time.perf_counter() - sent)

    started = time.perf_counter()
    calls = []
    for number, (rec_id, demographics) in enumerate(records):
        await asyncio.sleep(max(0.0, started + number / per_s - time.perf_counter()))
        calls.append(asyncio.create_task(timed(rec_id, demographics)))
    await asyncio.gather(*calls)
    return latencies
