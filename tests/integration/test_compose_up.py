"""Task 1.4 against the real engine: pre-flight, `docker compose up -d --wait`, idempotency, verification.

Every test runs the real top-level docker-compose.yml under its own project (``rb-engine-<hex>``) on
free ports, and removes it with ``down -v`` (tests/integration/services_support.py).
"""

from __future__ import annotations

import os
import re
import subprocess

import pytest
from services_support import notebook_outputs, run_notebook, services_env
from testsupport import free_port

from helpers.core.checks import MIME as CHECKS_MIME
from helpers.core.checks import Checklist
from helpers.core.steps import MIME as STEPS_MIME
from helpers.services import compose

pytestmark = pytest.mark.engine


@pytest.mark.smoke
def test_preflight_dry_run_up_and_second_run_is_ok(tmp_path):
    with services_env(tmp_path) as env:
        check = Checklist("pre-flight")
        project = compose.check_preflight(check, env.app_dir)
        assert project is not None and project.name == env.project
        assert not check.failures, check.failures
        assert [r.detail for r in check.results if r.name.startswith("host port")] == ["free", "free"]

        plan = compose.up(env.app_dir, dry_run=True)
        assert [r.status for r in plan] == ["would change", "would change"]
        assert compose.states(project) == {}, "a dry run must not create containers"

        first = compose.up(env.app_dir, wait_timeout=120)
        assert [(r.name, r.status) for r in first] == [
            ("service postgres", "changed"),
            ("service redis", "changed"),
        ]
        for result in first:  # task 1.4 reports how long each service took to become healthy
            assert re.search(r", healthy (within )?\d+\.\d s after its start$", result.detail), result.detail

        check = Checklist("services")
        compose.check_services(check, env.app_dir)
        assert not check.failures, check.failures
        assert len(check.results) == 6
        assert f"127.0.0.1:{env.pg_port}" in " ".join(r.name for r in check.results)

        second = compose.up(env.app_dir, wait_timeout=120)
        assert [r.status for r in second] == ["ok", "ok"]
        assert "healthy" in second[0].detail

        rows = compose.ps_rows(env.app_dir)
        assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
            ("postgres", env.container("postgres"), "running", "healthy"),
            ("redis", env.container("redis"), "running", "healthy"),
        ]

        check = Checklist("pre-flight again")
        compose.check_preflight(check, env.app_dir)
        assert not check.failures
        assert all("already running" in r.detail for r in check.results if r.name.startswith("host port"))


def test_a_stopped_service_fails_the_check_and_is_started_again(tmp_path):
    with services_env(tmp_path, start=True) as env:
        subprocess.run(["docker", "stop", "-t", "2", env.container("redis")], check=True, capture_output=True)
        check = Checklist("services")
        compose.check_services(check, env.app_dir)
        failed = {r.name: r for r in check.failures}
        assert (
            "redis running and healthy" in failed and "exited" in failed["redis running and healthy"].detail
        )
        assert "task 1.4" in failed["redis running and healthy"].hint
        assert list(failed) == ["redis running and healthy"], "port rows of a stopped service only repeat it"

        again = compose.up(env.app_dir, wait_timeout=120)
        assert [(r.name, r.status) for r in again] == [
            ("service postgres", "ok"),
            ("service redis", "changed"),
        ]


def test_a_changed_port_is_drift_that_fails_the_check_and_up_recreates(tmp_path):
    with services_env(tmp_path, start=True) as env:
        new_port = free_port()
        os.environ["POSTGRES_PORT"] = str(new_port)  # services_env puts back what was there before it
        check = Checklist("services")
        compose.check_services(check, env.app_dir)
        assert [r.name for r in check.failures] == [
            f"postgres published on 127.0.0.1:{new_port}",
            f"postgres accepts connections on 127.0.0.1:{new_port}",
        ]
        plan = compose.up(env.app_dir, dry_run=True)
        assert [r.status for r in plan] == ["would change", "ok"] and "recreate" in plan[0].detail
        again = compose.up(env.app_dir, wait_timeout=120)
        assert [r.status for r in again] == ["changed", "ok"]
        assert again[0].detail.startswith("recreated") and f"127.0.0.1:{new_port}->5432" in again[0].detail
        check = Checklist("services")
        compose.check_services(check, env.app_dir)
        assert not check.failures, check.failures


@pytest.mark.slow
def test_notebooks_1_4_and_1_5_run_twice_and_the_second_run_changes_nothing(tmp_path):
    with services_env(tmp_path) as env:
        runs = []
        for n in (1, 2):
            nb14 = run_notebook("1.4", tmp_path, f".{n}", app_dir=str(env.app_dir))
            nb15 = run_notebook("1.5", tmp_path, f".{n}", app_dir=str(env.app_dir))
            runs.append((nb14, nb15))
        first_steps = [s["status"] for p in notebook_outputs(runs[0][0], STEPS_MIME) for s in p["steps"]]
        second_steps = [s["status"] for p in notebook_outputs(runs[1][0], STEPS_MIME) for s in p["steps"]]
        assert first_steps == ["changed", "changed"]
        assert second_steps == ["ok", "ok"]
        for nb14, nb15 in runs:
            for path in (nb14, nb15):
                tables = notebook_outputs(path, CHECKS_MIME)
                assert tables and all(c["ok"] for t in tables for c in t["checks"])
                assert env.password not in path.read_text(), "the PostgreSQL password leaked into a notebook"
        names = [c["name"] for t in notebook_outputs(runs[1][1], CHECKS_MIME) for c in t["checks"]]
        assert "PostgreSQL major version is 15" in names and "Redis SET/GET/DEL" in names
