"""helpers.app.gitrepo on real git repositories in a temporary folder."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from helpers.app import gitrepo

IDENTITY = {
    "GIT_AUTHOR_NAME": "T",
    "GIT_AUTHOR_EMAIL": "t@example.invalid",
    "GIT_COMMITTER_NAME": "T",
    "GIT_COMMITTER_EMAIL": "t@example.invalid",
}


def sh(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True, env={**os.environ, **IDENTITY}
    ).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "app"
    (root / "docs").mkdir(parents=True)
    (root / "README.md").write_text("# App\nStart the Multipass VM first.\n")
    (root / "package.json").write_text('{"name": "app"}\n')
    (root / "docs" / "vm-setup.md").write_text("multipass launch --name coolify\n")
    (root / "docs" / "api.md").write_text("# API\n")
    (root / "src.ts").write_text("export const x = 1\n")
    (root / ".gitignore").write_text("node_modules/\n")
    sh(root, "init", "-q", "-b", "main")
    sh(root, "add", "-A")
    sh(root, "commit", "-q", "-m", "baseline")
    return root


def mentions_multipass(path: str, committed: str | None) -> bool:
    return committed is not None and "multipass" in committed.lower()


def migrate(repo: Path) -> None:
    """What phase 1 does, in miniature, plus unrelated work in progress."""
    (repo / "docker-compose.yml").write_text("services: {}\n")
    (repo / "README.md").write_text("# App\nRun `pnpm docker:up`.\n")
    (repo / "docs" / "vm-setup.md").unlink()
    (repo / "docs" / "troubleshooting-docker.md").write_text("# Troubleshooting\n")
    (repo / ".env").write_text("DATABASE_URL=postgresql://u:secret@localhost/app\n")
    (repo / "src.ts").write_text("export const x = 2\n")  # unrelated work in progress
    (repo / "notes.txt").write_text("mine\n")  # unrelated untracked file


def test_plan_separates_runbook_changes_from_the_rest(repo: Path) -> None:
    migrate(repo)
    plan = gitrepo.plan_commit(repo, touched_by_runbook=mentions_multipass)
    assert plan.paths == [
        "README.md",
        "docker-compose.yml",
        "docs/troubleshooting-docker.md",
        "docs/vm-setup.md",
    ]
    left = {c.path: why for c, why in plan.left_alone}
    assert set(left) == {".env", "notes.txt", "src.ts"}
    assert "never committed" in left[".env"]
    kinds = {p: k for p, k, _ in plan.rows()}
    assert kinds["docs/vm-setup.md"] == "deleted" and kinds["docker-compose.yml"] == "new"


def test_env_is_never_committed_even_when_managed(repo: Path) -> None:
    (repo / ".env").write_text("X=1\n")
    plan = gitrepo.plan_commit(repo, managed=[".env", "README.md"])
    assert plan.paths == []


def test_commit_needs_permission_then_commits_exactly_the_plan(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in IDENTITY.items():
        monkeypatch.setenv(key, value)
    migrate(repo)
    (repo / "src.ts").write_text("export const x = 3\n")
    sh(repo, "add", "src.ts")  # someone's staged change must stay staged, uncommitted
    before = gitrepo.head(repo)
    plan = gitrepo.plan_commit(repo, touched_by_runbook=mentions_multipass)

    refused = gitrepo.commit(plan, allowed=False)
    assert refused.status == "would change" and "commit=True" in refused.detail
    assert "docs/vm-setup.md" in refused.diff and gitrepo.head(repo) == before
    assert gitrepo.commit(plan, allowed=True, dry_run=True).status == "would change"
    assert gitrepo.head(repo) == before

    done = gitrepo.commit(plan, allowed=True)
    assert done.status == "changed" and gitrepo.head(repo) != before
    assert gitrepo.committed_paths(repo) == plan.paths
    assert "Multipass VM to docker-compose" in sh(repo, "log", "-1", "--format=%s")
    remaining = {c.path: c.code for c in gitrepo.changes(repo)}
    assert remaining == {".env": "??", "notes.txt": "??", "src.ts": "M "}

    again = gitrepo.commit(gitrepo.plan_commit(repo, touched_by_runbook=mentions_multipass), allowed=True)
    assert again.status == "ok" and "nothing to commit" in again.detail


def test_commit_without_identity_fails_with_the_fix(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in IDENTITY:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOME", str(repo.parent))  # no global git config
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(repo.parent / "nogitconfig"))
    (repo / "docker-compose.yml").write_text("services: {}\n")
    plan = gitrepo.plan_commit(repo)
    result = gitrepo.commit(plan, allowed=True)
    assert result.status == "failed" and "config user.email you@example.com" in result.detail


def test_tree_hash_sees_every_change_and_ignores_ignored_files(repo: Path) -> None:
    first = gitrepo.tree_hash(repo)
    assert gitrepo.tree_hash(repo) == first
    (repo / "node_modules").mkdir()
    (repo / "node_modules" / "x.js").write_text("ignored\n")
    assert gitrepo.tree_hash(repo) == first
    (repo / "new.txt").write_text("untracked counts\n")
    second = gitrepo.tree_hash(repo)
    assert second != first
    assert gitrepo.tree_hash(repo, exclude=["new.txt"]) == first
    assert gitrepo.changes(repo) == [gitrepo.Change("??", "new.txt")]  # the real index is untouched


def test_not_a_repo_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(gitrepo.GitError, match="git init"):
        gitrepo.plan_commit(tmp_path)
    with pytest.raises(gitrepo.GitError, match="RUNBOOK_APP_DIR"):
        gitrepo.plan_commit(tmp_path / "missing")


def test_phase1_rule_picks_what_the_reference_cleanup_touched(repo: Path) -> None:
    (repo / "docs" / "index.md").write_text("# Docs\n\n- [API](api.md)\n- [Setting up](vm-setup.md)\n")
    (repo / "scripts").mkdir()
    (repo / "scripts" / "multipass-cloud-init.yaml").write_text("packages: [docker]\n")
    sh(repo, "add", "-A")
    sh(repo, "commit", "-q", "-m", "more docs")
    # what 1.6/1.12 do: delete the VM page and the VM-only file, drop the link, rewrite the README
    (repo / "docs" / "vm-setup.md").unlink()
    (repo / "scripts" / "multipass-cloud-init.yaml").unlink()
    (repo / "docs" / "index.md").write_text("# Docs\n\n- [API](api.md)\n")
    (repo / "README.md").write_text("# App\nStart the Docker services first.\n")
    # unrelated edits the rule must not claim
    (repo / "docs" / "api.md").write_text("# API v2\n")
    plan = gitrepo.plan_phase1_commit(repo)
    expected = ["README.md", "docs/index.md", "docs/vm-setup.md", "scripts/multipass-cloud-init.yaml"]
    assert plan.paths == expected
    assert [c.path for c, _ in plan.left_alone] == ["docs/api.md"]
