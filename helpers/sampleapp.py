"""A working copy of the sample app, for running phase 1 without the team's real repository.

``tests/fixtures/sample-app`` looks like the team's Implementation-2 repository (before the
migration) and carries a runnable stand-in of its web process and worker (``stub/``). Phase 1
changes the app repository it is pointed at, so it never runs on the fixture itself:
:func:`prepare` copies it once to ``.work/sample-app`` (git-initialised, with a baseline commit)
and leaves an existing copy alone, so a second run of phase 1 continues on the same copy.

Command line (for the Makefile and the runner)::

    python -m helpers.sampleapp prepare [--dest DIR] [--port N] [--export]

prints ``RUNBOOK_APP_DIR=...`` and ``RUNBOOK_APP_COMMANDS=...`` (shell-quoted; with ``--export``
as ``export`` lines, for ``eval "$(...)"``).
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

from dotenv import dotenv_values, set_key

from helpers import apprun
from helpers.tasks import PROJECT_ROOT

FIXTURE = PROJECT_ROOT / "tests" / "fixtures" / "sample-app"
DEFAULT_DEST = PROJECT_ROOT / ".work" / "sample-app"
IGNORE = shutil.ignore_patterns("__pycache__", "node_modules", ".next", ".env", ".env.local")
IDENTITY = {"user.name": "Runbook sample app", "user.email": "sample-app@runbook.invalid"}
DB_DEFAULTS = (("POSTGRES_USER", "postgres"), ("POSTGRES_PASSWORD", "postgres"), ("POSTGRES_DB", "app"))
BASELINE_MESSAGE = "Implementation 2 baseline (copy of tests/fixtures/sample-app)"


class SampleAppError(RuntimeError):
    pass


def _git(dest: Path, *args: str) -> None:
    proc = subprocess.run(["git", *args], cwd=dest, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SampleAppError(f"`git {' '.join(args)}` failed in {dest}: {proc.stderr.strip()}")


def prepare(
    dest: str | os.PathLike[str] = DEFAULT_DEST, source: str | os.PathLike[str] = FIXTURE
) -> tuple[Path, bool]:
    """Copy the fixture to ``dest`` and commit it as the baseline, unless ``dest`` already exists.

    Returns ``(path, created)``. An existing ``dest`` that is not a git repository is an error
    (it is not ours to overwrite).
    """
    target = Path(dest).expanduser().resolve()
    origin = Path(source) if source else FIXTURE
    if target.exists():
        if (target / ".git").exists():
            return target, False
        raise SampleAppError(
            f"{target} exists but is not a git repository; remove it (it is only a working copy) "
            "or choose another --dest"
        )
    if not (origin / "package.json").is_file():
        raise SampleAppError(f"{origin} does not look like the sample app (no package.json)")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(origin, target, ignore=IGNORE)
    _git(target, "init", "-q", "-b", "main")
    for key, value in IDENTITY.items():
        _git(target, "config", key, value)
    _git(target, "add", "-A")
    _git(target, "commit", "-q", "-m", BASELINE_MESSAGE)
    return target, True


def local_urls(postgres_port: int | None = None, redis_port: int | None = None) -> dict[str, str]:
    """The localhost URLs of the compose services (the same defaults and variables as the compose file)."""
    env = os.environ
    user, password, db = (env.get(k) or d for k, d in DB_DEFAULTS)
    pg = int(postgres_port or env.get("POSTGRES_PORT") or 5432)
    rd = int(redis_port or env.get("REDIS_PORT") or 6379)
    return {
        "DATABASE_URL": f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}@localhost:{pg}/{db}",
        "REDIS_URL": f"redis://localhost:{rd}",
    }


def write_local_env(
    app_dir: str | os.PathLike[str], postgres_port: int | None = None, redis_port: int | None = None
) -> Path:
    """Give the working copy the developer's ``.env`` (git-ignored), pointing at the local services.

    A developer does this by hand after task 1.9 (``cp .env.example .env``); the stand-in web
    process and worker read it, like the real app. Starts from ``.env.example`` when ``.env`` is
    absent; only ``DATABASE_URL`` and ``REDIS_URL`` are (re)written, so a second call changes
    nothing unless the ports changed.
    """
    app = Path(app_dir)
    target = app / ".env"
    if not target.exists():
        example = app / ".env.example"
        target.write_text(example.read_text(encoding="utf-8") if example.is_file() else "", encoding="utf-8")
        target.chmod(0o600)
    current = dotenv_values(target)
    for key, value in local_urls(postgres_port, redis_port).items():
        if current.get(key) != value:
            set_key(str(target), key, value, quote_mode="never")
    return target


def commands(python: str = sys.executable, port: int | None = None) -> list[str]:
    """The commands that start the stand-in web process and worker, run from the app directory."""
    py = shlex.quote(python)
    web = f"{py} stub/web.py" + (f" --port {int(port)}" if port else "")
    return [web, f"{py} stub/worker.py"]


def environment(app_dir: Path, python: str = sys.executable, port: int | None = None) -> dict[str, str]:
    """The variables phase 1 needs to run against this copy."""
    return {
        "RUNBOOK_APP_DIR": str(app_dir),
        apprun.ENV_COMMANDS: "; ".join(commands(python, port)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.sampleapp", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    prep = sub.add_parser(
        "prepare", help="copy the sample app to a working copy (once) and print its variables"
    )
    prep.add_argument("--dest", default=str(DEFAULT_DEST), help=f"working copy (default {DEFAULT_DEST})")
    prep.add_argument(
        "--port", type=int, default=None, help="port of the stand-in web process (default 3000)"
    )
    prep.add_argument("--python", default=sys.executable, help="interpreter that runs the stand-ins")
    prep.add_argument(
        "--source", default=None, help="the fixture to copy (default tests/fixtures/sample-app)"
    )
    prep.add_argument(
        "--no-env", action="store_true", help="do not write the working copy's .env (localhost URLs)"
    )
    prep.add_argument("--export", action="store_true", help="print `export NAME=value` lines")
    args = parser.parse_args(argv)
    try:
        path, created = prepare(args.dest, args.source)
        if not args.no_env:
            write_local_env(path)
    except SampleAppError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"# {'created' if created else 'kept the existing'} working copy {path}", file=sys.stderr)
    prefix = "export " if args.export else ""
    for key, value in environment(path, args.python, args.port).items():
        print(f"{prefix}{key}={shlex.quote(value)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
