"""Plain helpers shared by the tests (import as ``from testsupport import ...``).

Kept out of ``conftest.py`` on purpose: several folders have a conftest, and
``from conftest import ...`` would pick whichever was imported last.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import NoReturn

import pytest

from helpers.core.settings import env
from helpers.host.ports import free_port  # noqa: F401  (re-exported for the tests)

ROOT = Path(__file__).resolve().parent.parent
FIXTURE_APP = ROOT / "tests" / "fixtures" / "sample-app"
# What the compose file and the app's URLs read from a developer's shell: tests set or clear them.
LOCAL_SERVICE_VARIABLES = ("POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB", "POSTGRES_PORT", "REDIS_PORT")


def unavailable(reason: str, requirement: str = "engine") -> NoReturn:
    """A prerequisite of this test is missing: skip with the reason, or fail where CI requires it.

    ``requirement`` names what CI demands: ``engine`` (``RUNBOOK_REQUIRE_ENGINE=1``, as for
    ``@pytest.mark.engine``), ``browser`` or ``refs`` (the vendors' descriptions,
    ``RUNBOOK_REQUIRE_REFS=1``). The one way a test steps aside by hand;
    ``tests/unit/test_test_hygiene.py`` keeps it the only one.
    """
    variable, required = {
        "engine": ("RUNBOOK_REQUIRE_ENGINE", env.require_engine),
        "browser": ("RUNBOOK_REQUIRE_BROWSER", env.require_browser),
        "refs": ("RUNBOOK_REQUIRE_REFS", env.require_refs),
    }[requirement]
    if required:
        pytest.fail(f"{variable}=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def needs(available: bool, reason: str) -> pytest.MarkDecorator:
    """``@needs(shutil.which("docker") is not None, "...")``: skip without it, unless CI requires it (then the
    test runs and fails on its own)."""
    return pytest.mark.skipif(not available and not env.require_engine, reason=reason)


def slow_first(items: list[pytest.Item]) -> None:
    """For pytest-xdist: the slow tests and the notebooks first, so that no long test starts last and
    runs alone at the end (the workers hand out work units in this order: root conftest.py)."""
    heavy = {id(i) for i in items if i.get_closest_marker("slow") or str(i.path).endswith(".ipynb")}
    items.sort(key=lambda item: id(item) not in heavy)  # stable: the order within each part is kept


def runbook_cli(
    args: list[str], env: dict[str, str], timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """``runbook ARGS`` as a user runs it: a process of its own, from the project's root, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "helpers.runner.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
