"""The dependency rules of docs/architecture.md, read from the source: api → tenants, workers → tenants, both may
use the kernel (quorum/), nothing imports api, the kernel imports no domain package, and no import circle."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("api", "tenants", "workers", "quorum")


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in (REPO_ROOT / pkg).rglob("*.py")}


def _imports(path: Path, name: str, known: set[str]) -> set[str]:
    """Every project module `path` imports, at any depth (inside functions and TYPE_CHECKING blocks too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            candidates = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for candidate in candidates:
            while candidate and candidate not in known:
                candidate = candidate.rpartition(".")[0]
            if candidate and candidate != name:
                found.add(candidate)
                break
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(path, name, known) for name, path in modules.items()}


def _top(module: str) -> str:
    return module.split(".", 1)[0]


def test_no_module_takes_part_in_an_import_circle(graph: dict[str, set[str]]):
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as circle:
        pytest.fail(f"import circle: {' -> '.join(circle.args[1])}")


@pytest.mark.parametrize(
    ("importer", "forbidden"),
    [
        ("quorum", {"api", "tenants", "workers"}),  # the kernel holds no domain logic
        ("tenants", {"api", "workers"}),  # tenant data knows neither its HTTP face nor the trading cycle
        ("workers", {"api"}),  # the API enqueues tasks by name; nothing imports it
    ],
)
def test_packages_import_only_in_the_allowed_direction(graph: dict[str, set[str]], importer: str, forbidden: set[str]):
    wrong = sorted(
        f"{module} imports {target}"
        for module, targets in graph.items() if _top(module) == importer
        for target in targets if _top(target) in forbidden
    )
    assert not wrong, "\n".join(wrong)


def test_the_graph_sees_function_level_imports(graph: dict[str, set[str]]):
    # The CLI imports subcommand modules by name only; the supervisor starts processes, so both stay domain-free,
    # while the worker's warm-up imports the runtime inside a task module: the reader must see such imports.
    assert "workers.runtime" in graph["workers.tasks"]
    assert "workers.brain.validation" in graph["workers.brain.gpt"]
