"""Tasks 2.9 to 2.13 rehearsed: papermill runs the committed notebooks against a copy of the sample app and
the GitHub stand-in, twice (the second run changes nothing), in dry-run (nothing changes anywhere), and after
the apps exist (2.13 completes the deploy secrets and a push deploys through the webhooks).

Configuration only: ``GITHUB_API_URL`` points at the stand-in, tokens are in the environment, state and
secrets files are private to the test.
"""

from __future__ import annotations

import hashlib
import json
import secrets as stdlib_secrets
import subprocess
from pathlib import Path
from typing import Any

import httpx
import nbformat
import papermill
import pytest
from dotenv import dotenv_values

from helpers.clients import github
from helpers.cloud import github_runs, github_secrets
from helpers.core import state
from helpers.core.paths import PROJECT_ROOT
from helpers.core.tasks import get
from helpers.rehearse.base import Request, StandIn, StandInProcess, json_response
from helpers.rehearse.github import GitHubStandIn

STEPS_MIME = "application/vnd.runbook.steps+json"
CHECKS_MIME = "application/vnd.runbook.checks+json"
TASKS = ("2.9", "2.10", "2.11", "2.12", "2.13")
REPO = "team/demo-app"


def outputs(path: Path, mime: str) -> list[dict[str, Any]]:
    nb = nbformat.read(path, as_version=4)
    return [o["data"][mime] for c in nb.cells for o in c.get("outputs", []) if mime in o.get("data", {})]


def statuses(path: Path) -> list[str]:
    return [s["status"] for table in outputs(path, STEPS_MIME) for s in table["steps"]]


def checks(path: Path) -> tuple[int, list[str]]:
    rows = [c for table in outputs(path, CHECKS_MIME) for c in table["checks"]]
    return len(rows), [c["name"] for c in rows if not c["ok"]]


def run(task: str, out: Path, **parameters: Any) -> Path:
    papermill.execute_notebook(
        str(PROJECT_ROOT / get(task).notebook), str(out), parameters=parameters, kernel_name="python3",
        cwd=str(PROJECT_ROOT), progress_bar=False, log_output=False,
    )  # fmt: skip
    return out


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(root).parts
    }


