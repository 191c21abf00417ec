"""Every CLI command against the real services: straight to each service (``--direct``, with
the session's service tokens) and through the gateway with logins on the real Keycloak."""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from typing import Any

import grpc
import pytest
from clinical_testing.keycloak import totp
from clinical_testing.tokens import Role
from typer.testing import Result

from clinical.notify.v1 import notify_pb2
from clinical.notify.v1.notify_pb2_grpc import NotifyServiceStub
from clinical_cli.errors import ExitCode

from .conftest import Platform

pytestmark = pytest.mark.integration


def answer(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


async def use_profile(platform: Platform) -> None:
    settings = [f"gateway={platform.gateway_url}", f"issuer={platform.issuer}"]
    settings += [f"{name}={address}" for name, address in platform.addresses.items()]
    saved = await platform.clinical("profile", "set", "local",
                                    *(arg for s in settings for arg in ("--set", s)))  # fmt: skip
    assert saved.exit_code == 0, saved.output


def direct_as(platform: Platform, subject: str, role: Role, **claims: Any) -> tuple[str, ...]:
    """Global options: a service token of the session's mint, --direct, JSON output."""
    return ("--token", platform.mint.token(subject, role, **claims), "--direct", "-o", "json")


async def register(platform: Platform, family: str, birth_date: str) -> dict[str, Any]:
    registrar = direct_as(platform, "registrar-cli", Role.REGISTRAR)
    return dict(answer(await platform.clinical(
        *registrar, "patient", "register", "--family", family, "--given", "Ada",
        "--birth-date", birth_date, "--sex", "female",
    )))  # fmt: skip


async def test_patient_commands_straight_to_the_patient_service(platform: Platform) -> None:
    await use_profile(platform)
    registrar = direct_as(platform, "registrar-cli", Role.REGISTRAR)
    family = f"Cli{secrets.token_hex(6)}"
    first = await register(platform, family, "1961-07-14")
    second = await register(platform, family, "1961-07-15")
    patient_id, other_id = first["patient_id"], second["patient_id"]

    read = answer(await platform.clinical(*registrar, "patient", "get", patient_id,
                                          "--min-version", first["version"]))  # fmt: skip
    found = answer(await platform.clinical(*registrar, "patient", "search", "--family", family,
                                           "--birth-date", "1961-07-14"))  # fmt: skip
    matching = ("--family", family, "--given", "Ada", "--birth-date", "1961-07-14")
    matches = answer(await platform.clinical(*registrar, "patient", "match", *matching))
    linked = answer(await platform.clinical(*registrar, "patient", "link", patient_id, other_id))
    forgotten = answer(await platform.clinical(*registrar, "patient", "forget", other_id,
                                               "--reason", "erasure request", "--yes"))  # fmt: skip

    assert read["patient"]["demographics"]["name"]["family"] == family
    assert [p["patient_id"] for p in found.get("patients", [])] == [patient_id]
    assert patient_id in [c["patient_id"] for c in matches["candidates"]]
    assert linked["anchor_patient_id"] in {patient_id, other_id}
    assert int(forgotten["version"]) >= 1


async def test_orders_results_and_a_resumable_tail_straight_to_the_services(
    platform: Platform,
) -> None:
    await use_profile(platform)
    clinician = direct_as(platform, "dr-cli", Role.CLINICIAN)
    signer = direct_as(platform, "dr-sign-cli", Role.CLINICIAN, privileges=["orders:sign"],
                       mfa=True)  # fmt: skip
    lab = direct_as(platform, "lab-cli", Role.LAB)
    patient_id = (await register(platform, f"Cli{secrets.token_hex(6)}", "1970-01-01"))[
        "patient_id"
    ]
    tail = await platform.process(*clinician, "subscribe", "--topic", "result.posted",
                                  "--count", "2")  # fmt: skip
    await until_subscribed(platform, clinician)

    order_ids, result_ids = [], []
    for _ in range(2):
        placed = answer(await platform.clinical(*clinician, "order", "place", "--patient-id",
                                                patient_id, "--test-code", "2823-3",
                                                "--reason", "icd10:N18.3"))  # fmt: skip
        order_ids.append(placed["order_id"])
        signed = answer(await platform.clinical(*signer, "order", "sign", placed["order_id"]))
        posted = answer(await platform.clinical(
            *lab, "result", "post", "--order-id", placed["order_id"], "--order-min-version",
            signed["version"], "--quantity", "2823-3=4.1 mmol/L",
        ))  # fmt: skip
        result_ids.append(posted["result_id"])
    amended = answer(await platform.clinical(*lab, "result", "amend", result_ids[0], "--reason",
                                             "recalibrated", "--quantity",
                                             "2823-3=4.3 mmol/L"))  # fmt: skip
    # Lab staff read any result and order; a clinician only their patients' (no care teams
    # here). Orders records the result when it hears of it on the results topic, a moment later.
    result = answer(await platform.clinical(*lab, "result", "get", result_ids[0],
                                            "--min-version", amended["version"]))  # fmt: skip
    order = await until_resulted(platform, lab, order_ids[0])
    tailed = await finished(tail)

    assert order["order"]["status"] == "ORDER_STATUS_RESULTED"
    assert result["result"]["status"] == "RESULT_STATUS_AMENDED"
    assert result["result"]["observations"][0]["quantity"] == {"value": "4.3", "unit": "mmol/L"}
    lines = [json.loads(line) for line in tailed.splitlines()]
    assert [n["result_id"] for n in lines] == result_ids
    assert [n["type"] for n in lines] == ["result.posted", "result.posted"]

    resumed = await platform.clinical(*clinician, "subscribe", "--subscription",
                                      lines[0]["subscription_id"], "--from",
                                      lines[0]["sequence"], "--count", "1")  # fmt: skip
    assert [json.loads(line)["result_id"] for line in resumed.stdout.splitlines()] == [
        result_ids[1]
    ]

    placed = answer(await platform.clinical(*clinician, "order", "place", "--patient-id",
                                            patient_id, "--test-code", "2823-3",
                                            "--reason", "icd10:N18.3"))  # fmt: skip
    cancelled = answer(await platform.clinical(*clinician, "order", "cancel", placed["order_id"],
                                               "--reason", "duplicate"))  # fmt: skip
    assert int(cancelled["version"]) == 2


async def until_resulted(platform: Platform, caller: tuple[str, ...], order_id: str) -> Any:
    for _ in range(100):
        order = answer(await platform.clinical(*caller, "order", "get", order_id))
        if order["order"]["status"] == "ORDER_STATUS_RESULTED":
            return order
        await asyncio.sleep(0.2)
    return order


async def finished(process: asyncio.subprocess.Process) -> str:
    """The process's standard output once it exits by itself (killed after a minute)."""
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, err.decode()
    return out.decode()


async def test_refusals_exit_with_their_codes_in_one_line(platform: Platform) -> None:
    await use_profile(platform)
    mint = platform.mint
    registrar = ("--token", mint.token("registrar-cli", Role.REGISTRAR), "--direct")
    lab = ("--token", mint.token("lab-cli", Role.LAB), "--direct")
    canary = f"Canary{secrets.token_hex(16)}"

    invalid = await platform.clinical(*registrar, "patient", "register", "--family", canary,
                                      "--birth-date", "not-a-date")  # fmt: skip
    denied = await platform.clinical(*lab, "patient", "register", "--family", canary,
                                     "--birth-date", "1970-01-01")  # fmt: skip
    missing = await platform.clinical(*registrar, "patient", "get", str(uuid.uuid4()))
    unauthenticated = await platform.clinical("--token", "not-a-token", "--direct", "order",
                                              "get", str(uuid.uuid4()))  # fmt: skip

    assert invalid.exit_code == ExitCode.INVALID_ARGUMENT, invalid.output
    assert invalid.stderr.startswith("error: INVALID_ARGUMENT: ")
    assert "demographics.birth_date: " in invalid.stderr
    assert denied.exit_code == ExitCode.PERMISSION_DENIED, denied.output
    assert denied.stderr.startswith("error: PERMISSION_DENIED: ")
    assert missing.exit_code == ExitCode.NOT_FOUND, missing.output
    assert unauthenticated.exit_code == ExitCode.AUTH, unauthenticated.output
    for refused in (invalid, denied, missing, unauthenticated):
        assert len(refused.stderr.splitlines()) == 1
        assert canary not in refused.output


async def test_logged_in_users_work_through_the_gateway(platform: Platform) -> None:
    await use_profile(platform)
    family = f"Gw{secrets.token_hex(6)}"

    async def login(user: str, *extra: str) -> None:
        logged_in = await platform.clinical("login", "--username", user, "--password-stdin",
                                            *extra, stdin=f"{user}-local\n")  # fmt: skip
        assert logged_in.exit_code == 0, logged_in.output

    await login("registrar")
    registered = answer(await platform.clinical("-o", "json", "patient", "register",
                                                "--family", family, "--given", "Grace",
                                                "--birth-date", "1906-12-09"))  # fmt: skip
    patient_id = registered["patient_id"]
    read = answer(await platform.clinical("-o", "json", "patient", "get", patient_id,
                                          "--min-version", registered["version"]))  # fmt: skip
    found = answer(await platform.clinical("-o", "json", "patient", "search", "--family", family))
    table = await platform.clinical("patient", "get", patient_id)
    no_route = await platform.clinical("patient", "match", "--patient-id", patient_id)

    assert read["patient"]["demographics"]["name"]["family"] == family
    assert [p["patient_id"] for p in found["patients"]] == [patient_id]
    assert table.exit_code == 0, table.output
    assert "patient.demographics.name.family" in table.stdout
    assert no_route.exit_code == ExitCode.USAGE
    assert "add --direct" in no_route.stderr

    await login("clinician-no-otp")
    placed = answer(await platform.clinical("-o", "json", "order", "place", "--patient-id",
                                            patient_id, "--test-code", "2823-3",
                                            "--reason", "snomed:431855005"))  # fmt: skip
    order_id = placed["order_id"]
    without_mfa = await platform.clinical("order", "sign", order_id)
    assert without_mfa.exit_code == ExitCode.PERMISSION_DENIED, without_mfa.output
    assert without_mfa.stderr.startswith("error: PERMISSION_DENIED: ")

    await login_with_otp(platform, "clinician")
    signed = answer(await platform.clinical("-o", "json", "order", "sign", order_id))

    await login("lab")
    posted = answer(await platform.clinical("-o", "json", "result", "post", "--order-id",
                                            order_id, "--order-min-version", signed["version"],
                                            "--quantity", "2823-3=4.0 mmol/L"))  # fmt: skip
    amended = answer(await platform.clinical("-o", "json", "result", "amend",
                                             posted["result_id"], "--reason", "typo",
                                             "--kind", "correction", "--quantity",
                                             "2823-3=4.2 mmol/L"))  # fmt: skip
    result = answer(await platform.clinical("-o", "json", "result", "get", posted["result_id"],
                                            "--min-version", amended["version"]))  # fmt: skip
    order = answer(await platform.clinical("-o", "json", "order", "get", order_id,
                                           "--min-version", signed["version"]))  # fmt: skip
    unknown = await platform.clinical("order", "get", str(uuid.uuid4()))
    assert result["result"]["status"] == "RESULT_STATUS_CORRECTED"
    assert order["order"]["status"] in {"ORDER_STATUS_SIGNED", "ORDER_STATUS_RESULTED"}
    assert unknown.exit_code == ExitCode.NOT_FOUND, unknown.output

    await platform.clinical("logout")
    logged_out = await platform.clinical("order", "get", order_id)
    assert logged_out.exit_code == ExitCode.AUTH


async def login_with_otp(platform: Platform, user: str) -> None:
    """Keycloak takes each one-time code once, and other tests on this Keycloak log in as the
    same user: a refused code is retried with the next one (at most three windows)."""
    for _ in range(3):
        login = ("login", "--username", user, "--password-stdin", "--otp", totp(user))
        logged_in = await platform.clinical(*login, stdin=f"{user}-local\n")
        if logged_in.exit_code == 0:
            return
    raise AssertionError(logged_in.output)


async def until_subscribed(platform: Platform, caller: tuple[str, ...]) -> None:
    """The subscribe command's subscription exists (else the first result could pass unseen)."""
    metadata = (("authorization", f"Bearer {caller[1]}"),)
    async with grpc.aio.insecure_channel(platform.addresses["notify"]) as channel:
        stub = NotifyServiceStub(channel)
        for _ in range(200):
            listed = await stub.ListSubscriptions(notify_pb2.ListSubscriptionsRequest(),
                                                  metadata=metadata)  # fmt: skip
            if listed.subscriptions:
                return
            await asyncio.sleep(0.1)
    raise AssertionError("the subscribe command created no subscription")
