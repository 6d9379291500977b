"""The app's own scripts as task 1.15 runs them: dependencies, migrations, the dev web process, the worker.

Which script plays which role is the app profile's answer (:func:`helpers.app.profile.read`,
``script_for("dev_web" | "dev_worker" | "migrate")``), the one reader of the app's scripts: a root script
or a workspace package's, followed through what it runs, never one of the old VM scripts. This module
turns those answers into commands and runs the two that finish (install, migrate):

* :func:`app_scripts` reads the profile and keeps the three picks (:class:`AppScripts`);
* :func:`manager_command` calls the package manager from ``PATH``, else (pnpm, yarn) through ``npx`` at
  the version ``packageManager`` pins; :func:`script_commands` says which script is missing when the app
  has none for a role (:class:`MissingScript`), and starts a script that runs both web and worker once;
* :func:`install_dependencies` installs with the lockfile only when ``node_modules`` is missing or when
  asked; :func:`migrate` runs the migration script (the schema push when the app has no migrations) and
  reports ``changed`` only when the database's schema changed (read from PostgreSQL before and after).

Starting and stopping the processes is :mod:`helpers.services.apprun`'s.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from helpers.app import profile as app_profile
from helpers.app.scriptkinds import DEV_WEB, DEV_WORKER, KINDS, MIGRATE, PUSH
from helpers.core import steps
from helpers.core.steps import StepResult
from helpers.services.apprun import parse_commands

ROLES: dict[str, tuple[str, ...]] = {"web": (DEV_WEB,), "worker": (DEV_WORKER,), "migrate": (MIGRATE, PUSH)}
ROLE_WHAT = {
    "web": "the dev web process (`next dev`)",
    "worker": "the BullMQ worker",
    "migrate": "the database migrations",
}
LOCKFILES = {"pnpm": "pnpm-lock.yaml", "yarn": "yarn.lock", "npm": "package-lock.json", "bun": "bun.lock"}


class MissingScript(LookupError):
    """The app has no script for a role the end-to-end test needs; the message names it."""


@dataclass(frozen=True)
class AppScripts:
    """The app's package manager and the profile's pick for each role (a false Pick: the app has none)."""

    app_dir: Path
    manager: str  # pnpm, npm, yarn or bun
    manager_version: str  # from package.json's packageManager ("" when not pinned)
    picks: dict[str, app_profile.Pick]  # role -> the profile's answer
    profile: app_profile.Profile

    def pick(self, role: str) -> app_profile.Pick:
        return self.picks[role]

    def _label(self, role: str) -> str | None:
        found = self.picks[role].script
        return found.label if found is not None and self.picks[role] else None

    @property
    def web(self) -> str | None:
        return self._label("web")

    @property
    def worker(self) -> str | None:
        return self._label("worker")

    @property
    def migrate(self) -> str | None:
        return self._label("migrate")

    def rows(self) -> list[tuple[str, str, str]]:
        """(role, the command that runs it, why that script) for a table; a missing script says why."""
        out = []
        for role, what in ROLE_WHAT.items():
            found = self.picks[role]
            out.append((what, f"`{found.command}`" if found else "none", found.reason))
        return out


def app_scripts(app_dir: str | os.PathLike[str]) -> AppScripts:
    """The app profile's picks for the dev web process, the worker and the migrations.

    Raises with the next step when there is no ``package.json`` (or it is not valid JSON).
    """
    app = Path(app_dir).expanduser().resolve()
    if not (app / "package.json").is_file():
        raise FileNotFoundError(
            f"{app / 'package.json'} does not exist: app_dir must be the app repository (RUNBOOK_APP_DIR)"
        )
    found = app_profile.read(app)
    picks = {}
    for role, kinds in ROLES.items():
        answers = [found.script_for(kind) for kind in kinds]
        picks[role] = next((a for a in answers if a), answers[0])
    return AppScripts(app, found.package_manager, found.manager_version, picks, found)


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


def command_words(app: AppScripts, line: str) -> list[str]:
    """A profile command (``pnpm --filter web dev``) with the package manager called as
    :func:`manager_command` calls it."""
    words = shlex.split(line)
    if words and words[0] == app.manager:
        return [*manager_command(app), *words[1:]]
    return words


def script_commands(app: AppScripts, roles: tuple[str, ...] = ("web", "worker")) -> list[str]:
    """The commands that start the app's processes (a script that starts several, once), or
    :class:`MissingScript` naming what is missing."""
    missing = [role for role in roles if not app.pick(role)]
    if missing:
        raise MissingScript(
            "the app has no script for "
            + " and ".join(f"{ROLE_WHAT[r]} ({app.pick(r).reason})" for r in missing)
            + ". Add one to package.json, or give the commands that start it "
            "(the app_commands parameter, `;` between them)"
        )
    commands, _ = app.profile.commands_for(*(ROLES[role][0] for role in roles))
    return [shlex.join(command_words(app, c)) for c in commands]


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
    lockfile = LOCKFILES.get(app.manager)
    locked = bool(lockfile) and (app.app_dir / str(lockfile)).is_file()
    pm = manager_command(app)
    if app.manager == "npm":
        return [*pm, "ci" if locked else "install"]
    if app.manager == "pnpm":
        return [*pm, "install", "--prefer-offline", *(["--frozen-lockfile"] if locked else [])]
    return [*pm, "install", *(["--frozen-lockfile"] if locked else [])]


def _command_failed(name: str, proc: subprocess.CompletedProcess[str], next_step: str) -> StepResult:
    """A step whose command exited non-zero: the command, its exit code, the next step, its output's end."""
    return steps.failed(
        name, f"`{shlex.join(proc.args)}` exited {proc.returncode}; {next_step}:\n{_tail(proc)}"
    )


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
        return _command_failed(
            name,
            proc,
            f"fix the cause below (a lockfile out of date: run `{app.manager} install` in the app, commit "
            "the lockfile), then run again",
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
    found = app.pick("migrate")
    if not found or found.command is None:
        return steps.skipped(
            "apply the database migrations",
            f"the app has no migration script ({found.reason}; nor one that {KINDS[PUSH]}): apply its "
            "schema the way the app does, by hand",
        )
    command = command_words(app, found.command)
    name = f"apply the database migrations (`{found.command}`)"
    if dry_run:
        return steps.changed(name, f"would run `{shlex.join(command)}`", dry_run=True)
    before = schema_signature(database_url)
    proc = _run(command, app.app_dir, env, timeout)
    if proc.returncode != 0:
        next_step = "check DATABASE_URL in the app's .env and the migration named below"
        return _command_failed(name, proc, next_step)
    after = schema_signature(database_url)
    added = sorted(set(after) - set(before))
    if not added and before == after:
        return steps.ok(name, "the schema was up to date")
    shown = ", ".join(f"{kind} {schema}.{table}" for kind, schema, table, _ in added[:6])
    return steps.changed(name, f"{len(after) - len(before):+d} columns/indexes ({shown or 'altered'})")
