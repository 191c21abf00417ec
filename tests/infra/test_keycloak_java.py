"""localinfra picks a JDK Keycloak can run on, or says in one line that there is none."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from localinfra import keycloak
from localinfra.prereqs import MissingPrerequisiteError

pytestmark = pytest.mark.unit


def fake_jdk(root: Path, name: str, major: int) -> Path:
    home = root / name
    java = home / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text(f"#!/bin/sh\necho 'openjdk version \"{major}.0.1\" 2026-01-20' >&2\n")
    java.chmod(java.stat().st_mode | stat.S_IEXEC)
    return home


def test_the_newest_jdk_of_version_21_or_later_is_chosen(tmp_path: Path) -> None:
    fake_jdk(tmp_path, "java-17-openjdk", 17)
    newer = fake_jdk(tmp_path, "temurin-25-jdk", 25)
    assert keycloak.java_home({"PATH": "/nonexistent"}, jvm_root=tmp_path) == newer


def test_an_explicit_java_home_wins(tmp_path: Path) -> None:
    chosen = fake_jdk(tmp_path, "jdk-21", 21)
    fake_jdk(tmp_path / "other", "temurin-25-jdk", 25)
    environ = {"CLINICAL_KEYCLOAK_JAVA_HOME": str(chosen), "PATH": "/nonexistent"}
    assert keycloak.java_home(environ, jvm_root=tmp_path / "other") == chosen


def test_only_old_jdks_fail_with_one_line_naming_the_fix(tmp_path: Path) -> None:
    fake_jdk(tmp_path, "java-17-openjdk", 17)
    with pytest.raises(MissingPrerequisiteError) as missing:
        keycloak.java_home({"PATH": "/nonexistent"}, jvm_root=tmp_path)
    message = str(missing.value)
    assert "\n" not in message
    assert "Java 21+" in message
    assert "CLINICAL_KEYCLOAK_JAVA_HOME" in message
