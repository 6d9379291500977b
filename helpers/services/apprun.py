"""Run the app as its developers do, for the end-to-end test: its dependencies, migrations, web and worker.

Task 1.15 starts the app from its own ``package.json`` scripts. :func:`app_scripts` is the one place that
chooses them (the dev web process, the worker, the migration script) and the package manager that runs
them; :func:`script_commands` turns them into commands, and says which script is missing when the app has
none for a role. :func:`install_dependencies` installs with the lockfile only when ``node_modules`` is
missing or when asked; :func:`migrate` runs the migration script and reports ``changed`` only when the
database's schema changed (read from PostgreSQL before and after).

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
import re
import shlex
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import psutil

from helpers.core import steps
from helpers.core.poll import PollTimeout, poll
from helpers.core.settings import env
from helpers.core.steps import StepResult
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


# --------------------------------------------------------------------------- the app's own scripts

# Script names per role, most specific first; when no name matches, a script whose command does it.
ROLE_NAMES: dict[str, tuple[str, ...]] = {
    "web": ("dev", "dev:web", "web:dev", "web", "start:web"),
    "worker": ("worker", "dev:worker", "worker:dev", "start:worker", "worker:start"),
    "migrate": ("db:migrate", "migrate", "db:migrate:dev", "migrate:dev", "db:push", "push"),
}
ROLE_COMMANDS: dict[str, re.Pattern[str]] = {
    "web": re.compile(r"\bnext\s+dev\b"),
    "worker": re.compile(r"worker"),
    "migrate": re.compile(r"\bdrizzle-kit\s+(?:migrate|push)\b|\bprisma\s+(?:migrate|db\s+push)\b"),
}
ROLE_WHAT = {
    "web": "the dev web process (`next dev`)",
    "worker": "the BullMQ worker",
    "migrate": "the database migrations",
}
LOCKFILES = {"pnpm": "pnpm-lock.yaml", "yarn": "yarn.lock", "npm": "package-lock.json"}


class MissingScript(LookupError):
    """The app has no script for a role the end-to-end test needs; the message names it."""


@dataclass(frozen=True)
class AppScripts:
    """The app's package manager and the scripts that play each role (None: the app has none)."""

    app_dir: Path
    manager: str  # pnpm, npm or yarn
    manager_version: str  # from package.json's packageManager ("" when not pinned)
    scripts: dict[str, str]  # every script: name -> command
    web: str | None
    worker: str | None
    migrate: str | None

    def role(self, role: str) -> str | None:
        return {"web": self.web, "worker": self.worker, "migrate": self.migrate}[role]

    def rows(self) -> list[tuple[str, str, str]]:
        """(role, script, its command) for a table; a missing script says so."""
        out = []
        for role, what in ROLE_WHAT.items():
            name = self.role(role)
            shown = f"`{self.manager} run {name}`" if name else f"none (tried {', '.join(ROLE_NAMES[role])})"
            out.append((what, shown, self.scripts.get(name, "—") if name else "—"))
        return out


def _choose(scripts: Mapping[str, str], role: str) -> str | None:
    for name in ROLE_NAMES[role]:
        if name in scripts:
            return name
    pattern = ROLE_COMMANDS[role]
    return next(
        (name for name, command in scripts.items() if pattern.search(command) and "multipass" not in command),
        None,
    )


def app_scripts(app_dir: str | os.PathLike[str]) -> AppScripts:
    """Read ``package.json``: the package manager and the script for each role (web, worker, migrate).

    The one place that chooses them (an app profile may take its place). Raises with the next step
    when there is no ``package.json`` or it is not valid JSON.
    """
    app = Path(app_dir).expanduser().resolve()
    path = app / "package.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path} does not exist: app_dir must be the app repository (RUNBOOK_APP_DIR)"
        ) from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); fix it first") from None
    scripts = {str(k): str(v) for k, v in (data.get("scripts") or {}).items()}
    pinned = re.fullmatch(r"(pnpm|yarn|npm)@([\w.+-]+)", str(data.get("packageManager") or "").strip())
    if pinned:
        manager, version = pinned.group(1), pinned.group(2).split("+", 1)[0]
    else:
        manager = next((m for m, lock in LOCKFILES.items() if (app / lock).is_file()), "npm")
        version = ""
    return AppScripts(
        app_dir=app,
        manager=manager,
        manager_version=version,
        scripts=scripts,
        web=_choose(scripts, "web"),
        worker=_choose(scripts, "worker"),
        migrate=_choose(scripts, "migrate"),
    )


def manager_command(app: AppScripts) -> list[str]:
    """How to call the package manager: from ``PATH``, else (pnpm, yarn) through npm's ``npx`` at the
    version ``packageManager`` pins, which also puts it on ``PATH`` for the scripts that call it."""
    if shutil.which(app.manager):
        return [app.manager]
    if app.manager != "npm" and shutil.which("npx"):
        spec = f"{app.manager}@{app.manager_version}" if app.manager_version else app.manager
        return ["npx", "--yes", spec]
    raise FileNotFoundError(
        f"{app.manager} is not installed (the app's package manager) and there is no npx to fetch it: "
        f"install Node.js 20 with npm, then `corepack enable` or `npm install -g {app.manager}`"
    )


def run_script_command(app: AppScripts, script: str) -> str:
    """The shell command that runs one of the app's scripts."""
    return shlex.join([*manager_command(app), "run", script])


