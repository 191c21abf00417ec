"""Downloads and builds of the servers, cached per user and keyed by their recipe's content.

A recipe is a folder under infra/local (a Maven pom, or a Go module with its go.sum). The cache
entry's name carries a hash of the recipe, so changing a version rebuilds and nothing else does.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from .config import REPO_ROOT, InfraConfig
from .prereqs import require

RECIPES = REPO_ROOT / "infra" / "local"


class BuildError(Exception):
    """A download or build step failed."""


def _recipe_hash(recipe: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in recipe.rglob("*") if p.is_file()):
        digest.update(path.relative_to(recipe).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _say(message: str) -> None:
    print(f"localinfra: {message}", file=sys.stderr, flush=True)


def _run(argv: list[str], cwd: Path, env: dict[str, str], what: str) -> None:
    completed = subprocess.run(argv, cwd=cwd, env=env, check=False)
    if completed.returncode != 0:
        raise BuildError(f"{what} failed (exit {completed.returncode}); the output above says why")


def _publish(staging: Path, final: Path) -> Path:
    # Rename is atomic: a build interrupted half-way never looks like a cached one.
    if final.exists():
        shutil.rmtree(staging)
    else:
        staging.rename(final)
    return final


def kafka_libs(config: InfraConfig) -> Path:
    """The folder of Kafka jars (broker, controller, storage tool, log4j2 binding)."""
    recipe = RECIPES / "kafka"
    final = config.cache_dir / f"kafka-libs-{_recipe_hash(recipe)}"
    if final.is_dir():
        return final
    mvn = require("mvn")
    _say("downloading the Kafka jars with Maven (first run only, about 50 MB)")
    staging = final.with_name(final.name + f".partial-{os.getpid()}")
    staging.mkdir(parents=True)
    _run(
        [
            mvn, "-q", "-B", "-f", str(recipe / "pom.xml"),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={staging}", "-DincludeScope=runtime",
        ],
        cwd=recipe, env=dict(os.environ), what="mvn dependency:copy-dependencies",
    )  # fmt: skip
    return _publish(staging, final)


def keycloak_dist(config: InfraConfig, java_home: Path) -> Path:
    """The Keycloak server distribution, unpacked and built (optimised) for dev-file storage."""
    recipe = RECIPES / "keycloak"
    final = config.cache_dir / f"keycloak-{_recipe_hash(recipe)}"
    if (final / "bin" / "kc.sh").is_file():
        return final
    mvn = require("mvn")
    _say("downloading Keycloak with Maven and building it (first run only, about 180 MB, 1 min)")
    staging = final.with_name(final.name + f".partial-{os.getpid()}")
    staging.mkdir(parents=True)
    _run(
        [mvn, "-q", "-B", "-f", str(recipe / "pom.xml"), "dependency:copy",
         f"-DoutputDirectory={staging}"],
        cwd=recipe, env=dict(os.environ), what="mvn dependency:copy (Keycloak)",
    )  # fmt: skip
    with zipfile.ZipFile(staging / "keycloak.zip") as archive:
        archive.extractall(staging / "unpacked")
    (top,) = (staging / "unpacked").iterdir()
    for entry in top.iterdir():
        entry.rename(staging / entry.name)
    shutil.rmtree(staging / "unpacked")
    (staging / "keycloak.zip").unlink()
    for script in (staging / "bin").glob("*.sh"):
        script.chmod(0o755)
    env = dict(os.environ, JAVA_HOME=str(java_home))
    # Build once: every start then runs `start --optimized` and skips Quarkus' augmentation.
    build = [str(staging / "bin" / "kc.sh"), "build", "--db=dev-file",
             "--health-enabled=false", "--metrics-enabled=false"]  # fmt: skip
    _run(build, cwd=staging, env=env, what="kc.sh build")
    return _publish(staging, final)


def go_binary(
    config: InfraConfig, module: str, package: str = ".", ldflags: tuple[str, ...] = ()
) -> Path:
    """`go install` a package of the Go module infra/local/go/<module>; return the binary.

    The package is the module itself (a small wrapper ``main``) or a tool the module requires.
    Either way the binary is named ``module``. ``ldflags`` are added to the linker's (``-X``
    version stamps) and are part of the cache key.
    """
    recipe = RECIPES / "go" / module
    key = _recipe_hash(recipe)
    if ldflags:
        key += "-" + hashlib.sha256(" ".join(ldflags).encode()).hexdigest()[:8]
    final = config.cache_dir / f"go-{module}-{key}"
    binary = final / module
    if binary.is_file():
        return binary
    go = require("go")
    _say(f"building {module} with go install (first run only, a few minutes on 2 cores)")
    staging = final.with_name(final.name + f".partial-{os.getpid()}")
    staging.mkdir(parents=True)
    env = dict(os.environ)
    env.update(
        GOBIN=str(staging),
        # Use the Go on PATH as is, never download another toolchain.
        GOTOOLCHAIN="local",
        GOFLAGS="-mod=readonly -trimpath -buildvcs=false",
        # go.sum is committed, so every module is still verified against its recorded hash;
        # a few OpenBao modules are missing from the public checksum database.
        GONOSUMDB="github.com/openbao",
    )
    _run(
        [go, "install", f"-ldflags={' '.join(('-s', '-w', *ldflags))}", package],
        cwd=recipe, env=env, what=f"go install {module}",
    )  # fmt: skip
    built = staging / module
    if not built.is_file():
        raise BuildError(f"go install {module} produced no binary named {module}")
    return _publish(staging, final) / module
