"""clinical admin rewrap: after the PHI key is rotated, every wrapped data key names the latest
version, a forgotten patient stays shredded, a second run changes nothing, and a patient
registered before still decrypts once the old version is retired."""

from __future__ import annotations

import asyncio
import json
import secrets
from pathlib import Path
from typing import Any

import hvac
import pytest
from clinical_testing.endpoints import ServerEndpoints
from clinical_testing.plugin import TopicFactory, TransitKeyFactory, unique_name
from clinical_testing.tokens import Role, TokenMint
from pymongo.asynchronous.database import AsyncDatabase
from typer.testing import CliRunner

from clinical.events.v1.envelope_pb2 import Envelope
from clinical_cli.app import app
from clinical_platform.clients.kafka import KafkaConnection, build_admin
from clinical_platform.eventlog.topics import events_topic
from clinical_platform.grpc_server import start_grpc_server
from clinical_platform.security.checkpoint_log import read_partition
from clinical_platform.security.envelope_cipher import EnvelopeCipher
from clinical_platform.security.keys import PatientKeyring
from clinical_platform.security.vault_adapters import KvWrappedKeyStore, TransitKeyEncryption
from patient.bootstrap import running_patient
from patient.settings import PatientSettings

pytestmark = pytest.mark.integration


async def test_rewrap_moves_every_key_to_the_latest_version_and_reads_still_decrypt(  # noqa: PLR0917
    servers: ServerEndpoints, mongo_database: AsyncDatabase[Any], token_mint: TokenMint,
    tmp_path: Path, kafka_topic: TopicFactory, transit_key: TransitKeyFactory,
    key_store_mount: str, vault: hvac.Client, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    keys = {"VAULT_PHI_KEY": transit_key(), "VAULT_KEY_STORE_MOUNT": key_store_mount}
    log = unique_name("patient-")
    settings = PatientSettings.model_validate(servers.as_env() | keys | {
        "grpc_port": 0, "event_partitions": 1, "mongodb_database": mongo_database.name,
        "state_dir": tmp_path / "patient", "orders_events_topic": await kafka_topic(),
        "ACCESS_AUDIT_TOPIC": await kafka_topic(prefix="clinical.audit.access-test."),
        "ACCESS_AUDIT_PARTITIONS": 1,
    })  # fmt: skip
    monkeypatch.setenv("CLINICAL_CONFIG_DIR", str(tmp_path / "cli"))
    monkeypatch.setenv("COLUMNS", "160")  # rich's width off a terminal: room for every column
    family = f"Rewrap{secrets.token_hex(8)}"
    try:
        kept, gone = await _register_two_and_forget_one(settings, log, token_mint, family)
        vault.secrets.transit.rotate_key(name=keys["VAULT_PHI_KEY"])
        # The command reads the operator's Vault (root locally) and the key names from the
        # environment.
        for name, value in (servers.as_env() | keys).items():
            monkeypatch.setenv(name, value)

        first = await asyncio.to_thread(CliRunner().invoke, app, ["-o", "json", "admin", "rewrap"])
        again = await asyncio.to_thread(CliRunner().invoke, app, ["-o", "json", "admin", "rewrap"])

        assert first.exit_code == 0, first.output
        assert json.loads(first.stdout) == {
            "kek": keys["VAULT_PHI_KEY"], "latest_version": 2, "rewrapped": 1,
            "already_current": 0, "vanished": 0, "lowest_kek_version": 2,
        }  # fmt: skip
        assert f"rewrap {keys['VAULT_PHI_KEY']}" in first.stderr
        assert " 1/1 keys " in first.stderr
        assert again.exit_code == 0, again.output
        assert (json.loads(again.stdout)["rewrapped"],
                json.loads(again.stdout)["already_current"]) == (0, 1)  # fmt: skip
        store = KvWrappedKeyStore(vault, key_store_mount)
        assert store.patients() == [kept]
        stored = store.read(kept)
        assert stored is not None
        assert stored.wrapped_key.startswith("vault:v2:")
        assert store.read(gone) is None
        assert store.is_forgotten(gone)

        # Version 1 retired: only the rewrapped key can still open the registration.
        kek = TransitKeyEncryption(vault, keys["VAULT_PHI_KEY"])
        keyring = PatientKeyring(kek, store)
        await keyring.set_min_decryption_version(2)
        registration = await _registration_of(settings, log, kept)
        opened = await EnvelopeCipher(keyring).decrypted(registration)
        assert family.encode() in opened.payload
    finally:
        admin = build_admin(KafkaConnection.from_settings(settings))
        await admin.start()
        try:
            await admin.delete_topics([events_topic(log)])
        finally:
            await admin.close()


async def _register_two_and_forget_one(
    settings: PatientSettings, log: str, mint: TokenMint, family: str
) -> tuple[str, str]:
    runner = CliRunner()
    registrar = ["--token", mint.token("registrar-rewrap", Role.REGISTRAR), "--direct",
                 "-o", "json"]  # fmt: skip

    async def clinical(*args: str) -> dict[str, Any]:
        result = await asyncio.to_thread(runner.invoke, app, list(args))
        assert result.exit_code == 0, result.output
        return dict(json.loads(result.stdout))

    async with running_patient(settings, service=log,
                               verifier=mint.verifier_for("patient")) as live:  # fmt: skip
        server = await start_grpc_server(host="127.0.0.1", port=0, services=live.services)
        try:
            address = f"127.0.0.1:{server.port}"
            profile = ["profile", "set", "local", "--set", f"patient={address}"]
            assert runner.invoke(app, profile).exit_code == 0
            ids = []
            for birth_date in ("1950-03-01", "1950-03-02"):
                registered = await clinical(*registrar, "patient", "register", "--family",
                                            family, "--given", "Ada", "--birth-date",
                                            birth_date, "--sex", "female")  # fmt: skip
                ids.append(str(registered["patient_id"]))
            await clinical(*registrar, "patient", "forget", ids[1], "--reason", "erasure request",
                           "--yes")  # fmt: skip
        finally:
            await server.stop(0)
    return ids[0], ids[1]


async def _registration_of(settings: PatientSettings, log: str, patient_id: str) -> Envelope:
    records = await read_partition(KafkaConnection.from_settings(settings), events_topic(log), 0)
    for record in records:
        envelope = Envelope.FromString(record.value or b"")
        if envelope.patient_id == patient_id and envelope.aggregate_version == 1:
            return envelope
    raise AssertionError("no registration on the log")
