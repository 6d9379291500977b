"""The Coolify stand-in's Docker runtime against the real engine: databases on their stand-in images that get
healthy, the app's own images pulled from a registry (the sample app delivered as its workflow delivers it:
tests/deliverysupport.py) and run, the web app healthy by its image's own HEALTHCHECK, a pull that fails
failing the deployment, and cleanup by label. Containers: ``rb-prod2-rt-*``."""

from __future__ import annotations

import secrets
import subprocess
import time
from collections.abc import Iterator

import pytest
from deliverysupport import Delivered, delivered
from testsupport import unavailable

from helpers.rehearse.coolify import STANDIN_IMAGES, Runtime, remove_resources
from helpers.rehearse.dockerapi import Docker

pytestmark = pytest.mark.engine
SOCKET = "/var/run/docker.sock"


@pytest.fixture
def runtime() -> Iterator[Runtime]:
    if not Docker.available(SOCKET):
        unavailable(f"{SOCKET} does not answer")
    missing = [
        i
        for i in STANDIN_IMAGES.values()
        if subprocess.run(["docker", "image", "inspect", i], capture_output=True).returncode
    ]
    if missing:
        unavailable(f"stand-in images missing: {missing} (scripts/standins/build.sh)")
    server = f"rb-prod2-rt-{secrets.token_hex(3)}"
    rt = Runtime(Docker(SOCKET), server, deploy_timeout=60)
    try:
        yield rt
    finally:
        remove_resources(server)
        assert (
            subprocess.run(
                ["docker", "ps", "-aq", "--filter", f"label=runbook.coolify.resource={server}"],
                capture_output=True,
                text=True,
            ).stdout.split()
            == []
        )


@pytest.fixture(scope="module")
def delivery(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Delivered]:
    with delivered(tmp_path_factory.mktemp("delivery")) as found:
        yield found


def test_image_exists_is_false_for_a_missing_image(runtime: Runtime) -> None:
    assert runtime.docker.image_exists(STANDIN_IMAGES["redis"])
    assert not runtime.docker.image_exists("rb-prod2-missing/none:0")  # a 404 with a message body


def test_databases_run_on_their_stand_ins_and_a_missing_app_image_fails_the_pull(
    runtime: Runtime, delivery: Delivered
) -> None:
    assert runtime.database_image("postgres:15-alpine") in ("postgres:15-alpine", STANDIN_IMAGES["postgres"])
    assert runtime.database_image("redis:7-alpine") in ("redis:7-alpine", STANDIN_IMAGES["redis"])
    with pytest.raises(RuntimeError, match="no stand-in"):
        runtime.database_image("rb-prod2-missing/mysql:8")
    with pytest.raises(RuntimeError, match=r"docker pull .*:nope failed"):
        runtime.pull(f"{delivery.images['web']}:nope")  # the registry has no such tag: nothing runs
    assert not runtime.docker.image_exists(f"{delivery.images['web']}:main")  # the runner's tags are gone


def _healthy(runtime: Runtime, uuid: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while runtime.status(uuid) != "running:healthy":
        assert time.monotonic() < deadline, (uuid, runtime.status(uuid))
        time.sleep(0.5)


def test_databases_get_healthy_and_the_pulled_apps_reach_them_by_name(
    runtime: Runtime, delivery: Delivered
) -> None:
    redis = {"uuid": f"{runtime.server}-redis", "image": "redis:7-alpine", "kind": "redis"}
    redis["redis_password"] = secrets.token_hex(16)
    pg = {"uuid": f"{runtime.server}-pg", "image": "postgres:15-alpine", "kind": "postgresql"}
    pg.update(postgres_user="app", postgres_password=secrets.token_hex(16), postgres_db="app")
    for db in (redis, pg):
        runtime.start_database(db)
    for db in (redis, pg):
        _healthy(runtime, db["uuid"])
    runtime.start_database(redis)  # idempotent: a running database is left alone
    assert runtime.status(redis["uuid"]) == "running:healthy"
    app = {
        "uuid": f"{runtime.server}-worker",
        "docker_registry_image_name": delivery.images["worker"],
        "docker_registry_image_tag": "main",
        "ports_exposes": "3000",
    }
    envs = {
        "REDIS_URL": f"redis://default:{redis['redis_password']}@{redis['uuid']}:6379/0",
        "DATABASE_URL": f"postgres://app:{pg['postgres_password']}@{pg['uuid']}:5432/app",
        "SESSION_SECRET": secrets.token_urlsafe(32),  # the app's env.ts refuses to start without it
    }
    note = runtime.deploy_application(app, envs)
    worker_digest = delivery.digests["worker"]
    assert "running:unknown" in note and f"{delivery.images['worker']}@{worker_digest}" in note
    image = subprocess.run(
        ["docker", "inspect", "-f", "{{.Image}}", app["uuid"]], capture_output=True, text=True
    ).stdout.strip()
    digests = subprocess.run(
        ["docker", "image", "inspect", "-f", "{{json .RepoDigests}}", image], capture_output=True, text=True
    ).stdout
    assert f"{delivery.images['worker']}@{worker_digest}" in digests  # pulled from the registry
    time.sleep(2)  # a worker that cannot reach its backends exits (and restarts) within this
    assert runtime.status(app["uuid"]) == "running:unknown"
    restarts = subprocess.run(
        ["docker", "inspect", "-f", "{{.RestartCount}}", app["uuid"]], capture_output=True, text=True
    ).stdout.strip()
    assert restarts == "0", "the worker crashed and was restarted: docker logs " + app["uuid"]
    # the worker image's own Node: AUTH and PING Redis by its uuid, on the server's network
    ping = (
        "const u = new URL(process.env.REDIS_URL); const s = require('net').connect(+u.port, u.hostname);"
        "s.on('connect', () => s.write(`AUTH ${decodeURIComponent(u.password)}\\r\\nPING\\r\\n`));"
        "let got = ''; s.on('data', d => { got += d;"
        " if (got.includes('PONG')) { console.log(got.trim()); s.end(); } });"
        "s.on('error', e => { console.log(e.message); process.exit(1); });"
    )
    reached = subprocess.run(
        ["docker", "exec", app["uuid"], "node", "-e", ping], capture_output=True, text=True, timeout=60
    )
    assert reached.stdout.split() == ["+OK", "+PONG"], (reached.returncode, reached.stdout, reached.stderr)
    published = subprocess.run(["docker", "port", app["uuid"]], capture_output=True, text=True).stdout
    assert published.strip() == ""  # a worker publishes no port
    runtime.stop(app["uuid"])
    assert runtime.status(app["uuid"]) == "exited"
    # the web app: pulled, healthy by its image's own HEALTHCHECK (no python3 or curl needed in it)
    web = {
        "uuid": f"{runtime.server}-web",
        "docker_registry_image_name": delivery.images["web"],
        "docker_registry_image_tag": f"sha256-{delivery.digests['web'].removeprefix('sha256:')}",  # a pin
        "ports_exposes": "3000",
        "ports_mappings": "3000:3000",
        "health_check_enabled": True,
        "health_check_path": "/api/health",
    }
    note = runtime.deploy_application(web, envs)
    assert "running:healthy" in note and f"@{delivery.digests['web']}" in note
    test = subprocess.run(
        ["docker", "inspect", "-f", "{{json .Config.Healthcheck.Test}}", web["uuid"]],
        capture_output=True,
        text=True,
    ).stdout
    assert "fetch(" in test and "/api/health" in test  # the image's own test, not a python3 probe
