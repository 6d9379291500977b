"""Tasks 2.14 to 2.18 rehearsed on top of 2.5 to 2.8, with real "production" containers.

The droplet container gets the host's Docker socket (the droplet "has Docker"), so the Coolify stand-in in it
starts real PostgreSQL/Redis stand-in containers (2.8) and pulls the sample app's own images (2.17) from a
local registry, where the deploy workflow's build job pushed them (tests/deliverysupport.py); 2.18 probes the
published web port, sends a BullMQ job through an SSH tunnel to production Redis, compares the digests the
registry serves with those the containers run, and reads the last Actions run from the GitHub stand-in.
Twice: the second run changes nothing. Then the worker is stopped, the last run fails, a new image is pushed
without a deployment: each time 2.18 must fail, loudly; teardown leaves no container behind.
"""

from __future__ import annotations

import json
import secrets as stdlib_secrets
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import papermill
import pytest
from deliverysupport import REPOSITORY, Delivered, delivered

import tests.integration.test_rehearse_coolify_notebooks as coolify_notebooks
from helpers.app import workflow
from helpers.rehearse.github import GitHubStandIn
from tests.integration.test_rehearse_coolify_notebooks import (  # noqa: F401  (the fixture)
    _named_values,
    add_sudo_user,
    checks,
    droplet,
    run,
    standin_log,
    step_statuses,
)

pytestmark = [pytest.mark.engine, pytest.mark.slow]
CHAIN = ("2.5", "2.6", "2.7", "2.8", "2.14", "2.15", "2.16", "2.17", "2.18")
REPO = REPOSITORY
RESOURCE_LABEL = "runbook.coolify.resource"


@pytest.fixture(scope="module")
def delivery(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Delivered]:
    """The sample app's images, built and pushed by its workflow's build job to a local registry."""
    with delivered(tmp_path_factory.mktemp("delivery")) as found:
        yield found


@pytest.fixture(autouse=True)
def production_env(monkeypatch: pytest.MonkeyPatch, delivery: Delivered) -> Iterator[GitHubStandIn]:
    """The Docker socket for the droplet, the registry, a GitHub stand-in whose deploy workflow ran once."""
    monkeypatch.setenv("RUNBOOK_IMAGE_REGISTRY", delivery.registry)
    monkeypatch.setattr(coolify_notebooks, "PREFIX", "rb-prod2-")  # containers: rb-droplet-rb-prod2-*
    monkeypatch.setenv("RUNBOOK_DROPLET_DOCKER_SOCKET", "1")
    for name in ("APP_SECRET", "RUNBOOK_FINGERPRINT_SECRET", "RUNBOOK_DOMAIN", "RUNBOOK_CHECK_GITHUB"):
        monkeypatch.delenv(name, raising=False)
    token = "ghp_" + stdlib_secrets.token_urlsafe(27)
    monkeypatch.setenv("GITHUB_TOKEN", token)
    monkeypatch.setenv("GITHUB_REPOSITORY", REPO)
    # no deploy emulation: 2.17 deploys through Coolify's webhook itself; the run only has to exist and pass
    with GitHubStandIn([token], repositories=[REPO], run_after_polls=0, emulate_deploy=False) as github:
        monkeypatch.setenv("GITHUB_API_URL", github.url)
        github.set_workflows(
            REPO, {f".github/workflows/{workflow.WORKFLOW_FILE}": workflow.render(workflow.WorkflowSpec())}
        )
        [pushed] = github.push(REPO, "main")
        assert pushed.conclusion == "success"
        yield github


