"""The image's build rules, read from the Dockerfile (no engine builds it on these machines)."""

from __future__ import annotations

import re

from localinfra.config import REPO_ROOT

DOCKERFILE = (REPO_ROOT / "Dockerfile").read_text()
INSTRUCTIONS = [
    line.strip()
    for line in re.sub(r"\\\n\s*", " ", DOCKERFILE).splitlines()
    if line.strip() and not line.lstrip().startswith("#")
]


def _stages() -> list[list[str]]:
    stages: list[list[str]] = []
    for instruction in INSTRUCTIONS:
        if instruction.startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def test_the_base_is_a_pinned_slim_python_release() -> None:
    base = next(i for i in INSTRUCTIONS if i.startswith("ARG PYTHON_IMAGE="))
    assert re.fullmatch(r"ARG PYTHON_IMAGE=python:3\.11\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", base)
    assert all(i.startswith("FROM ${PYTHON_IMAGE}") for i in INSTRUCTIONS if i.startswith("FROM "))


def test_dependencies_come_from_the_lock_file_without_dev_tools() -> None:
    syncs = [i for i in INSTRUCTIONS if "uv sync" in i]
    assert syncs
    assert all("--locked" in i and "--no-dev" in i for i in syncs)


def test_the_final_stage_runs_as_non_root_without_build_tools_or_healthcheck() -> None:
    build, final = _stages()
    assert not any(i.startswith("HEALTHCHECK") for i in INSTRUCTIONS)
    users = [i for i in final if i.startswith("USER ")]
    assert users == ["USER 10001:10001"]
    assert not any(re.search(r"\b(pip|uv|apt-get install|gcc|build-essential)\b", i)
                   for i in final if i.startswith("RUN "))  # fmt: skip
    assert any(i.startswith("COPY --from=build") for i in final)
    assert any("pip install" in i for i in build)


def test_the_build_context_is_only_what_the_image_needs() -> None:
    ignore = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in ignore
    assert {"!uv.lock", "!pyproject.toml", "!libs/", "!services/"} <= set(ignore)
