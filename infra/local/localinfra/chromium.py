"""Debian's chromium, for the browser checks of the local stack (Playwright drives it).

Playwright's own browser downloads are never used: the package's binary is the browser, kept
up to date by the machine's security updates.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from .prereqs import MissingPrerequisiteError


class ChromiumMissingError(MissingPrerequisiteError):
    """Debian's chromium package is not installed."""


def binary() -> Path:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        raise ChromiumMissingError(
            "chromium not found: install Debian's chromium package (the browser tests install "
            "it when run as root)"
        )
    return Path(found)


def install() -> Path:
    """Install Debian's chromium when missing and we may (root with apt-get)."""
    try:
        return binary()
    except ChromiumMissingError:
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            raise
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"],
    ):
        if subprocess.run(argv, env=env, check=False, stdout=subprocess.DEVNULL).returncode:
            failed = " ".join(argv)
            raise ChromiumMissingError(f"`{failed}` failed; install chromium by hand")
    return binary()
