"""``make restore-drill``: back up, restore into a fresh stack, rebuild, verify, compare.

1. On the running local servers (started when none are), patient, orders and results record a
   small clinical history through the `clinical` CLI, under names of this run only.
2. Once every event is attested by a signed checkpoint and the read models are still, the
   services stop and ``clinical admin backup`` copies the topics and the key store.
3. A second Kafka, PostgreSQL and FerretDB start on free ports in a temporary folder (Vault is
   the running one: its Transit keys come back with Vault's own snapshot, not with this backup;
   the wrapped keys are restored into a new key store mount of it).
4. The clock starts: ``clinical admin restore``, every read model rebuilt from the restored
   topics, every hash chain and checkpoint verified. The clock stops; the read models are
   compared with the source's, document for document.
5. The second stack is stopped and deleted, and everything of this run on the source removed.

Exit 0 when the restored platform equals the source; the recovery time and counts are printed.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import pairwise
from pathlib import Path
from typing import Any

import hvac
from clinical_testing.endpoints import ServerEndpoints, endpoints_from_env, parse_exports
from clinical_testing.isolated import IsolatedInfra
from clinical_testing.native import NativeServers
from clinical_testing.tokens import TokenMint
from hvac import exceptions as vault_errors
from pymongo import AsyncMongoClient

from clinical_platform.backup.topics import record_topics
from clinical_platform.clients.kafka import KafkaConnection, KafkaSecurity, build_admin
from clinical_platform.eventlog.topics import events_topic, partition_count
from clinical_platform.projections.entrypoint import project
from clinical_platform.security.checkpoint_log import read_checkpoints, read_partition
from clinical_platform.security.checkpoints import CHECKPOINTS_TOPIC
from clinical_platform.security.forgetting import FORGOTTEN_FIELD, FORGOTTEN_PATIENTS
from clinical_platform.security.vault_adapters import TransitSigner, ensure_key_store
from clinical_platform.security.verification import verify_partition
from orders.bootstrap import orders_projections
from patient.bootstrap import patient_projections
from results.bootstrap import results_projections

from .seed import (
    SERVICES,
    DrillNames,
    SeedingError,
    record_history,
    running_services,
    service_settings,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
PATIENTS = 6
STILL_FOR_S = 1.5
WAIT_S = 60.0


async def drill(servers: ServerEndpoints, work: Path) -> dict[str, Any]:
    names = DrillNames.fresh()
    vault = hvac.Client(url=servers.vault_addr, token=servers.vault_token)
    ensure_key_store(vault, names.key_store_mount)
    _until_writable(vault, names.key_store_mount)
    source_env = servers.as_env()
    source = service_settings(names, source_env, work / "source-state", names.key_store_mount)
    try:
        mint = TokenMint()
        async with running_services(source, mint) as addresses:
            commands = await record_history(addresses, mint, PATIENTS)
            verified = await _until_attested(servers.kafka, vault, names)
            source_models = await _until_still(servers.mongodb_url, names)
        print(f"source: {commands} commands, {verified['records']} events attested", flush=True)
        _clinical(source_env, work, "admin", "backup", str(work / "backup"),
                  *_log_options(names), "--access-topic", names.access_topic,
                  "--key-store-mount", names.key_store_mount)  # fmt: skip
        with _second_stack(work / "target-infra") as target_env:
            target_env |= {"VAULT_ADDR": servers.vault_addr, "VAULT_TOKEN": servers.vault_token}
            phases = [time.monotonic()]
            _clinical(target_env, work, "admin", "restore", str(work / "backup"),
                      "--key-store-mount", names.restored_key_store_mount)  # fmt: skip
            phases.append(time.monotonic())
            target = service_settings(names, target_env, work / "target-state",
                                      names.restored_key_store_mount)  # fmt: skip
            replayed = {
                "patient": await project(target.patient, patient_projections(target.patient),
                                         rebuild=True),
                "orders": await project(target.orders, orders_projections(target.orders),
                                        rebuild=True),
                "results": await project(target.results, results_projections(target.results),
                                         rebuild=True),
            }  # fmt: skip
            phases.append(time.monotonic())
            target_kafka = KafkaConnection(target_env["KAFKA_BOOTSTRAP_SERVERS"],
                                           KafkaSecurity.from_env(target_env))  # fmt: skip
            restored = await _verify(target_kafka, vault, names)
            phases.append(time.monotonic())
            restored_models = await _read_models(target_env["MONGODB_URL"], names)
        _require(restored["records"] == verified["records"], "restored event counts differ")
        source_models, forgotten = _without_forgotten(source_models)
        restored_models, _ = _without_forgotten(restored_models)
        _require(restored_models == source_models, _differences(source_models, restored_models))
        documents = {db: sum(map(len, c.values())) for db, c in source_models.items()}
        restore_s, rebuild_s, verify_s = (round(b - a, 1) for a, b in pairwise(phases))
        return {"recovery_seconds": round(phases[-1] - phases[0], 1),
                "restore_seconds": restore_s, "rebuild_seconds": rebuild_s,
                "verify_seconds": verify_s, "events": restored["by_topic"],
                "events_total": restored["records"], "events_replayed": replayed,
                "documents": documents, "forgotten_markers_left_out": forgotten}  # fmt: skip
    finally:
        await _remove_source(servers, vault, names)


def _without_forgotten(models: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """The read models without a forgotten patient's markers, and how many were left out.

    A live projection turns the documents of a patient forgotten later into markers (id,
    version, patient id, ``forgotten``); a rebuild cannot decrypt any of that patient's events
    (the key is destroyed), so it has no document to mark, and no ``forgotten_patients`` entry
    from a live sweep (security/forgetting.py). Neither holds PHI; what is compared is the rest.
    """
    kept: dict[str, Any] = {}
    left_out = 0
    for service, collections in models.items():
        kept[service] = {}
        for name, documents in collections.items():
            if name == FORGOTTEN_PATIENTS:
                continue
            marked = [d for d in documents if d.get(FORGOTTEN_FIELD)]
            left_out += len(marked)
            kept[service][name] = [d for d in documents if not d.get(FORGOTTEN_FIELD)]
    return kept, left_out


def _differences(source: dict[str, Any], restored: dict[str, Any]) -> str:
    """Which collections differ and in how many documents (ids and values stay out: PHI)."""
    differing = []
    for service in SERVICES:
        for name in sorted(set(source[service]) | set(restored[service])):
            before = {str(d["_id"]): d for d in source[service].get(name, [])}
            after = {str(d["_id"]): d for d in restored[service].get(name, [])}
            changed = sum(before.get(i) != after.get(i) for i in set(before) | set(after))
            if changed:
                differing.append(f"{service}.{name}: {changed} of {len(before)} documents")
    return "restored read models differ from the source: " + "; ".join(differing)


def _until_writable(vault: hvac.Client, mount: str) -> None:
    """A mount created a moment ago refuses writes until KV v2 has set it up: the services'
    first key would fail. A probe entry outside the key folders, written and destroyed."""
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            vault.secrets.kv.v2.create_or_update_secret(path="drill-ready", secret={"ready": 1},
                                                        cas=0, mount_point=mount)  # fmt: skip
            break
        except (vault_errors.InvalidRequest, vault_errors.InternalServerError):
            _require(time.monotonic() < deadline, "the drill's key store never took a write")
            time.sleep(0.2)
    vault.secrets.kv.v2.delete_metadata_and_all_versions(path="drill-ready", mount_point=mount)


def _log_options(names: DrillNames) -> list[str]:
    return [arg for s in SERVICES for arg in ("--event-log", names.log(s))]


async def _verify(kafka: KafkaConnection, vault: hvac.Client, names: DrillNames) -> dict[str, Any]:
    """Every partition of the three event topics against its checkpoints: no finding, no event
    left unattested. Raises `DrillFailed` naming the partition otherwise."""
    signer = TransitSigner(vault, "clinical-audit")
    admin = build_admin(kafka)
    await admin.start()
    try:
        logs = [events_topic(names.log(s)) for s in SERVICES]
        topics = {topic: await partition_count(admin, topic) for topic in logs}
    finally:
        await admin.close()
    by_topic: dict[str, int] = {}
    unattested = 0
    for topic, partitions in topics.items():
        for partition in range(partitions):
            records = await read_partition(kafka, topic, partition)
            checkpoints = await read_checkpoints(kafka, CHECKPOINTS_TOPIC, topic, partition)
            report = await verify_partition(records, checkpoints, signer, topic=topic,
                                            partition=partition)  # fmt: skip
            _require(
                report.ok, f"{topic}/{partition}: {report.reason} at {report.first_bad_offset}"
            )
            unattested += report.unattested
            by_topic[topic] = by_topic.get(topic, 0) + report.records
    return {"records": sum(by_topic.values()), "by_topic": by_topic, "unattested": unattested}


async def _until_attested(
    kafka: KafkaConnection, vault: hvac.Client, names: DrillNames
) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_S
    while (verified := await _verify(kafka, vault, names))["unattested"]:
        _require(time.monotonic() < deadline, "the source's checkpoints never covered every event")
        await asyncio.sleep(0.5)
    return verified


async def _until_still(mongodb_url: str, names: DrillNames) -> dict[str, Any]:
    """The source's read models once two reads ``STILL_FOR_S`` apart agree (projections done)."""
    deadline = time.monotonic() + WAIT_S
    previous = await _read_models(mongodb_url, names)
    while True:
        await asyncio.sleep(STILL_FOR_S)
        current = await _read_models(mongodb_url, names)
        if current == previous:
            return current
        _require(time.monotonic() < deadline, "the source's read models never stood still")
        previous = current


