"""Planned changes to the app repository's files: plan, show the diff, apply (or not), verify.

The phase-1 tasks that edit the app repository (1.6 to 1.13) all work the same way:

1. a planner reads the repository through a :class:`Tree` and returns :class:`FileChange` s
   (the file's text now, the text wanted; ``None`` means absent / to delete);
2. :func:`apply` writes them, or in dry-run only reports them, as :class:`~helpers.core.steps.StepResult` s
   with a unified diff (a change already in place is ``ok``: the steps are idempotent);
3. the verification reads the files again through a :class:`Tree`. In dry-run the tree is given the
   plan as an *overlay* (``Tree(app, planned=changes)``), so the same checks prove what the plan would
   leave behind without writing anything.

Text is read and written as UTF-8 bytes without newline translation, so CRLF files, a missing final
newline or a byte-order mark survive every edit.
"""

from __future__ import annotations

import difflib
import os
import re
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from helpers.core import steps
from helpers.core.paths import PROJECT_ROOT
from helpers.core.secrets import scrub
from helpers.core.steps import StepResult

# Never scanned nor rewritten: dependencies, build output, VCS data.
SKIP_DIRS: frozenset[str] = frozenset(
    {
        ".git",
        "node_modules",
        ".next",
        ".turbo",
        ".pnpm-store",
        "dist",
        "build",
        "out",
        "coverage",
        "__pycache__",
        ".venv",
        ".idea",
    }
)
MAX_TEXT_BYTES = 2_000_000
COMPOSE_SOURCE = PROJECT_ROOT / "docker-compose.yml"
COMPOSE_NAME = "docker-compose.yml"


class AppDirError(ValueError):
    """``app_dir`` does not point at the app repository; the message says what to do."""


def resolve_app_dir(app_dir: str | os.PathLike[str] | None) -> Path:
    """The app repository's root as an absolute path, or :class:`AppDirError` with the next step."""
    if app_dir is None or not str(app_dir).strip():
        raise AppDirError(
            "app_dir is empty: set the notebook parameter app_dir (or the environment variable "
            "RUNBOOK_APP_DIR) to the root of the app repository, the folder that holds package.json"
        )
    path = Path(str(app_dir)).expanduser()
    if not path.exists():
        raise AppDirError(
            f"app_dir {str(path)!r} does not exist. Next step: check the path, or clone the app "
            "repository there first (git clone <url> <folder>)"
        )
    if not path.is_dir():
        raise AppDirError(f"app_dir {str(path)!r} is a file, not a folder: point it at the repository's root")
    if not (path / "package.json").is_file():
        raise AppDirError(
            f"{path} is not the app repository: it has no package.json. Next step: point app_dir at "
            "the repository's root (the folder with package.json, README.md and .env.example)"
        )
    return path.resolve()


# --------------------------------------------------------------------------- reading and writing


def decode(data: bytes) -> str | None:
    """UTF-8 text, or None for binary content (a NUL byte, or not UTF-8)."""
    if b"\0" in data[:8192]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def read_text(path: Path) -> str | None:
    """The file's text exactly as stored (no newline translation); None if absent or binary."""
    try:
        data = path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    return decode(data)


def write_text(path: Path, text: str) -> None:
    """Write ``text`` byte for byte (no newline translation), keeping an existing file's mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))


def newline_of(text: str) -> str:
    """The file's line ending: CRLF when most lines end so, else LF."""
    crlf = text.count("\r\n")
    return "\r\n" if crlf and crlf >= text.count("\n") - crlf else "\n"


def with_newlines(text: str, newline: str) -> str:
    """``text`` (written with LF) converted to ``newline``."""
    text = text.replace("\r\n", "\n")
    return text.replace("\n", newline) if newline != "\n" else text


# --------------------------------------------------------------------------- git


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)


def in_git(root: Path) -> bool:
    proc = _git(root, "rev-parse", "--is-inside-work-tree")
    return proc.returncode == 0 and proc.stdout.strip() == "true"


# --------------------------------------------------------------------------- the tree


