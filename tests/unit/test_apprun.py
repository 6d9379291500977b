"""helpers.services.apprun with real processes: started in their own groups, logged, waited for, stopped."""

from __future__ import annotations

import os
import shlex
import socket
import sys
import time
from pathlib import Path

import psutil
import pytest

from helpers.services import apprun

HEALTHY_APP = """
import json, os, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"status": "ok", "database": "connected", "redis": "connected"}).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
print("web up", flush=True)
HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gone(pid: int) -> bool:
    try:
        proc = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return True
    return proc.status() == psutil.STATUS_ZOMBIE


@pytest.fixture
def app(tmp_path: Path) -> Path:
    (tmp_path / "web.py").write_text(HEALTHY_APP)
    return tmp_path


def py(script: str, *args: object) -> str:
    return " ".join(shlex.quote(str(a)) for a in (sys.executable, script, *args))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", []),
        ("   ", []),
        ("pnpm dev; pnpm worker", ["pnpm dev", "pnpm worker"]),
        ("pnpm dev\npnpm worker\n", ["pnpm dev", "pnpm worker"]),
        ('["pnpm dev", "node w.js --x"]', ["pnpm dev", "node w.js --x"]),
    ],
)
def test_parse_commands(text: str, expected: list[str]) -> None:
    assert apprun.parse_commands(text) == expected


@pytest.mark.parametrize("text", ["[1, 2]", "[not json"])
def test_parse_commands_rejects_bad_json(text: str) -> None:
    with pytest.raises(ValueError, match="JSON"):
        apprun.parse_commands(text)


def test_no_commands_starts_nothing(app: Path) -> None:
    run = apprun.start(app, [], "http://127.0.0.1:9/api/health")
    assert run.processes == [] and "already" in run.note


def test_starts_waits_logs_and_stops_the_whole_group(app: Path, tmp_path: Path) -> None:
    port = free_port()
    # the second command leaves a grandchild (sleep) in its group: stopping must end it too
    commands = [py("web.py", port), f"sleep 300 & echo worker up; {py('-c', 'import time; time.sleep(300)')}"]
    with apprun.running(app, commands, f"http://127.0.0.1:{port}/api/health", logs=tmp_path / "logs") as run:
        assert len(run.processes) == 2 and "reports ok" in run.note
        assert all(state == "running" for _, _, state, _ in run.rows())
        group = [p.pid for p in psutil.process_iter() if _pgid(p.pid) == run.processes[1].pid]
        assert len(group) >= 2
        deadline = time.monotonic() + 10
        while "worker up" not in run.processes[1].tail() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "worker up" in run.processes[1].tail()
        pidfiles = list((tmp_path / "logs").glob("*.pid"))
        assert len(pidfiles) == 2
    assert all(gone(pid) for pid in group)
    assert gone(run.processes[0].pid)
    assert not list((tmp_path / "logs").glob("*.pid"))
    assert "web up" in run.processes[0].log.read_text()


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def test_a_process_that_exits_fails_fast_with_its_log(app: Path, tmp_path: Path) -> None:
    port = free_port()
    started = time.monotonic()
    with pytest.raises(apprun.AppStartFailed, match="boom") as info:
        apprun.start(
            app,
            [py("-c", "print('boom'); raise SystemExit(3)")],
            f"http://127.0.0.1:{port}/api/health",
            timeout=60,
            logs=tmp_path,
        )
    assert time.monotonic() - started < 30
    assert "exited with code 3" in str(info.value)


def test_an_app_that_never_gets_healthy_is_stopped(app: Path, tmp_path: Path) -> None:
    port = free_port()
    with pytest.raises(apprun.AppStartFailed, match="did not become healthy"):
        apprun.start(
            app,
            [py("-c", "import time; time.sleep(300)")],
            f"http://127.0.0.1:{port}/api/health",
            timeout=2,
            logs=tmp_path,
        )
    pidfile = next(tmp_path.glob("*.log"))
    assert pidfile  # the log is kept for the reader
    assert not list(tmp_path.glob("*.pid"))


def test_already_healthy_app_is_not_started_twice(app: Path, tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/api/health"
    with apprun.running(app, [py("web.py", port)], url, logs=tmp_path / "a") as first:
        second = apprun.start(app, [py("web.py", port)], url, logs=tmp_path / "b")
        assert second.processes == [] and "already reports ok" in second.note
        assert first.processes[0].exited() is None


def test_stop_recorded_ends_what_a_dead_kernel_left(app: Path, tmp_path: Path) -> None:
    port = free_port()
    run = apprun.start(app, [py("web.py", port)], f"http://127.0.0.1:{port}/api/health", logs=tmp_path)
    pid = run.processes[0].pid
    stopped = apprun.stop_recorded(tmp_path)
    run.processes[0].popen.wait(timeout=15)
    assert stopped == [run.processes[0].command] and gone(pid)
    assert apprun.stop_recorded(tmp_path) == []


def test_stop_recorded_never_signals_a_foreign_process(tmp_path: Path) -> None:
    # a pid file pointing at our own process group, without the marker: must be left alone
    (tmp_path / "app-x.pid").write_text(f"{os.getpgid(0)}\nsomething\nnot-the-marker\n")
    assert apprun.stop_recorded(tmp_path) == []


def test_missing_app_dir_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="RUNBOOK_APP_DIR"):
        apprun.start(tmp_path / "nope", ["true"], "http://127.0.0.1:9/api/health")


# --------------------------------------------------------------------------- the app's own scripts

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "sample-app"


def write_app(root: Path, scripts: dict[str, str], indent: str = "\t", **extra: object) -> Path:
    import json

    root.mkdir(parents=True, exist_ok=True)
    (root / "package.json").write_text(json.dumps({"name": "x", **extra, "scripts": scripts}, indent=indent))
    return root


def test_the_sample_apps_scripts_and_package_manager() -> None:
    app = apprun.app_scripts(FIXTURE)
    assert (app.manager, app.manager_version) == ("pnpm", "9.15.9")
    assert (app.web, app.worker, app.migrate) == ("dev", "worker", "db:migrate")
    assert [row[0] for row in app.rows()] == list(apprun.ROLE_WHAT.values())


def test_scripts_named_otherwise_are_found_by_name_or_by_what_they_run(tmp_path: Path) -> None:
    named = write_app(
        tmp_path / "named",
        {"dev:web": "next dev", "dev:worker": "tsx w.ts", "db:push": "drizzle-kit push", "lint": "eslint ."},
    )
    (named / "yarn.lock").write_text("")
    app = apprun.app_scripts(named)
    assert (app.manager, app.manager_version) == ("yarn", "")
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
    app = apprun.app_scripts(by_command)
    assert (app.manager, app.manager_version) == ("pnpm", "9.15.9")
    assert (app.web, app.worker, app.migrate) == ("serve", "jobs", "schema")


def test_a_missing_script_is_named_with_what_the_app_has(tmp_path: Path) -> None:
    app = apprun.app_scripts(write_app(tmp_path, {"build": "next build", "start": "next start"}))
    assert (app.web, app.worker, app.migrate) == (None, None, None)
    with pytest.raises(apprun.MissingScript) as caught:
        apprun.script_commands(app)
    text = str(caught.value)
    assert (
        "the dev web process" in text and "the BullMQ worker" in text and "its scripts: build, start" in text
    )
    assert "app_commands" in text
    step = apprun.migrate(app, "postgresql://unused@localhost:1/x")
    assert step.status == "skipped" and "no migration script" in step.detail
    assert apprun.commands_for(app, "python web.py; python worker.py") == [
        "python web.py",
        "python worker.py",
    ]
    assert "none (tried dev" in app.rows()[0][1]


def test_no_or_broken_package_json_says_so(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="RUNBOOK_APP_DIR"):
        apprun.app_scripts(tmp_path)
    (tmp_path / "package.json").write_text("{nope")
    with pytest.raises(ValueError, match="not valid JSON"):
        apprun.app_scripts(tmp_path)


def fake_bin(folder: Path, *names: str) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_text("#!/bin/sh\nexit 0\n")
        (folder / name).chmod(0o755)
    return str(folder)


def test_the_package_manager_comes_from_path_else_from_npx_at_the_pinned_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = apprun.app_scripts(FIXTURE)
    monkeypatch.setenv("PATH", fake_bin(tmp_path / "a", "pnpm", "npx"))
    assert apprun.manager_command(app) == ["pnpm"]
    monkeypatch.setenv("PATH", fake_bin(tmp_path / "b", "npx"))
    assert apprun.manager_command(app) == ["npx", "--yes", "pnpm@9.15.9"]
    assert apprun.script_commands(app) == [
        "npx --yes pnpm@9.15.9 run dev",
        "npx --yes pnpm@9.15.9 run worker",
    ]
    assert apprun.install_command(app)[-3:] == ["install", "--prefer-offline", "--frozen-lockfile"]
    monkeypatch.setenv("PATH", fake_bin(tmp_path / "c"))
    with pytest.raises(FileNotFoundError, match="corepack enable"):
        apprun.manager_command(app)


def test_install_runs_only_when_node_modules_is_missing_or_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    copy = tmp_path / "app"
    shutil.copytree(FIXTURE, copy, ignore=shutil.ignore_patterns("node_modules", ".next"))
    monkeypatch.setenv("PATH", fake_bin(tmp_path / "bin", "pnpm") + os.pathsep + os.environ["PATH"])
    app = apprun.app_scripts(copy)
    planned = apprun.install_dependencies(app, dry_run=True)
    assert planned.status == "would change" and "node_modules is missing" in planned.detail
    assert "pnpm install --prefer-offline --frozen-lockfile" in planned.detail
    (copy / "node_modules").mkdir()
    kept = apprun.install_dependencies(app)
    assert kept.status == "ok" and "install_dependencies=True" in kept.detail
    forced = apprun.install_dependencies(app, allow=True)  # the fake pnpm exits 0
    assert forced.status == "changed" and "reinstall, as asked" in forced.detail
    (tmp_path / "bin" / "pnpm").write_text(
        "#!/bin/sh\necho 'ERR_PNPM_OUTDATED_LOCKFILE lockfile' >&2\nexit 1\n"
    )
    broken = apprun.install_dependencies(app, allow=True)
    assert broken.status == "failed" and "ERR_PNPM_OUTDATED_LOCKFILE" in broken.detail
    assert "commit the lockfile" in broken.detail


@pytest.mark.parametrize(
    ("url", "port"),
    [("http://localhost:4123/api/health", 4123), ("http://x/h", 80), ("https://x/h", 443)],
)
def test_port_of(url: str, port: int) -> None:
    assert apprun.port_of(url) == port
