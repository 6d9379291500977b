"""The test suite's own rules: a test steps aside only through the ways CI can turn into failures."""

from __future__ import annotations

import ast
from pathlib import Path

from helpers.core.paths import PROJECT_ROOT

ALLOWED = {
    # the two places that decide skips for a missing engine/browser, and honour RUNBOOK_REQUIRE_*
    "conftest.py",
    "tests/conftest.py",
    "tests/testsupport.py",
}
HAND_SKIPS = ("pytest.skip", "pytest.mark.skipif", "pytest.importorskip", "pytest.mark.skip")


def hand_skips(source: str) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and ast.unparse(node) in HAND_SKIPS:
            found.append((node.lineno, ast.unparse(node)))
    return found


def test_no_test_skips_by_hand() -> None:
    """Missing prerequisites go through testsupport.unavailable / needs (CI turns them into failures)."""
    offenders = []
    for path in sorted([PROJECT_ROOT / "conftest.py", *(PROJECT_ROOT / "tests").rglob("*.py")]):
        rel = str(path.relative_to(PROJECT_ROOT))
        if rel in ALLOWED or "fixtures" in path.parts:
            continue
        offenders += [f"{rel}:{line} {what}" for line, what in hand_skips(path.read_text(encoding="utf-8"))]
    assert not offenders, "use testsupport.unavailable(reason) or @needs(...):\n" + "\n".join(offenders)


def test_the_scan_sees_a_hand_skip(tmp_path: Path) -> None:
    assert hand_skips("import pytest\npytest.skip('x')\n") == [(2, "pytest.skip")]
    assert hand_skips("import pytest\n@pytest.mark.skipif(True, reason='x')\ndef t(): pass\n")


def duplicate_basenames(paths: list[Path]) -> dict[str, list[str]]:
    """Test modules sharing a file name: without __init__.py files pytest imports both as one module."""
    seen: dict[str, list[str]] = {}
    for path in paths:
        seen.setdefault(path.name, []).append(str(path))
    return {name: where for name, where in seen.items() if len(where) > 1}


def test_test_module_names_are_unique() -> None:
    """tests/unit and tests/integration are rootdir-relative folders: a second test_x.py stops collection."""
    tests = PROJECT_ROOT / "tests"
    modules = [p for p in tests.rglob("test_*.py") if "fixtures" not in p.relative_to(tests).parts]
    assert not duplicate_basenames(modules), f"rename one of each: {duplicate_basenames(modules)}"


def test_the_scan_sees_a_duplicate_name() -> None:
    found = duplicate_basenames([Path("tests/unit/test_a.py"), Path("tests/integration/test_a.py")])
    assert found == {"test_a.py": ["tests/unit/test_a.py", "tests/integration/test_a.py"]}
