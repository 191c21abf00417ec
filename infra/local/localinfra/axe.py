"""axe-core, the accessibility engine the browser tests run in their pages: the npm package,
pinned, installed with npm into the project's cache on first use (never fetched at test time
from anywhere but the npm registry, through npm)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from .config import InfraConfig
from .prereqs import MissingPrerequisiteError

VERSION = "4.14.1"


class AxeMissingError(MissingPrerequisiteError):
    """axe-core is not installed and npm is not there to install it."""


def install(config: InfraConfig | None = None) -> Path:
    """The path of axe.min.js, installing axe-core@VERSION with npm when missing."""
    cache = (config or InfraConfig.from_env()).cache_dir / f"npm-axe-core-{VERSION}"
    script = cache / "node_modules" / "axe-core" / "axe.min.js"
    if script.exists():
        return script
    npm = shutil.which("npm") or _install_npm()
    cache.mkdir(parents=True, exist_ok=True)
    # --ignore-scripts: the package is a script for the page; nothing of it runs here.
    argv = [npm, "install", "--prefix", str(cache), "--no-audit", "--no-fund",
            "--ignore-scripts", "--no-save", f"axe-core@{VERSION}"]  # fmt: skip
    if subprocess.run(argv, check=False, capture_output=True).returncode or not script.exists():
        raise AxeMissingError(f"`npm install axe-core@{VERSION}` failed; run it by hand")
    return script


def _install_npm() -> str:
    """Debian's npm, when missing and we may (root with apt-get), as chromium is installed."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise AxeMissingError("npm not found: install Debian's npm package")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-q"],
                 ["apt-get", "install", "-y", "-q", "--no-install-recommends", "npm"]):  # fmt: skip
        if subprocess.run(argv, env=env, check=False, stdout=subprocess.DEVNULL).returncode:
            raise AxeMissingError(f"`{' '.join(argv)}` failed; install npm by hand")
    npm = shutil.which("npm")
    if npm is None:
        raise AxeMissingError("npm not found after installing it")
    return npm
