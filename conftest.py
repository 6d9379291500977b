"""The nbval harness: every task notebook runs, in the registry's order, against a disposable app.

``pytest --nbval-lax notebooks/phase1`` (the README's test command, once ``notebooks/phase1`` is in
``testpaths``) executes each notebook with its parameter defaults, which come from environment
variables. This file:

* sorts the notebook cells by the task registry's dependency order (``helpers.core.tasks.order``), after
  every other test, so 1.7 writes the compose file before 1.4 starts the services;
* before the first notebook cell runs (nbval starts a notebook's kernel when its first cell is set
  up; the setup hook below runs before that), prepares a git-initialised copy of the sample app
  fixture in a temporary folder, with a ``.env`` pointing at the services, and points the notebooks
  at it through the environment the kernels inherit: ``RUNBOOK_APP_DIR``, a compose project of its
  own (``COMPOSE_PROJECT_NAME=rb-nbval-<pid>``), free ``POSTGRES_PORT`` / ``REDIS_PORT``, a
  ``RUNBOOK_HEALTH_URL`` on a free port (1.15 installs the copy's dependencies from the shared pnpm store
  in ``.work/pnpm-store``, migrates, and starts its own ``dev`` and ``worker`` scripts there), and
  ``RUNBOOK_ALLOW_COMMIT=1`` (1.14 commits: the copy is disposable; nothing else sets it by default);
* uses the service images from the environment, else ``.work/images.env`` (``scripts/provision.sh
  images``), else the local stand-ins when the official images are absent
  (all of this is :class:`helpers.runner.sampleapp.Sandbox`);
* needs the Docker engine like ``@pytest.mark.engine`` tests: without one the notebooks are skipped
  with the reason, or fail when ``RUNBOOK_REQUIRE_ENGINE=1``;
* skips the rest of a notebook after a failed cell, and the notebooks of tasks that need a failed one;
* after the last notebook cell (or at the end of an interrupted session) stops the app processes 1.15
  started, runs ``docker compose down -v`` for its own project only, restores the environment and
  removes the temporary folder;
* starts nbval's kernels on Unix sockets in a private folder, as the runner starts its own
  (:func:`helpers.runner.kernel.socket_folder`): over TCP, a port picked for a kernel can be taken by
  another worker's container or server before the kernel binds it, and the kernel dies;
* under pytest-xdist (``make test``: ``-n auto``) hands the tests out in work units (:func:`work_unit`):
  every notebook cell in one, so one worker runs them all, in this order, against one sandbox, while the
  other workers run the rest.

A developer's own ``RUNBOOK_APP_DIR`` and services are never touched: the variables are replaced
while the notebooks run (the other tests run before, without them) and restored afterwards.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from helpers.core.settings import env

ROOT = Path(__file__).resolve().parent


def _tests_conftest():
    """tests/conftest.py (engine_problem, _truthy), loaded under a name of its own."""
    name = "_runbook_tests_conftest"
    if name not in sys.modules:
        if str(ROOT / "tests") not in sys.path:  # its own imports (testsupport) live there
            sys.path.insert(0, str(ROOT / "tests"))
        spec = importlib.util.spec_from_file_location(name, ROOT / "tests" / "conftest.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def _unix_socket_kernels() -> None:
    """nbval's kernels on Unix sockets (see the module's docstring)."""
    try:
        import nbval.kernel
    except ImportError:  # nbval not installed: nothing to do
        return
    import shutil

    from jupyter_client.manager import KernelManager

    from helpers.runner.kernel import socket_folder

    class UnixSocketKernelManager(KernelManager):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self._socket_folder = socket_folder()
            if self._socket_folder:
                self.transport = "ipc"
                self.ip = os.path.join(self._socket_folder, "k")

        async def _async_cleanup_resources(self, restart: bool = False) -> None:
            await super()._async_cleanup_resources(restart=restart)
            if not restart and self._socket_folder:
                shutil.rmtree(self._socket_folder, ignore_errors=True)

    nbval.kernel.KernelManager = UnixSocketKernelManager


def pytest_configure(config: pytest.Config) -> None:
    _unix_socket_kernels()


def _notebook_cells(items: list[pytest.Item]) -> list[pytest.Item]:
    return [item for item in items if _tests_conftest().is_notebook_cell(item)]


def _notebook_of(item: pytest.Item) -> Path:
    return Path(str(item.path)).resolve()


def _registry_positions() -> dict[Path, int]:
    from helpers.core import tasks

    ordered = [t for phase in tasks.phases() for t in tasks.order(phase)]
    return {(ROOT / t.notebook).resolve(): n for n, t in enumerate(ordered)}


_RUN_KEY = pytest.StashKey[Any]()
_FAILED_KEY = pytest.StashKey[set]()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    cells = _notebook_cells(items)
    if not cells:
        return
    positions = _registry_positions()
    cell_ids = {id(item) for item in cells}
    others = [item for item in items if id(item) not in cell_ids]
    order = {id(item): n for n, item in enumerate(cells)}
    cells.sort(
        key=lambda item: (
            positions.get(_notebook_of(item), len(positions)),
            str(_notebook_of(item)),
            order[id(item)],
        )
    )
    items[:] = others + cells
    for item in cells:
        item.add_marker(pytest.mark.engine)
    conf = _tests_conftest()
    problem = conf.engine_problem()
    if problem is not None:
        if not env.require_engine:  # else the setup hook below fails them
            for item in cells:
                item.add_marker(pytest.mark.skip(reason=f"engine: {problem}"))
        return


def _task_of(notebook: Path):
    from helpers.core import tasks

    for task in tasks.all_tasks():
        if (ROOT / task.notebook).resolve() == notebook:
            return task
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before a notebook cell (and before its kernel starts):

    * with RUNBOOK_REQUIRE_ENGINE=1 and no engine, fail;
    * after a failed cell of the same notebook, skip (later cells build on it);
    * when a task this notebook needs has a failed notebook, skip (the runner would not run it either).
    """
    if not _notebook_cells([item]):
        return
    conf = _tests_conftest()
    problem = conf.engine_problem()
    if problem is not None and env.require_engine:
        pytest.fail(f"RUNBOOK_REQUIRE_ENGINE=1 but {problem}", pytrace=False)
    failed: set[Path] = item.config.stash.get(_FAILED_KEY, set())
    notebook = _notebook_of(item)
    if notebook in failed:
        pytest.skip(f"an earlier cell of {notebook.name} failed")
    if problem is None and _RUN_KEY not in item.config.stash:
        # First notebook cell to run: the sandbox now (the other tests ran before, without its variables).
        from helpers.runner import sampleapp

        sandbox = sampleapp.Sandbox.create(f"rb-nbval-{os.getpid()}")
        sandbox.apply()
        item.config.stash[_RUN_KEY] = sandbox
    task = _task_of(notebook)
    if task is not None:
        from helpers.core import tasks

        blocked = sorted(
            (t for t in failed if (dep := _task_of(t)) is not None and dep.id in tasks.ancestors(task.id)),
            key=str,
        )
        if blocked:
            pytest.skip(f"task {task.id} needs {', '.join(p.name for p in blocked)}, which failed")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.failed and _notebook_cells([item]):
        item.config.stash.setdefault(_FAILED_KEY, set()).add(_notebook_of(item))
    return report


