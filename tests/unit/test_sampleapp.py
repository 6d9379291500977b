"""helpers.runner.sampleapp: the working copy is made once, committed, and never overwritten."""

from __future__ import annotations

import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from dotenv import dotenv_values

from helpers.app import appscripts
from helpers.runner import sampleapp


@pytest.fixture
def source(tmp_path: Path) -> Path:
    src = tmp_path / "fixture"
    (src / "apps" / "web").mkdir(parents=True)
    (src / "package.json").write_text('{"name": "app"}\n')
    (src / "apps" / "web" / "page.tsx").write_text("export default 1\n")
    (src / "apps" / "web" / ".next").mkdir()  # a build of the fixture must not be copied either
    (src / "apps" / "web" / ".next" / "x.js").write_text("")
    (src / ".env").write_text("SECRET=1\n")  # a developer's local file must not be copied
    (src / "node_modules").mkdir()
    (src / "node_modules" / "x.js").write_text("")
    return src


def git(path: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=path, check=True, capture_output=True, text=True).stdout.strip()


def test_prepare_copies_once_and_commits_a_baseline(source: Path, tmp_path: Path) -> None:
    dest = tmp_path / "work" / "sample-app"
    path, created = sampleapp.prepare(dest, source)
    assert created and path == dest.resolve()
    assert (dest / "apps" / "web" / "page.tsx").is_file() and not (dest / "apps" / "web" / ".next").exists()
    assert not (dest / ".env").exists() and not (dest / "node_modules").exists()
    assert git(dest, "status", "--porcelain") == ""
    assert git(dest, "log", "--format=%s") == sampleapp.BASELINE_MESSAGE.format(source=source)
    assert git(dest, "config", "user.email") == sampleapp.IDENTITY["user.email"]

    (dest / "package.json").write_text('{"name": "changed by phase 1"}\n')
    again, created_again = sampleapp.prepare(dest, source)
    assert again == path and not created_again
    assert "changed by phase 1" in (dest / "package.json").read_text()  # left alone


def test_prepare_refuses_a_folder_that_is_not_its_copy(source: Path, tmp_path: Path) -> None:
    (tmp_path / "busy").mkdir()
    with pytest.raises(sampleapp.SampleAppError, match="not a git repository"):
        sampleapp.prepare(tmp_path / "busy", source)
    with pytest.raises(sampleapp.SampleAppError, match=r"no package\.json"):
        sampleapp.prepare(tmp_path / "other", tmp_path / "empty")


def test_environment_points_phase1_at_the_copy_and_the_shared_pnpm_store(tmp_path: Path) -> None:
    env = sampleapp.environment(tmp_path, port=4123)
    assert env == {
        "RUNBOOK_APP_DIR": str(tmp_path),
        "RUNBOOK_HEALTH_URL": "http://localhost:4123/api/health",
        "npm_config_store_dir": str(sampleapp.PNPM_STORE),
    }
    assert sampleapp.PNPM_STORE.is_relative_to(sampleapp.PROJECT_ROOT / ".work")  # git-ignored
    assert sampleapp.environment(tmp_path, allow_commit=True)["RUNBOOK_ALLOW_COMMIT"] == "1"


