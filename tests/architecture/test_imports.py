"""The import rules the design depends on, checked from the source with `ast` (nothing imported).

- No cycle between the kernel's parts: a package or module of `clinical_platform` that imports
  another never gets imported back by it, directly or through others. The port is defined where
  it is used (e.g. `eventlog.ports`), and the other side implements it.
- A service's domain does no I/O: no module under `services/*/src/*/domain/` imports grpc,
  aiokafka, pymongo, hvac, jwt or the event log.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
KERNEL = ROOT / "libs" / "platform" / "src" / "clinical_platform"
KERNEL_PACKAGE = "clinical_platform"
FORBIDDEN_IN_DOMAIN = ("grpc", "aiokafka", "pymongo", "hvac", "jwt", "clinical_platform.eventlog")


def _module_name(path: Path, source_root: Path) -> str:
    parts = list(path.relative_to(source_root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imported_modules(path: Path, module: str) -> Iterator[str]:
    """Every module the file imports, relative imports resolved, TYPE_CHECKING ones included
    (a cycle through type hints is still two parts that know each other)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            # `from package import module` imports the module too.
            yield from (f"{base}.{alias.name}" for alias in node.names)


def _part_of(module: str) -> str | None:
    """The kernel part a module belongs to: its subpackage, or itself when it is top level."""
    parts = module.split(".")
    if parts[0] != KERNEL_PACKAGE or len(parts) < 2:
        return None
    return parts[1]


def _kernel_parts() -> set[str]:
    return {path.stem for path in KERNEL.glob("*.py") if path.stem != "__init__"} | {
        path.name for path in KERNEL.iterdir() if (path / "__init__.py").exists()
    }


def kernel_import_graph() -> dict[str, set[str]]:
    """Which kernel part imports which other (subpackages and top-level modules as nodes)."""
    parts = _kernel_parts()
    graph: dict[str, set[str]] = {part: set() for part in parts}
    source_root = KERNEL.parent
    for path in KERNEL.rglob("*.py"):
        module = _module_name(path, source_root)
        importer = _part_of(module)
        if importer is None:
            continue
        for imported in _imported_modules(path, module):
            target = _part_of(imported)
            if target in parts and target != importer:
                graph[importer].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle as a path (first node repeated at the end), or None."""
    visiting: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> list[str] | None:
        if node in visiting:
            return [*visiting[visiting.index(node) :], node]
        if node in done:
            return None
        visiting.append(node)
        for neighbour in sorted(graph.get(node, ())):
            if cycle := visit(neighbour):
                return cycle
        visiting.pop()
        done.add(node)
        return None

    for node in sorted(graph):
        if cycle := visit(node):
            return cycle
    return None


def test_the_kernel_parts_import_each_other_without_a_cycle() -> None:
    graph = kernel_import_graph()
    assert "eventlog" in graph
    assert "security" in graph

    cycle = find_cycle(graph)

    assert cycle is None, "import cycle in clinical_platform: " + " -> ".join(cycle or [])


def test_the_cycle_finder_reports_the_path_of_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}

    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def _domain_files() -> Iterator[tuple[Path, str]]:
    for source_root in sorted(ROOT.glob("services/*/src")):
        for path in sorted(source_root.glob("*/domain/**/*.py")):
            yield path, _module_name(path, source_root)


def test_no_service_domain_imports_io_or_the_event_log() -> None:
    files = list(_domain_files())
    assert files, "no services/*/src/*/domain/ modules found"

    offending = [
        f"{path.relative_to(ROOT)} imports {imported}"
        for path, module in files
        for imported in sorted(set(_imported_modules(path, module)))
        if any(imported == banned or imported.startswith(f"{banned}.")
               for banned in FORBIDDEN_IN_DOMAIN)
    ]  # fmt: skip

    assert not offending, "\n".join(offending)