async def _read_models(mongodb_url: str, names: DrillNames) -> dict[str, Any]:
    client: AsyncMongoClient[Any] = AsyncMongoClient(mongodb_url)
    try:
        models = {}
        for service in SERVICES:
            database = client[names.database(service)]
            collections = sorted(n for n in await database.list_collection_names()
                                 if not n.startswith("system."))  # fmt: skip
            models[service] = {
                n: await database[n].find().sort("_id").to_list() for n in collections
            }
        return models
    finally:
        await client.close()


async def _remove_source(servers: ServerEndpoints, vault: hvac.Client, names: DrillNames) -> None:
    admin = build_admin(servers.kafka)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        mine = [t for t in record_topics([names.log(s) for s in SERVICES], [names.access_topic])
                if t in existing and t != CHECKPOINTS_TOPIC]  # fmt: skip
        if mine:
            await admin.delete_topics(mine)
    finally:
        await admin.close()
    client: AsyncMongoClient[Any] = AsyncMongoClient(servers.mongodb_url)
    for service in SERVICES:
        await client.drop_database(names.database(service))
    await client.close()
    mounts = vault.sys.list_mounted_secrets_engines()["data"]
    for mount in (names.key_store_mount, names.restored_key_store_mount):
        if f"{mount}/" in mounts:
            vault.sys.disable_secrets_engine(path=mount)


