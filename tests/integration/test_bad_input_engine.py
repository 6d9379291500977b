"""Bad input for tasks 1.2 to 1.5: each gets a clear message with the next step.

* no engine (DOCKER_HOST=unix:///nonexistent.sock), through the Python SDK and through the docker CLI;
* a host port taken by a process (a socket bound here) and by a container (a tiny one publishing it);
* a service image that is neither local nor pullable;
* no compose file / no app_dir, down to the notebook's own error.

The no-engine cases need only the docker CLI; the others run against the real engine.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import uuid

import papermill
import pytest
from services_support import PREFIX, run_notebook, service_images, services_env
from testsupport import needs

from helpers.core.checks import Checklist
from helpers.host import docker_engine
from helpers.host.hostinfo import Host
from helpers.services import compose

NO_ENGINE = "unix:///nonexistent.sock"
LINUX = Host(kind="linux", system="Linux", distro_id="debian")
needs_cli = needs(shutil.which("docker") is not None, "the docker CLI is not installed")


@pytest.fixture
def no_engine(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", NO_ENGINE)


def test_no_engine_through_the_sdk(no_engine):
    with pytest.raises(docker_engine.EngineUnavailable) as err:
        docker_engine.client()
    message = str(err.value)
    assert f"no Docker engine answers at {NO_ENGINE}" in message
    assert "next step:" in message and "unset DOCKER_HOST" in err.value.hint


@needs_cli
def test_no_engine_through_the_cli_and_the_engine_check(no_engine):
    versions = docker_engine.cli_versions()
    assert versions.server is None and "Cannot connect to the Docker daemon" in versions.error
    check = Checklist("1.2")
    assert docker_engine.check_engine(check, LINUX) is None
    failed = {r.name: r for r in check.failures}
    assert set(failed) == {"engine answers the docker CLI", "engine answers the Python docker SDK"}
    cli = failed["engine answers the docker CLI"]
    assert "nonexistent.sock" in cli.detail and "DOCKER_HOST" in cli.detail
    assert "unset DOCKER_HOST" in cli.hint and "systemctl" in cli.hint


@needs_cli
def test_no_engine_in_the_compose_steps(no_engine, tmp_path):
    shutil.copyfile(
        compose.find_compose_file(os.path.join(os.path.dirname(__file__), "..", "..")),
        tmp_path / "docker-compose.yml",
    )
    check = Checklist("pre-flight")
    compose.check_preflight(check, tmp_path)
    assert [r.name for r in check.failures] == ["Docker engine answers"]
    assert "unset DOCKER_HOST" in check.failures[0].hint
    results = compose.up(tmp_path)
    assert [r.status for r in results] == ["failed"] and "nonexistent.sock" in results[0].detail
    check = Checklist("services")
    compose.check_services(check, tmp_path)
    assert check.failures and "DOCKER_HOST" in check.failures[0].hint


@pytest.mark.engine
def test_port_taken_by_a_process_names_it_in_preflight_and_in_up(tmp_path):
    with services_env(tmp_path) as env, socket.socket() as sock:
        sock.bind(("127.0.0.1", env.pg_port))
        sock.listen()
        check = Checklist("pre-flight")
        compose.check_preflight(check, env.app_dir)
        assert [r.name for r in check.failures] == [f"host port 127.0.0.1:{env.pg_port} free for postgres"]
        failure = check.failures[0]
        assert f"port {env.pg_port} is taken by process" in failure.detail
        assert f"pid {os.getpid()}" in failure.detail
        assert "POSTGRES_PORT" in failure.hint and "DATABASE_URL" in failure.hint

        results = compose.up(env.app_dir, wait_timeout=60)
        assert results[-1].status == "failed"
        assert f"port {env.pg_port} is taken by process" in results[-1].detail
        assert f"pid {os.getpid()}" in results[-1].detail and "POSTGRES_PORT" in results[-1].detail


@pytest.mark.engine
def test_port_taken_by_a_container_names_the_container(tmp_path):
    with services_env(tmp_path) as env:
        name = f"{PREFIX}porthog-{uuid.uuid4().hex[:8]}"
        subprocess.run(
            [
                "docker",
                "run",
                "-d",
                "--rm",
                "--name",
                name,
                "-p",
                f"127.0.0.1:{env.redis_port}:6379",
                "--entrypoint",
                "redis-server",
                env.vars["REDIS_IMAGE"],
            ],
            check=True,
            capture_output=True,
        )
        try:
            check = Checklist("pre-flight")
            compose.check_preflight(check, env.app_dir)
            assert [r.name for r in check.failures] == [
                f"host port 127.0.0.1:{env.redis_port} free for redis"
            ]
            failure = check.failures[0]
            assert f"container `{name}`" in failure.detail and env.vars["REDIS_IMAGE"] in failure.detail
            assert f"docker stop {name}" in failure.hint and "REDIS_PORT" in failure.hint
        finally:
            subprocess.run(["docker", "rm", "-f", "-v", name], capture_output=True)


@pytest.mark.engine
def test_a_missing_image_names_its_variable(tmp_path):
    missing = f"{PREFIX}missing/postgres:15"
    with services_env(tmp_path, POSTGRES_IMAGE=missing) as env:
        check = Checklist("pre-flight")
        compose.check_preflight(check, env.app_dir)
        assert [r.name for r in check.failures] == ["image of postgres present or pullable"]
        failure = check.failures[0]
        assert missing in failure.detail and "cannot be pulled" in failure.detail
        assert "POSTGRES_IMAGE" in failure.hint and "docker image ls" in failure.hint

        results = compose.up(env.app_dir, wait_timeout=60)
        assert results[-1].status == "failed" and "POSTGRES_IMAGE" in results[-1].detail


@pytest.mark.engine
@pytest.mark.slow
def test_the_notebook_stops_with_run_task_1_7_when_the_compose_file_is_missing(tmp_path):
    service_images()
    app = tmp_path / "app-without-compose"
    app.mkdir()
    with pytest.raises(papermill.PapermillExecutionError) as err:
        run_notebook("1.4", tmp_path, app_dir=str(app))
    assert "no docker-compose.yml" in str(err.value) and "run task 1.7 first" in str(err.value)


def test_missing_app_dir_and_env_file_messages(tmp_path):
    check = Checklist("pre-flight")
    compose.check_preflight(check, "")
    assert "RUNBOOK_APP_DIR" in check.failures[0].hint
    check = Checklist("pre-flight")
    compose.check_preflight(check, tmp_path / "nope")
    assert "does not exist" in check.failures[0].detail
    from helpers.services import connectivity

    check = Checklist("1.5")
    connectivity.check_app_env(check, tmp_path)
    assert "task 1.9" in check.failures[0].hint
