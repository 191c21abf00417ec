"""``clinical fhir import``'s reading of an export: observations grouped by their result, each
as the results service posts it (decimals as written), and the Provenance of what it made."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from fhir.resources.R4B.provenance import Provenance

from clinical_cli.fhir_import import (
    _lines,
    _observations_by_result,
    _posted_observation,
    _provenance,
)

pytestmark = pytest.mark.unit

RESULT = "0b8f5c7e-1d2a-4c3b-9e8f-7a6b5c4d3e2f"


def observation(position: int, **value: object) -> dict[str, object]:
    return {"resourceType": "Observation", "id": f"{RESULT}-{position}", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]},
            **value}  # fmt: skip


def test_observations_are_grouped_by_result_in_their_order(tmp_path: Path) -> None:
    path = tmp_path / "Observation.ndjson"
    lines = [observation(2, valueString="b"), observation(1, valueString="a"),
             observation(10, valueString="c")]  # fmt: skip
    path.write_text("".join(json.dumps(o) + "\n" for o in lines))
    grouped = _observations_by_result(path)
    assert [o["valueString"] for o in grouped[RESULT]] == ["a", "b", "c"]


def test_a_quantity_keeps_its_decimals_as_written(tmp_path: Path) -> None:
    path = tmp_path / "Observation.ndjson"
    path.write_text('{"id": "x-1", "code": {"coding": [{"code": "2345-7"}]}, "valueQuantity": '
                    '{"value": 5.40, "code": "mmol/L"}, "referenceRange": [{"low": {"value": '
                    '3.9}, "high": {"value": 5.5}}]}\n')  # fmt: skip
    [read] = list(_lines(path))
    assert read["valueQuantity"]["value"] == Decimal("5.40")
    assert _posted_observation(read) == {
        "code": "2345-7", "quantity": {"value": "5.40", "unit": "mmol/L"},
        "reference_range": {"low": "3.9", "high": "5.5"},
    }  # fmt: skip


def test_coded_and_text_values_post_as_the_service_takes_them() -> None:
    coded = observation(
        1,
        valueCodeableConcept={
            "coding": [
                {"system": "http://snomed.info/sct", "code": "260385009", "display": "Negative"}
            ]
        },
    )
    assert _posted_observation(coded)["coded"] == {
        "system": "http://snomed.info/sct",
        "code": "260385009",
        "display": "Negative",
    }
    assert _posted_observation(observation(2, valueString="haemolysed"))["text"] == "haemolysed"


def test_the_provenance_of_an_imported_record_names_its_source() -> None:
    resource = _provenance("Patient", "new-id", "http://old/fhir/r4/Patient/old-id")
    Provenance.model_validate(resource)
    assert resource["target"] == [{"reference": "Patient/new-id"}]
    assert resource["entity"] == [
        {"role": "source", "what": {"reference": "http://old/fhir/r4/Patient/old-id"}}
    ]
