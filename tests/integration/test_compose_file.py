"""The top-level docker-compose.yml, validated and run for real.

The file is the one task 1.7 copies into the app repository: PostgreSQL 15 and Redis 7 with
healthchecks, named volumes, ports on 127.0.0.1 only and every setting overridable by environment.
Each test runs the file under its own compose project (``rb-platform-t-<random>``) on free ports and
removes it with ``down -v`` whatever happens. No registry is reachable in CI, so the services run on
the stand-in images (``POSTGRES_IMAGE``/``REDIS_IMAGE`` from the environment, as ``.ci/run`` exports
them, else ``runbook-standin/postgres:15`` and ``runbook-standin/redis:7``, built when missing).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from testsupport import ROOT, free_port

COMPOSE_FILE = ROOT / "docker-compose.yml"
STANDINS = ROOT / "scripts" / "standins"
# Every variable the file reads: the tests set them explicitly, so a developer's own shell
# (say POSTGRES_PORT=5433) or .env never leaks into what is tested.
COMPOSE_VARS = (
    "COMPOSE_PROJECT_NAME",
    "COMPOSE_FILE",
    "COMPOSE_PROFILES",
    "POSTGRES_IMAGE",
    "REDIS_IMAGE",
    "POSTGRES_PORT",
    "REDIS_PORT",
    "POSTGRES_USER",
    "POSTGRES_PASSWORD",
    "POSTGRES_DB",
)

pytestmark = pytest.mark.engine


def _image(var: str, standin: str) -> str:
    return os.environ.get(var) or standin


@pytest.fixture(scope="module")
def images() -> dict[str, str]:
    """The service images to run: the environment's, else the stand-ins (built if missing)."""
    chosen = {
        "POSTGRES_IMAGE": _image("POSTGRES_IMAGE", "runbook-standin/postgres:15"),
        "REDIS_IMAGE": _image("REDIS_IMAGE", "runbook-standin/redis:7"),
    }
    missing = [
        img
        for img in chosen.values()
        if subprocess.run(["docker", "image", "inspect", img], capture_output=True).returncode != 0
    ]
    if missing:
        names = [img.split("/", 1)[1].split(":")[0] for img in missing if img.startswith("runbook-standin/")]
        if len(names) != len(missing):
            pytest.fail(
                f"images {missing} are not present locally and no registry is reachable; "
                "unset POSTGRES_IMAGE/REDIS_IMAGE to use the stand-ins (scripts/standins/build.sh)"
            )
        proc = subprocess.run(
            [str(STANDINS / "build.sh"), *names],
            capture_output=True,
            text=True,
            env={**os.environ, "STANDIN_QUIET": "1"},
        )
        assert proc.returncode == 0, f"building the stand-ins failed:\n{proc.stdout}\n{proc.stderr}"
    return chosen


