"""A working copy of the sample app, for running phase 1 without the team's real repository.

``tests/fixtures/sample-app`` is an Implementation-2 repository (before the migration): a pnpm
workspace with a Next.js web app, a BullMQ worker in Node and Drizzle migrations, which task 1.15
installs, migrates and starts with its own scripts. Phase 1 changes the app repository it is
pointed at, so it never runs on the fixture itself:
:func:`prepare` copies it once to ``.work/sample-app`` (git-initialised, with a baseline commit)
and leaves an existing copy alone, so a second run of phase 1 continues on the same copy.

Command line (for the Makefile and the runner)::

    python -m helpers.runner.sampleapp prepare [--dest DIR] [--port N] [--allow-commit] [--export]

prints ``RUNBOOK_APP_DIR=...``, ``RUNBOOK_HEALTH_URL=...`` and ``npm_config_store_dir=...`` (pnpm's
store, kept in ``.work/pnpm-store`` so that every copy installs from it), and ``RUNBOOK_ALLOW_COMMIT=1``
with ``--allow-commit``, shell-quoted; with ``--export`` as ``export`` lines, for ``eval "$(...)"``.
It also writes the copy's git-ignored ``.env`` (localhost URLs, from POSTGRES_PORT/REDIS_PORT and the
other POSTGRES_* variables) unless ``--no-env``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from dotenv import dotenv_values, set_key

from helpers.core.paths import PROJECT_ROOT, WORK_DIR
from helpers.host.ports import free_port
from helpers.services import apprun

FIXTURE = PROJECT_ROOT / "tests" / "fixtures" / "sample-app"
DEFAULT_DEST = WORK_DIR / "sample-app"
IGNORE = shutil.ignore_patterns("node_modules", ".next", ".env", ".env.local", "*.tsbuildinfo")
PNPM_STORE = WORK_DIR / "pnpm-store"  # pnpm's content-addressed store, shared by every copy
IDENTITY = {"user.name": "Runbook sample app", "user.email": "sample-app@runbook.invalid"}
IMAGES_ENV = WORK_DIR / "images.env"
STANDIN_IMAGES = {"POSTGRES_IMAGE": "runbook-standin/postgres:15", "REDIS_IMAGE": "runbook-standin/redis:7"}
OFFICIAL_IMAGES = {"POSTGRES_IMAGE": "postgres:15-alpine", "REDIS_IMAGE": "redis:7-alpine"}
# A developer's variables that must not steer a sandboxed run.
SANDBOX_CLEARED = (
    "RUNBOOK_DRY_RUN",
    "RUNBOOK_ENV_FILE",
    "RUNBOOK_VM_NAME",
    "DATABASE_URL",
    "REDIS_URL",
    "QUEUE_NAME",
    apprun.ENV_COMMANDS,
    "RUNBOOK_INSTALL_DEPENDENCIES",
)
DB_DEFAULTS = (("POSTGRES_USER", "postgres"), ("POSTGRES_PASSWORD", "postgres"), ("POSTGRES_DB", "app"))
LOCAL_ENV_HEADER = "# Local settings of this working copy (git-ignored): the docker-compose services.\n"
BASELINE_MESSAGE = "Implementation 2 baseline (copy of {source})"


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
    shown = (
        origin.resolve().relative_to(PROJECT_ROOT)
        if origin.resolve().is_relative_to(PROJECT_ROOT)
        else origin
    )
    _git(target, "commit", "-q", "-m", BASELINE_MESSAGE.format(source=shown))
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
    """Give the working copy a developer's ``.env`` (git-ignored) that points at the local services.

    Task 1.5 runs before 1.9 in the registry's order and reads ``.env`` when present, as the app
    does: a developer who follows phase 1 has pointed it at the local services by then. This stands
    in for that: only ``DATABASE_URL`` and ``REDIS_URL`` are written (a new file holds nothing else,
    so no VM address), and a second call changes nothing unless the ports changed.
    """
    target = Path(app_dir) / ".env"
    if not target.exists():
        target.write_text(LOCAL_ENV_HEADER, encoding="utf-8")
        target.chmod(0o600)
    current = dotenv_values(target)
    for key, value in local_urls(postgres_port, redis_port).items():
        if current.get(key) != value:
            set_key(str(target), key, value, quote_mode="never")
    return target


def environment(app_dir: Path, port: int | None = None, allow_commit: bool = False) -> dict[str, str]:
    """The variables phase 1 needs to run against this copy (``RUNBOOK_ALLOW_COMMIT`` only when asked).

    Task 1.15 starts the copy's own ``dev`` and ``worker`` scripts, with ``PORT`` from the health URL.
    """
    env = {
        "RUNBOOK_APP_DIR": str(app_dir),
        "RUNBOOK_HEALTH_URL": f"http://localhost:{int(port or 3000)}/api/health",
        "npm_config_store_dir": str(PNPM_STORE),
    }
    if allow_commit:
        env["RUNBOOK_ALLOW_COMMIT"] = "1"
    return env


def image_present(image: str) -> bool:
    """The image is in the local engine (no pull)."""
    return subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode == 0


def service_images() -> dict[str, str]:
    """POSTGRES_IMAGE, REDIS_IMAGE: the environment, else ``.work/images.env``, else the local stand-ins.

    The stand-ins are chosen only when the official image is absent (no registry is reachable in CI).
    """
    chosen: dict[str, str] = {}
    from_file = dotenv_values(IMAGES_ENV) if IMAGES_ENV.is_file() else {}
    for key, official in OFFICIAL_IMAGES.items():
        value = os.environ.get(key) or from_file.get(key)
        if not value and not image_present(official) and image_present(STANDIN_IMAGES[key]):
            value = STANDIN_IMAGES[key]
        if value:
            chosen[key] = value
    return chosen


@dataclass
class Sandbox:
    """A disposable world for running phase 1 unattended (tests, the nbval harness).

    A git copy of the sample app in a temporary folder, a compose project of its own on free ports,
    a free port for the app's web process (task 1.15 starts its own scripts there, installing its
    dependencies from the shared pnpm store), and the environment variables that point every notebook
    at them (``RUNBOOK_ALLOW_COMMIT=1``: the copy is disposable). :meth:`apply` puts them into
    ``os.environ`` (kernels inherit it) and clears a developer's variables that would steer the
    run elsewhere; :meth:`teardown` stops the app, removes this project's containers and volumes
    (``down -v`` of this project only), restores the environment and deletes the folder.
    """

    work: Path
    app_dir: Path
    project: str
    env: dict[str, str]
    saved: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def create(cls, project: str) -> Sandbox:
        work = Path(tempfile.mkdtemp(prefix=f"{project}-"))
        app_dir, _ = prepare(work / "app")
        postgres_port, redis_port, web_port = free_port(), free_port(), free_port()
        env = {
            "RUNBOOK_APP_DIR": str(app_dir),
            "COMPOSE_PROJECT_NAME": project,
            "POSTGRES_PORT": str(postgres_port),
            "REDIS_PORT": str(redis_port),
            **environment(app_dir, web_port, allow_commit=True),
            apprun.ENV_LOG_DIR: str(work / "logs"),
            "RUNBOOK_STATE_DIR": str(work / "state"),
            **service_images(),
        }
        write_local_env(app_dir, postgres_port, redis_port)
        return cls(work=work, app_dir=app_dir, project=project, env=env)

    def apply(self) -> None:
        for key in (*self.env, *SANDBOX_CLEARED):
            self.saved.setdefault(key, os.environ.get(key))
        for key in SANDBOX_CLEARED:
            os.environ.pop(key, None)
        os.environ.update(self.env)

    def restore(self) -> None:
        for key, value in self.saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self.saved.clear()

    def teardown(self) -> list[str]:
        """Stop the app, ``down -v`` this project, restore the environment, delete the folder."""
        problems = []
        try:
            apprun.stop_recorded(self.work / "logs")
        except Exception as exc:  # keep tearing down
            problems.append(f"stopping the app: {exc}")
        command = [
            "docker",
            "compose",
            "-p",
            self.project,
            "down",
            "-v",
            "--remove-orphans",
            "--timeout",
            "10",
        ]
        compose_file = self.app_dir / "docker-compose.yml"
        if compose_file.is_file():
            command[2:2] = ["-f", str(compose_file)]
        env = {**os.environ, **self.env}
        proc = subprocess.run(command, cwd=self.work, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            problems.append(f"`{' '.join(command)}` failed: {proc.stderr.strip()[-500:]}")
        self.restore()
        shutil.rmtree(self.work, ignore_errors=True)
        return problems


# --------------------------------------------------------------------------- the production images


NODE_STANDIN = "runbook-standin/node:20"  # scripts/standins/node: this machine's Node.js


def node_image() -> str:
    """The base image to build FROM: the official one (what the Dockerfiles name) when it is here, else the
    local stand-in (no registry is reachable in CI); raises with the next step when neither is."""
    from helpers.app.appprod import NODE_VERSION

    official = f"node:{NODE_VERSION}-alpine"
    for image in (official, NODE_STANDIN):
        if image_present(image):
            return image
    raise SampleAppError(
        f"neither {official} nor {NODE_STANDIN} is in the local engine: pull {official}, or build the "
        "stand-in with scripts/standins/build.sh node"
    )


@dataclass(frozen=True)
class BuiltImage:
    role: str  # web or worker
    tag: str
    dockerfile: str
    image_id: str
    size: int  # bytes, as `docker image inspect` reports it
    seconds: float
    cmd: list[str]
    workdir: str

    def summary(self) -> str:
        size = f"{self.size / 1e6:.0f} MB"
        return f"{self.role}: {self.tag} ({self.dockerfile}) {size}, built in {self.seconds:.0f} s"


def image_context(dest: str | os.PathLike[str], source: str | os.PathLike[str] = FIXTURE) -> Path:
    """A fresh copy of the app with what task 2.12 writes (Dockerfiles, .dockerignore, standalone output)."""
    from helpers.app import appfiles, appprod

    target = Path(dest)
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target, ignore=IGNORE)
    changes, kept = appprod.plan_images(target)
    failed = [k for k in kept if k.status == "failed"]
    if failed:
        raise SampleAppError(f"task 2.12 cannot plan the images: {failed[0].detail}")
    appfiles.apply(target, changes)
    return target


# one per user: a lock file another user created could not be opened here
BUILD_LOCK = Path(tempfile.gettempdir()) / f"runbook-docker-build-{os.getuid()}.lock"


@dataclass(frozen=True)
class Build:
    """One ``docker build``: how long it built, and how long it waited for its turn."""

    seconds: float
    waited: float


@contextlib.contextmanager
def build_turn(lock: Path = BUILD_LOCK) -> Iterator[float]:
    """This machine's turn to build an image (an exclusive ``flock``); yields the seconds waited for it.

    Image builds take turns across processes (the tests' workers, a rehearsal, ``make docs``): two
    builds of one app at once on a small machine are no faster than one after the other, and the second
    finds the first one's layers in the engine's cache instead of building them again.
    """
    import fcntl

    began = time.monotonic()
    with open(lock, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield time.monotonic() - began
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def docker_build(
    context: str | os.PathLike[str],
    dockerfile: str,
    tags: Sequence[str],
    build_args: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
) -> Build:
    """``docker build`` as the project builds the app's images: the legacy builder (no buildx on these
    machines; the Dockerfiles' ``# syntax`` line is a comment to it) on the host's network (pnpm reaches the
    npm registry the way this machine does), in ``context`` with ``-f dockerfile``, in this machine's turn
    (:func:`build_turn`). Raises with the last lines of the build's output when it fails."""
    command = ["docker", "build", "--network", "host"]
    for key, value in (build_args or {}).items():
        command += ["--build-arg", f"{key}={value}"]
    for key, value in (labels or {}).items():
        command += ["--label", f"{key}={value}"]
    command += ["-f", dockerfile]
    for tag in tags:
        command += ["-t", tag]
    command.append(".")
    with build_turn() as waited:
        began = time.monotonic()
        proc = subprocess.run(
            command, cwd=context, capture_output=True, text=True, env={**os.environ, "DOCKER_BUILDKIT": "0"}
        )
        seconds = time.monotonic() - began
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-30:])
        raise SampleAppError(f"`{shlex.join(command)}` failed in {context}:\n{tail}")
    return Build(seconds, waited)


