"""Task 1.15's checks against real services and the runnable stand-in of the app.

A private compose project (``rb-e2e-<hex>``, free ports, stand-in images) runs PostgreSQL and Redis;
the sample app's ``stub/web.py`` and ``stub/worker.py`` run as real processes. Each check is shown to
pass when its thing happened and to FAIL when it did not: no worker, no web process, a database
that went away, a row that is not there.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from services_support import ServicesEnv, notebook_outputs, run_notebook, services_env

from helpers.core.checks import VerificationFailed, verify
from helpers.runner import sampleapp
from helpers.services import apprun, health, jobs

pytestmark = pytest.mark.engine


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServicesEnv]:
    tmp = tmp_path_factory.mktemp("e2e")
    with services_env(tmp, start=True, COMPOSE_PROJECT_NAME=f"rb-e2e-{uuid.uuid4().hex[:10]}") as env:
        shutil.copytree(sampleapp.FIXTURE / "stub", env.app_dir / "stub")
        yield env


@pytest.fixture
def web_port() -> int:
    return free_port()


def url(port: int) -> str:
    return f"http://localhost:{port}/api/health"


def test_the_whole_path_passes_with_web_and_worker(
    services: ServicesEnv, web_port: int, tmp_path: Path
) -> None:
    commands = sampleapp.commands(sys.executable, web_port)
    with apprun.running(services.app_dir, commands, url(web_port), logs=tmp_path) as app:
        assert len(app.processes) == 2
        with verify("health") as check:
            result = health.check_health(check, url(web_port))
        assert result.body == {"status": "ok", "database": "connected", "redis": "connected"}
        outcome = jobs.enqueue_and_wait(services.redis_url(), "jobs", timeout=30)
        with verify("job") as check:
            jobs.check_job(check, outcome)
        with verify("read back") as check:
            jobs.check_read_back(check, services.database_url(), outcome)
    # independent proof: the row is in PostgreSQL, the job is gone from Redis (removed after reading)
    with psycopg.connect(services.database_url()) as conn:
        row = conn.execute(
            "SELECT payload->>'probe' FROM job_results WHERE job_id = %s ORDER BY id DESC LIMIT 1",
            (outcome.job_id,),
        ).fetchone()
    assert row == (outcome.data["probe"],)
    assert not redis.Redis.from_url(services.redis_url()).exists(f"bull:jobs:{outcome.job_id}")


def test_job_check_fails_when_no_worker_runs(services: ServicesEnv, web_port: int, tmp_path: Path) -> None:
    web_only = sampleapp.commands(sys.executable, web_port)[:1]
    with apprun.running(services.app_dir, web_only, url(web_port), logs=tmp_path):
        with verify("health") as check:  # the web side alone is healthy...
            health.check_health(check, url(web_port))
        outcome = jobs.enqueue_and_wait(services.redis_url(), "jobs", timeout=3)
    assert outcome.state == "waiting" and outcome.workers == 0
    # ...but the job check fails, and so does the read-back
    with (
        pytest.raises(VerificationFailed, match="no worker is connected to queue 'jobs'"),
        verify("job") as check,
    ):
        jobs.check_job(check, outcome)
    with pytest.raises(VerificationFailed, match="did not complete"), verify("read back") as check:
        jobs.check_read_back(check, services.database_url(), outcome)
    # the unprocessed job was removed, so a worker started later does not run it by surprise
    assert not redis.Redis.from_url(services.redis_url()).exists(f"bull:jobs:{outcome.job_id}")


def test_job_on_another_queue_than_the_worker_fails(services: ServicesEnv, tmp_path: Path) -> None:
    worker = sampleapp.commands(sys.executable)[1]
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            worker,
            shell=True,
            cwd=services.app_dir,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 30
        while "consuming queue" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert jobs.worker_count(services.redis_url(), "jobs") > 0  # it runs, on the app's queue
        outcome = jobs.enqueue_and_wait(services.redis_url(), "not-the-apps-queue", timeout=3)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the whole group: sh does not exec its last command
        proc.wait(timeout=15)
    assert not outcome.completed and outcome.workers == 0
    assert "no worker is connected to queue 'not-the-apps-queue'" in outcome.hint()


def test_health_check_fails_when_nothing_answers(web_port: int) -> None:
    with pytest.raises(VerificationFailed, match="health URL answers 200"), verify("health") as check:
        health.check_health(check, url(web_port), timeout=2)


def test_read_back_fails_for_a_row_that_is_not_there(services: ServicesEnv) -> None:
    ghost = jobs.JobOutcome(
        queue="jobs",
        job_id="999999",
        state="completed",
        elapsed=0.1,
        workers=1,
        returnvalue={"rowId": 987654321},
        data={"probe": "nope"},
    )
    with psycopg.connect(services.database_url(), autocommit=True) as conn:  # the table exists
        conn.execute(
            "CREATE TABLE IF NOT EXISTS job_results (id bigserial PRIMARY KEY, job_id text, payload jsonb)"
        )
    with pytest.raises(VerificationFailed, match="no row with id 987654321"), verify("read back") as check:
        jobs.check_read_back(check, services.database_url(), ghost)


def test_notebook_1_15_passes_and_fails_without_the_worker(
    services: ServicesEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import papermill

    port = free_port()
    commands = sampleapp.commands(sys.executable, port)
    monkeypatch.setenv(apprun.ENV_LOG_DIR, str(tmp_path / "logs"))
    params = {"app_dir": str(services.app_dir), "health_url": url(port), "job_timeout": 5}
    done = run_notebook("1.15", tmp_path, tag="-ok", app_commands="; ".join(commands), **params)
    checks = notebook_outputs(done, "application/vnd.runbook.checks+json")
    assert len(checks) == 4 and all(c["ok"] for table in checks for c in table["checks"])
    assert not list((tmp_path / "logs").glob("*.pid"))  # the notebook stopped what it started

    with pytest.raises(papermill.PapermillExecutionError, match="no worker is connected"):
        run_notebook("1.15", tmp_path, tag="-no-worker", app_commands=commands[0], **params)
    apprun.stop_recorded(tmp_path / "logs")  # what the failed notebook's kernel left (atexit did it already)
    assert health.probe(url(port), timeout=2).answered is False


def test_health_reports_the_database_down(services: ServicesEnv, web_port: int, tmp_path: Path) -> None:
    """Last in this module: it stops PostgreSQL (and starts it again)."""
    commands = sampleapp.commands(sys.executable, web_port)[:1]
    with apprun.running(services.app_dir, commands, url(web_port), logs=tmp_path):
        services.compose("stop", "postgres", check=True)
        try:
            result = health.probe(url(web_port), timeout=15)
            assert result.status_code == 503 and result.body["status"] == "degraded"
            assert result.body["database"].startswith("error") and result.connected("redis")
            failing = pytest.raises(VerificationFailed, match="the app reports database connected")
            with failing, verify("health") as check:
                health.check_health(check, url(web_port), timeout=15)
        finally:
            services.compose("start", "postgres", check=True)
