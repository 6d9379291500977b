"""The images task 2.12 writes, really built from the sample app and really run.

``helpers.runner.sampleapp.build_images`` copies the sample app, applies task 2.12's files (the two
Dockerfiles, ``.dockerignore``, the standalone output) and runs ``docker build`` for each, FROM
``node:20-alpine`` when the engine has it, else the local stand-in ``runbook-standin/node:20`` (no registry
is reachable in CI; ``scripts/standins/build.sh node`` builds it). Then: the images are multi-stage, run as
the non-root ``node`` user, the web image has a HEALTHCHECK that Docker itself finds healthy, and against
real PostgreSQL and Redis containers the web container answers its health URL (200, and 503 naming Redis
when Redis stops) while the worker container applies the migrations and completes a job enqueued from
Python, whose row is read back with psycopg. The sizes are printed.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import evidence
import psycopg
import pytest
from testsupport import ROOT

from helpers.app import appprod
from helpers.core.checks import VerificationFailed, verify
from helpers.runner import sampleapp
from helpers.services import health, jobs

pytestmark = pytest.mark.engine


def docker(*args: str, check: bool = True) -> str:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True)
    if check:
        assert proc.returncode == 0, f"docker {' '.join(args)}: {proc.stderr}"
    return proc.stdout.strip()


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, sampleapp.BuiltImage]]:
    try:
        sampleapp.node_image()
    except sampleapp.SampleAppError:  # neither the official base nor the stand-in: build the stand-in
        proc = subprocess.run(
            [str(ROOT / "scripts" / "standins" / "build.sh"), "node"],
            capture_output=True,
            text=True,
            env={
                "STANDIN_QUIET": "1",
                "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            },
        )
        assert proc.returncode == 0, proc.stderr
    prefix = f"rb-images-{uuid.uuid4().hex[:8]}-"
    built = sampleapp.build_images(tmp_path_factory.mktemp("images") / "app", prefix)
    evidence.record(
        "images built from the sample app with task 2.12's Dockerfiles:", [i.summary() for i in built]
    )
    yield {image.role: image for image in built}
    for image in built:
        docker("image", "rm", "-f", image.tag, check=False)


def test_images_are_multi_stage_non_root_and_the_web_one_has_a_healthcheck(
    images: dict[str, sampleapp.BuiltImage], tmp_path: Path
) -> None:
    context = sampleapp.image_context(tmp_path / "app")
    for role, image in images.items():
        stages = {i.stage for i in appprod.parse_dockerfile((context / image.dockerfile).read_text())}
        assert len(stages) >= 2, f"{role}: one stage only"
        assert docker("image", "inspect", "-f", "{{.Config.User}}", image.tag) == "node"
        assert docker("run", "--rm", "--entrypoint", "id", image.tag, "-u") == "1000"
        assert image.size > 0
    healthcheck = docker("image", "inspect", "-f", "{{json .Config.Healthcheck.Test}}", images["web"].tag)
    assert "/api/health" in healthcheck and ":3000" in healthcheck
    assert docker("image", "inspect", "-f", "{{.Config.Healthcheck}}", images["worker"].tag) == "<nil>"
    # the runtime stages carry what runs, not the build: no sources of the web app, no pnpm store
    shipped = docker("run", "--rm", "--entrypoint", "sh", images["web"].tag, "-c", "ls -a /app /app/apps/web")
    assert "server.js" in shipped and "src" not in shipped.split()
    assert (
        docker("run", "--rm", "--entrypoint", "sh", images["worker"].tag, "-c", "ls /app")
        == "migrate\nworker"
    )


@pytest.fixture
def services() -> Iterator[dict[str, str]]:
    """PostgreSQL and Redis containers (the service images of this machine) on a network of their own."""
    name = f"rb-images-{uuid.uuid4().hex[:8]}"
    images = sampleapp.service_images()
    docker("network", "create", name)
    started = [f"{name}-pg", f"{name}-redis"]
    try:
        docker(
            "run", "-d", "--name", started[0], "--network", name, "--network-alias", "postgres",
            "-e", "POSTGRES_PASSWORD=pw", "-e", "POSTGRES_DB=app", "-p", "127.0.0.1::5432",
            images.get("POSTGRES_IMAGE", "postgres:15-alpine"),
        )  # fmt: skip
        docker(
            "run", "-d", "--name", started[1], "--network", name, "--network-alias", "redis",
            "-p", "127.0.0.1::6379", images.get("REDIS_IMAGE", "redis:7-alpine"),
        )  # fmt: skip
        pg_port = docker("port", started[0], "5432").splitlines()[0].rsplit(":", 1)[1]
        redis_port = docker("port", started[1], "6379").splitlines()[0].rsplit(":", 1)[1]
        database_url = f"postgresql://postgres:pw@127.0.0.1:{pg_port}/app"
        deadline = time.monotonic() + 60
        while True:
            try:
                psycopg.connect(database_url, connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                assert time.monotonic() < deadline, docker("logs", started[0])
                time.sleep(0.5)
        yield {
            "network": name,
            "database_url": database_url,
            "redis_url": f"redis://127.0.0.1:{redis_port}",
            "app_database_url": "postgresql://postgres:pw@postgres:5432/app",
            "app_redis_url": "redis://redis:6379",
            "redis_container": started[1],
            "prefix": name,
        }
    finally:
        for container in (*started, f"{name}-web", f"{name}-worker"):
            docker("rm", "-f", "-v", container, check=False)
        docker("network", "rm", name, check=False)


def test_the_images_serve_health_and_the_worker_image_completes_a_job(
    images: dict[str, sampleapp.BuiltImage], services: dict[str, str]
) -> None:
    env = [
        "-e", f"DATABASE_URL={services['app_database_url']}",
        "-e", f"REDIS_URL={services['app_redis_url']}",
        "-e", "SESSION_SECRET=a-session-secret-for-the-test",
    ]  # fmt: skip
    worker = f"{services['prefix']}-worker"
    web = f"{services['prefix']}-web"
    docker("run", "-d", "--name", worker, "--network", services["network"], *env, images["worker"].tag)
    docker("run", "-d", "--name", web, "--network", services["network"], "-p", "127.0.0.1::3000", *env,
           images["web"].tag)  # fmt: skip
    url = f"http://127.0.0.1:{docker('port', web, '3000').splitlines()[0].rsplit(':', 1)[1]}/api/health"
    result = health.wait_healthy(url, timeout=90)
    assert result.status_code == 200 and result.body == {"db": "ok", "redis": "ok"}, (
        result.summary() + docker("logs", web)
    )
    deadline = time.monotonic() + 90  # the worker applied the migrations before it started consuming
    while "consuming queue" not in docker("logs", worker) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert "migrations applied successfully" in docker("logs", worker), docker("logs", worker)
    outcome = jobs.enqueue_and_wait(services["redis_url"], "jobs", timeout=60)
    with verify("job through the worker image") as check:
        jobs.check_job(check, outcome)
        jobs.check_read_back(check, services["database_url"], outcome)
    assert f"job {outcome.job_id} (runbook-e2e)" in docker("logs", worker)
    with psycopg.connect(services["database_url"]) as conn:
        probe = conn.execute(
            "SELECT payload->>'probe' FROM job_results WHERE job_id = %s", (outcome.job_id,)
        ).fetchone()
    assert probe == (outcome.data["probe"],)
    # Docker's own HEALTHCHECK (every 30 s) finds the web container healthy
    deadline = time.monotonic() + 120
    while (state := docker("inspect", "-f", "{{.State.Health.Status}}", web)) != "healthy":
        assert state == "starting" and time.monotonic() < deadline, state
        time.sleep(2)
    # and the health URL fails, naming Redis, when Redis is gone
    docker("stop", services["redis_container"])
    down = health.probe(url, timeout=15)
    assert down.status_code == 503 and down.connected("database") and "error" in down.part("redis"), down.body
    with pytest.raises(VerificationFailed, match="the app reports redis ok"), verify("health") as check:
        health.check_health(check, url, timeout=15)


def test_a_change_to_the_root_documents_rebuilds_nothing(
    images: dict[str, sampleapp.BuiltImage], tmp_path: Path
) -> None:
    """Task 2.9's docs tasks and everyday commits edit README.md and CLAUDE.md: with ``*.md`` in 2.12's
    ``.dockerignore`` the build finds every layer in its cache and ends with the very same image, in
    seconds (the tests' and ``make docs``' builds of differently documented copies share their layers)."""
    context = sampleapp.image_context(tmp_path / "app")
    for name in ("README.md", "CLAUDE.md"):
        with (context / name).open("a", encoding="utf-8") as handle:
            handle.write("\nA line the production docs task could have written.\n")
    tag = f"rb-images-docs-{uuid.uuid4().hex[:8]}:latest"
    try:
        sampleapp.docker_build(
            context, images["web"].dockerfile, [tag], {"NODE_IMAGE": sampleapp.node_image()}
        )
        assert docker("image", "inspect", "-f", "{{.Id}}", tag) == images["web"].image_id
    finally:
        docker("image", "rm", tag, check=False)
