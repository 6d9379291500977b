"""The app repository as it is, read before anything is written: its profile.

:func:`read` looks at the app repository (the working tree, a planned overlay, or a git revision)
and returns a :class:`Profile`:

* the package manager (``packageManager``, lock files, ``pnpm-workspace.yaml``; how it was decided);
* every script of the root ``package.json`` and of each workspace package, classified by what its
  command does (:data:`KINDS`): dev web, dev worker, production start of either, migrate, push,
  seed, test, build, the old VM scripts, other. A command is followed through what it runs: other
  scripts (``pnpm worker``, ``pnpm -r dev``, ``pnpm --filter web dev``, ``turbo dev``,
  ``concurrently``, ``run-p``), shell files and ``make`` targets; a script that reaches
  ``multipass`` by any of these ways is a VM script, whatever its name;
* the keys of ``.env.example``, and where the app's PostgreSQL and Redis are: user, password,
  database name, host, port and Redis db index, from ``DATABASE_URL`` / ``REDIS_URL`` or from
  separate ``*_HOST`` / ``*_PORT`` / ``*_USER`` / ``*_DB`` keys (``${VAR}`` inside a URL is
  expanded from the same file), each part with the key it came from;
* its documentation files (README.md, CLAUDE.md, docs/**, the workspace packages' READMEs).

What the reader could not decide is listed in :attr:`Profile.unclear` instead of being guessed.

Task 1.15 (and anything that must name one of the app's commands) asks the profile::

    pick = profile.script_for("dev_worker")
    if pick:                        # a script was found
        print(pick.command)         # "pnpm worker", or "pnpm --filter @demo/worker dev"
    else:
        print(pick.reason)          # why there is none, and what the app has instead
    commands, missing = profile.commands_for("dev_web", "dev_worker")   # each process started once
"""

from __future__ import annotations

import fnmatch
import os
import re
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

import yaml

from helpers.app import packagejson, pmcommand
from helpers.app.appfiles import SKIP_DIRS, Tree, decode

# --------------------------------------------------------------------------- vocabulary
from helpers.app.scriptkinds import (
    BUILD,
    DEV_WEB,
    DEV_WORKER,
    KINDS,
    MIGRATE,
    OTHER,
    PROCESS_KINDS,
    PUSH,
    SEED,
    START_WEB,
    START_WORKER,
    TEST,
    VM,
    Classifier,
)
from helpers.services.appenv import Endpoint, environment_of

MANAGERS = pmcommand.MANAGERS

LOCKFILES = {
    "pnpm-lock.yaml": "pnpm",
    "yarn.lock": "yarn",
    "package-lock.json": "npm",
    "npm-shrinkwrap.json": "npm",
    "bun.lockb": "bun",
    "bun.lock": "bun",
}
ENV_FILES = (".env.example", ".env.sample", ".env.template", ".env.dist", "example.env")

# --------------------------------------------------------------------------- where files come from


class Files(Protocol):
    """What the profile reads: :class:`helpers.app.appfiles.Tree` or :class:`Revision`."""

    def read(self, rel: str) -> str | None: ...

    def files(self) -> list[str]: ...