def script_commands(app: AppScripts, roles: tuple[str, ...] = ("web", "worker")) -> list[str]:
    """The commands that start the app's processes, or :class:`MissingScript` naming what is missing."""
    missing = [role for role in roles if app.role(role) is None]
    if missing:
        have = ", ".join(sorted(app.scripts)) or "none"
        raise MissingScript(
            "the app has no script for "
            + " and ".join(f"{ROLE_WHAT[r]} (tried {', '.join(ROLE_NAMES[r])})" for r in missing)
            + f"; its scripts: {have}. Add one to package.json, or give the commands that start it "
            "(the app_commands parameter, `;` between them)"
        )
    return [run_script_command(app, str(app.role(role))) for role in roles]


def commands_for(app: AppScripts, override: str | list[str] = "") -> list[str]:
    """The commands given (``app_commands``), else the app's own web and worker scripts."""
    given = override if isinstance(override, list) else parse_commands(override)
    return given or script_commands(app)


def _run(
    command: list[str], cwd: Path, env: Mapping[str, str] | None, timeout: float
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def _tail(proc: subprocess.CompletedProcess[str], lines: int = 15) -> str:
    from helpers.core.secrets import scrub

    text = (proc.stdout or "") + (proc.stderr or "")
    return scrub("\n".join(text.strip().splitlines()[-lines:]))


def install_command(app: AppScripts) -> list[str]:
    """Install exactly what the lockfile says (when there is one)."""
    locked = (app.app_dir / LOCKFILES[app.manager]).is_file()
    pm = manager_command(app)
    if app.manager == "npm":
        return [*pm, "ci" if locked else "install"]
    if app.manager == "pnpm":
        return [*pm, "install", "--prefer-offline", *(["--frozen-lockfile"] if locked else [])]
    return [*pm, "install", *(["--frozen-lockfile"] if locked else [])]


def install_dependencies(
    app: AppScripts,
    allow: bool = False,
    dry_run: bool = False,
    env: Mapping[str, str] | None = None,
    timeout: float = 900.0,
) -> StepResult:
    """Install the app's dependencies when ``node_modules`` is missing, or always with ``allow``."""
    name = "install the app's dependencies"
    present = (app.app_dir / "node_modules").is_dir()
    if present and not allow:
        return steps.ok(name, "node_modules is there: not reinstalled (install_dependencies=True reinstalls)")
    command = install_command(app)
    why = "reinstall, as asked" if present else "node_modules is missing"
    if dry_run:
        return steps.changed(name, f"{why}: would run `{shlex.join(command)}`", dry_run=True)
    started = time.monotonic()
    proc = _run(command, app.app_dir, env, timeout)
    if proc.returncode != 0:
        return steps.failed(
            name,
            f"`{shlex.join(command)}` exited {proc.returncode}; fix the cause below (a lockfile out of date: "
            f"run `{app.manager} install` in the app, commit the lockfile), then run again:\n{_tail(proc)}",
        )
    return steps.changed(name, f"{why}: `{shlex.join(command)}` in {time.monotonic() - started:.0f} s")


SCHEMA_QUERY = """
SELECT 'column', table_schema, table_name, column_name || ' ' || data_type
  FROM information_schema.columns WHERE table_schema NOT IN ('pg_catalog', 'information_schema')
UNION ALL
SELECT 'index', schemaname, tablename, indexname
  FROM pg_indexes WHERE schemaname NOT IN ('pg_catalog', 'information_schema')
ORDER BY 1, 2, 3, 4
"""


def schema_signature(database_url: str) -> list[tuple[str, ...]]:
    """Every column and index of the database's own schemas, read from PostgreSQL."""
    import psycopg

    with psycopg.connect(database_url, connect_timeout=5) as conn:
        return [tuple(row) for row in conn.execute(SCHEMA_QUERY).fetchall()]


def migrate(
    app: AppScripts,
    database_url: str,
    dry_run: bool = False,
    env: Mapping[str, str] | None = None,
    timeout: float = 300.0,
) -> StepResult:
    """Run the app's migration script; ``changed`` only when the schema in PostgreSQL changed."""
    if app.migrate is None:
        return steps.skipped(
            "apply the database migrations",
            f"the app has no migration script (tried {', '.join(ROLE_NAMES['migrate'])}): apply its schema "
            "the way the app does, by hand",
        )
    command = [*manager_command(app), "run", app.migrate]
    name = f"apply the database migrations (`{app.manager} run {app.migrate}`)"
    if dry_run:
        return steps.changed(name, f"would run `{shlex.join(command)}`", dry_run=True)
    before = schema_signature(database_url)
    proc = _run(command, app.app_dir, env, timeout)
    if proc.returncode != 0:
        return steps.failed(
            name,
            f"`{shlex.join(command)}` exited {proc.returncode}; check DATABASE_URL in the app's .env and "
            f"the migration named below:\n{_tail(proc)}",
        )
    after = schema_signature(database_url)
    added = sorted(set(after) - set(before))
    if not added and before == after:
        return steps.ok(name, "the schema was up to date")
    shown = ", ".join(f"{kind} {schema}.{table}" for kind, schema, table, _ in added[:6])
    return steps.changed(name, f"{len(after) - len(before):+d} columns/indexes ({shown or 'altered'})")


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
