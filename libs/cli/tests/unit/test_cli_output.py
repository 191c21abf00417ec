"""--output json gives scripts the service's fields unchanged; table gives people rows."""

from __future__ import annotations

import json

import pytest

from .fakes import FakePlatform, invoke

pytestmark = pytest.mark.unit

ORDER = {"order": {"order_id": "o-1", "version": "2", "status": "ORDER_STATUS_SIGNED",
                   "reason_codes": [{"system": "CODE_SYSTEM_ICD10", "code": "N18.3"}],
                   "signature": {"signer": "dr-1", "mfa": True}}}  # fmt: skip


def rows(table: str) -> list[str]:
    """A rich table's lines with the borders gone and the cells one space apart."""
    return [" ".join(line.replace("│", " ").replace("┃", " ").split())
            for line in table.splitlines()]  # fmt: skip


def test_json_output_is_the_answer_unchanged() -> None:
    platform = FakePlatform(answers={"GetOrder": ORDER})

    result = invoke(platform, ["--token", "t", "-o", "json", "order", "get", "o-1"])

    assert result.exit_code == 0
    assert json.loads(result.stdout) == ORDER
    assert platform.calls == [("GetOrder", {"order_id": "o-1"})]
    assert platform.tokens == ["t"]
    assert platform.closed


def test_table_output_flattens_nested_fields_into_rows() -> None:
    platform = FakePlatform(answers={"GetOrder": ORDER})

    result = invoke(platform, ["--token", "t", "order", "get", "o-1"], terminal_width=200)

    assert result.exit_code == 0
    lines = rows(result.stdout)
    assert "order.status ORDER_STATUS_SIGNED" in lines
    assert "order.reason_codes[0].code N18.3" in lines
    assert "order.signature.mfa true" in lines


def test_a_list_of_records_is_one_row_each() -> None:
    patients = {"patients": [{"patient_id": "p-1", "version": "1"},
                             {"patient_id": "p-2", "version": "3"}]}  # fmt: skip
    platform = FakePlatform(answers={"SearchPatients": patients})

    result = invoke(platform, ["--token", "t", "patient", "search", "--family", "Smith"],
                    terminal_width=200)  # fmt: skip

    lines = rows(result.stdout)
    assert "patient_id version" in lines
    assert "p-1 1" in lines
    assert "p-2 3" in lines
    assert platform.calls == [("SearchPatients", {"family_name": "Smith"})]


def test_commands_build_requests_in_the_protobuf_json_mapping() -> None:
    platform = FakePlatform()

    invoke(platform, ["--token", "t", "patient", "register", "--request-id", "r-1",
                      "--family", "Smith", "--given", "Ann", "--given", "Marie",
                      "--birth-date", "1980-02-29", "--sex", "female",
                      "--identifier", "urn:mrn|123"])  # fmt: skip
    invoke(platform, ["--token", "t", "order", "place", "--request-id", "r-2",
                      "--patient-id", "p-1", "--test-code", "2823-3", "--priority", "stat",
                      "--reason", "icd10:N18.3"])  # fmt: skip
    invoke(platform, ["--token", "t", "result", "amend", "res-1", "--request-id", "r-3",
                      "--reason", "typo", "--kind", "correction", "--quantity",
                      "2823-3=4.1 mmol/L", "--text", "note=haemolysed",
                      "--expected-version", "2"])  # fmt: skip

    assert platform.calls == [
        ("RegisterPatient", {"request_id": "r-1", "demographics": {
            "name": {"family": "Smith", "given": ["Ann", "Marie"]}, "birth_date": "1980-02-29",
            "sex": "ADMINISTRATIVE_SEX_FEMALE",
            "identifiers": [{"system": "urn:mrn", "value": "123"}]}}),
        ("PlaceOrder", {"request_id": "r-2", "patient_id": "p-1", "test_code": "2823-3",
                        "priority": "PRIORITY_STAT",
                        "reason_codes": [{"system": "CODE_SYSTEM_ICD10", "code": "N18.3"}]}),
        ("AmendResult", {"request_id": "r-3", "result_id": "res-1", "reason": "typo",
                         "kind": "REVISION_KIND_CORRECTION", "expected_version": "2",
                         "observations": [
                             {"code": "2823-3", "quantity": {"value": "4.1", "unit": "mmol/L"}},
                             {"code": "note", "text": "haemolysed"}]}),
    ]  # fmt: skip


def test_forget_asks_for_confirmation_unless_told_yes() -> None:
    platform = FakePlatform(answers={"ForgetPatient": {"version": "4"}})

    declined = invoke(platform, ["--token", "t", "patient", "forget", "p-1", "--reason", "r"],
                      input="n\n")  # fmt: skip
    confirmed = invoke(platform, ["--token", "t", "-o", "json", "patient", "forget", "p-1",
                                  "--reason", "request", "--yes"])  # fmt: skip

    assert declined.exit_code == 1
    assert confirmed.exit_code == 0
    assert [method for method, _ in platform.calls] == ["ForgetPatient"]
