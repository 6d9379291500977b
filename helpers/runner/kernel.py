"""One Jupyter kernel kept for many notebooks: start, clean slate, interrupt, shut down.

Kept apart from :mod:`helpers.runner.engine` (which needs papermill) so the runner can boot its
kernels first and import papermill while they start: the kernel process boots on the other core.
"""

from __future__ import annotations

import ast
import asyncio
import collections
import inspect
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from typing import Any

from jupyter_core.utils import run_sync

from helpers.core.settings import env
from helpers.runner import kernel_side

log = logging.getLogger("runbook.engine")


FAST_EXIT = "import os as _o, weakref as _w\n_w.finalize._exitfunc()\n_o._exit(0)\n"
EXIT_WAIT = 3.0  # seconds the kernel gets to end that way before jupyter_client's own shutdown


class KernelSetupError(RuntimeError):
    """The kernel could not be started or prepared for the next notebook."""


OUTPUT_KEPT = 20  # a kernel's last lines of output, shown when it dies while starting
SOCKET_PATH_MAX = 100  # a Unix socket's path must fit in 108 bytes (Linux), with "-N" added


def _pump(stream: Any, tail: collections.deque[str] | None = None) -> None:
    """Forward a kernel's raw output to the log, line by line (the log's formatter scrubs it), keeping the
    last lines in ``tail``."""
    kernel_log = logging.getLogger("runbook.kernel")
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", "replace").rstrip()
        if line and "running over TCP without encryption" not in line:
            kernel_log.info("%s", line)
            if tail is not None:
                tail.append(line)
    stream.close()


def socket_folder() -> str | None:
    """A private folder for the kernel's Unix sockets; None where their paths would be too long (TCP then).

    Over TCP, jupyter_client picks five free ports and writes them down, and the kernel binds them
    half a second later, once booted: meanwhile any other process on the machine (another run's
    kernel, a container's published port, a test server) can take one, and the kernel dies with
    "Address already in use" before it ever answers. Unix sockets in a folder of our own cannot be
    taken, and nothing outside this user can connect to them.
    """
    if os.name != "posix":  # no Unix sockets for ZeroMQ there: TCP on the loopback address
        return None
    folder = tempfile.mkdtemp(prefix="rb-kernel-")
    if len(os.path.join(folder, "k-99")) > SOCKET_PATH_MAX:
        os.rmdir(folder)
        return None
    return folder


