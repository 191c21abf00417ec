"""Keycloak, the local OpenID Connect provider: realm ``clinical`` from infra/keycloak.

The distribution lives in the cache, built once for dev-file storage (H2 on disk), so every
start is ``kc.sh start --optimized``. Its home for one checkout is ``.infra/keycloak/home``:
the distribution's code linked in, the data (H2 files, the realm to import) of our own.
Keycloak imports a realm only when it does not exist yet, so a start that finds the realm file
changed since its last import starts the database afresh and imports it again: the realm's
users, clients and keys all come from that file (a running Keycloak picks an edit up at its
next start: ``make infra-down`` then ``make infra-up``).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path

from . import builds
from .config import HOST, REPO_ROOT, InfraConfig
from .prereqs import MissingPrerequisiteError
from .processes import ManagedProcess, already_running

NAME = "keycloak"
REALM = "clinical"
REALM_FILE = REPO_ROOT / "infra" / "keycloak" / "clinical-realm.json"
MIN_JAVA = 21  # Keycloak 26 runs on Java 21 and later
JAVA_HINT = (
    f"Keycloak needs Java {MIN_JAVA}+ and none was found (looked at CLINICAL_KEYCLOAK_JAVA_HOME, "
    "JAVA_HOME, java on PATH, /usr/lib/jvm): install one (Debian: apt-get install "
    "openjdk-21-jre-headless) or point CLINICAL_KEYCLOAK_JAVA_HOME at it"
)


def process(config: InfraConfig) -> ManagedProcess:
    return ManagedProcess(NAME, config.server_dir(NAME), marker=str(_home(config)))


def issuer(config: InfraConfig) -> str:
    return f"{config.keycloak_url}/realms/{REALM}"


def install(config: InfraConfig) -> Path:
    return builds.keycloak_dist(config, java_home())


def java_home(
    environ: Mapping[str, str] = os.environ, jvm_root: Path = Path("/usr/lib/jvm")
) -> Path:
    """The first Java home of version 21 or later; one-line error when there is none."""
    for home in _java_candidates(environ, jvm_root):
        if _java_major(home / "bin" / "java") >= MIN_JAVA:
            return home
    raise MissingPrerequisiteError(JAVA_HINT)


def _java_candidates(environ: Mapping[str, str], jvm_root: Path) -> Iterator[Path]:
    for name in ("CLINICAL_KEYCLOAK_JAVA_HOME", "JAVA_HOME"):
        if environ.get(name):
            yield Path(environ[name])
    on_path = shutil.which("java", path=environ.get("PATH"))
    if on_path:
        yield Path(os.path.realpath(on_path)).parents[1]
    if jvm_root.is_dir():
        yield from sorted((p for p in jvm_root.iterdir() if p.is_dir()), reverse=True)


def _java_major(java: Path) -> int:
    if not java.is_file():
        return 0
    completed = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    match = re.search(r'version "(\d+)', completed.stderr)
    return int(match.group(1)) if match else 0


def admin_credentials(config: InfraConfig) -> dict[str, str]:
    """The master realm's local administrator (made on the first start; mode 0600)."""
    path = config.server_dir(NAME) / "admin.json"
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(json.dumps({"username": "admin", "password": secrets.token_urlsafe(18)}))
    return dict(json.loads(path.read_text()))


def start(config: InfraConfig) -> bool:
    """Start Keycloak unless it runs, importing the realm on the first start. True if started."""
    proc = process(config)
    ready = lambda: realm_ready(config)  # noqa: E731
    if already_running(proc, ready, config.start_timeout, config.keycloak_port,
                       "CLINICAL_KEYCLOAK_PORT"):  # fmt: skip
        return False
    jdk = java_home()
    dist = builds.keycloak_dist(config, jdk)
    home = _prepare_home(config, dist)
    admin = admin_credentials(config)
    env = dict(os.environ)
    env.update(
        JAVA_HOME=str(jdk),
        JAVA_OPTS_KC_HEAP=f"-Xms64m -Xmx{config.keycloak_heap}",
        # The bootstrap admin comes from the environment, so its password is never in `ps`.
        KC_BOOTSTRAP_ADMIN_USERNAME=admin["username"],
        KC_BOOTSTRAP_ADMIN_PASSWORD=admin["password"],
    )
    argv = [
        str(dist / "bin" / "kc.sh"), "start", "--optimized",
        f"-Dkc.home.dir={home}",
        # One node, no cluster: without this Keycloak opens JGroups ports on every interface.
        "--cache=local",
        "--http-enabled=true", f"--http-host={HOST}", f"--http-port={config.keycloak_port}",
        # A fixed issuer, whichever name a client uses to reach the server.
        f"--hostname={config.keycloak_url}",
        "--import-realm",
    ]  # fmt: skip
    proc.start(argv, env, cwd=home)
    proc.wait_until(ready, config.start_timeout, "ready")
    return True


def _home(config: InfraConfig) -> Path:
    return config.server_dir(NAME) / "home"


def _prepare_home(config: InfraConfig, dist: Path) -> Path:
    home = _home(config)
    (home / "data" / "import").mkdir(parents=True, exist_ok=True)
    imported = home / "data" / "import" / REALM_FILE.name
    if imported.exists() and imported.read_bytes() != REALM_FILE.read_bytes():
        shutil.rmtree(home / "data" / "h2", ignore_errors=True)
    for part in ("bin", "conf", "lib", "providers", "themes"):
        link = home / part
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(dist / part, target_is_directory=True)
    shutil.copyfile(REALM_FILE, home / "data" / "import" / REALM_FILE.name)
    return home


def realm_ready(config: InfraConfig) -> bool:
    """True when the realm's OpenID discovery document answers."""
    url = f"{issuer(config)}/.well-known/openid-configuration"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our own server
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False
