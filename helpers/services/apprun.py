"""Run the app's processes for the end-to-end test (task 1.15): its web process and its worker.

Which commands start them is the app's business: task 1.15 takes them from the app profile
(:mod:`helpers.app.appscripts`), or from ``RUNBOOK_APP_COMMANDS``.

The processes: each command runs in a shell from ``app_dir``, in its own process group (so ``pnpm``'s
children stop with it), with ``PORT`` set to the health URL's port and its output in a log file, and is
stopped at the end (SIGTERM to the group, SIGKILL after a grace period). :func:`running` is the context
manager; :func:`start` returns an :class:`AppRun` for notebooks, whose cells cannot share a ``with``
block: it stops on :meth:`AppRun.stop`, at interpreter exit, and leaves pid files that
:func:`stop_recorded` reads (the test harness calls it at session end, whatever happened in the kernel).
Nothing is started when the health URL already reports ok (the app is yours, running).

``RUNBOOK_APP_COMMANDS`` overrides the commands, separated by newlines or ``;`` (or a JSON list).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import psutil

from helpers.core.poll import PollTimeout, poll
from helpers.core.settings import env
from helpers.services import health

ENV_COMMANDS = "RUNBOOK_APP_COMMANDS"
ENV_LOG_DIR = "RUNBOOK_APP_LOG_DIR"
ENV_MARKER = "RUNBOOK_APP_RUN_MARKER"
PIDFILE_SUFFIX = ".pid"


class AppStartFailed(RuntimeError):
    """The app did not become healthy; the message carries the logs' last lines."""


def parse_commands(text: str | None) -> list[str]:
    """``"a; b"``, ``"a\\nb"`` or ``'["a", "b"]'`` → ``["a", "b"]``; empty → ``[]``."""
    text = (text or "").strip()
    if not text:
        return []
    if text.startswith("["):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"app commands look like JSON but do not parse: {exc}") from None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(
                'app commands as JSON must be a list of strings, e.g. ["pnpm dev", "pnpm worker"]'
            )
        return [v.strip() for v in value if v.strip()]
    parts = [p.strip() for line in text.splitlines() for p in line.split(";")]
    return [p for p in parts if p]


def default_commands() -> list[str]:
    return parse_commands(env.app_commands)


def port_of(url: str) -> int:
    """The port a URL points at (80/443 by default)."""
    parts = urlsplit(url)
    return parts.port or (443 if parts.scheme == "https" else 80)


def log_dir() -> Path:
    """Where logs and pid files go: ``RUNBOOK_APP_LOG_DIR``, else a folder in the temp dir."""
    path = env.app_log_dir
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class AppProcess:
    command: str
    log: Path
    popen: subprocess.Popen[bytes]
    pidfile: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def exited(self) -> int | None:
        return self.popen.poll()

    def tail(self, lines: int = 20) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _signal_group(pgid: int, sig: int) -> bool:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    return True


def _group_alive(pgid: int) -> bool:
    """True while a live (non-zombie) process is in the group."""
    for proc in psutil.process_iter(["status"]):
        try:
            if proc.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(proc.pid) == pgid:
                return True
        except (ProcessLookupError, PermissionError, OSError):
            continue
    return False


def _stop_group(pgid: int, grace: float) -> None:
    if not _signal_group(pgid, signal.SIGTERM):
        return
    try:
        poll(lambda: _group_alive(pgid), until=lambda alive: not alive, timeout=grace, interval=0.1)
    except PollTimeout:
        _signal_group(pgid, signal.SIGKILL)


@dataclass
class AppRun:
    """The app's processes started by :func:`start` (empty when the app was already running)."""

    app_dir: Path
    health_url: str
    processes: list[AppProcess] = field(default_factory=list)
    note: str = ""
    stopped: bool = False

    def problem(self) -> str | None:
        """A message when one of the started processes has exited, else None."""
        for proc in self.processes:
            code = proc.exited()
            if code is not None:
                return (
                    f"`{proc.command}` exited with code {code} (log {proc.log}); last lines:\n{proc.tail()}"
                )
        return None

    def rows(self) -> list[tuple[str, str, str, str]]:
        """(command, pid, state, log) per process, for a table."""
        out = []
        for p in self.processes:
            code = p.exited()
            out.append((p.command, str(p.pid), "running" if code is None else f"exited ({code})", str(p.log)))
        return out

    def stop(self, grace: float = 10.0) -> None:
        """Stop every started process group (idempotent)."""
        if self.stopped:
            return
        for proc in self.processes:
            _stop_group(proc.pid, grace)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=grace)
            proc.pidfile.unlink(missing_ok=True)
        self.stopped = True


