"""Checks for the programs the local servers need, each failing with one actionable line."""

from __future__ import annotations

import re
import shutil
import subprocess

HINTS = {
    "java": "install a Java 17+ runtime (Debian: apt-get install openjdk-17-jre-headless)",
    "mvn": "install Apache Maven 3.6+ (Debian: apt-get install maven); it fetches the Kafka jars",
    "openssl": "install OpenSSL (Debian: apt-get install openssl); it makes the local Kafka CA",
    "go": "install Go 1.23+ and put its bin directory on PATH; it builds FerretDB and OpenBao",
}


class MissingPrerequisiteError(Exception):
    """A program we need is not on PATH or is too old."""


def require(program: str) -> str:
    """Return the absolute path of ``program`` or raise with a hint on how to install it."""
    path = shutil.which(program)
    if path is None:
        raise MissingPrerequisiteError(f"{program} not found on PATH: {HINTS[program]}")
    if program == "java":
        _require_java_17(path)
    return path


def _require_java_17(java: str) -> None:
    # `java -version` writes to stderr, e.g. 'openjdk version "17.0.15" 2025-04-15'.
    completed = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    match = re.search(r'version "(\d+)', completed.stderr)
    major = int(match.group(1)) if match else 0
    if major < 17:
        raise MissingPrerequisiteError(f"java at {java} is version {major or '?'}: {HINTS['java']}")
