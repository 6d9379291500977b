"""The real phase 1 through the ``runbook`` command, against the real Docker engine.

On a disposable sample-app copy (:class:`helpers.runner.sampleapp.Sandbox`: compose project
``rb-runner-<hex>``, free ports, the stand-in service images when the official ones are absent,
the stand-in app), with a non-default PostgreSQL password and fake cloud tokens in the environment:

1. ``runbook plan phase1`` changes nothing: the app repository's files and the Docker objects of
   the sandbox's compose project (containers, volumes, networks) are the same before and after;
2. ``runbook run phase1`` with the Redis port taken by another process stops at 1.4 (the chain's
   first failure), with a summary naming the task, its cell and the port;
3. the port is freed (the fix) and ``runbook resume`` finishes the phase: fifteen tasks passed,
   the ones before 1.4 not run again;
4. no secret value appears in any file of the run folder;
5. a second ``runbook run phase1`` passes and changes nothing (every step ``ok`` or ``skipped``).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from testsupport import runbook_cli

from helpers.core import tasks
from helpers.runner import sampleapp

pytestmark = [pytest.mark.engine, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "pg-" + secrets.token_hex(12)
TOKENS = {
    "DIGITALOCEAN_TOKEN": "dop_v1_" + secrets.token_hex(32),
    "COOLIFY_API_TOKEN": "3|" + secrets.token_urlsafe(30),
    "GITHUB_TOKEN": "ghp_" + secrets.token_hex(18),
}


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[sampleapp.Sandbox]:
    monkeypatch.setenv("POSTGRES_PASSWORD", PASSWORD)  # written into the copy's .env, used by compose
    box = sampleapp.Sandbox.create(f"rb-runner-{uuid.uuid4().hex[:8]}")
    try:
        yield box
    finally:
        problems = box.teardown()
        assert not problems, problems


def environment(box: sampleapp.Sandbox, runs: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNBOOK_")}
    env.update(box.env)
    env.update(TOKENS)
    env.update(
        POSTGRES_PASSWORD=PASSWORD,
        RUNBOOK_RUNS_DIR=str(runs),
        COLUMNS="160",
        RUNBOOK_SECRETS_FILE=str(runs.parent / "secrets.env"),
    )
    env.pop("RUNBOOK_ALLOW_COMMIT", None)  # the runner passes commit=true as a parameter instead
    return env


def runbook(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return runbook_cli(args, env, timeout=600)


def app_files(app: Path) -> dict[str, str]:
    return {
        str(p.relative_to(app)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(app.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(app).parts
    }


def docker_objects(project: str) -> dict[str, list[str]]:
    label = f"label=com.docker.compose.project={project}"
    out = {}
    for kind, cmd in (
        ("containers", ["docker", "ps", "-a", "--filter", label, "--format", "{{.Names}} {{.State}}"]),
        ("volumes", ["docker", "volume", "ls", "--filter", label, "--format", "{{.Name}}"]),
        ("networks", ["docker", "network", "ls", "--filter", label, "--format", "{{.Name}}"]),
    ):
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
        out[kind] = sorted(proc.stdout.split("\n"))
    return out


def ledger_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "ledger.json").read_text())


def test_phase1_plan_run_resume_and_rerun_through_the_cli(sandbox: sampleapp.Sandbox, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    env = environment(sandbox, runs)
    phase1 = [t.id for t in tasks.order("phase1")]

    # 1. plan changes nothing
    files, objects = app_files(sandbox.app_dir), docker_objects(sandbox.project)
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=sandbox.app_dir, capture_output=True, text=True
    ).stdout
    proc = runbook(["plan", "phase1", "-p", "commit", "true"], env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "would change" in proc.stdout
    assert app_files(sandbox.app_dir) == files
    assert docker_objects(sandbox.project) == objects
    assert (
        subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=sandbox.app_dir, capture_output=True, text=True
        ).stdout
        == head
    )

    # 2. a broken step: the Redis port is taken
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", int(sandbox.env["REDIS_PORT"])))
    blocker.listen()
    try:
        proc = runbook(["run", "phase1", "-p", "commit", "true"], env)
    finally:
        blocker.close()
    assert proc.returncode == 1, proc.stdout + proc.stderr
    run_dir = next(p for p in runs.iterdir() if p.is_dir() and not p.name.endswith("-plan"))
    ledger = ledger_of(run_dir)
    status = {t["id"]: t["status"] for t in ledger["tasks"]}
    assert status["1.4"] == "failed", status
    before = phase1[: phase1.index("1.4")]
    assert all(status[i] == "passed" for i in before), status
    assert all(status[i] == "not-run" for i in phase1[phase1.index("1.4") + 1 :]), status
    summary = (run_dir / "summary.md").read_text()
    assert "1.4 Create and start the services: failed" in summary and "In [" in summary
    assert sandbox.env["REDIS_PORT"] in summary and "docs/troubleshooting.md#task-1-4" in summary
    started = {t["id"]: t["started"] for t in ledger["tasks"]}

    # 3. the fix, then resume
    proc = runbook(["resume"], env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ledger = ledger_of(run_dir)
    assert ledger["status"] == "passed"
    assert [t["id"] for t in ledger["tasks"]] == phase1 and {t["status"] for t in ledger["tasks"]} == {
        "passed"
    }
    assert all(t["started"] == started[t["id"]] for t in ledger["tasks"] if t["id"] in before)
    for name in ("ledger.json", "summary.md", "summary.html", "runner.log"):
        assert (run_dir / name).is_file()
    assert len(list(run_dir.glob("1.*.ipynb"))) == 16  # fifteen, plus 1.4's failed first attempt

    # 4. no secret in the run folder
    for path in run_dir.rglob("*"):
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            for value in (PASSWORD, *TOKENS.values()):
                assert value not in text, f"a secret value is in {path.name}"

    # 5. a second run changes nothing
    proc = runbook(["run", "phase1", "-p", "commit", "true"], env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    second = max(
        (p for p in runs.iterdir() if p.is_dir() and p != run_dir and not p.name.endswith("-plan")),
        key=lambda p: p.name,
    )
    changed = {t["id"]: t["steps"] for t in ledger_of(second)["tasks"] if set(t["steps"]) - {"ok", "skipped"}}
    assert not changed, changed
