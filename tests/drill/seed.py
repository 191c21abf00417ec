"""The drill's source data: patient, orders and results running in this process on the source
servers, each on a loopback port, and a small clinical history recorded through them with the
`clinical` CLI (registrations, orders placed, signed and cancelled, results posted and amended,
a patient forgotten), as a clinic would."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clinical_testing.tokens import Role, TokenMint
from typer.testing import CliRunner

from clinical_cli.app import app
from clinical_platform.eventlog.topics import events_topic
from clinical_platform.grpc_server import GrpcService, start_grpc_server
from orders.bootstrap import running_orders
from orders.settings import OrdersSettings
from patient.bootstrap import running_patient
from patient.settings import PatientSettings
from results.bootstrap import running_results
from results.settings import ResultsSettings

SERVICES = ("patient", "orders", "results")


@dataclass(frozen=True)
class DrillNames:
    """Everything the drill creates is named after its run, so runs never meet."""

    run: str

    @classmethod
    def fresh(cls) -> DrillNames:
        return cls(secrets.token_hex(4))

    def log(self, service: str) -> str:
        return f"drill-{self.run}-{service}"

    @property
    def access_topic(self) -> str:
        return f"clinical.audit.access-drill-{self.run}"

    @property
    def key_store_mount(self) -> str:
        return f"drill-{self.run}-keys"

    @property
    def restored_key_store_mount(self) -> str:
        return f"drill-{self.run}-keys-restored"

    def database(self, service: str) -> str:
        return f"drill_{self.run}_{service}"


@dataclass(frozen=True)
class DrillSettings:
    patient: PatientSettings
    orders: OrdersSettings
    results: ResultsSettings


def service_settings(
    names: DrillNames, servers: dict[str, Any], state_dir: Path, key_store_mount: str
) -> DrillSettings:
    """Each service's settings on ``servers`` (env-style names: KAFKA_*, MONGODB_URL, VAULT_*)."""
    topics = {service: events_topic(names.log(service)) for service in SERVICES}
    shared = servers | {
        "grpc_port": 0, "event_partitions": 3, "ACCESS_AUDIT_TOPIC": names.access_topic,
        "ACCESS_AUDIT_PARTITIONS": 1, "VAULT_KEY_STORE_MOUNT": key_store_mount,
        # Checkpoints every second: the drill waits until every event is attested.
        "AUDIT_CHECKPOINT_EVERY_SECONDS": 1.0, "patient_events_topic": topics["patient"],
    }  # fmt: skip
    own = {
        service: {"event_log_name": names.log(service), "mongodb_database": names.database(service),
                  "state_dir": state_dir / service}
        for service in SERVICES
    }  # fmt: skip
    return DrillSettings(
        PatientSettings.model_validate(
            shared | own["patient"] | {"orders_events_topic": topics["orders"]}),
        OrdersSettings.model_validate(
            shared | own["orders"] | {"results_events_topic": topics["results"]}),
        ResultsSettings.model_validate(
            shared | own["results"] | {"orders_events_topic": topics["orders"]}),
    )  # fmt: skip


@asynccontextmanager
async def running_services(
    settings: DrillSettings, mint: TokenMint
) -> AsyncIterator[dict[str, str]]:
    """The three services served on loopback ports: their addresses."""
    async with AsyncExitStack() as stack:
        patient = await stack.enter_async_context(
            running_patient(settings.patient, verifier=mint.verifier_for("patient"))
        )
        orders = await stack.enter_async_context(
            running_orders(settings.orders, verifier=mint.verifier_for("orders"))
        )
        results = await stack.enter_async_context(
            running_results(settings.results, verifier=mint.verifier_for("results"))
        )
        yield {
            "patient": await _serve(stack, patient.services),
            "orders": await _serve(stack, orders.services),
            "results": await _serve(stack, results.services),
        }  # fmt: skip


async def record_history(addresses: dict[str, str], mint: TokenMint, patients: int) -> int:
    """Register ``patients``, two orders each (one signed and resulted, one cancelled), amend
    every other result, read each result, forget the last patient; the number of commands that
    wrote events."""
    clinical = _Clinical(mint)
    profile = [arg for s, address in addresses.items() for arg in ("--set", f"{s}={address}")]
    await clinical.run("profile", "set", "local", *profile)
    writes = 0
    patient_ids = []
    for index in range(patients):
        registered = await clinical.as_role(Role.REGISTRAR, "patient", "register", "--family",
                                            f"Drill{secrets.token_hex(5)}", "--given", "Ada",
                                            "--birth-date", f"19{50 + index}-03-0{1 + index % 9}",
                                            "--sex", "female")  # fmt: skip
        patient_ids.append(registered["patient_id"])
        writes += 1
    for index, patient_id in enumerate(patient_ids):
        place = ("order", "place", "--patient-id", patient_id, "--test-code", "2823-3",
                 "--reason", "icd10:N18.3")  # fmt: skip
        signed_id = (await clinical.as_role(Role.CLINICIAN, *place))["order_id"]
        cancelled_id = (await clinical.as_role(Role.CLINICIAN, *place))["order_id"]
        signed = await clinical.as_signer("order", "sign", signed_id)
        await clinical.as_role(
            Role.CLINICIAN, "order", "cancel", cancelled_id, "--reason", "duplicate"
        )
        posted = await clinical.as_role(Role.LAB, "result", "post", "--order-id", signed_id,
                                        "--order-min-version", signed["version"],
                                        "--quantity", "2823-3=4.1 mmol/L")  # fmt: skip
        writes += 5
        # A read of PHI: an access record on the access trail, which the backup copies too.
        await clinical.as_role(Role.LAB, "result", "get", posted["result_id"])
        if index % 2 == 0:
            await clinical.as_role(Role.LAB, "result", "amend", posted["result_id"], "--reason",
                                   "recalibrated", "--quantity", "2823-3=4.3 mmol/L")  # fmt: skip
            writes += 1
    await clinical.as_role(Role.REGISTRAR, "patient", "forget", patient_ids[-1], "--reason",
                           "erasure request", "--yes")  # fmt: skip
    return writes + 1


class SeedingError(Exception):
    """A command of the history was refused: the source platform is not healthy."""


class _Clinical:
    """``clinical --direct -o json`` with a token of the drill's mint, in a thread (the services
    answer on this event loop)."""

    def __init__(self, mint: TokenMint) -> None:
        self._mint = mint

    async def as_role(self, role: Role, *args: str) -> dict[str, Any]:
        token = self._mint.token(f"drill-{role.value}", role)
        return await self.run("--token", token, "--direct", "-o", "json", *args)

    async def as_signer(self, *args: str) -> dict[str, Any]:
        token = self._mint.token("drill-signer", Role.CLINICIAN, privileges=["orders:sign"],
                                 mfa=True)  # fmt: skip
        return await self.run("--token", token, "--direct", "-o", "json", *args)

    async def run(self, *args: str) -> dict[str, Any]:
        result = await asyncio.to_thread(CliRunner().invoke, app, list(args))
        if result.exit_code != 0:
            command = " ".join(a for a in args if a.isalpha())  # no token, no value sent
            raise SeedingError(f"clinical {command} exited {result.exit_code}: {result.stderr}")
        return dict(json.loads(result.stdout)) if result.stdout.strip().startswith("{") else {}


async def _serve(stack: AsyncExitStack, services: Sequence[GrpcService]) -> str:
    server = await start_grpc_server(host="127.0.0.1", port=0, services=services)
    stack.push_async_callback(server.stop, 0)
    return f"127.0.0.1:{server.port}"
