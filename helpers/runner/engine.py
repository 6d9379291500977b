"""A papermill engine that reuses one kernel per worker, with a clean slate per notebook.

papermill's default engine starts a new kernel for every notebook (about a second each on these
machines, plus the notebook's imports: the Docker SDK, httpx, psycopg, the project's helpers...).
For a phase of fifteen short notebooks that is most of the runner's own time. :class:`RunbookEngine`
(registered as the papermill engine ``runbook``) keeps the kernel of a :class:`KernelSession`,
imports once what the phase's notebooks import, and before each notebook runs
:func:`helpers.runner.kernel_side.reset` in it: a fresh user namespace (``In [1]`` again), the
start environment plus the notebook's variables, the working directory (the source notebook's
folder, like JupyterLab and nbval), ``sys.path``, ``warnings``, logging, and the project's modules
re-imported whenever a notebook changed their module-level state (or imported new ones).

Isolation limits, and the answers to them (details in :mod:`helpers.runner.kernel_side`):

* threads and child processes a notebook leaves behind keep running (the reset reports them);
* third-party modules patched in memory stay patched;
* after a failed or interrupted notebook the kernel is replaced, not reused;
* a notebook with ``"runbook": {"fresh_kernel": true}`` in its metadata always gets a new kernel;
* ``RunbookFreshEngine`` (papermill engine ``runbook-fresh``, ``runbook run --fresh-kernels``)
  starts a new kernel for every notebook, with the same progress, redaction and error reporting.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import Engine, NotebookExecutionManager, papermill_engines

from helpers.runner.kernel import KernelSession, KernelSetupError

__all__ = [
    "KernelSession",
    "KernelSetupError",
    "RunbookEngine",
    "RunbookExecutionManager",
    "RunbookFreshEngine",
]

log = logging.getLogger("runbook.engine")

OnCell = Callable[[int, int, str], None]  # (code cell number, code cells, first line of source)


class RunbookExecutionManager(NotebookExecutionManager):
    """papermill's execution manager with a cell callback and fewer writes.

    papermill saves the notebook at its start and at the start and end of every cell; here a save
    happens on an exception, at the end, and otherwise at most every ``save_every`` seconds (a notebook
    that runs longer is on disk, partly executed, by then), which still leaves a readable partial
    notebook when a run is interrupted (the interrupted cell's exception saves it).
    """

    def __init__(
        self,
        nb: Any,
        output_path: str | None = None,
        log_output: bool = False,
        on_cell: OnCell | None = None,
        save_every: float = 2.0,
    ):
        super().__init__(
            nb, output_path=output_path, log_output=log_output, progress_bar=False, autosave_cell_every=0
        )
        self.on_cell = on_cell
        self.save_every = save_every
        self._force = False
        self._code_cells = [i for i, c in enumerate(nb.cells) if c.get("cell_type") == "code"]

    def save(self, **kwargs: Any) -> None:
        if kwargs.get("nb") is not None:
            self.nb = kwargs["nb"]
        if self._force or (self.now() - self.last_save_time).total_seconds() >= self.save_every:
            super().save()

    def _forced(self, method: Callable[..., None], *args: Any, **kwargs: Any) -> None:
        self._force = True
        try:
            method(*args, **kwargs)
        finally:
            self._force = False

    def notebook_complete(self, save: bool = True, **kwargs: Any) -> None:
        if save:
            self._forced(super().notebook_complete, **kwargs)
        else:
            super().notebook_complete(**kwargs)  # throttled like a cell's save

    def cell_exception(self, cell: Any, cell_index: int | None = None, **kwargs: Any) -> None:
        super().cell_exception(cell, cell_index=cell_index, **kwargs)
        self._forced(super().save)

    def cell_start(self, cell: Any, cell_index: int | None = None, **kwargs: Any) -> None:
        if self.on_cell is not None and cell.get("cell_type") == "code" and cell_index in self._code_cells:
            first = next((line for line in cell.source.splitlines() if line.strip()), "")
            try:
                self.on_cell(self._code_cells.index(cell_index) + 1, len(self._code_cells), first)
            except Exception:
                log.debug("cell callback failed", exc_info=True)
        super().cell_start(cell, cell_index=cell_index, **kwargs)


_local = threading.local()


def _thread_session(kernel_name: str, fresh: bool) -> KernelSession:
    """The session used when papermill is called with ``engine_name='runbook'`` and no session."""
    session = getattr(_local, "session", None)
    if session is None:
        session = _local.session = KernelSession(kernel_name=kernel_name, fresh=fresh)
        atexit.register(session.shutdown, now=True)
    return session


class RunbookEngine(Engine):
    """papermill engine ``runbook``: one kernel reused, a clean slate before every notebook.

    Extra keyword arguments (through ``papermill.execute_notebook(..., **engine_kwargs)``):
    ``session`` (a :class:`KernelSession`; default: one per thread), ``on_cell`` (progress
    callback), ``kernel_cwd`` (default: the input notebook's folder), ``kernel_env`` (variables
    to set for this notebook), ``execution_timeout`` (seconds per cell).
    """

    fresh = False

    @classmethod
    def execute_notebook(
        cls,
        nb: Any,
        kernel_name: str,
        output_path: str | None = None,
        progress_bar: bool = False,
        log_output: bool = False,
        autosave_cell_every: int = 30,
        on_cell: OnCell | None = None,
        **kwargs: Any,
    ) -> Any:
        nb_man = RunbookExecutionManager(nb, output_path=output_path, log_output=log_output, on_cell=on_cell)
        nb_man.notebook_start()
        try:
            cls.execute_managed_notebook(nb_man, kernel_name, log_output=log_output, **kwargs)
        except BaseException:
            nb_man.cleanup_pbar()
            nb_man.notebook_complete()  # saved now: papermill will not write it (a dead kernel, say)
            raise
        nb_man.cleanup_pbar()
        nb_man.notebook_complete(save=False)  # papermill writes the final notebook right after
        return nb_man.nb

    @classmethod
    def execute_managed_notebook(
        cls,
        nb_man: Any,
        kernel_name: str,
        log_output: bool = False,
        stdout_file: Any = None,
        stderr_file: Any = None,
        start_timeout: int = 60,
        execution_timeout: float | None = None,
        session: KernelSession | None = None,
        kernel_cwd: str | None = None,
        kernel_env: dict[str, str] | None = None,
        input_path: str | None = None,
        **kwargs: Any,
    ) -> Any:
        session = session or _thread_session(kernel_name, cls.fresh)
        cwd = kernel_cwd or (
            str(Path(input_path).resolve().parent) if isinstance(input_path, str) else os.getcwd()
        )
        wants_fresh = bool(nb_man.nb.metadata.get("runbook", {}).get("fresh_kernel")) or cls.fresh
        session.prepare(cwd=cwd, env=kernel_env, fresh=wants_fresh, kernel_name=kernel_name)
        client = PapermillNotebookClient(
            nb_man,
            km=session.km,
            timeout=execution_timeout,
            startup_timeout=start_timeout,
            kernel_name=kernel_name,
            log=logging.getLogger("papermill"),
            log_output=log_output,
            stdout_file=stdout_file,
            stderr_file=stderr_file,
        )
        client.kc = session.kc
        try:
            result = client.execute()
        except BaseException:
            session.dirty = True
            raise
        if nb_man.nb.metadata.get("papermill", {}).get("exception"):
            session.dirty = True  # a failed notebook's kernel is not handed to the next one
        return result


class RunbookFreshEngine(RunbookEngine):
    """papermill engine ``runbook-fresh``: a new kernel for every notebook (papermill's isolation)."""

    fresh = True


ENGINES = {"runbook": RunbookEngine, "runbook-fresh": RunbookFreshEngine}


def register() -> None:
    for name, engine in ENGINES.items():
        papermill_engines.register(name, engine)


register()
