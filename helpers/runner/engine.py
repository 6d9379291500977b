"""A papermill engine that reuses one kernel per worker, with a clean slate per notebook.

papermill's default engine starts a new kernel for every notebook (about a second each on these
machines, plus the notebook's imports: the Docker SDK, httpx, psycopg...). For a phase of fifteen
short notebooks that is most of the runner's own time. :class:`RunbookEngine` (registered as the
papermill engine ``runbook``) keeps the kernel of a :class:`KernelSession` and, before each
notebook, runs :func:`helpers.runner.kernel_side.reset` in it: a fresh user namespace (``In [1]``
again), the start environment plus the notebook's variables, the working directory (the source
notebook's folder, like JupyterLab and nbval), ``sys.path``, ``warnings``, logging, and the
project's own modules dropped so they are imported afresh. Third-party libraries stay imported:
that is the speed-up.

Isolation limits, and the answers to them:

* threads and child processes a notebook leaves behind keep running (the reset reports them);
* third-party modules patched in memory stay patched;
* after a failed or interrupted notebook the kernel is replaced, not reused;
* a notebook with ``"runbook": {"fresh_kernel": true}`` in its metadata always gets a new kernel;
* ``RunbookFreshEngine`` (papermill engine ``runbook-fresh``, ``runbook run --fresh-kernels``)
  starts a new kernel for every notebook, with the same progress, redaction and error reporting.
"""

from __future__ import annotations

import ast
import atexit
import inspect
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jupyter_core.utils import run_sync
from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import Engine, NotebookExecutionManager, papermill_engines

from helpers.runner import kernel_side

log = logging.getLogger("runbook.engine")

OnCell = Callable[[int, int, str], None]  # (code cell number, code cells, first line of source)


class KernelSetupError(RuntimeError):
    """The kernel could not be started or prepared for the next notebook."""


def _pump(stream: Any) -> None:
    """Forward a kernel's raw output to the log, line by line (the log's formatter scrubs it)."""
    kernel_log = logging.getLogger("runbook.kernel")
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", "replace").rstrip()
        if line and "running over TCP without encryption" not in line:
            kernel_log.info("%s", line)
    stream.close()


def _bootstrap_code(modules: list[str]) -> str:
    source = inspect.getsource(kernel_side)
    return (
        "import sys as _s, types as _t\n"
        "_m = _t.ModuleType('_runbook_kernel')\n"
        f"exec(compile({source!r}, '<runbook kernel_side>', 'exec'), _m.__dict__)\n"
        "_s.modules['_runbook_kernel'] = _m\n"
        f"_m.last['warm_failures'] = _m.warm({modules!r})\n"
        "_m.snapshot()\n"
        "del _s, _t, _m\n"
    )


