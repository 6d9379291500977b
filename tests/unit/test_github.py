"""The GitHub client and steps (helpers.clients.github, helpers.cloud.github_secrets) against the stand-in,
served on loopback: sealing, errors, retries, idempotency, dry-run, workflow runs. The stand-in runs in this
process, so tests can decrypt what the client sealed (never possible over HTTP)."""

from __future__ import annotations

import base64
import json
import secrets as stdlib_secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from nacl.public import PrivateKey, PublicKey, SealedBox

from helpers.app import workflow
from helpers.clients import errors, github
from helpers.cloud import github_runs, github_secrets
from helpers.core import secrets, state
from helpers.core.checks import Checklist
from helpers.rehearse.base import Request, StandIn, json_response
from helpers.rehearse.github import GitHubStandIn

REPO = "team/demo-app"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    token = "ghp_" + stdlib_secrets.token_hex(18)
    monkeypatch.setenv("RUNBOOK_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("RUNBOOK_SECRETS_FILE", str(tmp_path / "secrets.env"))
    monkeypatch.setenv("GITHUB_TOKEN", token)
    monkeypatch.delenv(github_secrets.FINGERPRINT_KEY, raising=False)
    monkeypatch.delenv("GITHUB_REPOSITORY", raising=False)
    return {"token": token, "tmp": tmp_path}


@pytest.fixture
def standin(env: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[GitHubStandIn]:
    server = GitHubStandIn([env["token"]], repositories=[REPO], run_after_polls=1).start()
    monkeypatch.setenv("GITHUB_API_URL", server.url)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def repo(standin: GitHubStandIn) -> Any:
    return github.get_repo(github.connect(retries=2, max_wait=10), REPO)


def wanted(**values: str | None) -> list[github_secrets.Wanted]:
    return [
        github_secrets.Wanted(name, value, "test", "" if value else "not yet")
        for name, value in values.items()
    ]


def mutating(standin: GitHubStandIn) -> list[tuple[str, str, int]]:
    return [(e.method, e.path, e.status) for e in standin.mutating_requests()]


# --------------------------------------------------------------------------- sealing and idempotency


def test_secrets_are_sealed_for_the_repository_key_and_decrypt_to_the_value(
    standin: GitHubStandIn, repo: Any
) -> None:
    results = github_secrets.ensure_secrets(
        repo, wanted(COOLIFY_URL="http://127.0.0.1:8000", COOLIFY_API_TOKEN="t0k-ABC")
    )
    assert [r.status for r in results] == ["changed", "changed"]
    assert standin.secret_value(REPO, "COOLIFY_API_TOKEN") == "t0k-ABC"
    assert standin.secret_value(REPO, "COOLIFY_URL") == "http://127.0.0.1:8000"
    assert [(m, s) for m, _, s in mutating(standin)] == [("PUT", 201), ("PUT", 201)]
    logged = json.dumps([e.body for e in standin.requests()])
    assert "t0k-ABC" not in logged  # only the sealed box travels and is logged
    listing = httpx.get(
        f"{standin.url}/repos/{REPO}/actions/secrets",
        headers={"Authorization": f"token {secrets.get('GITHUB_TOKEN')}"},
    ).json()
    assert listing["total_count"] == 2
    assert set(listing["secrets"][0]) == {"name", "created_at", "updated_at"}  # never a value


def test_second_run_sends_nothing_and_reports_ok(standin: GitHubStandIn, repo: Any) -> None:
    first = wanted(COOLIFY_URL="http://a", COOLIFY_API_TOKEN="tok-1")
    github_secrets.ensure_secrets(repo, first)
    standin.clear_log()
    results = github_secrets.ensure_secrets(repo, first)
    assert [r.status for r in results] == ["ok", "ok"]
    assert mutating(standin) == []
    recorded = state.get("phase2", "github")
    assert recorded["repository"] == REPO and {e["name"] for e in recorded["stored"]} == {
        "COOLIFY_URL",
        "COOLIFY_API_TOKEN",
    }
    assert "tok-1" not in json.dumps(recorded)  # a keyed fingerprint, not the value


def test_a_changed_value_is_updated_with_204(standin: GitHubStandIn, repo: Any) -> None:
    github_secrets.ensure_secrets(repo, wanted(COOLIFY_API_TOKEN="old-token"))
    standin.clear_log()
    results = github_secrets.ensure_secrets(repo, wanted(COOLIFY_API_TOKEN="new-token"))
    assert results[0].status == "changed" and "value changed" in results[0].detail
    assert [(m, s) for m, _, s in mutating(standin)] == [("PUT", 204)]
    assert standin.secret_value(REPO, "COOLIFY_API_TOKEN") == "new-token"


def test_a_secret_changed_on_github_is_set_again(standin: GitHubStandIn, repo: Any) -> None:
    github_secrets.ensure_secrets(repo, wanted(COOLIFY_URL="http://mine"))
    standin.repo(REPO).secrets["COOLIFY_URL"].updated_at += 60  # someone edited it in the web UI
    results = github_secrets.ensure_secrets(repo, wanted(COOLIFY_URL="http://mine"))
    assert results[0].status == "changed" and "changed on GitHub" in results[0].detail
    assert github_secrets.ensure_secrets(repo, wanted(COOLIFY_URL="http://mine"))[0].status == "ok"


def test_a_secret_set_by_someone_else_is_overwritten_once(
    standin: GitHubStandIn, repo: Any, env: dict
) -> None:
    key = PublicKey(base64.b64decode(standin.repo(REPO).public_key))
    sealed = base64.b64encode(SealedBox(key).encrypt(b"theirs")).decode()
    answer = httpx.put(
        f"{standin.url}/repos/{REPO}/actions/secrets/COOLIFY_URL",
        json={"encrypted_value": sealed, "key_id": standin.repo(REPO).key_id},
        headers={"Authorization": f"Bearer {env['token']}"},
    )
    assert answer.status_code == 201
    results = github_secrets.ensure_secrets(repo, wanted(COOLIFY_URL="ours"))
    assert results[0].status == "changed" and "no fingerprint" in results[0].detail
    assert standin.secret_value(REPO, "COOLIFY_URL") == "ours"


def test_dry_run_sends_no_mutating_request_and_writes_nothing(
    standin: GitHubStandIn, repo: Any, env: dict
) -> None:
    results = github_secrets.ensure_secrets(
        repo, wanted(COOLIFY_URL="u", COOLIFY_API_TOKEN="t", COOLIFY_WEB_UUID=None), dry_run=True
    )
    assert [r.status for r in results] == ["would change", "would change", "skipped"]
    assert mutating(standin) == []
    assert not (env["tmp"] / "secrets.env").exists()  # no fingerprint key made in a dry run
    assert state.get("phase2", "github") is None


def test_unknown_values_are_skipped_with_the_reason(standin: GitHubStandIn, repo: Any) -> None:
    results = github_secrets.ensure_secrets(
        repo, [github_secrets.Wanted("COOLIFY_WEB_UUID", None, "2.14", "task 2.14 creates it")]
    )
    assert results[0].status == "skipped" and "2.14" in results[0].detail
    assert mutating(standin) == []


def test_bad_secret_names_are_refused_before_any_request(standin: GitHubStandIn, repo: Any) -> None:
    standin.clear_log()
    for name in ("GITHUB_DEPLOY", "1ABC", "lower-case"):
        with pytest.raises(errors.ApiError, match="cannot be a GitHub Actions secret name"):
            github_secrets.ensure_secrets(repo, wanted(**{name: "v"}))
    assert standin.requests() == []


def test_check_secrets_reads_back_names_and_records(standin: GitHubStandIn, repo: Any) -> None:
    items = wanted(COOLIFY_URL="u1", COOLIFY_WEB_UUID=None)
    github_secrets.ensure_secrets(repo, items)
    check = Checklist("t")
    pending = github_secrets.check_secrets(check, repo, items)
    assert not check.failures and [w.name for w in pending] == ["COOLIFY_WEB_UUID"]
    del standin.repo(REPO).secrets["COOLIFY_URL"]  # deleted on GitHub: the check must see it
    check = Checklist("t")
    github_secrets.check_secrets(check, repo, items)
    assert {f.name for f in check.failures} == {
        "COOLIFY_URL exists in team/demo-app",
        "COOLIFY_URL holds the runbook's current value",
    }


# --------------------------------------------------------------------------- errors


def test_wrong_key_id_and_bad_box_answer_422_with_a_clear_error(
    standin: GitHubStandIn, repo: Any, env: dict
) -> None:
    other = SealedBox(PrivateKey.generate().public_key).encrypt(b"x")
    url = f"/repos/{REPO}/actions/secrets/COOLIFY_URL"
    for body in (
        {"encrypted_value": base64.b64encode(other).decode(), "key_id": "123"},
        {"encrypted_value": base64.b64encode(other).decode(), "key_id": standin.repo(REPO).key_id},
        {"encrypted_value": "not base64!", "key_id": standin.repo(REPO).key_id},
    ):
        with pytest.raises(errors.ApiError) as err, github.calling("setting COOLIFY_URL", REPO):
            repo._requester.requestJsonAndCheck("PUT", url, input=body)
        assert err.value.status == 422 and "refused the request" in str(err.value)
    direct = httpx.put(
        f"{standin.url}{url}",
        json={"encrypted_value": "c2VjcmV0", "key_id": "0"},
        headers={"Authorization": f"token {env['token']}"},
    )
    assert direct.status_code == 422
    body = direct.json()
    assert "key_id" in body["message"] and body["documentation_url"].startswith(
        "https://docs.github.com/rest"
    )
    assert "COOLIFY_URL" not in standin.repo(REPO).secrets


def test_wrong_token_is_a_401_with_the_token_instructions(standin: GitHubStandIn) -> None:
    with pytest.raises(errors.ApiError) as err:
        github.get_repo(github.connect("ghp_" + "0" * 36), REPO)
    assert err.value.status == 401 and "Bad credentials" in str(err.value)
    assert "Secrets: read and write" in err.value.hint


def test_unknown_repository_is_a_404_that_says_what_to_check(standin: GitHubStandIn) -> None:
    with pytest.raises(errors.ApiError) as err:
        github.get_repo(github.connect(), "team/nope")
    assert err.value.status == 404 and "owner/name" in err.value.hint
    answer = httpx.get(
        f"{standin.url}/repos/team/nope",
        headers={"Authorization": f"token {secrets.get('GITHUB_TOKEN')}"},
    )
    assert answer.json() == {
        "message": "Not Found",
        "documentation_url": "https://docs.github.com/rest/repos/repos#get-a-repository",
        "status": "404",
    }


def test_a_missing_permission_is_a_403_naming_the_permissions(
    env: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    with GitHubStandIn({env["token"]: ["metadata:read", "secrets:read"]}, repositories=[REPO]) as server:
        monkeypatch.setenv("GITHUB_API_URL", server.url)
        repo = github.get_repo(github.connect(), REPO)
        with pytest.raises(errors.ApiError) as err:
            github_secrets.ensure_secrets(repo, wanted(COOLIFY_URL="x"))
    assert err.value.status == 403 and "Secrets: read and write" in err.value.hint


def test_429_with_retry_after_is_retried_then_succeeds(standin: GitHubStandIn, repo: Any) -> None:
    path = "/repos/{owner}/{repo}/actions/secrets/{secret_name}"
    standin.inject(path, 429, method="PUT", headers={"retry-after": "1"}, message="secondary rate limit")
    standin.inject(
        path, 403, method="PUT", headers={"retry-after": "1"},
        message="You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
    )  # fmt: skip
    results = github_secrets.ensure_secrets(repo, wanted(COOLIFY_URL="after-the-wait"))
    assert results[0].status == "changed"
    assert [(m, s) for m, _, s in mutating(standin)] == [("PUT", 429), ("PUT", 403), ("PUT", 201)]
    assert standin.secret_value(REPO, "COOLIFY_URL") == "after-the-wait"


def test_a_429_that_never_ends_becomes_a_clear_error(standin: GitHubStandIn, repo: Any) -> None:
    standin.inject("*", 429, times=20, headers={"retry-after": "1"}, message="Too many requests")
    with pytest.raises(errors.ApiError) as err:
        github_secrets.ensure_secrets(repo, wanted(COOLIFY_URL="x"))
    assert (
        err.value.status == 429 and "rate limit" in str(err.value) and "run the task again" in err.value.hint
    )


def test_primary_rate_limit_is_a_403_with_remaining_zero(env: dict) -> None:
    with GitHubStandIn([env["token"]], repositories=[REPO], rate_limit_per_hour=2) as server:
        headers = {"Authorization": f"token {env['token']}"}
        answers = [httpx.get(f"{server.url}/repos/{REPO}", headers=headers) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 403]
    assert answers[0].headers["x-ratelimit-remaining"] == "1"
    assert answers[2].headers["x-ratelimit-remaining"] == "0"
    assert answers[2].json()["message"].startswith("API rate limit exceeded")


def test_unreachable_api_is_a_clear_error(env: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    from helpers.rehearse.base import free_port

    monkeypatch.setenv("GITHUB_API_URL", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(errors.ApiError, match="cannot reach"):
        github.get_repo(github.connect(retries=0), REPO)


# --------------------------------------------------------------------------- repository name


def test_repository_name_from_parameter_env_or_origin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITHUB_REPOSITORY", raising=False)
    assert github_secrets.repository_name("a/b") == "a/b"
    monkeypatch.setenv("GITHUB_REPOSITORY", "env-owner/env-repo")
    assert github_secrets.repository_name("") == "env-owner/env-repo"
    monkeypatch.delenv("GITHUB_REPOSITORY")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(
        ["git", "-C", str(tmp_path), "remote", "add", "origin", "git@github.com:My-Team/demo-app.git"],
        check=True,
    )
    assert github_secrets.repository_name("", tmp_path) == "My-Team/demo-app"
    with pytest.raises(errors.ApiError, match="owner/name"):
        github_secrets.repository_name("https://gitlab.com/a/b/c")
    with pytest.raises(errors.ApiError, match="no GitHub repository"):
        github_secrets.repository_name("", tmp_path / "nowhere")


# --------------------------------------------------------------------------- the stand-in's contract


def test_public_key_is_a_real_curve25519_key_and_pages_follow_link(standin: GitHubStandIn, env: dict) -> None:
    from github import Auth, Github

    key = httpx.get(
        f"{standin.url}/repos/{REPO}/actions/secrets/public-key",
        headers={"Authorization": f"token {env['token']}"},
    ).json()
    assert len(base64.b64decode(key["key"])) == 32 and key["key_id"].isdigit()
    repo = Github(auth=Auth.Token(env["token"]), base_url=standin.url, per_page=1).get_repo(REPO)
    for name in ("A_ONE", "B_TWO", "C_THREE"):
        repo.create_secret(name, name.lower())
    assert [s.name for s in repo.get_secrets()] == ["A_ONE", "B_TWO", "C_THREE"]  # three pages, via Link
    pages = [e for e in standin.requests("GET", "/repos/{owner}/{repo}/actions/secrets")]
    assert len(pages) == 3


def test_stand_in_refuses_reserved_names_and_missing_fields(standin: GitHubStandIn, env: dict) -> None:
    headers = {"Authorization": f"token {env['token']}"}
    base = f"{standin.url}/repos/{REPO}/actions/secrets"
    assert httpx.put(f"{base}/GITHUB_X", json={}, headers=headers).status_code == 422
    assert httpx.put(f"{base}/OK_NAME", json={"key_id": "1"}, headers=headers).status_code == 422
    assert httpx.put(f"{base}/OK_NAME", content=b"{", headers=headers).status_code == 400
    assert httpx.get(f"{base}/OK_NAME", headers=headers).status_code == 404
    assert httpx.get(base).json()["message"] == "Requires authentication"
    sealed = base64.b64encode(SealedBox(standin.repo(REPO).private_key.public_key).encrypt(b"v")).decode()
    body = {"encrypted_value": sealed, "key_id": standin.repo(REPO).key_id}
    assert httpx.put(f"{base}/ok_name", json=body, headers=headers).status_code == 201  # stored upper-case
    assert httpx.get(f"{base}/OK_NAME", headers=headers).json()["name"] == "OK_NAME"
    assert httpx.delete(f"{base}/OK_NAME", headers=headers).status_code == 204
    assert httpx.delete(f"{base}/OK_NAME", headers=headers).status_code == 404
    assert httpx.get(f"{standin.url}/user", headers=headers).json()["login"] == standin.login
    assert httpx.get(f"{standin.url}/rate_limit", headers=headers).json()["rate"]["limit"] == 5000


# --------------------------------------------------------------------------- workflow runs


class FakeCoolify(StandIn):
    """Just the deploy webhook: POST /api/v1/deploy?uuid=... with a bearer token."""

    name = "coolify-webhook"

    def __init__(self, token: str, uuids: set[str]):
        super().__init__(tokens=[token])
        self.uuids = uuids
        self.add_route("POST", "/api/v1/deploy", self._deploy)

    def _deploy(self, request: Request):
        uuid = request.arg("uuid")
        if uuid not in self.uuids:
            return json_response({"message": "No resources found."}, 404)
        return json_response(
            {"deployments": [{"message": "queued", "resource_uuid": uuid, "deployment_uuid": "d1"}]}
        )


def _wire(standin: GitHubStandIn, repo: Any, coolify_url: str, token: str, web: str, worker: str) -> None:
    github_secrets.ensure_secrets(
        repo,
        wanted(
            COOLIFY_URL=coolify_url, COOLIFY_API_TOKEN=token, COOLIFY_WEB_UUID=web, COOLIFY_WORKER_UUID=worker
        ),
    )
    standin.set_workflows(REPO, {workflow.WORKFLOW: workflow.render(workflow.WorkflowSpec.build())})


def test_a_push_runs_the_deploy_workflow_which_calls_both_webhooks(standin: GitHubStandIn, repo: Any) -> None:
    with FakeCoolify("coolify-deploy-token", {"web-uuid", "worker-uuid"}) as coolify:
        _wire(standin, repo, coolify.url, "coolify-deploy-token", "web-uuid", "worker-uuid")
        assert github_runs.latest_run(repo) is None
        [run] = standin.push(REPO, "main")
        seen = [github_runs.latest_run(repo)["status"] for _ in range(3)]
        calls = [(e.path, e.query.get("uuid"), e.status) for e in coolify.requests()]
    assert seen == ["in_progress", "completed", "completed"]
    assert github_runs.latest_run(repo)["conclusion"] == "success"
    assert calls == [("/api/v1/deploy", ["web-uuid"], 200), ("/api/v1/deploy", ["worker-uuid"], 200)]
    jobs = httpx.get(f"{standin.url}/repos/{REPO}/actions/runs/{run.id}/jobs", headers=_auth()).json()["jobs"]
    assert [j["name"] for j in jobs] == [
        "Build and push the web image",
        "Build and push the worker image",
        "Deploy on Coolify",
    ]
    assert {j["conclusion"] for j in jobs} == {"success"}


def test_the_deploy_fails_like_curl_when_coolify_refuses_or_a_secret_is_missing(
    standin: GitHubStandIn, repo: Any
) -> None:
    with FakeCoolify("right-token", {"web-uuid", "worker-uuid"}) as coolify:
        _wire(standin, repo, coolify.url, "wrong-token", "web-uuid", "worker-uuid")
        standin.push(REPO)
        for _ in range(2):
            summary = github_runs.latest_run(repo)
    assert summary["conclusion"] == "failure"
    run = standin.repo(REPO).runs[summary["id"]]
    assert any("-> 401" in line for line in run.log)
    del standin.repo(REPO).secrets["COOLIFY_WEB_UUID"]
    standin.push(REPO)
    github_runs.latest_run(repo)
    summary = github_runs.latest_run(repo)
    assert summary["conclusion"] == "failure"
    assert any("COOLIFY_WEB_UUID is not set" in line for line in standin.repo(REPO).runs[summary["id"]].log)


def test_runs_filters_dispatch_and_forced_outcome(standin: GitHubStandIn, repo: Any) -> None:
    standin.set_workflows(
        REPO,
        {
            workflow.WORKFLOW: workflow.render(workflow.WorkflowSpec.build()),
            ".github/workflows/ci.yml": (
                "name: CI\non:\n  push:\n    branches: ['**']\n"
                "jobs:\n  t:\n    runs-on: x\n    steps: [{run: 'true'}]\n"
            ),
        },
    )
    standin.forced_conclusion = "success"
    standin.push(REPO, "feature/x")  # only CI runs on other branches
    standin.push(REPO, "main")  # both
    headers = _auth()
    runs = httpx.get(f"{standin.url}/repos/{REPO}/actions/runs", headers=headers).json()
    assert runs["total_count"] == 3
    on_main = httpx.get(
        f"{standin.url}/repos/{REPO}/actions/runs", params={"branch": "main"}, headers=headers
    ).json()
    assert {r["name"] for r in on_main["workflow_runs"]} == {"Deploy to production", "CI"}
    wf = repo.get_workflow("deploy.yml")
    assert [r.event for r in wf.get_runs(branch="main")] == ["push"]
    assert wf.create_dispatch("main") is True  # 204
    assert [r.event for r in repo.get_workflow_runs(event="workflow_dispatch")] == ["workflow_dispatch"]
    done = httpx.get(
        f"{standin.url}/repos/{REPO}/actions/runs", params={"status": "success"}, headers=headers
    ).json()
    assert done["total_count"] >= 1 and all(r["conclusion"] == "success" for r in done["workflow_runs"])
    no_dispatch = httpx.post(
        f"{standin.url}/repos/{REPO}/actions/workflows/ci.yml/dispatches",
        json={"ref": "main"},
        headers=headers,
    )
    assert no_dispatch.status_code == 422
    bad = httpx.get(f"{standin.url}/repos/{REPO}/actions/runs", params={"status": "green"}, headers=headers)
    assert bad.status_code == 422


def _auth() -> dict[str, str]:
    return {"Authorization": f"token {secrets.get('GITHUB_TOKEN')}"}


def test_state_file_keeps_keys_secrets_and_runs_across_restarts(env: dict) -> None:
    path = env["tmp"] / "github-standin.json"
    with GitHubStandIn([env["token"]], repositories=[REPO], state_file=path) as first:
        key_id = first.repo(REPO).key_id
        sealed = base64.b64encode(
            SealedBox(first.repo(REPO).private_key.public_key).encrypt(b"kept")
        ).decode()
        httpx.put(
            f"{first.url}/repos/{REPO}/actions/secrets/KEPT",
            json={"encrypted_value": sealed, "key_id": key_id},
            headers={"Authorization": f"token {env['token']}"},
        )
    assert "kept" not in path.read_text()
    with GitHubStandIn([env["token"]], repositories=[REPO], state_file=path) as second:
        assert second.repo(REPO).key_id == key_id
        assert second.secret_value(REPO, "KEPT") == "kept"