def _coolify_containers(name: str) -> list[str]:
    out = subprocess.run(
        ["docker", "ps", "-a", "--filter", f"label={RESOURCE_LABEL}={name}", "--format", "{{.Names}}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.split()


def test_2_14_to_2_18_twice_then_a_stopped_worker_fails(
    droplet: dict[str, Any],  # noqa: F811
    production_env: GitHubStandIn,
    delivery: Delivered,
) -> None:
    from helpers.core import state
    from helpers.rehearse import droplet as droplets

    tmp = droplet["tmp"]
    assert droplet["name"].startswith("rb-prod2-")
    add_sudo_user(droplet)
    state.update("phase2", images=workflow.images_record(REPO, workflow.WorkflowSpec()))  # as 2.9 records
    first = {t: run(t, tmp / f"{t}-first.ipynb") for t in CHAIN}
    for task, path in first.items():
        assert [c["name"] for c in checks(path) if not c["ok"]] == [], task
    assert step_statuses(first["2.14"]) == ["skipped", "changed"]  # public images: no GHCR login
    assert "changed" in step_statuses(first["2.17"])
    record = json.loads((tmp / "state" / "phase2.json").read_text())
    url = record["coolify"]["url"]
    apps, dbs = record["applications"], record["coolify_databases"]

    # real containers: both databases healthy, web and worker from the app's own images, pulled
    names = set(_coolify_containers(droplet["name"]))
    wanted = {apps["web"]["uuid"], apps["worker"]["uuid"], dbs["postgresql"]["uuid"], dbs["redis"]["uuid"]}
    assert wanted <= names, (wanted, names)
    for uuid in (dbs["postgresql"]["uuid"], dbs["redis"]["uuid"], apps["web"]["uuid"]):
        health = subprocess.run(
            ["docker", "inspect", "-f", "{{.State.Health.Status}}", uuid], capture_output=True, text=True
        )
        assert health.stdout.strip() == "healthy", uuid
    # the web app answers on 127.0.0.1 with both backends connected; the worker publishes nothing
    port = subprocess.run(
        ["docker", "port", apps["web"]["uuid"], "3000/tcp"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert port.startswith("127.0.0.1:"), port
    body = httpx.get(f"http://{port}/api/health", timeout=10).json()
    assert body == {"db": "ok", "redis": "ok"}, body  # the sample app's own health answer
    worker_ports = subprocess.run(
        ["docker", "port", apps["worker"]["uuid"]], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert worker_ports == ""
    text = first["2.18"].read_text()
    assert "BullMQ job completed" in text and "last GitHub Actions run on main succeeded" in text
    digests = [c for c in checks(first["2.18"]) if "runs the image pushed as" in c["name"]]
    assert [c["ok"] for c in digests] == [True, True], digests
    for role in ("web", "worker"):  # from outside: the container's image is the pushed digest
        image = subprocess.run(
            ["docker", "inspect", "-f", "{{.Image}}", apps[role]["uuid"]], capture_output=True, text=True
        ).stdout.strip()
        repo_digests = subprocess.run(
            ["docker", "image", "inspect", "-f", "{{json .RepoDigests}}", image],
            capture_output=True,
            text=True,
        ).stdout
        assert f"{delivery.images[role]}@{delivery.digests[role]}" in repo_digests, (role, repo_digests)

    before = len(standin_log(url))
    github_before = len(production_env.mutating_requests())
    second = {t: run(t, tmp / f"{t}-second.ipynb") for t in CHAIN}
    for task, path in second.items():
        assert [c["name"] for c in checks(path) if not c["ok"]] == [], task
        assert set(step_statuses(path)) <= {"ok", "skipped"}, (task, step_statuses(path))
    changes = [(e["method"], e["path"]) for e in standin_log(url)[before:] if e["method"] != "GET"]
    assert changes == []  # the second run created, set and deployed nothing
    assert production_env.mutating_requests()[github_before:] == []

    for executed in tmp.glob("*.ipynb"):
        text = executed.read_text()
        assert [n for n, v in _named_values().items() if v in text] == [], executed.name

    # a push's deploy (what the workflow does through the webhook) is still running: 2.18 waits for it
    hook = httpx.post(
        f"{url}/api/v1/deploy",
        params={"uuid": apps["web"]["uuid"], "force": "true"},
        headers={"Authorization": f"Bearer {droplet['token']}"},
        timeout=30,
    )
    assert hook.status_code == 200, hook.text
    during = run("2.18", tmp / "2.18-during-deploy.ipynb")
    assert [c["name"] for c in checks(during) if not c["ok"]] == []
    assert any(c["name"] == "latest web deployment finished" for c in checks(during))

    # the production worker stopped: 2.18 fails loudly, naming it
    subprocess.run(["docker", "stop", apps["worker"]["uuid"]], capture_output=True, check=True)
    with pytest.raises(papermill.PapermillExecutionError, match="a worker consumes queue 'jobs'"):
        run("2.18", tmp / "2.18-stopped.ipynb")

    # a failed Actions run on main fails 2.18 too (with the worker running again)
    subprocess.run(["docker", "start", apps["worker"]["uuid"]], capture_output=True, check=True)
    production_env.forced_conclusion = "failure"
    production_env.push(REPO, "main")
    with pytest.raises(papermill.PapermillExecutionError, match=r"GitHub Actions run .*completed/failure"):
        run("2.18", tmp / "2.18-failed-run.ipynb")

    # a new image pushed as main, not deployed: 2.18 sees that web runs another digest than the registry's
    production_env.forced_conclusion = None
    production_env.push(REPO, "main")
    other = f"{delivery.images['worker']}@{delivery.digests['worker']}"
    subprocess.run(["docker", "pull", other], capture_output=True, check=True)
    subprocess.run(
        ["docker", "tag", other, f"{delivery.images['web']}:main"], capture_output=True, check=True
    )
    pushed = subprocess.run(
        ["docker", "push", f"{delivery.images['web']}:main"], capture_output=True, text=True
    )
    assert pushed.returncode == 0, pushed.stderr
    with pytest.raises(
        papermill.PapermillExecutionError, match="web: the container runs the image pushed as"
    ):
        run("2.18", tmp / "2.18-not-deployed.ipynb")

    assert droplets.stop_droplet(droplet["name"])
    assert _coolify_containers(droplet["name"]) == []
