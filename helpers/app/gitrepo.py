"""The app repository as git sees it: what changed, what the runbook may commit, and the commit.

Task 1.14 commits the runbook's changes, and only those: the files the runbook manages (the
compose file, ``package.json``, ``.env.example``, README, CLAUDE.md, the troubleshooting guide),
the VM documents it removed and the files it rewrote to drop Multipass references. Everything
else that is dirty in the working tree is listed and left alone, and ``.env`` (local secrets) is
never committed, whatever its state.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from helpers.core import steps
from helpers.core.steps import StepResult

# Paths (relative to the app root) that phase 1 writes.
MANAGED_PATHS: tuple[str, ...] = (
    "docker-compose.yml",
    "package.json",
    ".env.example",
    "README.md",
    "CLAUDE.md",
    "docs/troubleshooting-docker.md",
)
# Never committed: local secrets and machine-specific settings.
NEVER_COMMIT: tuple[str, ...] = (".env", ".env.local", ".env.*.local")
DEFAULT_MESSAGE = (
    "Move local services from the Multipass VM to docker-compose\n\n"
    "Phase 1 of the Implementation 3 runbook: PostgreSQL 15 and Redis 7 run in Docker\n"
    "(docker-compose.yml, pnpm docker:* scripts), .env.example points at localhost,\n"
    "README/CLAUDE.md describe the docker-compose workflow, the Docker troubleshooting\n"
    "guide is added and the Multipass/VM documentation is removed."
)


class GitError(RuntimeError):
    pass


def git(
    app_dir: str | os.PathLike[str], *args: str, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        ["git", *args], cwd=app_dir, capture_output=True, text=True, env={**os.environ, **(env or {})}
    )
    if check and proc.returncode != 0:
        why = proc.stderr.strip() or proc.stdout.strip()
        raise GitError(f"`git {' '.join(args)}` failed in {app_dir}: {why}")
    return proc


def is_repo(app_dir: str | os.PathLike[str]) -> bool:
    path = Path(app_dir)
    if not path.is_dir():
        return False
    proc = git(path, "rev-parse", "--show-toplevel", check=False)
    return proc.returncode == 0 and Path(proc.stdout.strip()).resolve() == path.resolve()


def require_repo(app_dir: str | os.PathLike[str]) -> Path:
    path = Path(app_dir).expanduser()
    if not str(app_dir) or not path.is_dir():
        raise GitError(
            f"app_dir {str(app_dir)!r} is not a directory; set RUNBOOK_APP_DIR to the app repository"
        )
    if not is_repo(path):
        raise GitError(
            f"{path} is not the top of a git repository; run `git init` there or point app_dir at "
            "the repository's root"
        )
    return path.resolve()


@dataclass(frozen=True)
class Change:
    """One dirty path, from ``git status --porcelain``: ``code`` is the two-letter XY status."""

    code: str
    path: str

    @property
    def deleted(self) -> bool:
        return "D" in self.code

    @property
    def untracked(self) -> bool:
        return self.code == "??"

    @property
    def kind(self) -> str:
        if self.untracked or "A" in self.code:
            return "new"
        if self.deleted:
            return "deleted"
        if "R" in self.code:
            return "renamed"
        return "modified"


def changes(app_dir: str | os.PathLike[str]) -> list[Change]:
    """Every dirty path (staged, unstaged, untracked; ignored files excluded), sorted."""
    out = git(app_dir, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--no-renames").stdout
    result = [Change(entry[:2], entry[3:]) for entry in out.split("\0") if entry]
    return sorted(result, key=lambda c: c.path)


def never_commit(path: str) -> bool:
    name = PurePosixPath(path).name
    return any(PurePosixPath(name).match(pattern) for pattern in NEVER_COMMIT)


def committed_text(app_dir: str | os.PathLike[str], path: str) -> str | None:
    """The file's content at HEAD, or None when HEAD has no such file (or no HEAD yet)."""
    proc = git(app_dir, "show", f"HEAD:{path}", check=False)
    return proc.stdout if proc.returncode == 0 else None


