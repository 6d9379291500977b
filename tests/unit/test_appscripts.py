"""helpers.app.appscripts: task 1.15's commands from the app profile's picks, install and migrate."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from helpers.app import appscripts

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "sample-app"


def write_app(root: Path, scripts: dict[str, str], indent: str = "\t", **extra: object) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "package.json").write_text(json.dumps({"name": "x", **extra, "scripts": scripts}, indent=indent))
    return root


def fake_bin(folder: Path, *names: str) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_text("#!/bin/sh\nexit 0\n")
        (folder / name).chmod(0o755)
    return str(folder)


def test_the_sample_apps_scripts_come_from_its_profile() -> None:
    app = appscripts.app_scripts(FIXTURE)
    assert (app.manager, app.manager_version) == ("pnpm", "9.15.9")
    assert (app.web, app.worker, app.migrate) == ("dev", "worker", "db:migrate")
    assert [row[0] for row in app.rows()] == list(appscripts.ROLE_WHAT.values())
    # why each script: what the profile followed it to (the workspace package's command)
    assert [row[1] for row in app.rows()] == ["`pnpm dev`", "`pnpm worker`", "`pnpm db:migrate`"]
    assert "next dev" in app.rows()[0][2] and "drizzle-kit migrate" in app.rows()[2][2]
    assert app.pick("web") == app.profile.script_for("dev_web")  # the profile's answer, not a second one


def test_scripts_named_otherwise_are_found_by_name_or_by_what_they_run(tmp_path: Path) -> None:
    named = write_app(
        tmp_path / "named",
        {"dev:web": "next dev", "dev:worker": "tsx w.ts", "db:push": "drizzle-kit push", "lint": "eslint ."},
    )
    (named / "yarn.lock").write_text("")
    app = appscripts.app_scripts(named)
    assert (app.manager, app.manager_version) == ("yarn", "")
    # no migrations: the schema push takes their place
    assert (app.web, app.worker, app.migrate) == ("dev:web", "dev:worker", "db:push")
    by_command = write_app(
        tmp_path / "cmd",
        {
            "vm:worker": "multipass exec vm -- node worker.js",  # an old VM script is never the worker
            "serve": "next dev --port 4000",
            "jobs": "tsx src/worker/main.ts",
            "schema": "drizzle-kit migrate --config db.config.ts",
        },
        packageManager="pnpm@9.15.9+sha512.abc",
    )
    app = appscripts.app_scripts(by_command)
    assert (app.manager, app.manager_version) == ("pnpm", "9.15.9")
    assert (app.web, app.worker, app.migrate) == ("serve", "jobs", "schema")


def test_a_script_that_starts_web_and_worker_is_started_once(tmp_path: Path) -> None:
    both = write_app(
        tmp_path,
        {"dev": 'concurrently "next dev" "tsx src/worker/index.ts"', "db:migrate": "drizzle-kit migrate"},
    )
    app = appscripts.app_scripts(both)
    assert (app.web, app.worker) == ("dev", "dev")
    assert appscripts.script_commands(app) == ["npm run dev"]


def test_a_missing_script_is_named_with_what_the_app_has(tmp_path: Path) -> None:
    app = appscripts.app_scripts(write_app(tmp_path, {"build": "next build", "start": "next start"}))
    assert (app.web, app.worker, app.migrate) == (None, None, None)
    with pytest.raises(appscripts.MissingScript) as caught:
        appscripts.script_commands(app)
    text = str(caught.value)
    assert "the dev web process" in text and "the BullMQ worker" in text
    assert "no script starts the worker for development" in text and "`build`, `start`" in text
    assert "app_commands" in text
    step = appscripts.migrate(app, "postgresql://unused@localhost:1/x")
    assert step.status == "skipped" and "no migration script" in step.detail
    assert appscripts.commands_for(app, "python web.py; python worker.py") == [
        "python web.py",
        "python worker.py",
    ]
    assert app.rows()[0][1] == "none" and "no script starts the web app" in app.rows()[0][2]


def test_no_or_broken_package_json_says_so(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="RUNBOOK_APP_DIR"):
        appscripts.app_scripts(tmp_path)
    (tmp_path / "package.json").write_text("{nope")
    with pytest.raises(ValueError, match="not valid JSON"):
        appscripts.app_scripts(tmp_path)


def test_the_package_manager_comes_from_path_else_from_npx_at_the_pinned_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = appscripts.app_scripts(FIXTURE)
    monkeypatch.setenv("PATH", fake_bin(tmp_path / "a", "pnpm", "npx"))
    assert appscripts.manager_command(app) == ["pnpm"]
    assert appscripts.script_commands(app) == ["pnpm dev", "pnpm worker"]
    monkeypatch.setenv("PATH", fake_bin(tmp_path / "b", "npx"))
    assert appscripts.manager_command(app) == ["npx", "--yes", "pnpm@9.15.9"]
    assert appscripts.script_commands(app) == ["npx --yes pnpm@9.15.9 dev", "npx --yes pnpm@9.15.9 worker"]
    assert appscripts.install_command(app)[-3:] == ["install", "--prefer-offline", "--frozen-lockfile"]
    monkeypatch.setenv("PATH", fake_bin(tmp_path / "c"))
    with pytest.raises(FileNotFoundError, match="corepack enable"):
        appscripts.manager_command(app)


def test_install_runs_only_when_node_modules_is_missing_or_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = tmp_path / "app"
    shutil.copytree(FIXTURE, copy, ignore=shutil.ignore_patterns("node_modules", ".next"))
    monkeypatch.setenv("PATH", fake_bin(tmp_path / "bin", "pnpm") + os.pathsep + os.environ["PATH"])
    app = appscripts.app_scripts(copy)
    planned = appscripts.install_dependencies(app, dry_run=True)
    assert planned.status == "would change" and "node_modules is missing" in planned.detail
    assert "pnpm install --prefer-offline --frozen-lockfile" in planned.detail
    (copy / "node_modules").mkdir()
    kept = appscripts.install_dependencies(app)
    assert kept.status == "ok" and "install_dependencies=True" in kept.detail
    forced = appscripts.install_dependencies(app, allow=True)  # the fake pnpm exits 0
    assert forced.status == "changed" and "reinstall, as asked" in forced.detail
    (tmp_path / "bin" / "pnpm").write_text(
        "#!/bin/sh\necho 'ERR_PNPM_OUTDATED_LOCKFILE lockfile' >&2\nexit 1\n"
    )
    broken = appscripts.install_dependencies(app, allow=True)
    assert broken.status == "failed" and "ERR_PNPM_OUTDATED_LOCKFILE" in broken.detail
    assert "commit the lockfile" in broken.detail


def test_a_failed_command_says_what_ran_its_exit_code_the_next_step_and_its_output(tmp_path):
    import subprocess

    from helpers.app import appscripts

    proc = appscripts._run(
        ["sh", "-c", "echo fetched; echo 'ERR_PNPM_OUTDATED_LOCKFILE' >&2; exit 3"], tmp_path, {}, 10
    )
    result = appscripts._command_failed("install", proc, "update the lockfile")
    assert result.status == "failed"
    assert result.detail.startswith("`sh -c 'echo fetched; echo '\"'\"'ERR_PNPM_OUTDATED_LOCKFILE")
    assert "exited 3; update the lockfile:\nfetched\nERR_PNPM_OUTDATED_LOCKFILE" in result.detail
    assert isinstance(proc, subprocess.CompletedProcess)
