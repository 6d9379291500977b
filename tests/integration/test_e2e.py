"""Task 1.15 against the real sample app: its pnpm install, its Drizzle migrations, its Next.js web process
and its Node BullMQ worker, started with its own scripts.

A private compose project (``rb-e2e-<hex>``, free ports, stand-in images) runs PostgreSQL and Redis; a copy
of ``tests/fixtures/sample-app`` is installed once for the module (from the shared pnpm store in
``.work/pnpm-store``) and migrated. Each check is shown to pass when its thing happened and to FAIL when
it did not: no worker, no web process, Redis or the database gone, a row that is not there.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import evidence
import httpx
import psycopg
import pytest
import redis
from services_support import ServicesEnv, notebook_outputs, run_notebook, services_env

from helpers.app import appscripts
from helpers.core.checks import VerificationFailed, verify
from helpers.host.ports import free_port
from helpers.runner import sampleapp
from helpers.services import apprun, health, jobs

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServicesEnv]:
    tmp = tmp_path_factory.mktemp("e2e")
    with services_env(tmp, start=True, COMPOSE_PROJECT_NAME=f"rb-e2e-{uuid.uuid4().hex[:10]}") as env:
        shutil.copytree(sampleapp.FIXTURE, env.app_dir, ignore=sampleapp.IGNORE, dirs_exist_ok=True)
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("npm_config_store_dir", str(sampleapp.PNPM_STORE))
            yield env


@pytest.fixture(scope="module")
def app(services: ServicesEnv) -> appscripts.AppScripts:
    """The copy, installed with its lockfile and migrated, as task 1.15 does it."""
    scripts = appscripts.app_scripts(services.app_dir)
    assert not (services.app_dir / "node_modules").exists()
    installed = appscripts.install_dependencies(scripts)
    assert installed.status == "changed", installed.detail
    migrated = appscripts.migrate(scripts, services.database_url())
    assert migrated.status == "changed" and "job_results" in migrated.detail, migrated.detail
    return scripts


def url(port: int) -> str:
    return f"http://localhost:{port}/api/health"


def test_install_and_migrate_left_their_marks_and_a_second_time_change_nothing(
    services: ServicesEnv, app: appscripts.AppScripts
) -> None:
    # installed from the lockfile: the Node binaries the scripts call are there
    for package, binary in (("apps/web", "next"), ("apps/worker", "tsx"), ("packages/core", "drizzle-kit")):
        assert (services.app_dir / package / "node_modules" / ".bin" / binary).exists(), (package, binary)
    with psycopg.connect(services.database_url()) as conn:
        columns = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'job_results' ORDER BY 1"
        ).fetchall()
        applied = conn.execute("SELECT count(*) FROM drizzle.__drizzle_migrations").fetchone()[0]
    assert [c[0] for c in columns] == ["id", "job_id", "name", "payload", "processed_at", "queue"]
    assert applied == len(list((services.app_dir / "packages/core/drizzle").glob("*.sql")))
    assert appscripts.install_dependencies(app).status == "ok"
    again = appscripts.migrate(app, services.database_url())
    assert again.status == "ok" and again.detail == "the schema was up to date"
    with verify("table") as check:
        jobs.check_table(check, services.database_url())
    with pytest.raises(VerificationFailed, match="table no_such_table exists"), verify("table") as check:
        jobs.check_table(check, services.database_url(), "no_such_table")


def test_the_whole_path_passes_with_the_apps_own_web_and_worker(
    services: ServicesEnv, app: appscripts.AppScripts, tmp_path: Path
) -> None:
    port = free_port()
    commands = appscripts.script_commands(app)
    assert commands[0].endswith(" dev") and commands[1].endswith(" worker"), commands  # the profile's picks
    with apprun.running(services.app_dir, commands, url(port), timeout=180, logs=tmp_path) as run:
        assert len(run.processes) == 2
        with verify("health") as check:
            result = health.check_health(check, url(port))
        assert result.body == {"db": "ok", "redis": "ok"}
        outcome = jobs.enqueue_and_wait(services.redis_url(), "jobs", timeout=60)
        with verify("job") as check:
            jobs.check_job(check, outcome)
        with verify("read back") as check:
            jobs.check_read_back(check, services.database_url(), outcome)
        # the app's own producer route too: POST /api/jobs, processed by the same Node worker
        job = {"name": "via-web", "data": {"n": 7}}
        posted = httpx.post(f"http://localhost:{port}/api/jobs", json=job, timeout=120)  # its first compile
        assert posted.status_code == 202 and posted.json()["queue"] == "jobs", posted.text
        worker_log = run.processes[1].log
        deadline = time.monotonic() + 30
        while (
            f"job {posted.json()['id']} (via-web)" not in worker_log.read_text()
            and time.monotonic() < deadline
        ):
            time.sleep(0.3)
    # independent proof: the Node worker logged both jobs, the rows are in PostgreSQL, the job left Redis
    log = worker_log.read_text()
    assert f"job {outcome.job_id} (runbook-e2e) -> job_results.id {outcome.returnvalue['rowId']}" in log
    with psycopg.connect(services.database_url()) as conn:
        row = conn.execute(
            "SELECT payload->>'probe' FROM job_results WHERE job_id = %s AND name = 'runbook-e2e'",
            (outcome.job_id,),
        ).fetchone()
        web_row = conn.execute("SELECT payload FROM job_results WHERE name = 'via-web'").fetchone()
    assert row == (outcome.data["probe"],) and web_row == ({"n": 7},)
    assert not redis.Redis.from_url(services.redis_url()).exists(f"bull:jobs:{outcome.job_id}")
    assert all(p.exited() is not None for p in run.processes)  # stopped, with their process groups
    evidence.record(
        f"the app's own Node worker ({commands[1]}) completed the jobs:",
        [line for line in log.splitlines() if "job_results.id" in line],
    )


def test_an_app_that_names_its_scripts_otherwise_is_started_the_same_way(
    services: ServicesEnv, app: appscripts.AppScripts, tmp_path: Path
) -> None:
    manifest = services.app_dir / "package.json"
    original = manifest.read_text()
    renamed = original.replace('"dev":', '"web:dev":').replace('"worker":', '"queue:consume":')
    renamed = renamed.replace('"worker:dev":', '"queue:watch":').replace('"db:migrate":', '"migrate:dev":')
    manifest.write_text(renamed)
    try:
        other = appscripts.app_scripts(services.app_dir)
        # each found by what it runs (the app profile follows the root scripts into the workspace packages);
        # of the two worker scripts the profile prefers the shorter name
        assert (other.web, other.worker, other.migrate) == ("web:dev", "queue:watch", "migrate:dev")
        assert appscripts.migrate(other, services.database_url()).status == "ok"
        port = free_port()
        with apprun.running(
            services.app_dir, appscripts.script_commands(other), url(port), timeout=180, logs=tmp_path
        ):
            outcome = jobs.enqueue_and_wait(services.redis_url(), "jobs", timeout=60)
        assert outcome.completed, outcome.summary()
    finally:
        manifest.write_text(original)


def test_job_on_another_queue_than_the_worker_fails(
    services: ServicesEnv, app: appscripts.AppScripts, tmp_path: Path
) -> None:
    (worker,) = appscripts.script_commands(app, roles=("worker",))
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
        deadline = time.monotonic() + 60
        while "consuming queue" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert jobs.worker_count(services.redis_url(), "jobs") > 0, (
            log.read_text()
        )  # it runs, on the app's queue
        outcome = jobs.enqueue_and_wait(services.redis_url(), "not-the-apps-queue", timeout=3)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the whole group: pnpm, tsx, node
        proc.wait(timeout=15)
    assert not outcome.completed and outcome.workers == 0
    assert "no worker is connected to queue 'not-the-apps-queue'" in outcome.hint()


def test_health_check_fails_when_nothing_answers() -> None:
    with pytest.raises(VerificationFailed, match="health URL answers 200"), verify("health") as check:
        health.check_health(check, url(free_port()), timeout=2)


def test_read_back_fails_for_a_row_that_is_not_there(
    services: ServicesEnv, app: appscripts.AppScripts
) -> None:
    ghost = jobs.JobOutcome(
        queue="jobs",
        job_id="999999",
        state="completed",
        elapsed=0.1,
        workers=1,
        returnvalue={"rowId": 987654321},
        data={"probe": "nope"},
    )
    with pytest.raises(VerificationFailed, match="no row with id 987654321"), verify("read back") as check:
        jobs.check_read_back(check, services.database_url(), ghost)


def test_notebook_1_15_passes_and_fails_without_the_worker(
    services: ServicesEnv, app: appscripts.AppScripts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import papermill

    port = free_port()
    monkeypatch.setenv(apprun.ENV_LOG_DIR, str(tmp_path / "logs"))
    params = {"app_dir": str(services.app_dir), "health_url": url(port), "job_timeout": 10}
    done = run_notebook("1.15", tmp_path, tag="-ok", app_commands="", **params)  # the app's own scripts
    checks = notebook_outputs(done, "application/vnd.runbook.checks+json")
    assert len(checks) == 5 and all(c["ok"] for table in checks for c in table["checks"])
    reported = [
        s
        for payload in notebook_outputs(done, "application/vnd.runbook.steps+json")
        for s in payload["steps"]
    ]
    assert [s["status"] for s in reported] == ["ok", "ok"]  # installed and migrated by the fixture already
    assert not list((tmp_path / "logs").glob("*.pid"))  # the notebook stopped what it started

    web_only = appscripts.script_commands(app, roles=("web",))[0]
    with pytest.raises(papermill.PapermillExecutionError, match="no worker is connected"):
        run_notebook("1.15", tmp_path, tag="-no-worker", app_commands=web_only, **params)
    apprun.stop_recorded(tmp_path / "logs")  # what the failed notebook's kernel left (atexit did it already)
    assert health.probe(url(port), timeout=2).answered is False


def test_the_web_process_alone_fails_the_job_check_and_answers_503_naming_what_is_down(
    services: ServicesEnv, app: appscripts.AppScripts, tmp_path: Path
) -> None:
    """Last in this module: it stops Redis, then PostgreSQL (and starts each again); one web process."""
    port = free_port()
    web_only = appscripts.script_commands(app, roles=("web",))
    with apprun.running(services.app_dir, web_only, url(port), timeout=180, logs=tmp_path):
        with verify("health") as check:  # the web side alone is healthy...
            health.check_health(check, url(port))
        outcome = jobs.enqueue_and_wait(services.redis_url(), "jobs", timeout=3)
        # ...but nobody processes the job: the job check fails, and so does the read-back
        assert outcome.state == "waiting" and outcome.workers == 0
        with (
            pytest.raises(VerificationFailed, match="no worker is connected to queue 'jobs'"),
            verify("job") as check,
        ):
            jobs.check_job(check, outcome)
        with pytest.raises(VerificationFailed, match="did not complete"), verify("read back") as check:
            jobs.check_read_back(check, services.database_url(), outcome)
        # the unprocessed job was removed, so a worker started later does not run it by surprise
        assert not redis.Redis.from_url(services.redis_url()).exists(f"bull:jobs:{outcome.job_id}")

        for service, part, other in (("redis", "redis", "database"), ("postgres", "database", "redis")):
            services.compose("stop", service, check=True)
            try:
                result = health.probe(url(port), timeout=15)
                assert result.status_code == 503, result.summary()
                assert "error" in result.part(part) and result.connected(other), result.body
                failing = pytest.raises(VerificationFailed, match=f"the app reports {part} ok")
                with failing, verify("health") as check:
                    health.check_health(check, url(port), timeout=15)
            finally:
                services.compose("start", service, check=True)
            assert health.wait_healthy(url(port), timeout=60).ok  # back once it is back