@pytest.fixture
def rehearsal(app_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    values = {
        "GITHUB_TOKEN": "ghp_" + stdlib_secrets.token_hex(18),
        "COOLIFY_API_TOKEN": "coolify-" + stdlib_secrets.token_hex(16),
    }
    env = {
        **values,
        "GITHUB_REPOSITORY": REPO,
        "COOLIFY_API_URL": "http://127.0.0.1:8000/api/v1",  # task 2.5's record, in a real chain
        "RUNBOOK_SECRETS_FILE": str(tmp_path / "secrets.env"),
        "RUNBOOK_STATE_DIR": str(tmp_path / "state"),
        "RUNBOOK_DRY_RUN": "",
        "RUNBOOK_APP_DIR": str(app_copy),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv(github_secrets.FINGERPRINT_KEY, raising=False)
    return {"app": app_copy, "tmp": tmp_path, "secrets": values}


def secret_values(rehearsal: dict[str, Any]) -> list[str]:
    stored = (
        dotenv_values(rehearsal["tmp"] / "secrets.env") if (rehearsal["tmp"] / "secrets.env").exists() else {}
    )
    return [*rehearsal["secrets"].values(), *(v for v in stored.values() if v)]


def test_2_9_to_2_13_twice_against_the_standin_process(
    rehearsal: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    tmp, app = rehearsal["tmp"], rehearsal["app"]
    proc = StandInProcess(
        "helpers.rehearse.github", args=["--repository", REPO], cwd=PROJECT_ROOT, env=rehearsal["secrets"]
    ).start()
    try:
        monkeypatch.setenv("GITHUB_API_URL", proc.url)
        first = {t: run(t, tmp / f"{t}-first.ipynb", app_dir=str(app)) for t in TASKS}
        for t, path in first.items():
            total, bad = checks(path)
            assert total >= 5 and bad == [], (t, bad)
        assert "changed" in statuses(first["2.9"]) and "changed" in statuses(first["2.12"])
        assert statuses(first["2.13"]) == [
            "changed",
            "changed",
            "skipped",
            "skipped",
        ]  # UUIDs: apps not yet there
        changed = subprocess.run(
            ["git", "-C", str(app), "status", "--porcelain"], capture_output=True, text=True
        )
        touched = {line[3:] for line in changed.stdout.splitlines()}
        expected = {"README.md", "CLAUDE.md", "apps/web/next.config.mjs", ".github/", "docs/production.md"}
        expected |= {"docs/production-env.md", "Dockerfile", "Dockerfile.worker", ".dockerignore"}
        assert expected <= touched

        recorded = state.load("phase2")
        assert (
            recorded["images"]["web"] == "ghcr.io/team/demo-app-web"
            and recorded["images"]["deploy_tag"] == "main"
        )
        assert recorded["app_config"]["health_path"] == "/api/health"
        assert {e["name"] for e in recorded["github"]["stored"]} == {"COOLIFY_URL", "COOLIFY_API_TOKEN"}

        with proc.control() as control:
            control.delete("/requests")
        before = tree_digest(app)
        second = {t: run(t, tmp / f"{t}-second.ipynb", app_dir=str(app)) for t in TASKS}
        for t, path in second.items():
            assert checks(path)[1] == [], t
            assert set(statuses(path)) <= {"ok", "skipped"}, (t, statuses(path))
        assert tree_digest(app) == before  # no file changed
        with proc.control() as control:
            log = control.get("/requests").json()["requests"]
        assert [e for e in log if e["method"] != "GET"] == []  # no secret was sent again

        listing = httpx.get(
            f"{proc.url}/repos/{REPO}/actions/secrets",
            headers={"Authorization": f"token {rehearsal['secrets']['GITHUB_TOKEN']}"},
        ).json()
        assert sorted(s["name"] for s in listing["secrets"]) == ["COOLIFY_API_TOKEN", "COOLIFY_URL"]
        leaked = [
            (p.name, v[:4])
            for p in [*first.values(), *second.values()]
            for v in secret_values(rehearsal)
            if v in p.read_text()
        ]
        assert leaked == []
    finally:
        proc.stop()


def test_dry_run_changes_no_file_and_sends_no_mutating_request(
    rehearsal: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    tmp, app = rehearsal["tmp"], rehearsal["app"]
    before = tree_digest(app)
    with GitHubStandIn([rehearsal["secrets"]["GITHUB_TOKEN"]], repositories=[REPO]) as server:
        monkeypatch.setenv("GITHUB_API_URL", server.url)
        executed = {t: run(t, tmp / f"{t}-dry.ipynb", app_dir=str(app), dry_run=True) for t in TASKS}
        assert server.mutating_requests() == []
    for t, path in executed.items():
        assert checks(path)[1] == [], t
        assert "changed" not in statuses(path) and "would change" in statuses(path), (t, statuses(path))
    assert tree_digest(app) == before
    assert not (tmp / "state").exists() and not (tmp / "secrets.env").exists()


class CoolifyWebhook(StandIn):
    """Coolify's deploy webhook only (the Coolify stand-in grows the real one for 2.17)."""

    name = "coolify-webhook"

    def __init__(self, token: str, uuids: set[str]):
        super().__init__(tokens=[token])
        self.uuids = uuids
        self.add_route("POST", "/api/v1/deploy", self._deploy)

    def _deploy(self, request: Request):
        if request.arg("uuid") not in self.uuids:
            return json_response({"message": "No resources found."}, 404)
        return json_response(
            {"deployments": [{"resource_uuid": request.arg("uuid"), "deployment_uuid": "d"}]}
        )


def test_2_13_after_the_apps_exist_completes_the_secrets_and_a_push_deploys(
    rehearsal: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    tmp, app = rehearsal["tmp"], rehearsal["app"]
    token = rehearsal["secrets"]["COOLIFY_API_TOKEN"]
    with (
        CoolifyWebhook(token, {"web-uuid-1", "worker-uuid-1"}) as coolify,
        GitHubStandIn([rehearsal["secrets"]["GITHUB_TOKEN"]], repositories=[REPO], repo_dir=app) as server,
    ):
        monkeypatch.setenv("GITHUB_API_URL", server.url)
        monkeypatch.setenv("COOLIFY_API_URL", f"{coolify.url}/api/v1")
        run("2.9", tmp / "2.9.ipynb", app_dir=str(app))
        first = run("2.13", tmp / "2.13-before-apps.ipynb", app_dir=str(app))
        assert statuses(first) == ["changed", "changed", "skipped", "skipped"]
        state.update(
            "phase2", applications={"web": {"uuid": "web-uuid-1"}, "worker": {"uuid": "worker-uuid-1"}}
        )
        after = run("2.13", tmp / "2.13-after-apps.ipynb", app_dir=str(app))
        assert statuses(after) == ["ok", "ok", "changed", "changed"] and checks(after)[1] == []
        # sealed for this repository: the stand-in's private key opens them, and they are the runbook's values
        assert server.secret_value(REPO, "COOLIFY_API_TOKEN") == token
        assert server.secret_value(REPO, "COOLIFY_URL") == coolify.url
        assert server.secret_value(REPO, "COOLIFY_WEB_UUID") == "web-uuid-1"

        [pushed] = server.push(REPO, "main")  # the workflow file comes from the app repository
        repo = github.get_repo(github.connect(), REPO)
        assert github_runs.wait_for_run(repo, pushed.id, timeout=30, interval=0.1)["conclusion"] == "success"
        assert [e.query["uuid"] for e in coolify.requests()] == [["web-uuid-1"], ["worker-uuid-1"]]
        assert github_runs.latest_run(repo)["conclusion"] == "success"
    assert token not in json.dumps([e.body for e in server.requests()])
    assert token not in after.read_text()
