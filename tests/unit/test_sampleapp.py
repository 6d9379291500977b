"""helpers.runner.sampleapp: the working copy is made once, committed, and never overwritten."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from dotenv import dotenv_values

from helpers.runner import sampleapp
from helpers.services import apprun


@pytest.fixture
def source(tmp_path: Path) -> Path:
    src = tmp_path / "fixture"
    (src / "stub").mkdir(parents=True)
    (src / "package.json").write_text('{"name": "app"}\n')
    (src / "stub" / "web.py").write_text("print('web')\n")
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
    assert (dest / "stub" / "web.py").is_file()
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


def test_commands_round_trip_through_the_environment_variable(tmp_path: Path) -> None:
    env = sampleapp.environment(tmp_path, python="/opt/my python/bin/python", port=4123)
    assert env["RUNBOOK_APP_DIR"] == str(tmp_path)
    commands = apprun.parse_commands(env[apprun.ENV_COMMANDS])
    assert commands == [
        "'/opt/my python/bin/python' stub/web.py --port 4123",
        "'/opt/my python/bin/python' stub/worker.py",
    ]
    assert shlex.split(commands[0])[0] == "/opt/my python/bin/python"


def test_cli_prints_shell_assignments(source: Path, tmp_path: Path) -> None:
    dest = tmp_path / "copy"
    args = ["prepare", "--dest", str(dest), "--source", str(source), "--export", "--port", "4555"]
    proc = subprocess.run(
        [sys.executable, "-m", "helpers.runner.sampleapp", *args], capture_output=True, text=True, check=True
    )
    lines = proc.stdout.splitlines()
    assert lines[0] == f"export RUNBOOK_APP_DIR={shlex.quote(str(dest.resolve()))}"
    assert lines[1].startswith("export RUNBOOK_APP_COMMANDS=")
    assert lines[2] == "export RUNBOOK_HEALTH_URL=http://localhost:4555/api/health"
    assert not any("RUNBOOK_ALLOW_COMMIT" in line for line in lines)  # only when asked
    assert "created" in proc.stderr
    assert (dest / ".env").is_file()
    script = f'{proc.stdout}\necho "$RUNBOOK_APP_COMMANDS"'
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout
    assert apprun.parse_commands(out) == sampleapp.commands(sys.executable, 4555)
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


def test_the_real_fixture_carries_the_runnable_stand_in() -> None:
    stub = sampleapp.FIXTURE / "stub"
    assert {"web.py", "worker.py", "README.md"} <= {p.name for p in stub.iterdir()}
