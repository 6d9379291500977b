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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import contract_checks
import evidence
import pytest
from contract_checks import stand_in_contracts  # noqa: F401  (the fixture, issue 12)
from testsupport import FIXTURE_APP, LOCAL_SERVICE_VARIABLES, ROOT, free_port, slow_first, unavailable  # noqa: F401  (re-exported for fixtures)

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


# -- every test module leaves the environment as it found it ------------------------------------------
# A module that sets a variable (a sandbox's POSTGRES_PORT, a stand-in's URL) and does not restore it steers
# whatever runs next in the same process: under pytest-xdist, some other module's tests, which then pass or
# fail depending on the order. The task notebooks are exempt: their sandbox spans all of them, and the
# root conftest restores it after the last one.

_ENVIRON_AT_MODULE_START = pytest.StashKey[tuple[str, dict[str, str]]]()
# pytest's own, and Material for MkDocs', which sets NO_MKDOCS_2_WARNING when it is imported
_ENVIRON_IGNORED = frozenset({"PYTEST_CURRENT_TEST", "NO_MKDOCS_2_WARNING"})


@pytest.fixture(autouse=True)
def _unit_test_environment(request: pytest.FixtureRequest) -> Iterator[None]:
    """A unit test runs without the local-service variables of the shell (it sees the defaults), and
    whatever the code under test puts into ``os.environ`` (``helpers.core.secrets.put`` does, by design)
    goes when it ends."""
    if "unit" not in Path(str(request.node.path)).relative_to(ROOT).parts[:2]:
        yield
        return
    saved = dict(os.environ)
    for name in LOCAL_SERVICE_VARIABLES:
        os.environ.pop(name, None)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _module_of(item: pytest.Item) -> str:
    return str(item.path)


def _environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in _ENVIRON_IGNORED}


def environ_changes(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """The variables set, changed or removed between two snapshots, named (values are not shown)."""
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    how = {k: "set" if k not in before else "removed" if k not in after else "changed" for k in changed}
    return [f"{k} ({how[k]})" for k in changed]


def is_notebook_cell(item: pytest.Item) -> bool:
    """A cell nbval runs (the root conftest's harness handles those; they share their kernel's state)."""
    try:
        from nbval.plugin import IPyNbCell
    except ImportError:  # nbval not installed: no notebook cells
        return False
    return isinstance(item, IPyNbCell)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    started = item.config.stash.get(_ENVIRON_AT_MODULE_START, None)
    if not is_notebook_cell(item) and (started is None or started[0] != _module_of(item)):
        item.config.stash[_ENVIRON_AT_MODULE_START] = (_module_of(item), _environ())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None):
    result = yield
    started = item.config.stash.get(_ENVIRON_AT_MODULE_START, None)
    if is_notebook_cell(item) or started is None or (nextitem and _module_of(nextitem) == started[0]):
        return result
    del item.config.stash[_ENVIRON_AT_MODULE_START]  # the module's fixtures are torn down: compare
    changes = environ_changes(started[1], _environ())
    if changes:
        raise AssertionError(
            f"{item.path.name} left os.environ changed after its tests: {', '.join(changes)}; restore it "
            "(monkeypatch.setenv, or put back in the fixture's teardown what the module set)"
        )
    return result


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