def _spec_manager() -> Any:
    """jupyter_client's kernel spec manager with its search folders given, as its default computes them
    (Jupyter's data paths, then ``$IPYTHONDIR`` or ``~/.ipython``, each with ``kernels/``): its
    default imports IPython into this process only to find the IPython folder, a third of a second
    before the kernel can even be launched."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_core.paths import jupyter_path

    ipython = os.environ.get("IPYTHONDIR") or os.path.join(os.path.expanduser("~"), ".ipython")
    return KernelSpecManager(kernel_dirs=[*jupyter_path("kernels"), os.path.join(ipython, "kernels")])


# ipykernel_launcher as a -c program, without the debugger: ipykernel imports debugpy (and pydevd) at
# start-up only to offer Jupyter's debugger, which a runner never asks for: a third of a second of every
# kernel start. With ``debugpy`` unimportable ipykernel starts as it does where debugpy is not installed.
LAUNCH_WITHOUT_DEBUGGER = (
    "import sys\n"
    "if sys.path[0] == '':\n"  # as ipykernel_launcher: not the working folder while ipykernel loads
    "    del sys.path[0]\n"
    "sys.modules['debugpy'] = None\n"
    "from ipykernel import kernelapp\n"
    "kernelapp.launch_new_instance()\n"
)


def _without_debugger(spec: Any) -> None:
    """Launch an ipykernel spec (``python -m ipykernel_launcher ...``) through
    :data:`LAUNCH_WITHOUT_DEBUGGER`; any other kernel's command stays as it is."""
    argv = list(spec.argv)
    if len(argv) >= 3 and argv[1:3] == ["-m", "ipykernel_launcher"]:
        spec.argv = [argv[0], "-c", LAUNCH_WITHOUT_DEBUGGER, *argv[3:]]


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
        self.strict_modules = env.kernel_strict
        self.km: Any = None
        self.kc: Any = None
        self.dirty = False
        self.used = False
        self.starts = 0
        self.last_reset: dict[str, Any] = {}
        self._pid: int | None = None
        self._pgid: int | None = None
        self._sockets: str | None = None  # the folder of the kernel's Unix sockets
        self.launched = threading.Event()  # set once the kernel process exists (or its start failed)

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self._pid

    def start(self) -> None:
        try:
            run_sync(self._astart)()
        finally:
            self.launched.set()

    async def _astart(self) -> None:
        from jupyter_client.manager import AsyncKernelManager

        began = time.monotonic()
        km = AsyncKernelManager(kernel_name=self.kernel_name, kernel_spec_manager=_spec_manager())
        _without_debugger(km.kernel_spec)  # an unknown kernel name fails here, before any folder exists
        self._sockets = socket_folder()
        if self._sockets:
            km.transport = "ipc"
            km.ip = os.path.join(self._sockets, "k")  # the sockets are k-1 ... k-5
        else:
            km.ip = "127.0.0.1"  # its default asks the network interfaces for the loopback address
        # The kernel's own stdout/stderr (C-level writes, subprocesses not captured by a cell,
        # its start-up warnings) go to the log through a scrubbing formatter, not to the terminal.
        try:
            await km.start_kernel(
                extra_arguments=["--HistoryManager.hist_file=:memory:"],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
        except BaseException:  # the kernel's command could not be launched
            self._remove_sockets()
            raise
        self.launched.set()  # the kernel boots on the other core from here on
        process = getattr(getattr(km, "provisioner", None), "process", None)
        tail: collections.deque[str] = collections.deque(maxlen=OUTPUT_KEPT)
        pump = None
        if process is not None and process.stdout is not None:
            pump = threading.Thread(
                target=_pump, args=(process.stdout, tail), daemon=True, name="kernel-output"
            )
            pump.start()
        kc = km.client()
        kc.start_channels()
        try:
            await kc.wait_for_ready(timeout=self.startup_timeout)
        except Exception as exc:
            kc.stop_channels()
            await km.shutdown_kernel(now=True)
            self._remove_sockets()
            if pump is not None:
                pump.join(timeout=2)  # its output up to its end
            said = "\n".join(f"  {line}" for line in tail)
            raise RuntimeError(f"{exc}; its last output:\n{said}" if said else f"{exc} (no output)") from exc
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
        began = time.monotonic()
        try:
            run_sync(self._ashutdown)(now)
            log.info("kernel %s stopped in %.2f s", self._pid, time.monotonic() - began)
        except Exception as exc:
            log.warning("kernel shutdown failed (%s); killing it", exc)
            self.kill()
        self.km = self.kc = None
        self._pid = self._pgid = None
        self._remove_sockets()

    def _remove_sockets(self) -> None:
        if self._sockets:
            shutil.rmtree(self._sockets, ignore_errors=True)
            self._sockets = None

    async def _ashutdown(self, now: bool) -> None:
        if not now and self.kc is not None and await self.km.is_alive():
            # The kernel runs the finalizers meant for exit (weakref.finalize: temporary folders...), then
            # ends without tearing its interpreter down, which takes half a second with the libraries
            # loaded (ipykernel's own atexit handlers wait for the loop this cell holds: not those);
            # jupyter_client then finds it gone and cleans up as after any shutdown.
            self.kc.execute(FAST_EXIT, silent=True, store_history=False, allow_stdin=False)
            deadline = time.monotonic() + EXIT_WAIT
            while time.monotonic() < deadline and await self.km.is_alive():
                await asyncio.sleep(0.01)
            now = not await self.km.is_alive()  # gone: nothing to ask politely any more
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
        code = f"__import__('_runbook_kernel').reset({cwd!r}, {dict(env or {})!r}, {self.strict_modules!r})"
        try:
            self.last_reset = run_sync(self._arun)(code, {"state": "__import__('_runbook_kernel').last"})
        except Exception as exc:
            self.dirty = True
            raise KernelSetupError(f"could not reset the kernel for the next notebook: {exc}") from exc
        state = self.last_reset.get("state", {})
        if state.get("adopted_modules"):
            log.info(
                "clean slate: %s project module(s) first imported by a notebook, now warm",
                state["adopted_modules"],
            )
        if state.get("reimported"):
            log.info(
                "clean slate: the project's modules imported afresh (changed at module level: %s; new: %s)",
                ", ".join(state.get("changed_modules") or []) or "none",
                state.get("new_modules", 0),
            )
        leftover = state.get("leftover_threads") or []
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