class KernelSession:
    """One Jupyter kernel, reused notebook after notebook.

    Every method except :meth:`interrupt` and :meth:`kill` must be called from the thread that
    created the session (its kernel client lives on that thread's event loop).
    """

    def __init__(
        self,
        kernel_name: str = "python3",
        fresh: bool = False,
        warm_modules: list[str] | None = None,
        startup_timeout: float = 60,
    ):
        self.kernel_name = kernel_name
        self.fresh = fresh
        self.warm_modules = list(warm_modules or [])
        self.startup_timeout = startup_timeout
        self.km: Any = None
        self.kc: Any = None
        self.dirty = False
        self.used = False
        self.starts = 0
        self.last_reset: dict[str, Any] = {}
        self._pid: int | None = None
        self._pgid: int | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self._pid

    def start(self) -> None:
        run_sync(self._astart)()

    async def _astart(self) -> None:
        from jupyter_client.manager import AsyncKernelManager

        began = time.monotonic()
        km = AsyncKernelManager(kernel_name=self.kernel_name)
        # The kernel's own stdout/stderr (C-level writes, subprocesses not captured by a cell,
        # its start-up warnings) go to the log through a scrubbing formatter, not to the terminal.
        await km.start_kernel(
            extra_arguments=["--HistoryManager.hist_file=:memory:"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        process = getattr(getattr(km, "provisioner", None), "process", None)
        if process is not None and process.stdout is not None:
            threading.Thread(target=_pump, args=(process.stdout,), daemon=True, name="kernel-output").start()
        kc = km.client()
        kc.start_channels()
        try:
            await kc.wait_for_ready(timeout=self.startup_timeout)
        except Exception:
            kc.stop_channels()
            await km.shutdown_kernel(now=True)
            raise
        kc.allow_stdin = False
        self.km, self.kc = km, kc
        provisioner = getattr(km, "provisioner", None)
        self._pid = getattr(provisioner, "pid", None)
        self._pgid = getattr(provisioner, "pgid", None)
        await self._arun(_bootstrap_code(self.warm_modules), timeout=max(self.startup_timeout, 120))
        self.dirty = False
        self.used = False
        self.starts += 1
        log.info(
            "kernel %s started (pid %s) in %.2f s", self.kernel_name, self._pid, time.monotonic() - began
        )

    def shutdown(self, now: bool = False) -> None:
        if self.km is None:
            return
        try:
            run_sync(self._ashutdown)(now)
        except Exception as exc:
            log.warning("kernel shutdown failed (%s); killing it", exc)
            self.kill()
        self.km = self.kc = None
        self._pid = self._pgid = None

    async def _ashutdown(self, now: bool) -> None:
        if self.kc is not None:
            self.kc.stop_channels()
        await self.km.shutdown_kernel(now=now)

    def interrupt(self) -> None:
        """Send SIGINT to the kernel's process group (safe from any thread), like Jupyter's ■ button."""
        self._signal(signal.SIGINT)

    def kill(self) -> None:
        """Last resort (any thread): SIGKILL the kernel's process group."""
        self._signal(signal.SIGKILL)

    def _signal(self, sig: int) -> None:
        try:
            if self._pgid:
                os.killpg(self._pgid, sig)
            elif self._pid:
                os.kill(self._pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    # -- per notebook --------------------------------------------------------------------------
    def prepare(
        self, cwd: str, env: dict[str, str] | None = None, fresh: bool = False, kernel_name: str | None = None
    ) -> dict[str, Any]:
        """Make the kernel ready for the next notebook: (re)start when needed, then the clean slate."""
        if kernel_name and kernel_name != self.kernel_name:
            self.shutdown(now=True)
            self.kernel_name = kernel_name
        wants_new = self.km is None or self.dirty or ((self.fresh or fresh) and self.used)
        if not wants_new and not run_sync(self.km.is_alive)():
            wants_new = True
        if wants_new:
            if self.km is not None:
                self.shutdown(now=True)
            try:
                self.start()
            except Exception as exc:
                raise KernelSetupError(f"the {self.kernel_name} kernel did not start: {exc}") from exc
        self.used = True
        code = f"__import__('_runbook_kernel').reset({cwd!r}, {dict(env or {})!r})"
        try:
            self.last_reset = run_sync(self._arun)(code, {"state": "__import__('_runbook_kernel').last"})
        except Exception as exc:
            self.dirty = True
            raise KernelSetupError(f"could not reset the kernel for the next notebook: {exc}") from exc
        leftover = self.last_reset.get("state", {}).get("leftover_threads") or []
        if leftover:
            log.warning("threads left running by an earlier notebook: %s", ", ".join(leftover))
        return self.last_reset

    async def _arun(
        self, code: str, expressions: dict[str, str] | None = None, timeout: float = 60
    ) -> dict[str, Any]:
        """Run ``code`` outside any notebook (no history); return the evaluated ``expressions``."""
        msg_id = self.kc.execute(code, silent=False, store_history=False, user_expressions=expressions or {})
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"the kernel did not answer within {timeout:.0f} s")
            reply = await self.kc.get_shell_msg(timeout=remaining)
            if reply.get("parent_header", {}).get("msg_id") == msg_id:
                break
        content = reply["content"]
        if content.get("status") != "ok":
            raise KernelSetupError(f"{content.get('ename')}: {content.get('evalue')}")
        values: dict[str, Any] = {}
        for key, result in (content.get("user_expressions") or {}).items():
            if result.get("status") == "ok":
                try:
                    values[key] = ast.literal_eval(result["data"]["text/plain"])
                except (ValueError, SyntaxError):
                    values[key] = result["data"]["text/plain"]
        return values


class RunbookExecutionManager(NotebookExecutionManager):
    """papermill's execution manager with a cell callback and fewer writes.

    papermill saves the notebook at the start and the end of every cell; here a save happens at
    notebook start, on an exception, at the end, and otherwise at most every ``save_every``
    seconds, which still leaves a readable partial notebook when a run is interrupted.
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

    def notebook_start(self, **kwargs: Any) -> None:
        self._forced(super().notebook_start, **kwargs)

    def notebook_complete(self, **kwargs: Any) -> None:
        self._forced(super().notebook_complete, **kwargs)

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
        finally:
            nb_man.cleanup_pbar()
            nb_man.notebook_complete()
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