class Revision:
    """The repository as it was at a git revision (``HEAD``, the baseline commit...), read-only."""

    def __init__(self, root: str | os.PathLike[str], rev: str = "HEAD"):
        self.root = Path(root)
        self.rev = rev
        proc = subprocess.run(
            ["git", "-C", str(self.root), "ls-tree", "-r", "-z", "--name-only", rev],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise ProfileError(
                f"cannot read revision {rev!r} of {self.root}: {proc.stderr.strip()}. Next step: check "
                "that app_dir is a git repository with that commit (git log --oneline)"
            )
        self._files = sorted(p for p in proc.stdout.split("\0") if p and not _skipped(p))

    def files(self) -> list[str]:
        return list(self._files)

    def read(self, rel: str) -> str | None:
        if rel not in self._files:
            return None
        proc = subprocess.run(["git", "-C", str(self.root), "show", f"{self.rev}:{rel}"], capture_output=True)
        return decode(proc.stdout) if proc.returncode == 0 else None


def _skipped(rel: str) -> bool:
    return any(part in SKIP_DIRS for part in PurePosixPath(rel).parts[:-1])


class ProfileError(ValueError):
    """The repository cannot be profiled; the message names the file and the next step."""


# --------------------------------------------------------------------------- the profile's parts


@dataclass(frozen=True)
class Script:
    """One script of the root ``package.json`` (``package == ""``) or of a workspace package."""

    name: str
    command: str
    package: str = ""  # the workspace package's folder, "" for the root
    kinds: tuple[str, ...] = (OTHER,)
    why: str = ""  # how it was classified, in a few words
    sure: bool = True  # False: classified by its name only (listed in Profile.unclear)
    files: tuple[str, ...] = ()  # the shell files and Makefiles its command runs

    @property
    def label(self) -> str:
        return f"{self.package}:{self.name}" if self.package else self.name

    def is_(self, kind: str) -> bool:
        return kind in self.kinds


@dataclass(frozen=True)
class Package:
    """A workspace package: its folder, its name in its ``package.json`` and its scripts."""

    path: str
    name: str
    scripts: tuple[Script, ...] = ()


@dataclass(frozen=True)
class Pick:
    """The answer to :meth:`Profile.script_for`: the script and the command that runs it, or why none.

    ``also`` names the other process kinds the same script starts (``dev`` that runs web and worker).
    A Pick is true when a script was found.
    """

    kind: str
    script: Script | None
    command: str | None
    reason: str
    also: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return self.command is not None


@dataclass(frozen=True)
class Profile:
    root: str
    package_manager: str
    package_manager_why: str
    scripts: tuple[Script, ...]  # the root package.json's, in file order
    packages: tuple[Package, ...]  # workspace packages, sorted by folder
    env_file: str | None  # ".env.example" or what the app has instead
    env_keys: tuple[str, ...]
    database: Endpoint | None
    redis: Endpoint | None
    urls: dict[str, Endpoint]  # every key whose value is a postgres:// or redis:// URL
    docs: tuple[str, ...]
    unclear: tuple[str, ...]  # what the reader could not decide: said, not guessed
    dependencies: tuple[str, ...] = ()  # every dependency name (root and packages)
    files: tuple[str, ...] = ()  # every non-ignored file, as the profile saw the repository
    manager_version: str = ""  # "9.12.0" from packageManager, "" when not declared
    node: str = ""  # package.json "engines.node" (">=20"), "" when not declared

    # ---- scripts

    def all_scripts(self) -> list[Script]:
        return [*self.scripts, *(s for p in self.packages for s in p.scripts)]

    def scripts_of(self, kind: str) -> list[Script]:
        """Every script of that kind (root first), in the order :meth:`script_for` prefers them."""
        if kind not in KINDS:
            raise ValueError(f"unknown script kind {kind!r}; one of {', '.join(KINDS)}")
        found = [s for s in self.all_scripts() if kind in s.kinds]
        return sorted(found, key=lambda s: _rank(s, kind))

    def script_names(self, package: str = "") -> set[str]:
        if not package:
            return {s.name for s in self.scripts}
        pkg = self.package(package)
        return {s.name for s in pkg.scripts} if pkg else set()

    def package(self, path_or_name: str) -> Package | None:
        wanted = path_or_name.strip().removeprefix("./").rstrip("/")
        return next((p for p in self.packages if wanted in (p.path, p.name)), None)

    def run_command(self, script: Script) -> str:
        """The command line that runs ``script`` from the repository's root with the app's manager."""
        if not script.package:
            return pmcommand.run_line(self.package_manager, script.name)
        package = self.package(script.package)
        return pmcommand.run_line(
            self.package_manager, script.name, package.name if package else None, script.package
        )

    def script_for(self, kind: str) -> Pick:
        """The script to run for ``kind`` (see :data:`KINDS`), or a Pick saying why there is none."""
        candidates = self.scripts_of(kind)
        usable = [s for s in candidates if VM not in s.kinds]
        if not usable:
            names = ", ".join(f"`{s.label}`" for s in self.all_scripts() if VM not in s.kinds)
            if candidates:
                reason = (
                    f"only VM scripts do this ({', '.join(s.label for s in candidates)}), and they go "
                    "with the VM"
                )
            else:
                reason = f"no script {KINDS[kind]}"
            reason += f"; the app's scripts are: {names or 'none'}"
            return Pick(kind, None, None, reason)
        best = usable[0]
        also = tuple(k for k in PROCESS_KINDS if k != kind and k in best.kinds)
        why = f"`{best.label}`: {best.why}" if best.why else f"`{best.label}`"
        if len(usable) > 1:
            why += f" (also possible: {', '.join(s.label for s in usable[1:])})"
        return Pick(kind, best, self.run_command(best), why, also)

    def commands_for(self, *kinds: str) -> tuple[list[str], list[Pick]]:
        """Commands that start each of ``kinds`` once, and the Picks of the kinds no script starts.

        Single-purpose scripts are preferred; when a kind is only started by a script that starts
        others too (``dev`` runs web and worker), that one script replaces the single ones it covers,
        so nothing is started twice.
        """
        picks = {k: self.script_for(k) for k in kinds}
        missing = [p for p in picks.values() if not p]
        found = {k: p for k, p in picks.items() if p}
        shared = [p for p in found.values() if p.also and any(a in found for a in p.also)]
        if shared:
            wide = max(shared, key=lambda p: len(set(p.also) & set(found)))
            covered = {wide.kind, *wide.also}
            chosen = [wide] + [p for k, p in found.items() if k not in covered]
        else:
            chosen = list(found.values())
        commands: list[str] = []
        for p in chosen:
            if p.command and p.command not in commands:
                commands.append(p.command)
        return commands, missing

    # ---- views

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-ready), passwords included: keep it out of logs (see :func:`rows`)."""
        return asdict(self)

    def rows(self) -> list[tuple[str, str, str]]:
        """(what, value, where it comes from) rows, passwords masked."""
        version = f" {self.manager_version}" if self.manager_version else ""
        rows = [("package manager", self.package_manager + version, self.package_manager_why)]
        if self.node:
            rows.append(("Node.js", self.node, 'package.json "engines"'))
        rows.append(
            (
                "workspace packages",
                ", ".join(f"{p.path} ({p.name})" if p.name else p.path for p in self.packages) or "none",
                "pnpm-workspace.yaml / package.json workspaces",
            )
        )
        for kind in KINDS:
            scripts = self.scripts_of(kind)
            if scripts and kind != OTHER:
                rows.append((f"scripts: {kind}", ", ".join(s.label for s in scripts), KINDS[kind]))
        other = [s for s in self.all_scripts() if OTHER in s.kinds]
        if other:
            rows.append(("scripts: other", ", ".join(s.label for s in other), KINDS[OTHER]))
        rows.append(("env keys", ", ".join(self.env_keys) or "none", self.env_file or "no .env.example"))
        for label, ep in (("database", self.database), ("redis", self.redis)):
            if ep is None:
                rows.append((label, "not found", self.env_file or "no .env.example"))
            else:
                src = ", ".join(f"{k} ← {v}" for k, v in ep.sources.items())
                rows.append((label, ep.shown(), src))
        rows.append(("docs", ", ".join(self.docs) or "none", "README.md, CLAUDE.md, docs/**"))
        gone = sorted(vm_files(self))
        if gone:
            rows.append(("files only the VM scripts run", ", ".join(gone), "removed with them (task 1.12)"))
        for item in self.unclear:
            rows.append(("not understood", item, "decide by hand"))
        return rows

    def script_rows(self) -> list[tuple[str, str, str, str]]:
        return [
            (
                s.label,
                ", ".join(s.kinds),
                s.command if len(s.command) <= 80 else s.command[:77] + "...",
                s.why,
            )
            for s in self.all_scripts()
        ]


# The names preferred when several scripts do the same thing (the first is the most specific).
_PREFERRED: dict[str, tuple[str, ...]] = {
    DEV_WEB: ("dev:web", "web:dev", "dev", "web"),
    DEV_WORKER: ("dev:worker", "worker", "worker:dev", "dev"),
    START_WEB: ("start:web", "start"),
    START_WORKER: ("start:worker", "worker:start", "worker", "start"),
    MIGRATE: ("db:migrate", "migrate", "migrate:deploy"),
    PUSH: ("db:push", "push"),
    SEED: ("db:seed", "seed"),
    TEST: ("test",),
    BUILD: ("build",),
}


def _rank(script: Script, kind: str) -> tuple[Any, ...]:
    """Sort key: not a VM script, sure, one process only, at the root, a preferred name, a short name."""
    names = _PREFERRED.get(kind, ())
    processes = sum(1 for k in PROCESS_KINDS if k in script.kinds)
    by_name = names.index(script.name) if script.name in names else len(names)
    return (
        VM in script.kinds,
        not script.sure,
        processes,
        script.package != "",
        by_name,
        len(script.name),
        script.label,
    )


def _version_of(declared: str, manager: str) -> str:
    name, _, version = declared.partition("@")
    return version.split("+", 1)[0] if name == manager else ""


# --------------------------------------------------------------------------- what phase 1 removes


def vm_hosts(p: Profile | None) -> set[str]:
    """The non-local hosts the app's services were on (the VM's address or name)."""
    if p is None:
        return set()
    endpoints = [p.database, p.redis, *p.urls.values()]
    return {e.host for e in endpoints if e and e.host and e.host.lower() not in envfile_local_hosts()}


def envfile_local_hosts() -> frozenset[str]:
    from helpers.app.vmtext import LOCAL_HOSTS

    return LOCAL_HOSTS


def vm_scripts(p: Profile) -> list[Script]:
    """The scripts that only manage the VM (removed by phase 1); a script that also does other work
    is not one of them (:attr:`Profile.unclear` names it)."""
    return [s for s in p.all_scripts() if s.kinds == (VM,)]


def vm_files(p: Profile) -> set[str]:
    """Files that only the VM scripts run (their shell files, their Makefile): they go with them."""
    used_by_others = {f for s in p.all_scripts() if s.kinds != (VM,) for f in s.files}
    return {f for s in vm_scripts(p) for f in s.files} - used_by_others


def baseline(app: Files | str | os.PathLike[str]) -> Profile:
    """The app as it was before phase 1 changed it: its last commit (``HEAD``), else its files.

    Phase 1 commits only in task 1.14, so until then ``HEAD`` is the app before the migration; after
    the commit it is the migrated app, whose identity is the same.
    """
    root = app if isinstance(app, str | os.PathLike) else getattr(app, "root", None)
    if root is not None:
        proc = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--verify", "-q", "HEAD"], capture_output=True, text=True
        )
        top = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--show-toplevel"], capture_output=True, text=True
        )
        if (
            proc.returncode == 0
            and Path(top.stdout.strip() or "/nonexistent").resolve() == Path(root).resolve()
        ):
            return read(root, rev="HEAD")
    return read(app)


def show(profile: Profile) -> None:
    """The profile as two tables: what the app is, then every script with its classification."""
    from helpers.core.display import show_table
    from helpers.core.secrets import scrub

    rows = [(what, scrub(value, values=[]), where) for what, value, where in profile.rows()]
    show_table(("", "the app", "read from"), rows, title=f"App profile of {profile.root}")
    show_table(
        ("script", "kind", "command", "why"),
        [(a, b, scrub(c, values=[]), d) for a, b, c, d in profile.script_rows()],
        title="Its scripts",
    )


# --------------------------------------------------------------------------- reading


def read(app: Files | str | os.PathLike[str], rev: str | None = None) -> Profile:
    """Profile the app repository: its working tree (or a :class:`Tree` with a plan), or ``rev``."""
    files: Files
    if rev is not None:
        files = Revision(app if isinstance(app, str | os.PathLike) else getattr(app, "root", "."), rev)
    elif isinstance(app, str | os.PathLike):
        files = Tree(app)
    else:
        files = app
    return _Reader(files, str(getattr(files, "root", ""))).profile()


class _Reader:
    def __init__(self, files: Files, root: str):
        self.files = files
        self.root = root
        self.all_files = files.files()
        self.unclear: list[str] = []
        self.manifests: dict[str, dict[str, Any]] = {}
        self.package_names: dict[str, str] = {}

    # ---- package.json files

    def manifest(self, folder: str) -> dict[str, Any] | None:
        if folder in self.manifests:
            return self.manifests[folder]
        rel = f"{folder}/package.json" if folder else "package.json"
        text = self.files.read(rel)
        if text is None:
            return None
        data = packagejson.parse(text, rel)  # PackageJsonError names the line and the next step
        self.manifests[folder] = data
        return data

    def profile(self) -> Profile:
        root = self.manifest("")
        if root is None:
            raise ProfileError(
                f"{self.root or 'the app'} has no package.json: point app_dir at the app repository's root"
            )
        packages = self.workspace_packages(root)
        manager, manager_why = self.package_manager(root)
        self.package_names = {p: (self.manifest(p) or {}).get("name", "") for p in packages}
        classifier = Classifier(self)
        root_scripts = tuple(self.script(classifier, "", n) for n in self.scripts_of(""))
        pkgs = tuple(
            Package(
                p, self.package_names[p], tuple(self.script(classifier, p, n) for n in self.scripts_of(p))
            )
            for p in packages
        )
        env_file, env_keys, database, redis, urls = self.environment()
        deps: set[str] = set()
        for folder in ["", *packages]:
            data = self.manifest(folder) or {}
            for section in ("dependencies", "devDependencies", "optionalDependencies", "peerDependencies"):
                if isinstance(data.get(section), dict):
                    deps.update(data[section])
        return Profile(
            root=self.root,
            package_manager=manager,
            package_manager_why=manager_why,
            scripts=root_scripts,
            packages=pkgs,
            env_file=env_file,
            env_keys=env_keys,
            database=database,
            redis=redis,
            urls=urls,
            docs=tuple(self.docs(packages)),
            unclear=tuple(dict.fromkeys(self.unclear + classifier.unclear)),
            dependencies=tuple(sorted(deps)),
            files=tuple(self.all_files),
            manager_version=_version_of(str(root.get("packageManager") or ""), manager),
            node=str((root.get("engines") or {}).get("node") or "")
            if isinstance(root.get("engines"), dict)
            else "",
        )

    def scripts_of(self, folder: str) -> dict[str, str]:
        return dict((self.manifest(folder) or {}).get("scripts") or {})

    def read(self, rel: str) -> str | None:
        return self.files.read(rel)

    def script(self, classifier: Classifier, folder: str, name: str) -> Script:
        found = classifier.classify(folder, name)
        return Script(
            name, self.scripts_of(folder)[name], folder, found.kinds, found.why, found.sure, found.files
        )

    # ---- package manager

    def package_manager(self, root: dict[str, Any]) -> tuple[str, str]:
        declared = str(root.get("packageManager") or "")
        locks = sorted({LOCKFILES[f] for f in self.all_files if f in LOCKFILES})
        if declared:
            name = declared.split("@", 1)[0]
            if name not in MANAGERS:
                self.unclear.append(f"packageManager {declared!r} is not one of {', '.join(MANAGERS)}")
            if locks and locks != [name]:
                self.unclear.append(
                    f"packageManager says {name} but the lock file(s) belong to {', '.join(locks)}"
                )
            return name, f'package.json "packageManager": "{declared}"'
        if len(locks) == 1:
            lock = next(f for f in self.all_files if LOCKFILES.get(f) == locks[0])
            return locks[0], f"lock file {lock}"
        if len(locks) > 1:
            self.unclear.append(f"lock files of several package managers: {', '.join(locks)}")
        if "pnpm-workspace.yaml" in self.all_files:
            return "pnpm", "pnpm-workspace.yaml"
        counts = self.manager_mentions()
        if counts and max(counts.values()) > 0:
            best = max(counts, key=lambda m: counts[m])
            tied = [m for m, c in counts.items() if c == counts[best]]
            if len(tied) == 1:
                return (
                    best,
                    f"the docs run `{best} install` ({counts[best]}×); no packageManager, no lock file",
                )
        self.unclear.append("package manager: no packageManager field, no lock file; npm assumed")
        return "npm", "assumed (no packageManager field, no lock file)"

    def manager_mentions(self) -> dict[str, int]:
        counts = dict.fromkeys(MANAGERS, 0)
        for rel in ("README.md", "CLAUDE.md"):
            text = self.files.read(rel) or ""
            for m in MANAGERS:
                counts[m] += len(re.findall(rf"(?<![\w-]){m} (?:install|i|run|add)\b", text))
        return counts

    # ---- workspaces

    def workspace_packages(self, root: dict[str, Any]) -> list[str]:
        patterns: list[str] = []
        text = self.files.read("pnpm-workspace.yaml")
        if text is not None:
            try:
                data = yaml.safe_load(text) or {}
            except yaml.YAMLError as exc:
                raise ProfileError(f"pnpm-workspace.yaml is not valid YAML: {exc}") from None
            patterns += [str(p) for p in (data.get("packages") or []) if isinstance(data, dict)]
        ws = root.get("workspaces")
        if isinstance(ws, dict):
            ws = ws.get("packages")
        if isinstance(ws, list):
            patterns += [str(p) for p in ws]
        include = [p.strip().removeprefix("./").rstrip("/") for p in patterns if not p.startswith("!")]
        exclude = [p[1:].strip().removeprefix("./").rstrip("/") for p in patterns if p.startswith("!")]
        folders = sorted(
            {str(PurePosixPath(f).parent) for f in self.all_files if PurePosixPath(f).name == "package.json"}
            - {"."}
        )
        found = [
            d for d in folders if any(_glob(d, p) for p in include) and not any(_glob(d, p) for p in exclude)
        ]
        if include and not found:
            self.unclear.append(
                f"workspace patterns {', '.join(include)} match no folder with a package.json"
            )
        return found

    # ---- environment

    def environment(
        self,
    ) -> tuple[str | None, tuple[str, ...], Endpoint | None, Endpoint | None, dict[str, Endpoint]]:
        env_file = next((f for f in ENV_FILES if self.files.read(f) is not None), None)
        if env_file is None:
            self.unclear.append("no .env.example: the database and Redis settings are unknown")
            return None, (), None, None, {}
        env = environment_of(self.files.read(env_file) or "", env_file)
        self.unclear += list(env.unclear)
        return env_file, env.keys, env.database, env.redis, env.urls

    # ---- docs

    def docs(self, packages: list[str]) -> list[str]:
        wanted = []
        for rel in self.all_files:
            path = PurePosixPath(rel)
            if path.suffix.lower() not in (".md", ".mdx", ".markdown"):
                continue
            top = rel in ("README.md", "CLAUDE.md", "AGENTS.md") or rel.startswith("docs/")
            in_package = str(path.parent) in packages and path.name in ("README.md", "CLAUDE.md")
            if top or in_package:
                wanted.append(rel)
        return sorted(wanted, key=lambda r: (r.count("/"), r))


def _glob(folder: str, pattern: str) -> bool:
    """pnpm/npm workspace globs: ``apps/*`` (one level), ``packages/**`` (any depth), exact folders."""
    if pattern.endswith("/**"):
        base = pattern[:-3]
        return folder.startswith(base + "/") if base else True
    if "**" in pattern:
        return fnmatch.fnmatch(folder, pattern.replace("**", "*"))
    return len(PurePosixPath(folder).parts) == len(PurePosixPath(pattern).parts) and fnmatch.fnmatch(
        folder, pattern
    )