class Project:
    """One compose project running the real docker-compose.yml (copied, so no .env beside it applies)."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(COMPOSE_FILE, self.dir / "docker-compose.yml")
        self.name = f"rb-platform-t-{uuid.uuid4().hex[:10]}"
        self.vars = {"COMPOSE_PROJECT_NAME": self.name, **env}
        base = {k: v for k, v in os.environ.items() if k not in COMPOSE_VARS}
        self.env = {**base, **self.vars}

    def compose(self, *args: str, check: bool = True, timeout: int = 180) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            ["docker", "compose", *args],
            cwd=self.dir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            logs = subprocess.run(
                ["docker", "compose", "logs", "--no-color", "--tail", "40"],
                cwd=self.dir,
                env=self.env,
                capture_output=True,
                text=True,
            ).stdout
            pytest.fail(f"docker compose {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}\n{logs}")
        return proc

    def config(self) -> dict:
        return json.loads(self.compose("config", "--format", "json").stdout)

    def up(self) -> None:
        self.compose("up", "-d", "--wait", "--wait-timeout", "120")

    def containers(self) -> list[dict]:
        ids = self.compose("ps", "-q").stdout.split()
        if not ids:
            return []
        out = subprocess.run(["docker", "inspect", *ids], capture_output=True, text=True, check=True).stdout
        return json.loads(out)

    def volumes(self) -> list[str]:
        out = subprocess.run(
            ["docker", "volume", "ls", "-q", "--filter", f"label=com.docker.compose.project={self.name}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return sorted(out.split())

    def pg(self, **overrides: str) -> psycopg.Connection:
        v = self.vars
        params = {
            "host": "127.0.0.1",
            "port": v["POSTGRES_PORT"],
            "user": v.get("POSTGRES_USER", "postgres"),
            "password": v.get("POSTGRES_PASSWORD", "postgres"),
            "dbname": v.get("POSTGRES_DB", "app"),
            "connect_timeout": 10,
            **overrides,
        }
        return psycopg.connect(**params, autocommit=True)

    def redis(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=int(self.vars["REDIS_PORT"]), socket_timeout=10)


@pytest.fixture
def project_factory(tmp_path: Path, images: dict[str, str]) -> Iterator:
    """Make projects on free ports with the chosen images; `down -v` each of them at teardown."""
    made: list[Project] = []

    def make(**env: str) -> Project:
        values = {**images, "POSTGRES_PORT": str(free_port()), "REDIS_PORT": str(free_port()), **env}
        project = Project(tmp_path / f"p{len(made)}", values)
        made.append(project)
        return project

    yield make
    for project in made:
        project.compose("down", "-v", "--remove-orphans", "--timeout", "10", check=False)


def test_compose_config_validates_with_documented_defaults(tmp_path: Path) -> None:
    proc = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE_FILE), "config", "-q"],
        env={k: v for k, v in os.environ.items() if k not in COMPOSE_VARS},
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    project = Project(tmp_path / "defaults", {})
    project.vars.pop("COMPOSE_PROJECT_NAME")
    project.env.pop("COMPOSE_PROJECT_NAME")
    cfg = project.config()
    assert cfg["name"] == "implementation3"
    pg, rd = cfg["services"]["postgres"], cfg["services"]["redis"]
    assert pg["image"] == "postgres:15-alpine"
    assert rd["image"] == "redis:7-alpine"
    assert pg["environment"] == {
        "POSTGRES_USER": "postgres",
        "POSTGRES_PASSWORD": "postgres",
        "POSTGRES_DB": "app",
    }
    assert [(p["host_ip"], p["published"], p["target"]) for p in pg["ports"]] == [("127.0.0.1", "5432", 5432)]
    assert [(p["host_ip"], p["published"], p["target"]) for p in rd["ports"]] == [("127.0.0.1", "6379", 6379)]
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])
    assert "redis-cli ping" in " ".join(rd["healthcheck"]["test"])
    for hc in (pg["healthcheck"], rd["healthcheck"]):  # readiness seen within a second, on any engine
        assert hc["interval"] == "1s" and "start_interval" not in hc, hc  # Docker 20.10 refuses the key
    # named volumes (not bind mounts) at the images' data folders
    assert [(m["type"], m["source"], m["target"]) for m in pg["volumes"]] == [
        ("volume", "postgres-data", "/var/lib/postgresql/data")
    ]
    assert [(m["type"], m["source"], m["target"]) for m in rd["volumes"]] == [
        ("volume", "redis-data", "/data")
    ]
    assert set(cfg["volumes"]) == {"postgres-data", "redis-data"}


def test_every_published_port_is_loopback_only(tmp_path: Path) -> None:
    cfg = Project(tmp_path, {"POSTGRES_PORT": "15432", "REDIS_PORT": "16379"}).config()
    ports = [(name, p) for name, svc in cfg["services"].items() for p in svc.get("ports", [])]
    assert len(ports) == 2
    for name, p in ports:
        assert p.get("host_ip") == "127.0.0.1", f"{name} publishes {p} beyond 127.0.0.1"


def test_env_overrides_reach_the_config(tmp_path: Path) -> None:
    env = {
        "COMPOSE_PROJECT_NAME": "rb-platform-override",
        "POSTGRES_IMAGE": "example/pg:15",
        "REDIS_IMAGE": "example/redis:7",
        "POSTGRES_PORT": "25432",
        "REDIS_PORT": "26379",
        "POSTGRES_USER": "alice",
        "POSTGRES_PASSWORD": "wonderland",
        "POSTGRES_DB": "shop",
    }
    project = Project(tmp_path, env)
    project.vars.update(env)
    project.env.update(env)
    cfg = project.config()
    assert cfg["name"] == "rb-platform-override"
    pg, rd = cfg["services"]["postgres"], cfg["services"]["redis"]
    assert (pg["image"], rd["image"]) == ("example/pg:15", "example/redis:7")
    assert pg["ports"][0]["published"] == "25432"
    assert rd["ports"][0]["published"] == "26379"
    assert pg["environment"] == {
        "POSTGRES_USER": "alice",
        "POSTGRES_PASSWORD": "wonderland",
        "POSTGRES_DB": "shop",
    }
    assert sorted(v["name"] for v in cfg["volumes"].values()) == [
        "rb-platform-override_postgres-data",
        "rb-platform-override_redis-data",
    ]


def test_up_wait_goes_healthy_and_serves_on_loopback(project_factory, images: dict[str, str]) -> None:
    project = project_factory()
    project.up()
    containers = project.containers()
    assert sorted(c["Config"]["Labels"]["com.docker.compose.service"] for c in containers) == [
        "postgres",
        "redis",
    ]
    for c in containers:
        assert c["State"]["Health"]["Status"] == "healthy", c["State"]["Health"]
        service = c["Config"]["Labels"]["com.docker.compose.service"]
        assert c["Config"]["Image"] == images[f"{service.upper()}_IMAGE"]
        bindings = [b for blist in c["HostConfig"]["PortBindings"].values() for b in blist]
        assert bindings and all(b["HostIp"] == "127.0.0.1" for b in bindings), bindings
    with project.pg() as conn:
        row = conn.execute(
            "SELECT current_user, current_database(), current_setting('server_version_num')"
        ).fetchone()
    assert row is not None
    assert row[0:2] == ("postgres", "app")
    assert row[2].startswith("15")
    r = project.redis()
    assert r.ping() is True
    r.set("rb-platform", "hello")
    assert r.get("rb-platform") == b"hello"
    # password auth from outside: a wrong password is refused
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        project.pg(password="not-the-password")


def test_custom_credentials_take_effect(project_factory) -> None:
    project = project_factory(POSTGRES_USER="runbook", POSTGRES_PASSWORD="s3cret-Pass", POSTGRES_DB="shop")
    project.up()
    with project.pg() as conn:
        assert conn.execute("SELECT current_user, current_database()").fetchone() == ("runbook", "shop")
    with pytest.raises(psycopg.OperationalError):
        project.pg(password="postgres")


def test_data_survives_down_and_down_v_removes_it(project_factory) -> None:
    project = project_factory()
    project.up()
    with project.pg() as conn:
        conn.execute("CREATE TABLE survivors (name text)")
        conn.execute("INSERT INTO survivors VALUES ('kept')")
    project.redis().set("survivor", "kept")
    volumes = project.volumes()
    assert volumes == [f"{project.name}_postgres-data", f"{project.name}_redis-data"]

    project.compose("down")
    assert project.containers() == []
    assert project.volumes() == volumes, "`down` must keep the named volumes"
    project.up()
    with project.pg() as conn:
        assert conn.execute("SELECT name FROM survivors").fetchall() == [("kept",)]
    assert project.redis().get("survivor") == b"kept"

    project.compose("down", "-v")
    assert project.volumes() == [], "`down -v` must remove the volumes"
    project.up()
    with project.pg() as conn:
        assert conn.execute("SELECT to_regclass('public.survivors')").fetchone() == (None,)
    assert project.redis().get("survivor") is None
