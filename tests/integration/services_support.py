"""Test support for tasks 1.4/1.5: a private compose project of the real docker-compose.yml.

Each :func:`services_env` gets its own app folder (the top-level ``docker-compose.yml`` copied in, as
task 1.7 does, and a ``.env`` with matching URLs), a unique project name ``rb-engine-<hex>``, free
ports, a random PostgreSQL password, and the service images (the environment's, else the stand-ins).
The variables are set in this process's environment, because the helpers run ``docker compose``
with it, as a developer's shell would. ``down -v`` removes everything at the end, whatever happened.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from testsupport import LOCAL_SERVICE_VARIABLES, ROOT, free_port

PREFIX = "rb-engine-"
COMPOSE_FILE = ROOT / "docker-compose.yml"
STANDINS = {"POSTGRES_IMAGE": "runbook-standin/postgres:15", "REDIS_IMAGE": "runbook-standin/redis:7"}
# Every variable that steers compose or the file; a developer's own values must not leak into a test.
COMPOSE_VARS = (
    "COMPOSE_PROJECT_NAME",
    "COMPOSE_FILE",
    "COMPOSE_PROFILES",
    "POSTGRES_IMAGE",
    "REDIS_IMAGE",
    *LOCAL_SERVICE_VARIABLES,
    "DOCKER_HOST",
)


def image_present(image: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode == 0


def service_images() -> dict[str, str]:
    """POSTGRES_IMAGE/REDIS_IMAGE from the environment, else the stand-ins (built when missing)."""
    chosen = {var: os.environ.get(var) or standin for var, standin in STANDINS.items()}
    missing = [img for img in chosen.values() if not image_present(img)]
    if not missing:
        return chosen
    names = [img.split("/", 1)[1].split(":")[0] for img in missing if img.startswith("runbook-standin/")]
    if len(names) != len(missing):
        pytest.fail(
            f"images {missing} are not present and no registry is reachable; unset POSTGRES_IMAGE/REDIS_IMAGE"
        )
    proc = subprocess.run(
        [str(ROOT / "scripts" / "standins" / "build.sh"), *names],
        capture_output=True,
        text=True,
        env={**os.environ, "STANDIN_QUIET": "1"},
    )
    assert proc.returncode == 0, f"building the stand-ins failed:\n{proc.stdout}\n{proc.stderr}"
    return chosen


@dataclass
class ServicesEnv:
    app_dir: Path
    vars: dict[str, str]

    @property
    def project(self) -> str:
        return self.vars["COMPOSE_PROJECT_NAME"]

    @property
    def pg_port(self) -> int:
        return int(self.vars["POSTGRES_PORT"])

    @property
    def redis_port(self) -> int:
        return int(self.vars["REDIS_PORT"])

    @property
    def password(self) -> str:
        return self.vars["POSTGRES_PASSWORD"]

    def database_url(self, password: str | None = None, db: str | None = None) -> str:
        user, pw = self.vars["POSTGRES_USER"], password or self.password
        return f"postgresql://{user}:{pw}@localhost:{self.pg_port}/{db or self.vars['POSTGRES_DB']}"

    def redis_url(self) -> str:
        return f"redis://localhost:{self.redis_port}"

    def write_env(self, name: str = ".env", **overrides: str) -> Path:
        values = {"DATABASE_URL": self.database_url(), "REDIS_URL": self.redis_url(), **overrides}
        path = self.app_dir / name
        path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
        return path

    def compose(
        self, *args: str, check: bool = False, timeout: int = 180
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            ["docker", "compose", "-p", self.project, *args],
            cwd=self.app_dir,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check:
            assert proc.returncode == 0, proc.stderr
        return proc

    def container(self, service: str) -> str:
        return f"{self.project}-{service}-1"


@contextmanager
def services_env(tmp: Path, start: bool = False, **overrides: str) -> Iterator[ServicesEnv]:
    """A private, configured (and optionally started) copy of the services; torn down on exit."""
    if not COMPOSE_FILE.is_file():
        pytest.fail(f"{COMPOSE_FILE} is missing: the phase-1 services are defined there")
    values = {
        "COMPOSE_PROJECT_NAME": f"{PREFIX}{uuid.uuid4().hex[:10]}",
        "POSTGRES_PORT": str(free_port()),
        "REDIS_PORT": str(free_port()),
        "POSTGRES_USER": "postgres",
        "POSTGRES_PASSWORD": f"pw{uuid.uuid4().hex[:16]}",
        "POSTGRES_DB": "app",
        **service_images(),
        **overrides,
    }
    app_dir = tmp / "app"
    app_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(COMPOSE_FILE, app_dir / "docker-compose.yml")
    env = ServicesEnv(app_dir, values)
    env.write_env()
    with pytest.MonkeyPatch.context() as mp:
        for var in COMPOSE_VARS:
            mp.delenv(var, raising=False)
        for key, value in values.items():
            mp.setenv(key, value)
        try:
            if start:
                from helpers.services import compose

                results = compose.up(app_dir, wait_timeout=120)
                assert all(r.status in ("changed", "ok") for r in results), results
            yield env
        finally:
            env.compose("down", "-v", "--remove-orphans", "--timeout", "5")


def notebook_outputs(path: Path, mime: str) -> list[Any]:
    """Every output of the executed notebook with this MIME type (the runbook's steps/checks payloads)."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    found = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if mime in data:
                found.append(data[mime])
    return found


def run_notebook(task_id: str, out_dir: Path, tag: str = "", **parameters: Any) -> Path:
    """Execute a task's notebook with papermill (kernel python3) into ``out_dir``; raises on a failed cell."""
    import papermill

    from helpers.core.paths import PROJECT_ROOT
    from helpers.core.tasks import get

    source = PROJECT_ROOT / get(task_id).notebook
    target = out_dir / f"{source.stem}{tag}.ipynb"
    papermill.execute_notebook(
        str(source),
        str(target),
        parameters=parameters,
        kernel_name="python3",
        progress_bar=False,
        cwd=str(PROJECT_ROOT),
    )
    return target
