"""The Coolify stand-in's Docker runtime against the real engine: image mapping, a database that gets healthy,
an application deployed from a GHCR name, and cleanup by label. Containers: ``rb-prod2-rt-*``."""

from __future__ import annotations

import secrets
import subprocess
import time
from collections.abc import Iterator

import pytest
from testsupport import unavailable

from helpers.rehearse.coolify import APP_IMAGE, STANDIN_IMAGES, Runtime, remove_resources
from helpers.rehearse.dockerapi import Docker

pytestmark = pytest.mark.engine
SOCKET = "/var/run/docker.sock"


@pytest.fixture
def runtime() -> Iterator[Runtime]:
    if not Docker.available(SOCKET):
        unavailable(f"{SOCKET} does not answer")
    missing = [
        i
        for i in (*STANDIN_IMAGES.values(), APP_IMAGE)
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


def test_image_exists_is_false_for_a_missing_image(runtime: Runtime) -> None:
    assert runtime.docker.image_exists(APP_IMAGE)
    assert not runtime.docker.image_exists("rb-prod2-missing/none:0")  # a 404 with a message body


def test_map_image_to_the_standins(runtime: Runtime) -> None:
    assert runtime.map_image("postgres:15-alpine") == (STANDIN_IMAGES["postgres"], [])
    assert runtime.map_image("redis:7-alpine") == (STANDIN_IMAGES["redis"], [])
    assert runtime.map_image("ghcr.io/acme/demo-app-web:main") == (APP_IMAGE, ["web"])
    assert runtime.map_image("ghcr.io/acme/demo-app-worker:main") == (APP_IMAGE, ["worker"])
    assert runtime.map_image(APP_IMAGE) == (APP_IMAGE, [])  # present: run as it is


def _healthy(runtime: Runtime, uuid: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while runtime.status(uuid) != "running:healthy":
        assert time.monotonic() < deadline, (uuid, runtime.status(uuid))
        time.sleep(0.5)


def test_databases_get_healthy_and_a_worker_reaches_them_by_name(runtime: Runtime) -> None:
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
        "docker_registry_image_name": "ghcr.io/acme/demo-app-worker",
        "docker_registry_image_tag": "main",
        "ports_exposes": "3000",
    }
    envs = {
        "REDIS_URL": f"redis://default:{redis['redis_password']}@{redis['uuid']}:6379/0",
        "DATABASE_URL": f"postgres://app:{pg['postgres_password']}@{pg['uuid']}:5432/app",
    }
    note = runtime.deploy_application(app, envs)
    assert "running:unknown" in note and APP_IMAGE in note
    time.sleep(2)  # a worker that cannot reach its backends exits (and restarts) within this
    assert runtime.status(app["uuid"]) == "running:unknown"
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
