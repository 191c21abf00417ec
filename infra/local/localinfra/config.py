"""Where things live and which ports they use; every value can be overridden by an env var."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
HOST = "127.0.0.1"


class ConfigError(Exception):
    """A setting has a value we cannot use."""


def _int(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None


@dataclass(frozen=True)
class InfraConfig:
    """The local servers' layout. Ports default to values that avoid the standard ones."""

    data_dir: Path
    cache_dir: Path
    kafka_port: int
    kafka_controller_port: int
    mongo_port: int
    postgres_port: int
    vault_port: int
    kafka_heap: str
    start_timeout: float
    keycloak_port: int = 18180
    keycloak_heap: str = "512m"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> InfraConfig:
        xdg_cache = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        return cls(
            data_dir=Path(environ.get("CLINICAL_INFRA_DIR") or REPO_ROOT / ".infra").resolve(),
            cache_dir=Path(
                environ.get("CLINICAL_CACHE_DIR") or Path(xdg_cache) / "clinical-platform"
            ).resolve(),
            kafka_port=_int(environ, "CLINICAL_KAFKA_PORT", 19092),
            kafka_controller_port=_int(environ, "CLINICAL_KAFKA_CONTROLLER_PORT", 19093),
            mongo_port=_int(environ, "CLINICAL_MONGO_PORT", 37017),
            postgres_port=_int(environ, "CLINICAL_POSTGRES_PORT", 37432),
            vault_port=_int(environ, "CLINICAL_VAULT_PORT", 18200),
            kafka_heap=environ.get("CLINICAL_KAFKA_HEAP") or "768m",
            start_timeout=float(_int(environ, "CLINICAL_INFRA_START_TIMEOUT", 120)),
            keycloak_port=_int(environ, "CLINICAL_KEYCLOAK_PORT", 18180),
            keycloak_heap=environ.get("CLINICAL_KEYCLOAK_HEAP") or "512m",
        )

    @property
    def kafka_bootstrap_servers(self) -> str:
        return f"{HOST}:{self.kafka_port}"

    @property
    def mongodb_url(self) -> str:
        return f"mongodb://{HOST}:{self.mongo_port}/"

    @property
    def vault_addr(self) -> str:
        return f"http://{HOST}:{self.vault_port}"

    @property
    def keycloak_url(self) -> str:
        return f"http://{HOST}:{self.keycloak_port}"

    def server_dir(self, name: str) -> Path:
        path = self.data_dir / name
        path.mkdir(parents=True, exist_ok=True)
        return path


def write_private(path: Path, text: str) -> None:
    """Write a secret file readable by its owner only (mode 0600 from the start)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text if text.endswith("\n") else text + "\n")
