"""A realm file edited since Keycloak imported it is imported again at the next start."""

from __future__ import annotations

from pathlib import Path

import pytest

from localinfra import keycloak
from localinfra.config import InfraConfig

pytestmark = pytest.mark.unit


def _prepared(tmp_path: Path, imported_before: bytes | None) -> Path:
    """Keycloak's home after `_prepare_home`, given the realm file its last start imported."""
    config = InfraConfig.from_env({"CLINICAL_INFRA_DIR": str(tmp_path / "infra")})
    dist = tmp_path / "dist"
    for part in ("bin", "conf", "lib", "providers", "themes"):
        (dist / part).mkdir(parents=True)
    home = config.server_dir("keycloak") / "home"
    (home / "data" / "h2").mkdir(parents=True)
    (home / "data" / "h2" / "keycloakdb.mv.db").write_bytes(b"the realm as imported")
    if imported_before is not None:
        (home / "data" / "import").mkdir(parents=True)
        (home / "data" / "import" / keycloak.REALM_FILE.name).write_bytes(imported_before)
    return keycloak._prepare_home(config, dist)


def test_an_edited_realm_file_starts_the_database_afresh(tmp_path: Path) -> None:
    home = _prepared(tmp_path, imported_before=b'{"realm": "clinical", "older": true}')

    assert not (home / "data" / "h2").exists()
    imported = home / "data" / "import" / keycloak.REALM_FILE.name
    assert imported.read_bytes() == keycloak.REALM_FILE.read_bytes()


def test_an_unchanged_realm_file_keeps_the_database(tmp_path: Path) -> None:
    home = _prepared(tmp_path, imported_before=keycloak.REALM_FILE.read_bytes())

    assert (home / "data" / "h2" / "keycloakdb.mv.db").exists()