def _teardown(config: pytest.Config) -> None:
    sandbox = config.stash.get(_RUN_KEY, None)
    if sandbox is None:
        return
    del config.stash[_RUN_KEY]
    for problem in sandbox.teardown():
        print(f"\nnbval harness teardown: {problem}", file=sys.stderr)


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """After the last notebook cell: the sandbox goes, and its variables with it. Under pytest-xdist
    the worker that ran the notebooks may run other tests afterwards; they must not see them."""
    if _notebook_cells([item]) and (nextitem is None or not _notebook_cells([nextitem])):
        _teardown(item.config)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _teardown(session.config)  # an interrupted session still cleans up


# -- pytest-xdist: what goes to one worker -----------------------------------------------------------

NOTEBOOKS_UNIT = "the task notebooks (nbval)"


def work_unit(nodeid: str) -> str:
    """The unit of work a test belongs to under pytest-xdist; a unit runs on one worker, in order.

    * every notebook cell: one unit (they build on each other, in the registry's order, in one sandbox);
    * a unit test: itself alone (the most parallel);
    * any other test: its module (tests of an engine module share module fixtures, a built site, a
      phase-1 world, a droplet: made once on one worker).
    """
    path = nodeid.split("::", 1)[0]
    if path.endswith(".ipynb"):
        return NOTEBOOKS_UNIT
    if path.startswith("tests/unit/"):
        return nodeid
    return path


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """pytest-xdist's scope scheduling with :func:`work_unit` as the scope; the units go out in
    collection order (tests/conftest.py puts the slow ones first), not by their number of tests."""
    from xdist.scheduler import LoadScopeScheduling

    class RunbookScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    config.option.loadscopereorder = False
    return RunbookScheduling(config, log)