@dataclass
class CommitPlan:
    app_dir: Path
    to_commit: list[Change] = field(default_factory=list)
    left_alone: list[tuple[Change, str]] = field(default_factory=list)

    @property
    def paths(self) -> list[str]:
        return [c.path for c in self.to_commit]

    def rows(self) -> list[tuple[str, str, str]]:
        """(path, change, decision) for a table."""
        rows = [(c.path, c.kind, "commit") for c in self.to_commit]
        rows += [(c.path, c.kind, f"leave alone: {why}") for c, why in self.left_alone]
        return rows


def plan_commit(
    app_dir: str | os.PathLike[str],
    managed: Iterable[str] = MANAGED_PATHS,
    touched_by_runbook: Callable[[str, str | None], bool] | None = None,
) -> CommitPlan:
    """Sort the dirty paths into "commit" and "leave alone".

    A path is committed when it is one the runbook manages (``managed``), or when
    ``touched_by_runbook(path, committed_text)`` says the runbook changed it (for example: its
    committed version mentions Multipass, so 1.6/1.12 rewrote or removed it). ``.env`` files are
    never committed.
    """
    app = require_repo(app_dir)
    wanted = set(managed)
    plan = CommitPlan(app_dir=app)
    for change in changes(app):
        if never_commit(change.path):
            plan.left_alone.append((change, "local settings and secrets are never committed"))
        elif change.path in wanted or _touched(touched_by_runbook, app, change.path):
            plan.to_commit.append(change)
        else:
            plan.left_alone.append((change, "not changed by the runbook"))
    return plan


def phase1_rule(app_dir: str | os.PathLike[str], rules: Any = None) -> Callable[[str, str | None], bool]:
    """What tasks 1.6 to 1.12 touch, decided from the committed version of a path.

    A dirty path belongs to the runbook when its committed text speaks of the VM (rewritten by the
    rules), it is a VM page, a file named after Multipass or one only the VM scripts ran (removed),
    a ``package.json`` that had VM scripts, or a Markdown page whose committed text links to a removed
    VM page (the link was repointed).
    """
    from helpers.app import references, rewriting, vmtext
    from helpers.app.appfiles import Tree

    rules = rules or vmtext.DEFAULT_RULES
    ctx = references.context(Tree(app_dir), rules)
    packages = {label.split(":", 1)[0] for label in ctx.vm_scripts if ":" in label}

    def rule(path: str, committed: str | None) -> bool:
        if committed is None:
            return False
        if path in ctx.gone or path in ctx.vm_files or references.is_multipass_file(path):
            return True
        if vmtext.has_reference(committed, rules):
            return True
        if PurePosixPath(path).name == "package.json" and str(PurePosixPath(path).parent) in packages:
            return True
        markdown = PurePosixPath(path).suffix.lower() in rewriting.MARKDOWN
        prose = markdown or rewriting.is_env_file(path)
        if prose and any(vmtext.speaks_of_vm(line, rules) for line in committed.splitlines()):
            return True
        return markdown and bool(ctx.gone) and bool(rewriting.links_to(path, committed, ctx.gone))

    return rule


def plan_phase1_commit(app_dir: str | os.PathLike[str], rules: Any = None) -> CommitPlan:
    """:func:`plan_commit` with phase 1's managed files and :func:`phase1_rule` (``vmtext.Rules``)."""
    return plan_commit(app_dir, MANAGED_PATHS, phase1_rule(require_repo(app_dir), rules))


def _touched(rule: Callable[[str, str | None], bool] | None, app: Path, path: str) -> bool:
    return rule is not None and rule(path, committed_text(app, path))


def identity_problem(app_dir: str | os.PathLike[str]) -> str | None:
    """Why git cannot make a commit here (no user.name/user.email), or None."""
    missing = []
    for key, env_names in (
        ("user.name", ("GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME")),
        ("user.email", ("GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL")),
    ):
        if all(os.environ.get(n) for n in env_names):
            continue
        if not git(app_dir, "config", "--get", key, check=False).stdout.strip():
            missing.append(key)
    if not missing:
        return None
    return (
        f"git does not know who you are ({', '.join(missing)} unset): run "
        f'`git -C {app_dir} config user.name "Your Name"` and '
        f"`git -C {app_dir} config user.email you@example.com`"
    )


def head(app_dir: str | os.PathLike[str]) -> str | None:
    proc = git(app_dir, "rev-parse", "--verify", "-q", "HEAD", check=False)
    return proc.stdout.strip() or None


