"""Shared test fixtures and the engine/browser markers.

``@pytest.mark.engine`` tests need a Docker engine: they skip with a reason when
none answers, and fail instead when ``RUNBOOK_REQUIRE_ENGINE=1`` (CI sets it),
so a green CI means the real thing ran. ``@pytest.mark.browser`` works the same
way with Debian's Chromium and ``RUNBOOK_REQUIRE_BROWSER=1``.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import contract_checks
import evidence
import pytest
from contract_checks import stand_in_contracts  # noqa: F401  (the fixture, issue 12)
from testsupport import FIXTURE_APP, ROOT, free_port, slow_first, unavailable  # noqa: F401  (re-exported for fixtures)

from helpers.core.settings import env

CHROMIUM = env.chromium


@functools.cache
def engine_problem() -> str | None:
    """Why the Docker engine cannot be used, or None when it answers."""
    if shutil.which("docker") is None:
        return "the docker CLI is not installed"
    try:
        proc = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True, timeout=20
        )
    except subprocess.TimeoutExpired:
        return "`docker info` timed out"
    if proc.returncode != 0:
        last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "docker info failed"
        return f"no Docker engine answers ({last})"
    return None


@functools.cache
def browser_problem() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
    return None


@pytest.fixture
def droplet_image() -> None:
    """The droplet stand-in image is there (built by provisioning; a rehearsal does not build it)."""
    from helpers.rehearse import droplet

    try:
        droplet.ensure_image(build=False)
    except droplet.DropletError as exc:
        unavailable(f"droplet stand-in image not available: {exc}")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):  # every worker collects, and orders, the same way
        slow_first(items)
    for item in items:
        for marker, problem, require in (
            ("engine", engine_problem, env.require_engine),
            ("browser", browser_problem, env.require_browser),
        ):
            if item.get_closest_marker(marker) is None:
                continue
            reason = problem()
            if reason is None:
                continue
            if require:
                item.add_marker(pytest.mark.usefixtures("_fail_missing_" + marker))
            else:
                item.add_marker(pytest.mark.skip(reason=f"{marker}: {reason}"))


@pytest.fixture
def _fail_missing_engine() -> None:
    pytest.fail(f"RUNBOOK_REQUIRE_ENGINE=1 but {engine_problem()}")


@pytest.fixture
def _fail_missing_browser() -> None:
    pytest.fail(f"RUNBOOK_REQUIRE_BROWSER=1 but {browser_problem()}")


@pytest.fixture
def app_copy(tmp_path: Path) -> Path:
    """A fresh, git-initialised copy of the sample app fixture (the team's Implementation-2 repo)."""
    dest = tmp_path / "app"
    shutil.copytree(FIXTURE_APP, dest, ignore=shutil.ignore_patterns("__pycache__", "node_modules"))
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "test@example.invalid",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_COMMITTER_EMAIL": "test@example.invalid",
    }
    for cmd in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "add", "-A"],
        ["git", "commit", "-q", "-m", "Implementation 2 baseline"],
    ):
        subprocess.run(cmd, cwd=dest, check=True, env=env)
    return dest


# -- the session's summary: the stand-ins' contract counts, and the evidence the CI log must show ------


def pytest_sessionfinish(session: pytest.Session) -> None:
    """In a pytest-xdist worker: its counts and records go to the controller, which prints them."""
    contract_checks.hand_over(session)
    evidence.hand_over(session.config)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    contract_checks.take_from(node)
    evidence.take_from(node)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    contract_checks.write(terminalreporter)
    evidence.write(terminalreporter)