def start(
    app_dir: str | os.PathLike[str],
    commands: list[str],
    health_url: str,
    timeout: float = 90.0,
    env: Mapping[str, str] | None = None,
    logs: Path | None = None,
) -> AppRun:
    """Start ``commands`` in ``app_dir`` and wait until ``health_url`` reports ok.

    With no commands nothing is started (the app is yours, already running). If the health URL
    already reports ok, nothing is started either (a second copy would fight for the port).
    Raises :class:`AppStartFailed` (after stopping what it started) when the app does not
    become healthy within ``timeout`` seconds or a process exits.
    """
    app = Path(app_dir).expanduser().resolve()
    if not app.is_dir():
        raise FileNotFoundError(f"app_dir {app} does not exist; set RUNBOOK_APP_DIR to the app repository")
    health.validate_url(health_url)
    run = AppRun(app_dir=app, health_url=health_url)
    if not commands:
        run.note = "no commands given: the app is expected to be running already"
        return run
    if health.probe(health_url, timeout=3).ok:
        run.note = f"{health_url} already reports ok: the app is running, nothing started"
        return run
    folder = logs or log_dir()
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    marker = uuid.uuid4().hex
    full_env = {**os.environ, "PORT": str(port_of(health_url)), **(env or {}), ENV_MARKER: marker}
    atexit.register(run.stop)
    for index, command in enumerate(commands, start=1):
        log = folder / f"app-{stamp}-{os.getpid()}-{index}.log"
        handle = log.open("wb")
        try:
            popen = subprocess.Popen(
                command,
                shell=True,
                cwd=app,
                env=full_env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            handle.close()
        pidfile = log.with_suffix(PIDFILE_SUFFIX)
        pidfile.write_text(f"{popen.pid}\n{command}\n{marker}\n", encoding="utf-8")
        run.processes.append(AppProcess(command=command, log=log, popen=popen, pidfile=pidfile))
    result = health.wait_healthy(health_url, timeout=timeout, alive=run.problem)
    if not result.ok:
        logs_text = "\n".join(f"--- {p.command} ({p.log})\n{p.tail()}" for p in run.processes)
        run.stop()
        raise AppStartFailed(
            f"the app did not become healthy at {health_url} within {timeout:.0f} s: {result.summary()}\n"
            f"Check the commands and the app's .env (DATABASE_URL, REDIS_URL), then retry. Logs:\n{logs_text}"
        )
    run.note = f"started {len(run.processes)} process(es); {health_url} reports ok"
    return run


@contextlib.contextmanager
def running(
    app_dir: str | os.PathLike[str],
    commands: list[str],
    health_url: str,
    timeout: float = 90.0,
    env: Mapping[str, str] | None = None,
    logs: Path | None = None,
) -> Iterator[AppRun]:
    """Context manager around :func:`start`; the processes are stopped on leaving, always."""
    run = start(app_dir, commands, health_url, timeout=timeout, env=env, logs=logs)
    try:
        yield run
    finally:
        run.stop()


def stop_recorded(folder: Path | None = None, grace: float = 10.0) -> list[str]:
    """Stop every process group recorded by a pid file in ``folder``; return their commands.

    For harnesses: a kernel that died before its last cell leaves its app running; this ends it.
    A group is signalled only while one of its processes still carries the run's marker in its
    environment, so a reused pid is never hit.
    """
    stopped = []
    for pidfile in sorted((folder or log_dir()).glob(f"*{PIDFILE_SUFFIX}")):
        try:
            pid_text, command, marker = ([*pidfile.read_text(encoding="utf-8").splitlines(), "", ""])[:3]
            pgid = int(pid_text)
        except (OSError, ValueError):
            pidfile.unlink(missing_ok=True)
            continue
        if marker and _group_has_marker(pgid, marker):
            _stop_group(pgid, grace)
            stopped.append(command.strip())
        pidfile.unlink(missing_ok=True)
    return stopped


def _group_has_marker(pgid: int, marker: str) -> bool:
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and proc.environ().get(ENV_MARKER) == marker:
                return True
        except (psutil.Error, ProcessLookupError, PermissionError, OSError):
            continue
    return False
