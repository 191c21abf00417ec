"""SMART scope matrix: each scope allows exactly its resource types and interactions."""

from __future__ import annotations

import itertools

import pytest

from gateway.domain.scopes import Context, Interaction, granted, parse_scope, parse_scopes

pytestmark = pytest.mark.unit

RESOURCES = ("Patient", "Observation", "ServiceRequest", "DiagnosticReport")
ALL = "cruds"

# scope -> (context it applies in, resources it covers, interactions it allows)
MATRIX = {
    "patient/Observation.rs": (Context.PATIENT, {"Observation"}, "rs"),
    "patient/*.rs": (Context.PATIENT, set(RESOURCES), "rs"),
    "user/ServiceRequest.cruds": (Context.USER, {"ServiceRequest"}, "cruds"),
    "user/Patient.cu": (Context.USER, {"Patient"}, "cu"),
    "user/*.r": (Context.USER, set(RESOURCES), "r"),
    "system/*.rs": (Context.SYSTEM, set(RESOURCES), "rs"),
    "system/Observation.cruds": (Context.SYSTEM, {"Observation"}, "cruds"),
    "patient/ServiceRequest.rs": (Context.PATIENT, {"ServiceRequest"}, "rs"),
    "user/DiagnosticReport.rs": (Context.USER, {"DiagnosticReport"}, "rs"),
    "patient/Observation.read": (Context.PATIENT, {"Observation"}, "rs"),  # SMART v1
    "user/*.write": (Context.USER, set(RESOURCES), "cud"),  # SMART v1
}


@pytest.mark.parametrize("scope", sorted(MATRIX))
def test_each_scope_allows_exactly_its_resources_and_interactions(scope: str) -> None:
    context, resources, letters = MATRIX[scope]
    scopes = parse_scopes(scope)
    for ctx, resource, letter in itertools.product(Context, RESOURCES, ALL):
        expected = ctx is context and resource in resources and letter in letters
        assert granted(scopes, [ctx], resource, Interaction(letter)) is expected, (
            ctx,
            resource,
            letter,
        )


@pytest.mark.parametrize(
    "text",
    ["openid", "launch/patient", "fhirUser", "user/Observation.sr", "user/Observation.",
     "user/observation.rs", "doctor/Observation.rs", "user/Observation.rs?category=laboratory",
     "user/Observation.rsx", ""],
)  # fmt: skip
def test_anything_else_grants_nothing(text: str) -> None:
    assert parse_scope(text) is None


def test_scopes_add_up() -> None:
    scopes = parse_scopes("openid patient/Observation.rs patient/ServiceRequest.r")
    assert granted(scopes, [Context.PATIENT], "ServiceRequest", Interaction.READ)
    assert not granted(scopes, [Context.PATIENT], "ServiceRequest", Interaction.SEARCH)
    assert {s.text for s in scopes} == {"patient/Observation.rs", "patient/ServiceRequest.r"}