def test_cli_prints_shell_assignments(source: Path, tmp_path: Path) -> None:
    dest = tmp_path / "copy"
    args = ["prepare", "--dest", str(dest), "--source", str(source), "--export", "--port", "4555"]
    proc = subprocess.run(
        [sys.executable, "-m", "helpers.runner.sampleapp", *args], capture_output=True, text=True, check=True
    )
    lines = proc.stdout.splitlines()
    assert lines[0] == f"export RUNBOOK_APP_DIR={shlex.quote(str(dest.resolve()))}"
    assert lines[1] == "export RUNBOOK_HEALTH_URL=http://localhost:4555/api/health"
    assert lines[2] == f"export npm_config_store_dir={shlex.quote(str(sampleapp.PNPM_STORE))}"
    assert not any("RUNBOOK_ALLOW_COMMIT" in line for line in lines)  # only when asked
    assert "created" in proc.stderr
    assert (dest / ".env").is_file()
    script = f'{proc.stdout}\necho "$RUNBOOK_HEALTH_URL"'
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "http://localhost:4555/api/health"
    again = subprocess.run(
        [sys.executable, "-m", "helpers.runner.sampleapp", *args], capture_output=True, text=True, check=True
    )
    assert again.stdout == proc.stdout and "kept the existing" in again.stderr
    allowed = subprocess.run(
        [sys.executable, "-m", "helpers.runner.sampleapp", *args, "--allow-commit"],
        capture_output=True,
        text=True,
    )
    assert "export RUNBOOK_ALLOW_COMMIT=1" in allowed.stdout.splitlines()


def test_cli_reports_a_bad_destination(tmp_path: Path) -> None:
    (tmp_path / "busy").mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "helpers.runner.sampleapp", "prepare", "--dest", str(tmp_path / "busy")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "not a git repository" in proc.stderr


def test_local_env_points_at_the_local_services_and_is_stable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POSTGRES_PASSWORD", "p@ss word")
    for key in ("POSTGRES_USER", "POSTGRES_DB", "POSTGRES_PORT", "REDIS_PORT"):
        monkeypatch.delenv(key, raising=False)
    (tmp_path / ".env.example").write_text(
        "# comment kept\nDATABASE_URL=postgresql://postgres:postgres@192.168.64.5:5432/app\n"
        "REDIS_URL=redis://192.168.64.5:6379\nQUEUE_NAME=jobs\n"
    )
    env = sampleapp.write_local_env(tmp_path, postgres_port=15432)
    values = dotenv_values(env)
    assert values["DATABASE_URL"] == "postgresql://postgres:p%40ss%20word@localhost:15432/app"
    assert values["REDIS_URL"] == "redis://localhost:6379"
    assert "192.168.64" not in env.read_text() and oct(env.stat().st_mode & 0o777) == "0o600"
    before = env.read_text()
    sampleapp.write_local_env(tmp_path, postgres_port=15432)
    assert env.read_text() == before
    monkeypatch.setenv("REDIS_PORT", "16379")
    sampleapp.write_local_env(tmp_path, postgres_port=15432)
    assert dotenv_values(env)["REDIS_URL"] == "redis://localhost:16379"
    env.write_text("QUEUE_NAME=mine\nREDIS_URL=redis://localhost:16379\n")  # a developer's own .env
    sampleapp.write_local_env(tmp_path, postgres_port=15432)
    assert dotenv_values(env)["QUEUE_NAME"] == "mine" and "DATABASE_URL=postgresql://" in env.read_text()


def test_the_fixture_is_the_real_app_without_a_stand_in() -> None:
    fixture = sampleapp.FIXTURE
    assert not (fixture / "stub").exists() and not list(fixture.rglob("*.py"))
    app = appscripts.app_scripts(fixture)
    assert (app.web, app.worker, app.migrate) == ("dev", "worker", "db:migrate")
    assert (fixture / "pnpm-lock.yaml").is_file() and (fixture / "pnpm-workspace.yaml").is_file()


def test_image_builds_take_turns_and_say_how_long_they_waited(tmp_path: Path) -> None:
    lock = tmp_path / "build.lock"
    holding, released = threading.Event(), threading.Event()

    def first_build() -> None:
        with sampleapp.build_turn(lock) as waited:
            assert waited < 1
            holding.set()
            time.sleep(0.5)
            released.set()  # letting go now

    thread = threading.Thread(target=first_build)
    thread.start()
    assert holding.wait(10)
    with sampleapp.build_turn(lock) as waited:
        assert released.is_set()  # only once the first build let go
    thread.join()
    assert waited >= 0.3
    with sampleapp.build_turn(lock) as waited:  # nobody building: at once
        assert waited < 0.3
