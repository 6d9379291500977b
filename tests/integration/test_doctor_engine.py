"""``runbook doctor phase1`` against real broken states on the engine: it names the first cause of each.

Each test breaks one thing for real on a private compose project (its own name and free ports, torn
down at the end) and runs the ``runbook doctor`` command as a user would, then reads its JSON:

* **the engine stopped**: the engine here is shared by everyone and cannot be stopped; instead
  ``DOCKER_HOST`` points at a unix socket where nothing answers, which is exactly what the CLI and the SDK
  meet when the engine is stopped;
* **a container stopped** (``docker stop``);
* **a port taken by another process** (a listener started by the test, before the services);
* **``.env`` pointing at the VM** (the Multipass address the app used before phase 1);
* **the app stopped** (the sample app's web process, its own ``dev`` script, started then stopped).

A healthy setup is diagnosed ok first (exit 0), so each broken case is a real change of verdict; the
hints of tasks 1.4 and 1.5 give the same first cause for the same broken state.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import papermill
import pytest
from services_support import notebook_outputs, run_notebook, services_env
from testsupport import FIXTURE_APP, ROOT, free_port

from helpers.app import appscripts
from helpers.core.checks import Checklist
from helpers.core.poll import poll
from helpers.runner import sampleapp
from helpers.services import apprun, compose, connectivity, diagnose, health

pytestmark = pytest.mark.engine


def doctor(app_dir: Path, *extra: str, env: dict[str, str] | None = None) -> tuple[int, list[dict[str, Any]]]:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "helpers.runner.cli",
            "doctor",
            "phase1",
            "--app-dir",
            str(app_dir),
            "--json",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def first_cause(report: list[dict[str, Any]]) -> dict[str, Any]:
    (phase1,) = report
    assert phase1["scope"] == "phase1"
    assert phase1["first_cause"], phase1
    return phase1["first_cause"]


@pytest.fixture
def web_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The sample app's web process (its own ``dev`` script, as task 1.15 starts it) in an app folder: the
    fixture is copied in (the folder keeps its compose file and ``.env``) and installed from the shared pnpm
    store; yields (start, stop)."""
    runs: list[apprun.AppRun] = []
    monkeypatch.setenv("npm_config_store_dir", str(sampleapp.PNPM_STORE))

    def start(app_dir: Path, port: int) -> str:
        shutil.copytree(FIXTURE_APP, app_dir, ignore=sampleapp.IGNORE, dirs_exist_ok=True)
        scripts = appscripts.app_scripts(app_dir)
        installed = appscripts.install_dependencies(scripts)
        assert installed.status in ("changed", "ok"), installed.detail
        url = f"http://localhost:{port}/api/health"
        web = appscripts.script_commands(scripts, roles=("web",))
        runs.append(apprun.start(app_dir, web, url, timeout=180, logs=tmp_path / "logs"))
        return url

    def stop() -> None:
        for run in runs:
            run.stop()

    yield start, stop
    stop()


def test_a_healthy_setup_is_ok_then_the_stand_in_app_stopped_is_the_first_cause(
    tmp_path: Path, web_app: Any
) -> None:
    start, stop = web_app
    with services_env(tmp_path, start=True) as services:
        url = start(services.app_dir, free_port())
        code, report = doctor(services.app_dir, env={"RUNBOOK_HEALTH_URL": url})
        assert code == 0, report
        assert report[0]["ok"] and {f["status"] for f in report[0]["findings"]} == {"ok"}

        # the learners' notebook is the same diagnosis: it passes now, and fails once the app is stopped
        params = {"scope": "phase1", "app_dir": str(services.app_dir)}
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("RUNBOOK_HEALTH_URL", url)
            done = run_notebook("doctor", tmp_path, tag="-ok", **params)
            checks = notebook_outputs(done, "application/vnd.runbook.checks+json")
            assert checks and all(c["ok"] for c in checks[0]["checks"] if c["kind"] == "check")
            stop()
            with pytest.raises(papermill.PapermillExecutionError, match="the web app is not running"):
                run_notebook("doctor", tmp_path, tag="-stopped", **params)

        code, report = doctor(services.app_dir, env={"RUNBOOK_HEALTH_URL": url})
        cause = first_cause(report)
        assert code == 1
        assert cause["layer"] == "app" and "the web app is not running" in cause["cause"]
        assert cause["anchor"] == "health-url-down" and "pnpm dev" in cause["fix"]


