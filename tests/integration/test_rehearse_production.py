"""Tasks 2.14 to 2.18 rehearsed on top of 2.5 to 2.8, with real "production" containers.

The droplet container gets the host's Docker socket (the droplet "has Docker"), so the Coolify stand-in in it
starts real PostgreSQL/Redis stand-in containers (2.8) and the sample app image (2.17) on a Docker network;
2.18 probes the published web port, and sends a BullMQ job through an SSH tunnel to production Redis.
Twice: the second run changes nothing. Then the worker is stopped and 2.18 must fail.
"""

from __future__ import annotations

import subprocess
from typing import Any

import papermill
import pytest

from tests.integration.test_rehearse_coolify_notebooks import (  # noqa: F401  (the fixture)
    _named_values,
    add_sudo_user,
    checks,
    droplet,
    run,
    standin_log,
    step_statuses,
)

pytestmark = [
    pytest.mark.engine,
    pytest.mark.xfail(
        strict=True,
        reason="work in progress: with the Docker socket mounted, task 2.8's databases stay 'exited' (the "
        "stand-in's runtime inside the droplet does not start them yet; see the phase-2 delivery report)",
    ),
]
CHAIN = ("2.5", "2.6", "2.7", "2.8", "2.14", "2.15", "2.16", "2.17", "2.18")


@pytest.fixture(autouse=True)
def production_env(monkeypatch: pytest.MonkeyPatch) -> None:
    if subprocess.run(
        ["docker", "image", "inspect", "runbook-standin/app:latest"], capture_output=True
    ).returncode:
        pytest.skip("runbook-standin/app:latest is missing: scripts/standins/build.sh app")
    monkeypatch.setenv("RUNBOOK_DROPLET_DOCKER_SOCKET", "1")
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/demo-app")
    monkeypatch.setenv("RUNBOOK_CHECK_GITHUB", "0")  # the GitHub stand-in is not part of this test
    for name in ("GITHUB_TOKEN", "APP_SECRET", "RUNBOOK_FINGERPRINT_SECRET", "RUNBOOK_DOMAIN"):
        monkeypatch.delenv(name, raising=False)


def test_2_14_to_2_18_twice_then_a_stopped_worker_fails(droplet: dict[str, Any]) -> None:  # noqa: F811
    tmp = droplet["tmp"]
    add_sudo_user(droplet)
    first = {t: run(t, tmp / f"{t}-first.ipynb") for t in CHAIN}
    for task, path in first.items():
        assert [c["name"] for c in checks(path) if not c["ok"]] == [], task
    assert step_statuses(first["2.14"]) == ["skipped", "changed"]  # GHCR login skipped in rehearsal
    assert "changed" in step_statuses(first["2.17"])
    url = __import__("json").loads((tmp / "state" / "phase2.json").read_text())["coolify"]["url"]

    before = len(standin_log(url))
    second = {t: run(t, tmp / f"{t}-second.ipynb") for t in CHAIN}
    for task, path in second.items():
        assert [c["name"] for c in checks(path) if not c["ok"]] == [], task
        assert set(step_statuses(path)) <= {"ok", "skipped"}, (task, step_statuses(path))
    assert [e for e in standin_log(url)[before:] if e["method"] != "GET" or "/deploy" in e["path"]] == []

    for executed in tmp.glob("*.ipynb"):
        text = executed.read_text()
        assert [n for n, v in _named_values().items() if v in text] == [], executed.name

    import json

    worker = json.loads((tmp / "state" / "phase2.json").read_text())["applications"]["worker"]["uuid"]
    subprocess.run(["docker", "stop", worker], capture_output=True, check=True)
    with pytest.raises(papermill.PapermillExecutionError, match="worker"):
        run("2.18", tmp / "2.18-stopped.ipynb")