@contextmanager
def _second_stack(folder: Path) -> Iterator[dict[str, str]]:
    """Kafka, PostgreSQL and FerretDB of their own (free ports, ``folder``): their environment,
    as the operator. Stopped and deleted afterwards, whatever happened."""
    infra = IsolatedInfra(REPO_ROOT, folder)
    begun = time.monotonic()
    try:
        started = infra.localinfra("up", "kafka", "postgresql", "ferretdb")
        _require(
            started.returncode == 0, f"the second stack did not start: {started.stderr[-500:]}"
        )
        print(f"second stack up in {time.monotonic() - begun:.1f}s", flush=True)
        exports = parse_exports(infra.localinfra("env").stdout)
        yield {k: v for k, v in exports.items() if k.startswith("KAFKA_") or k == "MONGODB_URL"}
    finally:
        infra.localinfra("reset")


def _clinical(env: dict[str, str], work: Path, *args: str) -> None:
    """``clinical <args>`` as its own process: its bars on this terminal, its summary after."""
    environ = os.environ | env | {"CLINICAL_CONFIG_DIR": str(work / "cli")}
    if not sys.stderr.isatty():  # a CI log: rich would cut the bars to 80 columns
        environ.setdefault("COLUMNS", "160")
    command = [sys.executable, "-m", "clinical_cli", "-o", "json", *args]
    completed = subprocess.run(command, env=environ, check=False)
    _require(
        completed.returncode == 0, f"clinical {args[0]} {args[1]} exited {completed.returncode}"
    )


class DrillFailedError(Exception):
    pass


def _require(condition: bool, reason: str) -> None:
    if not condition:
        raise DrillFailedError(reason)


def main() -> int:
    os.environ.setdefault("CLINICAL_CONFIG_DIR", tempfile.mkdtemp(prefix="drill-cli-"))
    existing = endpoints_from_env()
    native = None if existing is not None else NativeServers(REPO_ROOT)
    work = Path(tempfile.mkdtemp(prefix="restore-drill-"))
    try:
        servers = existing or native.start()  # type: ignore[union-attr]
        os.environ.update(servers.kafka_security)
        summary = asyncio.run(drill(servers, work))
    except (DrillFailedError, SeedingError) as failed:
        print(f"restore drill FAILED: {failed}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if native is not None:
            native.stop()
    print(f"restore drill passed: recovery time {summary['recovery_seconds']} s "
          f"(restore, rebuild of every read model, verification of every chain and checkpoint); "
          f"{summary['events_total']} events")  # fmt: skip
    for name, value in summary.items():
        print(f"{name}={value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