def test_the_engine_stopped_is_the_first_cause(tmp_path: Path) -> None:
    with services_env(tmp_path, start=False) as services:
        silent = tmp_path / "docker.sock"  # a socket file where nothing listens: a stopped engine's socket
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind(str(silent))
        code, report = doctor(services.app_dir, env={"DOCKER_HOST": f"unix://{silent}"})
    cause = first_cause(report)
    assert code == 1
    assert cause["layer"] == "engine" and cause["anchor"] == "engine-not-running"
    assert "the Docker engine is not running" in cause["cause"], cause
    assert "start the engine" in cause["fix"] or "Docker Desktop" in cause["fix"]
    blocked = [f for f in report[0]["findings"] if f["status"] == "blocked"]
    assert {f["layer"] for f in blocked} >= {"containers", "env", "app"}  # nothing above is blamed


def test_a_stopped_container_is_the_first_cause_and_task_1_4_says_the_same(tmp_path: Path) -> None:
    with services_env(tmp_path, start=True) as services:
        subprocess.run(
            ["docker", "stop", "-t", "2", services.container("postgres")], check=True, capture_output=True
        )
        code, report = doctor(services.app_dir)
        check = Checklist("1.4")
        compose.check_services(check, services.app_dir)
    cause = first_cause(report)
    assert code == 1
    assert cause["layer"] == "containers" and cause["anchor"] == "container-stopped"
    assert "postgres container is not running" in cause["cause"] and "up -d --wait" in cause["fix"]
    failed = [r for r in check.failures if r.name.startswith("postgres")]
    assert failed and "postgres container is not running" in failed[0].hint


def test_a_port_taken_by_another_process_is_the_first_cause(tmp_path: Path) -> None:
    with services_env(tmp_path, start=False) as services:
        listener = subprocess.Popen(
            [sys.executable, "-c", "import socket,sys,time; s=socket.socket(); "
             "s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(); time.sleep(300)", str(services.pg_port)],
        )  # fmt: skip
        try:
            poll(lambda: diagnose.accepts("127.0.0.1", services.pg_port), timeout=10, interval=0.1)
            code, report = doctor(services.app_dir)
        finally:
            listener.kill()
            listener.wait()
    cause = first_cause(report)
    assert code == 1
    assert cause["layer"] == "ports" and cause["anchor"] == "port-taken"
    assert (
        f"port {services.pg_port} is taken by process" in cause["cause"]
        and str(listener.pid) in cause["cause"]
    )
    assert "POSTGRES_PORT" in cause["fix"]


def test_env_pointing_at_the_vm_is_the_first_cause(tmp_path: Path) -> None:
    with services_env(tmp_path, start=True) as services:
        services.write_env(DATABASE_URL=f"postgresql://postgres:{services.password}@192.168.64.5:5432/app")
        code, report = doctor(services.app_dir)
    cause = first_cause(report)
    assert code == 1
    assert cause["layer"] == "env" and cause["anchor"] == "app-uses-vm-address"
    assert "DATABASE_URL at 192.168.64.5, the old Multipass VM" in cause["cause"]
    assert "localhost" in cause["fix"]
    assert "[REDACTED]" in json.dumps(report) and services.password not in json.dumps(report)


def test_task_1_5_hint_names_the_stopped_container_not_task_1_4_in_general(tmp_path: Path) -> None:
    with services_env(tmp_path, start=True) as services:
        subprocess.run(
            ["docker", "stop", "-t", "2", services.container("redis")], check=True, capture_output=True
        )
        check = Checklist("1.5")
        connectivity.check_app_env(check, services.app_dir)
    ping = next(r for r in check.failures if r.name == "Redis answers PING")
    assert "the redis container is not running" in ping.hint and "container-stopped" in ping.hint


def test_the_hints_of_1_4_and_1_15_name_a_stopped_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with services_env(tmp_path, start=False) as services:
        silent = tmp_path / "docker.sock"
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind(str(silent))
        monkeypatch.setenv("DOCKER_HOST", f"unix://{silent}")
        check = Checklist("1.4")
        compose.check_services(check, services.app_dir)
        (engine,) = check.failures
        assert engine.name == "Docker engine answers"
        assert (
            engine.hint.startswith("the Docker engine is not running") and "engine-not-running" in engine.hint
        )
        check = Checklist("1.15")
        health.check_health(check, f"http://localhost:{free_port()}/api/health", timeout=2)
        assert all(r.hint.startswith("the Docker engine is not running") for r in check.failures)
        assert len(check.failures) == 3
