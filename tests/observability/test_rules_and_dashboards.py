"""Alerts, recording rules and dashboards: promtool checks and unit-tests them, every alert is
tested firing and not firing and has a runbook, the Grafana dashboard's queries parse."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from localinfra import prometheus
from localinfra.config import REPO_ROOT, InfraConfig

pytestmark = pytest.mark.integration

OBSERVABILITY = REPO_ROOT / "infra" / "observability"
RULE_FILES = sorted((OBSERVABILITY / "prometheus" / "rules").glob("*.yml"))
RULE_TESTS = sorted((OBSERVABILITY / "prometheus" / "tests").glob("*.test.yml"))
DASHBOARD = OBSERVABILITY / "grafana" / "clinical-platform.json"
RUNBOOKS = REPO_ROOT / "docs" / "runbooks"


@pytest.fixture(scope="module")
def promtool() -> Path:
    # Debian's prometheus package brings promtool; the project's installer adds it when missing.
    prometheus.install(InfraConfig.from_env())
    return prometheus.binary("promtool")


def run(promtool: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(promtool), *map(str, args)], capture_output=True, text=True, check=False, cwd=REPO_ROOT
    )


def alerts() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            found |= {rule["alert"]: rule for rule in group["rules"] if "alert" in rule}
    return found


def test_promtool_accepts_every_rule_file(promtool: Path) -> None:
    checked = run(promtool, "check", "rules", *RULE_FILES)

    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_promtool_unit_tests_of_the_alerts_pass(promtool: Path) -> None:
    tested = run(promtool, "test", "rules", *RULE_TESTS)

    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_is_tested_both_firing_and_not_firing() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])

    assert sorted(alerts()) == sorted(firing)
    assert sorted(alerts()) == sorted(quiet)


def test_every_alert_has_a_runbook_it_links_to() -> None:
    for name, rule in alerts().items():
        assert rule["annotations"]["runbook_url"] == f"docs/runbooks/{name}.md"
        assert (RUNBOOKS / f"{name}.md").is_file(), name
        assert name in (RUNBOOKS / "README.md").read_text()


def test_a_break_glass_read_asks_for_a_review_per_service() -> None:
    rule = alerts()["ClinicalBreakGlassRead"]

    assert "clinical_break_glass_reads_total" in rule["expr"]
    assert "by (service)" in rule["expr"]
    assert rule["labels"]["severity"] == "ticket"
    assert "for" not in rule  # every read is reviewed: none may hide in a short burst


def test_alert_labels_are_bounded() -> None:
    for name, rule in alerts().items():
        assert rule["labels"]["severity"] in {"page", "ticket", "warning"}, name


def test_the_grafana_dashboard_loads_with_the_expected_panels(tmp_path: Path) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    titles = {panel["title"] for panel in dashboard["panels"]}

    assert dashboard["uid"] == "clinical-platform"
    assert {
        "gRPC calls per second",
        "gRPC server error ratio (5m)",
        "Error budget burn rate (1h, SLO 99.9 %)",
        "Append p99 latency",
        "Projection lag",
        "Consumer lag (records) per partition",
        "Dead letters (1h)",
        "Webhook delivery latency (commit to 2xx, p95)",
        "Webhook POSTs by outcome",
        "Vault p99 latency by operation",
        "Data-key cache hit ratio",
        "Checkpoint age",
        "Access-audit outbox depth",
        "Break-glass reads (1h)",
    } <= titles


def test_every_dashboard_query_parses_in_promtool(promtool: Path, tmp_path: Path) -> None:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    queries = [target["expr"] for panel in panels for target in panel.get("targets", [])]
    # Each query as a recording rule: `promtool check rules` parses its PromQL.
    rules = {
        "groups": [
            {
                "name": "dashboard-queries",
                "rules": [
                    {"record": f"dashboard:query_{n}", "expr": expr}
                    for n, expr in enumerate(queries)
                ],
            }
        ]
    }
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(rules))

    checked = run(promtool, "check", "rules", path)

    assert len(queries) >= 20
    assert checked.returncode == 0, checked.stdout + checked.stderr