def commit(
    plan: CommitPlan, message: str = DEFAULT_MESSAGE, allowed: bool = False, dry_run: bool = False
) -> StepResult:
    """Commit exactly ``plan.paths``; other staged or dirty files stay as they are.

    ``allowed=False`` (the default) only reports what would be committed. Nothing to commit is ``ok``.
    """
    name = "commit the runbook's changes"
    if not plan.to_commit:
        return steps.ok(name, "nothing to commit: the runbook's changes are already committed")
    listing = "\n".join(f"{c.kind:9} {c.path}" for c in plan.to_commit)
    if dry_run or not allowed:
        why = "dry run" if dry_run else "commit=False: set commit=True to commit"
        return StepResult(name, "would change", f"{len(plan.to_commit)} file(s); {why}", listing)
    problem = identity_problem(plan.app_dir)
    if problem:
        return steps.failed(name, problem)
    paths = plan.paths
    git(plan.app_dir, "add", "-A", "--", *paths)
    git(plan.app_dir, "commit", "-q", "--only", "-m", message, "--", *paths)
    sha = head(plan.app_dir) or "?"
    return steps.changed(name, f"{sha[:12]}: {len(paths)} file(s)", listing)


def committed_paths(app_dir: str | os.PathLike[str], rev: str = "HEAD") -> list[str]:
    """The paths a commit changed (for verification)."""
    out = git(app_dir, "show", "--name-only", "--format=", "--no-renames", rev).stdout
    return sorted(p for p in out.splitlines() if p)


def tree_hash(app_dir: str | os.PathLike[str], exclude: Sequence[str] = ()) -> str:
    """A hash of the whole working tree (tracked and untracked, not ignored), without touching the index.

    Two equal hashes mean the files did not change. ``exclude`` takes pathspecs to leave out.
    """
    with tempfile.TemporaryDirectory() as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        specs = ["--", ".", *(f":(exclude){e}" for e in exclude)]
        git(app_dir, "add", "-A", *specs, env=env)
        return git(app_dir, "write-tree", env=env).stdout.strip()


def check_committed(
    check: Any,
    before: CommitPlan,
    head_before: str | None,
    allowed: bool,
    dry_run: bool = False,
    rules: Any = None,
) -> CommitPlan:
    """Task 1.14's verification, read back from git: returns the plan as it stands now.

    Nothing of the runbook's is left uncommitted; a new commit holds exactly the planned paths;
    the paths left alone are as they were; ``.env`` is not tracked.
    """
    app = before.app_dir
    after = plan_phase1_commit(app, rules)
    head_after = head(app)
    check(
        "no runbook change left uncommitted",
        not after.to_commit,
        ", ".join(after.paths) or f"clean at {str(head_after)[:12]}",
        hint="run this notebook with commit = True (or RUNBOOK_ALLOW_COMMIT=1) to commit them",
    )
    if head_after != head_before:
        paths = committed_paths(app)
        check(
            "the new commit holds exactly the planned paths",
            paths == sorted(before.paths),
            ", ".join(paths),
            hint="inspect it with `git show --stat HEAD`; amend or revert it by hand",
        )
    else:
        check(
            "HEAD did not move (nothing to commit, or committing not allowed)",
            not before.to_commit or not allowed or dry_run,
            f"HEAD {str(head_after)[:12]}",
            hint="the commit step reported success but HEAD did not move: run `git log -1` in the app",
        )
    same = [c for c, _ in after.left_alone] == [c for c, _ in before.left_alone]
    check(
        "paths left alone are untouched",
        same,
        f"{len(after.left_alone)} dirty path(s) as before",
        hint="compare `git status` with the table above",
    )
    tracked = git(app, "ls-files", "--", *NEVER_COMMIT).stdout.split()
    check(
        ".env is not tracked by git",
        not tracked,
        ", ".join(tracked) or "not tracked",
        hint="`git rm --cached .env` and list it in .gitignore: it holds local secrets",
    )
    return after


def show_plan(plan: CommitPlan) -> None:
    """The dirty paths with their decision (commit / leave alone), as a table."""
    from helpers.core.display import show_table

    title = f"{plan.app_dir}: {len(plan.to_commit)} to commit, {len(plan.left_alone)} left alone"
    show_table(("path", "change", "decision"), plan.rows() or [("—", "—", "nothing is dirty")], title=title)
