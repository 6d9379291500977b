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


@pytest.mark.parametrize(
    ("url", "port"),
    [("http://localhost:4123/api/health", 4123), ("http://x/h", 80), ("https://x/h", 443)],
)
def test_port_of(url: str, port: int) -> None:
    assert apprun.port_of(url) == port