def inspect_image(ref: str) -> dict[str, Any]:
    """``docker image inspect`` of one image, parsed."""
    import json

    out = subprocess.run(["docker", "image", "inspect", ref], capture_output=True, text=True)
    if out.returncode != 0:
        raise SampleAppError(f"no image {ref}: {out.stderr.strip()}")
    return dict(json.loads(out.stdout)[0])


def build_images(
    dest: str | os.PathLike[str], prefix: str = "runbook-sample-", node: str | None = None
) -> list[BuiltImage]:
    """Build the web and worker images from a copy of the app in ``dest`` with task 2.12's Dockerfiles
    (:func:`docker_build`), FROM ``node`` (default :func:`node_image`). Tags ``<prefix>web:latest`` and
    ``<prefix>worker:latest``."""

    from helpers.app.workflow import DOCKERFILES

    context = image_context(dest)
    base = node or node_image()
    built = []
    for role, dockerfile in DOCKERFILES.items():
        tag = f"{prefix}{role}:latest"
        seconds = docker_build(context, dockerfile, [tag], {"NODE_IMAGE": base}).seconds
        info = inspect_image(tag)
        config = info.get("Config") or {}
        built.append(
            BuiltImage(
                role,
                tag,
                dockerfile,
                info["Id"],
                int(info["Size"]),
                seconds,
                list(config.get("Cmd") or []),
                str(config.get("WorkingDir") or "/"),
            )
        )
    return built


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m helpers.runner.sampleapp", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    prep = sub.add_parser(
        "prepare", help="copy the sample app to a working copy (once) and print its variables"
    )
    prep.add_argument("--dest", default=str(DEFAULT_DEST), help=f"working copy (default {DEFAULT_DEST})")
    prep.add_argument("--port", type=int, default=None, help="port of the app's web process (default 3000)")
    prep.add_argument(
        "--source", default=None, help="the fixture to copy (default tests/fixtures/sample-app)"
    )
    prep.add_argument(
        "--no-env", action="store_true", help="do not write the working copy's .env (localhost URLs)"
    )
    prep.add_argument(
        "--allow-commit",
        action="store_true",
        help="also print RUNBOOK_ALLOW_COMMIT=1 (task 1.14 commits in this disposable copy)",
    )
    prep.add_argument("--export", action="store_true", help="print `export NAME=value` lines")
    imgs = sub.add_parser("images", help="build the web and worker images with task 2.12's Dockerfiles")
    imgs.add_argument(
        "--dest", default=None, help="the build context, a fresh copy (default: a temporary folder)"
    )
    imgs.add_argument(
        "--prefix", default="runbook-sample-", help="tags <prefix>web:latest, <prefix>worker:latest"
    )
    imgs.add_argument(
        "--node-image", default=None, help="base image (default: node:20-alpine, else the stand-in)"
    )
    args = parser.parse_args(argv)
    if args.command == "images":
        return _images(args)
    try:
        path, created = prepare(args.dest, args.source)
        if not args.no_env:
            write_local_env(path)
    except SampleAppError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"# {'created' if created else 'kept the existing'} working copy {path}", file=sys.stderr)
    prefix = "export " if args.export else ""
    for key, value in environment(path, args.port, args.allow_commit).items():
        print(f"{prefix}{key}={shlex.quote(value)}")
    return 0


def _images(args: argparse.Namespace) -> int:
    # outside any git work tree: the app's files are read as git sees them (a parent repo ignores .work/)
    dest = Path(args.dest) if args.dest else Path(tempfile.mkdtemp(prefix="rb-sample-images-")) / "app"
    try:
        built = build_images(dest, args.prefix, args.node_image)
    except SampleAppError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if not args.dest:
            shutil.rmtree(dest.parent, ignore_errors=True)
    for image in built:
        print(image.summary())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
