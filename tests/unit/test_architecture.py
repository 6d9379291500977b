"""The package's shape: layers kept (import-linter's contracts in pyproject.toml), no import circle.

``helpers/`` holds packages only; each imports from its own layer or the layers below
(core < clients < host < services < app < cloud < ops < runner < rehearse < docsite), and nothing but the
rehearsal itself and the CLI's ``runbook rehearse`` imports the stand-ins.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp

from helpers.core.paths import PROJECT_ROOT

PACKAGES = {"core", "clients", "host", "services", "app", "cloud", "ops", "runner", "rehearse", "docsite"}


def test_helpers_holds_packages_only() -> None:
    helpers = PROJECT_ROOT / "helpers"
    modules = sorted(p.name for p in helpers.glob("*.py") if p.name != "__init__.py")
    folders = {p.name for p in helpers.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    assert modules == [], f"move these into a package: {modules}"
    assert folders == PACKAGES


def test_import_contracts_are_kept() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_circle_between_modules() -> None:
    """Every import counts, also one inside a function: a circle hidden in a function is still a circle."""
    graph = grimp.build_graph("helpers", cache_dir=None)
    edges = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    assert cycles(edges) == []


def test_the_circle_finder_finds_one() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