class Tree:
    """The app repository as the runbook sees it: the files on disk, optionally with a plan laid over.

    ``planned`` (a list of :class:`FileChange` or a ``{path: text-or-None}`` mapping) makes the tree
    answer as if the plan had been applied, without writing anything: dry-run verification.
    """

    def __init__(
        self, root: str | os.PathLike[str], planned: Iterable[FileChange] | Mapping[str, str | None] = ()
    ):
        self.root = Path(root)
        if isinstance(planned, Mapping):
            self.overlay: dict[str, str | None] = dict(planned)
        else:
            self.overlay = {c.path: c.after for c in planned}
        self._git = in_git(self.root)

    @classmethod
    def of(cls, app: Tree | str | os.PathLike[str]) -> Tree:
        return app if isinstance(app, Tree) else cls(app)

    @property
    def is_preview(self) -> bool:
        return bool(self.overlay)

    def path(self, rel: str) -> Path:
        return self.root / rel

    def read(self, rel: str) -> str | None:
        """The file's text (planned text in a preview); None when absent or binary."""
        if rel in self.overlay:
            return self.overlay[rel]
        return read_text(self.root / rel)

    def exists(self, rel: str) -> bool:
        if rel in self.overlay:
            return self.overlay[rel] is not None
        return (self.root / rel).is_file()

    def files(self) -> list[str]:
        """Every non-ignored file (git-tracked and untracked), POSIX paths relative to the root.

        Outside git, every file except :data:`SKIP_DIRS`. Plus planned files, minus planned deletions.
        """
        found: set[str] = set()
        if self._git:
            proc = _git(self.root, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
            for rel in proc.stdout.split("\0"):
                if rel and not _skipped(rel) and (self.root / rel).is_file():
                    found.add(rel)
        else:
            for dirpath, dirnames, filenames in os.walk(self.root):
                dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
                for name in filenames:
                    rel = Path(dirpath, name).relative_to(self.root).as_posix()
                    found.add(rel)
        for rel, after in self.overlay.items():
            if after is None:
                found.discard(rel)
            else:
                found.add(rel)
        return sorted(found)

    def text_files(self) -> list[tuple[str, str]]:
        """``(path, text)`` of every non-ignored text file (binary and huge files skipped)."""
        out = []
        for rel in self.files():
            if rel not in self.overlay:
                try:
                    if (self.root / rel).stat().st_size > MAX_TEXT_BYTES:
                        continue
                except OSError:
                    continue
            text = self.read(rel)
            if text is not None:
                out.append((rel, text))
        return out

    def committed(self, rel: str) -> str | None:
        """The file's text at git HEAD; None outside git or when HEAD has no such file."""
        if not self._git:
            return None
        proc = subprocess.run(["git", "-C", str(self.root), "show", f"HEAD:./{rel}"], capture_output=True)
        return decode(proc.stdout) if proc.returncode == 0 else None

    def is_ignored(self, rel: str) -> bool | None:
        """Whether git ignores the path; None outside git."""
        if not self._git:
            return None
        return _git(self.root, "check-ignore", "-q", "--", rel).returncode == 0


def _skipped(rel: str) -> bool:
    return any(part in SKIP_DIRS for part in PurePosixPath(rel).parts[:-1])


# --------------------------------------------------------------------------- changes


@dataclass(frozen=True)
class FileChange:
    """One file, now and wanted. ``before``/``after`` None: absent / to be deleted."""

    path: str
    before: str | None
    after: str | None
    why: str = ""
    show_diff: bool = True  # False for files that may hold secrets (.env)

    @property
    def needed(self) -> bool:
        return self.before != self.after

    @property
    def action(self) -> str:
        if self.before is None and self.after is not None:
            return "create"
        if self.after is None:
            return "delete"
        return "update"

    @property
    def diff(self) -> str:
        return unified_diff(self.before, self.after, self.path)


def unified_diff(before: str | None, after: str | None, rel: str) -> str:
    """A ``git diff``-style unified diff; line endings shown as ``\\r`` would be are kept out of sight."""
    old = (before or "").splitlines(keepends=True)
    new = (after or "").splitlines(keepends=True)
    lines = difflib.unified_diff(
        old,
        new,
        fromfile="/dev/null" if before is None else f"a/{rel}",
        tofile="/dev/null" if after is None else f"b/{rel}",
    )
    out = []
    for line in lines:
        if line.endswith("\n"):
            out.append(line.rstrip("\r\n"))
        else:
            out.append(line)
            out.append("\\ No newline at end of file")
    return "\n".join(out)


def change(tree: Tree, rel: str, after: str | None, why: str = "", show_diff: bool = True) -> FileChange:
    return FileChange(rel, tree.read(rel), after, why, show_diff)


def apply(
    app: Tree | str | os.PathLike[str], changes: Iterable[FileChange], dry_run: bool = False
) -> list[StepResult]:
    """Write (or, in dry-run, only report) each change: ``ok`` / ``changed`` / ``would change``.

    No change at all gives one ``ok`` step, so the report always says something.
    """
    root = Tree.of(app).root
    results = []
    for c in changes:
        name = f"{c.action} {c.path}"
        if not c.needed:
            results.append(steps.ok(name, c.why or "already as wanted"))
            continue
        diff = c.diff if c.show_diff else ""
        detail = c.why or c.action
        if not c.show_diff:
            detail += " (diff not shown: the file may hold secrets)"
        if not dry_run:
            target = root / c.path
            if c.after is None:
                target.unlink(missing_ok=True)
                _prune_empty_dirs(target.parent, root)
            else:
                write_text(target, c.after)
        results.append(steps.changed(name, detail, scrub(diff, values=[]), dry_run=dry_run))
    return results or [steps.ok("files", "nothing to change")]


def view(app: Tree | str | os.PathLike[str], changes: Iterable[FileChange], dry_run: bool) -> Tree:
    """What the verification reads: the files, or in a dry run the files as ``changes`` would leave them."""
    return Tree(Tree.of(app).root, planned=list(changes) if dry_run else ())


def titled(title: str, dry_run: bool) -> str:
    return f"{title} (dry run: the planned files)" if dry_run else title


def _prune_empty_dirs(folder: Path, root: Path) -> None:
    while folder != root and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent


# --------------------------------------------------------------------------- task 1.7: the compose file


def render_compose(text: str, services: Any = None, env_lines: Iterable[str] = ()) -> str:
    """The runbook's compose file with its defaults set to the app's (``services``: an
    :class:`helpers.app.envexample.LocalServices`): ``POSTGRES_USER``, ``POSTGRES_PASSWORD`` (the local
    default the app documents), ``POSTGRES_DB`` and the two ports; the header shows the app's own
    settings (``env_lines``). Without ``services`` the file is returned as it is.
    """
    if services is None:
        return text
    defaults = {
        "POSTGRES_USER": services.user,
        "POSTGRES_PASSWORD": services.password or "postgres",
        "POSTGRES_DB": services.database,
        "POSTGRES_PORT": str(services.postgres_port),
        "REDIS_PORT": str(services.redis_port),
    }
    for name, value in defaults.items():
        safe = value.replace("$", "$$").replace("}", "")
        text = re.sub(rf"\$\{{{name}:-[^}}]*\}}", f"${{{name}:-{safe}}}", text)

        def row(m: re.Match[str], value: str = value) -> str:
            width = len(m.group("default"))
            return f"{m.group('head')}{value:<{width - 1}} |"

        text = re.sub(rf"(?P<head>^# \| {name}\s*\| )(?P<default>[^|]*)\|", row, text, flags=re.M)
    lines = list(env_lines)
    if lines:
        text = re.sub(
            r"(reaches the services on localhost:\n)(?:#   [A-Z_]+=.*\n)+",
            lambda m: m.group(1) + "".join(f"#   {line}\n" for line in lines),
            text,
        )
    if services.redis_index >= 16:  # Redis has 16 databases unless told otherwise
        text = text.replace(
            '["redis-server", "--appendonly", "yes"]',
            f'["redis-server", "--appendonly", "yes", "--databases", "{services.redis_index + 1}"]',
        )
    return text


def plan_compose(
    app: Tree | str | os.PathLike[str],
    source: str | os.PathLike[str] = COMPOSE_SOURCE,
    overwrite: bool = False,
    services: Any = None,
    env_lines: Iterable[str] = (),
) -> tuple[list[FileChange], list[StepResult]]:
    """Copy the runbook's ``docker-compose.yml`` into the app, its defaults set to the app's
    (:func:`render_compose`); a different existing file needs ``overwrite``.

    Returns the changes to apply and extra step results (a difference left alone is ``skipped``
    with its diff, so the reader sees what ``overwrite=True`` would do).
    """
    tree = Tree.of(app)
    src = Path(source)
    raw = read_text(src)
    if raw is None:
        raise FileNotFoundError(
            f"the runbook's compose file {src} is missing or unreadable. Next step: restore it "
            "(git checkout -- docker-compose.yml in the runbook repository)"
        )
    wanted = render_compose(raw, services, env_lines)
    current = tree.read(COMPOSE_NAME)
    if current is None or current == wanted:
        why = (
            "copied from the runbook, with the app's defaults" if current is None else "same as the runbook's"
        )
        return [FileChange(COMPOSE_NAME, current, wanted, why)], []
    if overwrite:
        return [FileChange(COMPOSE_NAME, current, wanted, "replaced by the runbook's (overwrite=True)")], []
    diff = unified_diff(current, wanted, COMPOSE_NAME)
    left = StepResult(
        f"update {COMPOSE_NAME}",
        "skipped",
        "the app already has a different docker-compose.yml; left as is (set overwrite=True to replace it "
        "with the runbook's; the diff shows what would change)",
        diff,
    )
    return [], [left]


def _yaml(text: str) -> Any:
    class _Loader(yaml.SafeLoader):
        pass

    return yaml.load(text, Loader=_Loader)


def _service_for(services: Mapping[str, Any], word: str) -> tuple[str, Mapping[str, Any]] | None:
    for name, body in services.items():
        if isinstance(body, Mapping) and (word in name or word in str(body.get("image", ""))):
            return name, body
    return None


def check_compose_file(
    check: Any,
    app: Tree | str | os.PathLike[str],
    source: str | os.PathLike[str] = COMPOSE_SOURCE,
    services: Any = None,
    env_lines: Iterable[str] = (),
) -> None:
    """Task 1.7's verification: the app's compose file runs PostgreSQL 15 and Redis 7 the runbook's way."""
    tree = Tree.of(app)
    text = tree.read(COMPOSE_NAME)
    if not check(
        "docker-compose.yml exists in the app",
        text is not None,
        tree.path(COMPOSE_NAME),
        hint="run task 1.7 without dry_run",
    ):
        return
    try:
        data = _yaml(text)
    except yaml.YAMLError as exc:
        check(
            "docker-compose.yml is valid YAML",
            False,
            str(exc).splitlines()[0],
            hint="fix the YAML or set overwrite=True to take the runbook's file",
        )
        return
    reference = render_compose(read_text(Path(source)) or "", services, env_lines)
    services = data.get("services", {}) if isinstance(data, Mapping) else {}
    check(
        "same as the runbook's docker-compose.yml (with the app's defaults)",
        text == reference,
        "identical" if text == reference else "differs (see the step's diff)",
        hint="set overwrite=True to replace the app's file, or keep it if the team changed it on purpose",
    )
    for word, version, port in (("postgres", "15", "5432"), ("redis", "7", "6379")):
        found = _service_for(services, word)
        if not check(
            f"a {word} service",
            found,
            found[0] if found else "none",
            hint=f"the compose file must define a {word} service",
        ):
            continue
        name, body = found
        image = str(body.get("image", ""))
        check(
            f"{name}: image {word} {version}",
            f":{version}" in image,
            image,
            hint=f"use the {word}:{version} image (or its -alpine variant)",
        )
        check(
            f"{name}: has a healthcheck",
            isinstance(body.get("healthcheck"), Mapping),
            body.get("healthcheck", {}).get("test", "none")
            if isinstance(body.get("healthcheck"), Mapping)
            else "none",
            hint="`docker compose up --wait` needs a healthcheck to know when it is ready",
        )
        ports = [str(p) for p in body.get("ports", [])]
        local = bool(ports) and all(p.startswith("127.0.0.1:") for p in ports)
        check(
            f"{name}: port {port} published on 127.0.0.1 only",
            local and any(p.endswith(f":{port}") for p in ports),
            ", ".join(ports) or "no ports",
            hint="publish as 127.0.0.1:<host port>:" + port,
        )
        vols = [str(v) for v in body.get("volumes", [])]
        named = [v for v in vols if not v.startswith((".", "/", "~"))]
        check(
            f"{name}: data on a named volume",
            named,
            ", ".join(vols) or "no volumes",
            hint="a named volume keeps the data across `docker compose down`",
        )
    check.call(
        "`docker compose config` accepts it",
        lambda: compose_config_ok(tree),
        hint="run `docker compose config` in the app folder to see the error",
    )


def compose_config_ok(tree: Tree) -> str:
    """Run ``docker compose config -q`` on the (possibly planned) file; raise with compose's message."""
    text = tree.read(COMPOSE_NAME) or ""
    env = {k: v for k, v in os.environ.items() if k != "COMPOSE_FILE"}
    proc = subprocess.run(
        ["docker", "compose", "--project-directory", str(tree.root), "-f", "-", "config", "-q"],
        input=text,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    if proc.returncode != 0:
        raise RuntimeError((proc.stderr or proc.stdout).strip() or f"exit code {proc.returncode}")
    return "valid"
