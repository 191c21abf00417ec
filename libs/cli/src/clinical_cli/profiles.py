"""Profiles (where the platform and its identity provider are) in ``config.toml`` under the
user's config folder, and each profile's cached tokens beside it (mode 0600).

``CLINICAL_CONFIG_DIR`` moves the folder (tests, several installations side by side).
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import typer

from clinical_cli.errors import UsageError

DEFAULT_PROFILE = "local"


@dataclass(frozen=True)
class Profile:
    """The local stack's addresses by default (README, "Services")."""

    gateway: str = "http://127.0.0.1:18080"
    issuer: str = "http://127.0.0.1:18180/realms/clinical"
    client_id: str = "clinical-cli"  # password grant (scripted local users)
    browser_client_id: str = "companion-app"  # authorization code + PKCE
    callback_port: int = 18057  # a redirect URI the browser client allows
    scope: str = "user/*.cruds"
    patient: str = "127.0.0.1:18051"
    orders: str = "127.0.0.1:18052"
    results: str = "127.0.0.1:18053"
    notify: str = "127.0.0.1:18054"

    def address_of(self) -> dict[str, str]:
        return {"patient": self.patient, "orders": self.orders, "results": self.results,
                "notify": self.notify}  # fmt: skip

    def changed(self, **values: Any) -> Profile:
        known = {f.name for f in fields(self)}
        unknown = set(values) - known
        if unknown:
            msg = f"no such profile setting: {', '.join(sorted(unknown))}"
            raise UsageError(msg)
        typed: dict[str, Any] = {
            name: int(v) if name == "callback_port" else str(v) for name, v in values.items()
        }
        return replace(self, **typed)


def config_dir() -> Path:
    return Path(os.environ.get("CLINICAL_CONFIG_DIR") or typer.get_app_dir("clinical"))


def load_profiles(folder: Path | None = None) -> dict[str, Profile]:
    path = (folder or config_dir()) / "config.toml"
    if not path.exists():
        return {DEFAULT_PROFILE: Profile()}
    try:
        document = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        msg = f"{path} is not valid TOML ({error})"
        raise UsageError(msg) from None
    profiles = {DEFAULT_PROFILE: Profile()}
    for name, values in document.get("profiles", {}).items():
        profiles[name] = Profile().changed(**values)
    return profiles


def load_profile(name: str, folder: Path | None = None) -> Profile:
    profiles = load_profiles(folder)
    if name not in profiles:
        msg = f"no profile named {name!r}: clinical profile set {name} --gateway URL ..."
        raise UsageError(msg)
    return profiles[name]


def save_profile(name: str, profile: Profile, folder: Path | None = None) -> Path:
    folder = folder or config_dir()
    profiles = load_profiles(folder) | {name: profile}
    lines: list[str] = []
    for profile_name, each in sorted(profiles.items()):
        lines.append(f"[profiles.{json.dumps(profile_name)}]")
        # JSON strings are valid TOML basic strings; integers are the same in both.
        lines += [f"{key} = {json.dumps(value)}" for key, value in asdict(each).items()]
        lines.append("")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.toml"
    write_private(path, "\n".join(lines))
    return path


def write_private(path: Path, text: str) -> None:
    """Write atomically, readable by the user only (tokens are credentials)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
    os.chmod(temporary, 0o600)  # an older file of the same name may have had wider bits
    temporary.replace(path)
