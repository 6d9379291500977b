"""The app repository's production files: documentation (2.10), the environment reference (2.11) and the
image build configuration (2.12). Every change is a :class:`~helpers.app.appfiles.FileChange`: shown as a
diff, idempotent, dry-run aware (``appfiles.apply`` / ``appfiles.view``).

* 2.10: a *Production* section in ``README.md`` and in ``CLAUDE.md`` (between ``<!-- production:start -->``
  and ``<!-- production:end -->`` markers: a second run finds them and changes nothing; the first run replaces
  the README's old *Deployment* section), and ``docs/production.md`` (architecture, how a push deploys, where
  to look when it fails).
* 2.11: ``docs/production-env.md``, generated from the runbook's one list of production variables
  (:data:`helpers.app.prodenv.PRODUCTION_ENV`, whose secrets name :data:`helpers.core.secrets.SECRETS`) and
  the deploy workflow's secrets (:data:`helpers.app.workflow.DEPLOY_SECRETS`). The verification reads the
  *app's* code
  (its ``env.ts``, ``process.env.X`` in the ``src/`` of the app or of its workspace packages,
  ``.env.example``): every variable it reads must be
  documented, or listed as local-only.
* 2.12: ``Dockerfile`` (web: Next.js standalone output, non-root, ``HEALTHCHECK`` on the health path),
  ``Dockerfile.worker`` (non-root, no port), ``.dockerignore``, ``output: "standalone"`` in the Next.js
  config; the health path is recorded for tasks 2.14 and 2.18. A Dockerfile the runbook did not write is
  kept (its diff shown; ``overwrite=True`` replaces it) and checked by the same rules.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helpers.app import vmtext, workflow
from helpers.app.appdocs import headings
from helpers.app.appfiles import FileChange, Tree, newline_of, unified_diff, with_newlines
from helpers.core import secrets
from helpers.core.steps import StepResult

TEMPLATES = Path(__file__).with_name("templates") / "app"
MARKER = "Implementation 3 runbook"
DEFAULT_HEALTH_PATH = "/api/health"
DEFAULT_WEB_PORT = 3000
NODE_VERSION = "20"


def template(name: str) -> str:
    return (TEMPLATES / name).read_text(encoding="utf-8")


def fill(text: str, values: Mapping[str, Any]) -> str:
    for key, value in values.items():
        text = text.replace(f"@@{key}@@", str(value))
    left = sorted(set(re.findall(r"@@[A-Z_]+@@", text)))
    if left:
        raise ValueError(f"template placeholders left unfilled: {', '.join(left)}")
    return text


def check_health_path(path: str) -> str:
    if not re.fullmatch(r"/[A-Za-z0-9._~/-]*", path or ""):
        raise ValueError(f"health_path {path!r} must be a URL path such as /api/health")
    return path


# --------------------------------------------------------------------------- managed sections (2.10)


@dataclass(frozen=True)
class Section:
    path: str
    template: str
    replaces: str  # regex of the heading an older version of this section had (first run replaces it)


README_SECTION = Section("README.md", "readme-production-section.md", r"deploy|production")
CLAUDE_SECTION = Section("CLAUDE.md", "claude-production-section.md", r"production|deploy")
START = re.compile(r"^<!--\s*production:start\b.*?-->[ \t]*$")
END = re.compile(r"^<!--\s*production:end\s*-->[ \t]*$")
DOCS_PAGE = "docs/production.md"
ENV_PAGE = "docs/production-env.md"


def _block(section: Section, values: Mapping[str, Any], level: int) -> str:
    body = fill(template(section.template), values).rstrip("\n")
    if level != 2:
        body = "\n".join(
            re.sub(
                r"^(#{1,6})(\s)", lambda m: "#" * max(1, min(6, len(m.group(1)) + level - 2)) + m.group(2), ln
            )
            for ln in body.split("\n")
        )
    start = f"<!-- production:start (written by the {MARKER}, task 2.10) -->"
    return f"{start}\n{body}\n<!-- production:end -->\n"


def _markers(lines: list[str]) -> tuple[int, int] | None:
    start = next((i for i, x in enumerate(lines) if START.match(x.rstrip("\r\n"))), None)
    if start is None:
        return None
    end = next((i for i in range(start + 1, len(lines)) if END.match(lines[i].rstrip("\r\n"))), None)
    return (start, end) if end is not None else None


def render_section(text: str, section: Section, values: Mapping[str, Any]) -> tuple[str, str]:
    """(the file with the production section in place, why)."""
    nl = newline_of(text) if text else "\n"
    lines = text.splitlines(keepends=True)
    marked = _markers(lines)
    if marked:
        start, end = marked
        level = next((h.level for h in headings(lines[start : end + 1])), 2)
        block = with_newlines(_block(section, values, level), nl)
        return "".join(lines[:start]) + block + "".join(
            lines[end + 1 :]
        ), "production section brought up to date"
    heads = headings(lines)
    hit = next(
        (h for h in heads if h.level >= 2 and re.search(section.replaces, h.title, re.IGNORECASE)), None
    )
    if hit is not None:
        after = next((h.index for h in heads if h.index > hit.index and h.level <= hit.level), len(lines))
        end = after
        while end > hit.index + 1 and not lines[end - 1].strip():
            end -= 1
        block = with_newlines(_block(section, values, hit.level), nl)
        why = f"section {lines[hit.index].strip()!r} replaced by the production section"
        return "".join(lines[: hit.index]) + block + "".join(lines[end:]), why
    block = with_newlines(_block(section, values, 2), nl)
    head = text if not text or text.endswith(("\n", "\r")) else text + nl
    return head + (nl if head.strip() else "") + block, "production section added at the end"


def plan_docs(
    app: Tree | str | os.PathLike[str],
    branch: str = workflow.DEFAULT_BRANCH,
    health_path: str = DEFAULT_HEALTH_PATH,
    web_port: int = DEFAULT_WEB_PORT,
    overwrite: bool = False,
) -> tuple[list[FileChange], list[StepResult]]:
    """Task 2.10: README and CLAUDE.md sections, ``docs/production.md`` (a different page is kept unless
    ``overwrite``)."""
    tree = Tree.of(app)
    env_file = env_module(tree)
    values = {
        "BRANCH": branch,
        "HEALTH_PATH": check_health_path(health_path),
        "WEB_PORT": web_port,
        "MIGRATIONS": MIGRATIONS_DOC if migrations(tree) else "",
        "ENV_SEE": f", see `{env_file}`" if env_file else "",
        "ENV_ADD": f"`{env_file}`, " if env_file else "",
    }
    changes: list[FileChange] = []
    for section in (README_SECTION, CLAUDE_SECTION):
        before = tree.read(section.path)
        if before is None and section is CLAUDE_SECTION:
            continue  # no CLAUDE.md: nothing to extend
        after, why = render_section(before or "", section, values)
        changes.append(FileChange(section.path, before, after, why if after != before else "up to date"))
    page_changes, kept = _managed_page(tree, DOCS_PAGE, fill(template("production.md"), values), overwrite)
    return changes + page_changes, kept


def _managed_page(
    tree: Tree, rel: str, wanted: str, overwrite: bool
) -> tuple[list[FileChange], list[StepResult]]:
    before = tree.read(rel)
    if before is not None:
        wanted = with_newlines(wanted, newline_of(before))
    if before is None or before == wanted or MARKER in before or overwrite:
        why = "written by the runbook" if before is None else "up to date" if before == wanted else "updated"
        return [FileChange(rel, before, wanted, why)], []
    diff = unified_diff(before, wanted, rel)
    return [], [
        StepResult(
            f"update {rel}",
            "skipped",
            "the app already has this page and the runbook did not write it: kept (checked below). Set "
            "overwrite=True to replace it; the diff shows what would change",
            diff,
        )
    ]


def _section_text(text: str | None) -> str | None:
    if text is None:
        return None
    lines = text.splitlines(keepends=True)
    marked = _markers(lines)
    return "".join(lines[marked[0] : marked[1] + 1]) if marked else None


DOCS_REQUIRED: dict[str, str] = {
    "an architecture section": r"^##\s+Architecture",
    "how a push deploys": r"^##\s+How a push deploys",
    "where to look when it fails": r"^##\s+Where to look when it fails",
    "the workflow file": r"\.github/workflows/deploy\.yml",
    "GHCR": r"ghcr\.io",
    "Coolify's deploy webhook": r"/api/v1/deploy\?uuid=",
    "the health check": r"HEALTHCHECK|health check",
    "rolling back": r"Rolling back",
}


def check_docs(
    check: Any, app: Tree | str | os.PathLike[str], health_path: str = DEFAULT_HEALTH_PATH
) -> None:
    """Task 2.10's verification: the sections and the page are there and say what they must."""
    tree = Tree.of(app)
    readme = _section_text(tree.read(README_SECTION.path))
    check(
        "README.md has the production section",
        readme is not None,
        "between its markers" if readme else "missing",
        hint="run task 2.10 without dry_run",
    )
    if readme:
        links = re.findall(r"\]\(([^)#]+)", readme)
        check(
            "it links docs/production.md and docs/production-env.md",
            DOCS_PAGE in links and ENV_PAGE in links,
            ", ".join(links),
            hint="run task 2.10 again to restore the section",
        )
        check(
            "it says a push deploys",
            re.search(r"push to `[^`]+` deploys", readme),
            "**A push to … deploys.**",
        )
        heads = headings(tree.read(README_SECTION.path).splitlines())
        old = [h.title for h in heads if re.fullmatch(r"deploy(?:ment)?s?", h.title.strip(), re.IGNORECASE)]
        check(
            "the old Deployment section is gone", not old, ", ".join(old) or "gone", hint="remove it by hand"
        )
    if tree.read(CLAUDE_SECTION.path) is not None:
        claude = _section_text(tree.read(CLAUDE_SECTION.path))
        check(
            "CLAUDE.md has the production section",
            claude and health_path in claude,
            "between its markers" if claude else "missing",
            hint="run task 2.10 without dry_run",
        )
    page = tree.read(DOCS_PAGE)
    if not check(f"{DOCS_PAGE} exists", page is not None, tree.path(DOCS_PAGE), hint="run task 2.10"):
        return
    missing = [name for name, rx in DOCS_REQUIRED.items() if not re.search(rx, page, re.MULTILINE)]
    check(
        f"{DOCS_PAGE} covers: " + ", ".join(DOCS_REQUIRED),
        not missing,
        f"missing: {', '.join(missing)}" if missing else "all there",
        hint="set overwrite=True to take the runbook's page, or add the missing parts",
    )
    check(f"{DOCS_PAGE} names the health path {health_path}", health_path in page, health_path)
    for rel, text in ((DOCS_PAGE, page), (README_SECTION.path, readme or "")):
        hits = vmtext.find_in_text(text)
        check(
            f"{rel}: no Multipass/VM reference",
            not hits,
            "; ".join(line.strip() for _, line, _ in hits[:3]) or "clean",
            hint="rewrite those lines (task 1.12 does it for the rest of the repository)",
        )


# --------------------------------------------------------------------------- the environment reference (2.11)

SECRET_DOCS: dict[str, tuple[str, str]] = {
    workflow.COOLIFY_URL_SECRET: (
        "The Coolify dashboard's address, e.g. `https://coolify.example.com` (no `/api`)",
        "task 2.13, from the address task 2.5 recorded",
    ),
    workflow.COOLIFY_TOKEN_SECRET: (
        "A Coolify API token with the `deploy` permission",
        "task 2.13, from the runbook's secrets (Coolify → Keys & Tokens)",
    ),
    "COOLIFY_WEB_UUID": (
        "The web application's UUID in Coolify",
        "task 2.17, once task 2.14 created the app",
    ),
    "COOLIFY_WORKER_UUID": (
        "The worker application's UUID in Coolify",
        "task 2.17, once task 2.15 created it",
    ),
}


def github_secrets_markdown() -> str:
    rows = ["| secret | 🔒 | what it is | set by |", "|---|---|---|---|"]
    for name in workflow.DEPLOY_SECRETS:
        what, who = SECRET_DOCS[name]
        rows.append(f"| `{name}` | 🔒 secret | {what} | {who} |")
    return "\n".join(rows)


def local_only_markdown() -> str:
    """The development-only variables (names from :data:`helpers.app.prodenv.NOT_IN_PRODUCTION`).
    A reason that
    mentions the old VM is not repeated in the app's docs: task 1.12 removed every such reference."""
    from helpers.app import prodenv

    rows = ["| variable | why production does not get it |", "|---|---|"]
    for name, why in prodenv.NOT_IN_PRODUCTION.items():
        if vmtext.has_reference(why):
            why = "local development only"
        rows.append(f"| `{name}` | {why} |")
    return "\n".join(rows)


def env_page(env_file: str = "") -> str:
    """The environment reference page; ``env_file`` is where the app validates its environment."""
    from helpers.app import prodenv

    return fill(
        template("production-env.md"),
        {
            "ENV_TABLE": prodenv.production_env_markdown(),
            "NOT_IN_PRODUCTION": local_only_markdown(),
            "GITHUB_SECRETS": github_secrets_markdown(),
            "ENV_CHECK": f"`{env_file}` validates" if env_file else "The app validates",
        },
    )


def plan_env_page(
    app: Tree | str | os.PathLike[str], overwrite: bool = False
) -> tuple[list[FileChange], list[StepResult]]:
    tree = Tree.of(app)
    return _managed_page(tree, ENV_PAGE, env_page(env_module(tree)), overwrite)


def env_module(tree: Tree) -> str:
    """The file in which the app validates its environment (an ``env.ts`` / ``env.mjs`` with a zod schema,
    in ``src/`` of the app or of a workspace package), or "" when there is none."""
    for rel, text in tree.text_files():
        if "node_modules/" in rel or not (rel.startswith("src/") or "/src/" in rel):
            continue
        if rel.endswith(("/env.ts", "/env.mjs")) and re.search(r"\bz\s*\.\s*object\(", text):
            return rel
    return ""


ENV_KEY = re.compile(r"^\s*([A-Z][A-Z0-9_]*)\s*:", re.MULTILINE)
PROCESS_ENV = re.compile(r"process\.env(?:\.([A-Z][A-Z0-9_]*)|\[\s*['\"]([A-Z][A-Z0-9_]*)['\"]\s*\])")
DOTENV_KEY = re.compile(r"^\s*(?:export\s+)?([A-Z][A-Z0-9_]*)\s*=", re.MULTILINE)
PLATFORM = frozenset({"NODE_ENV", "PORT", "HOSTNAME", "NEXT_RUNTIME", "NEXT_PHASE"})


def app_variables(app: Tree | str | os.PathLike[str]) -> dict[str, list[str]]:
    """Every environment variable the app reads or documents: ``{name: [where]}``."""
    tree = Tree.of(app)
    found: dict[str, list[str]] = {}

    def add(name: str, where: str) -> None:
        found.setdefault(name, [])
        if where not in found[name]:
            found[name].append(where)

    for rel, text in tree.text_files():
        in_src = rel.startswith("src/") or "/src/" in rel  # the app's, or a workspace package's, src/
        if not in_src or "node_modules/" in rel or not rel.endswith((".ts", ".tsx", ".js", ".mjs", ".cjs")):
            continue
        for a, b in PROCESS_ENV.findall(text):
            if (a or b) not in PLATFORM:
                add(a or b, rel)
        if rel.endswith(("/env.ts", "/env.mjs")):
            schema = re.search(r"\bz\s*\.\s*object\(", text)
            body = text[schema.start() :] if schema else ""
            for name in ENV_KEY.findall(body):
                add(name, rel)
    example = tree.read(".env.example")
    for name in DOTENV_KEY.findall(example or ""):
        add(name, ".env.example")
    return found


def check_env_page(check: Any, app: Tree | str | os.PathLike[str]) -> None:
    """Task 2.11's verification: the page exists; every variable the app reads is documented (or listed as
    local-only); every secret is marked; the workflow's secrets are listed; no secret value is in it."""
    from helpers.app import prodenv

    tree = Tree.of(app)
    page = tree.read(ENV_PAGE)
    if not check(f"{ENV_PAGE} exists", page is not None, tree.path(ENV_PAGE), hint="run task 2.11"):
        return
    rows = {
        m.group(1): m.group(0) for m in re.finditer(r"^\|\s*`([A-Z][A-Z0-9_]*)`\s*\|.*$", page, re.MULTILINE)
    }
    used = app_variables(tree)
    undocumented = sorted(n for n in used if n not in rows)
    check(
        "every variable the app reads is documented (src/, .env.example)",
        used and not undocumented,
        f"missing: {', '.join(f'{n} ({used[n][0]})' for n in undocumented)}"
        if undocumented
        else f"{len(used)} variables: {', '.join(sorted(used))}",
        hint="add it to helpers/app/prodenv.py PRODUCTION_ENV (or NOT_IN_PRODUCTION) and run 2.11 again",
    )
    unmarked = [v.name for v in prodenv.PRODUCTION_ENV if v.secret and "🔒" not in rows.get(v.name, "")]
    check(
        "every secret is marked 🔒",
        not unmarked,
        ", ".join(unmarked) or ", ".join(v.name for v in prodenv.PRODUCTION_ENV if v.secret),
    )
    gh_missing = [n for n in workflow.DEPLOY_SECRETS if n not in rows]
    check(
        "the deploy workflow's GitHub secrets are listed",
        not gh_missing,
        f"missing: {', '.join(gh_missing)}" if gh_missing else ", ".join(workflow.DEPLOY_SECRETS),
    )
    hits = vmtext.find_in_text(page)
    check(
        "no Multipass/VM reference",
        not hits,
        "; ".join(line.strip() for _, line, _ in hits[:3]) or "clean",
        hint="reword those lines (task 1.12 removed every VM reference from the app)",
    )
    leaks = secret_leaks(page)
    check(
        "no secret value in the page",
        not leaks,
        "clean" if not leaks else f"{len(leaks)} secret-looking value(s), e.g. {leaks[0]}",
        hint="remove it at once, and rotate that secret",
    )


def secret_leaks(text: str) -> list[str]:
    """Configured secret values (described by name) and token-shaped strings in ``text``; placeholders such
    as ``postgresql://USER:PASSWORD@HOST`` are not leaks."""
    found = [
        f"the value of a configured secret ({len(v)} characters)" for v in secrets.known_values() if v in text
    ]
    for pattern, _ in secrets.TOKEN_PATTERNS:
        for m in pattern.finditer(text):
            if not re.search(r":PASSWORD@|\bBearer\s+<|TOKEN>", m.group(0)):
                found.append(secrets.scrub(m.group(0)))
    return found


# --------------------------------------------------------------------------- image build configuration (2.12)

DOCKERFILE_WEB = workflow.DOCKERFILES["web"]
DOCKERFILE_WORKER = workflow.DOCKERFILES["worker"]
DOCKERIGNORE = ".dockerignore"
NEXT_CONFIGS = ("next.config.mjs", "next.config.js", "next.config.ts", "next.config.cjs")
IGNORED_REQUIRED = (".env", "node_modules", ".git", ".next")


@dataclass(frozen=True)
class Package:
    """One package of the app: the root (``dir`` "") or a workspace package (``dir`` e.g. ``apps/web``)."""

    dir: str
    name: str
    data: dict[str, Any]

    def path(self, rel: str) -> str:
        return f"{self.dir}/{rel}" if self.dir else rel

    @property
    def prefix(self) -> str:
        """``dir/`` or "" (to put in front of a path inside the package)."""
        return f"{self.dir}/" if self.dir else ""

    @property
    def scripts(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in (self.data.get("scripts") or {}).items()}

    def depends_on(self, name: str) -> bool:
        return any(name in (self.data.get(kind) or {}) for kind in ("dependencies", "devDependencies"))


def _workspace_globs(tree: Tree, root: Mapping[str, Any]) -> list[str]:
    """Workspace package globs: ``pnpm-workspace.yaml``'s ``packages``, else package.json's ``workspaces``."""
    text = tree.read("pnpm-workspace.yaml")
    if text is not None:
        import yaml

        data = yaml.safe_load(text) or {}
        return [str(g) for g in data.get("packages") or [] if not str(g).startswith("!")]
    found = root.get("workspaces") or []
    if isinstance(found, Mapping):
        found = found.get("packages") or []
    return [str(g) for g in found]


def packages(tree: Tree) -> list[Package]:
    """The root package, then every workspace package (sorted by folder)."""
    import fnmatch

    root = _package(tree)
    found = [Package("", str(root.get("name") or ""), root)]
    globs = [g.strip("./").rstrip("/") for g in _workspace_globs(tree, root)]
    dirs = sorted(
        f.rsplit("/", 1)[0]
        for f in tree.files()
        if f.endswith("/package.json")
        and "node_modules/" not in f
        and any(fnmatch.fnmatch(f.rsplit("/", 1)[0], g) for g in globs)
    )
    for rel in dirs:
        try:
            data = json.loads(tree.read(f"{rel}/package.json") or "{}")
        except json.JSONDecodeError as exc:
            raise ValueError(f"{rel}/package.json is not valid JSON ({exc}); fix it first") from None
        found.append(Package(rel, str(data.get("name") or rel), data if isinstance(data, dict) else {}))
    return found


# A root script that runs a script of a workspace package: pnpm --filter/-F/--dir/-C, npm -w/--workspace.
DELEGATION = (
    re.compile(r"^\s*pnpm\s+(?:--filter|-F|--dir|-C)[ =](?P<pkg>\S+)\s+(?:run\s+)?(?P<script>[\w:.-]+)\s*$"),
    re.compile(r"^\s*npm\s+(?:-w|--workspace)[ =](?P<pkg>\S+)\s+run\s+(?P<script>[\w:.-]+)\s*$"),
    re.compile(r"^\s*npm\s+run\s+(?P<script>[\w:.-]+)\s+(?:-w|--workspace)[ =](?P<pkg>\S+)\s*$"),
)


def resolve_script(
    pkgs: Sequence[Package], name: str, start: Package | None = None
) -> tuple[Package, str] | None:
    """(the package whose script really runs, its command) for script ``name`` of ``start`` (the root),
    following scripts that delegate to a workspace package; None when there is no such script."""
    current = start or pkgs[0]
    for _ in range(5):  # a few hops at most
        command = current.scripts.get(name)
        if command is None:
            return None
        hit = next((m for rx in DELEGATION if (m := rx.match(command))), None)
        if hit is None:
            return current, command
        wanted = hit.group("pkg").strip("'\"").removeprefix("./").rstrip("/")
        target = next((p for p in pkgs if p.dir and wanted in (p.name, p.dir)), None)
        if target is None:
            return current, command
        current, name = target, hit.group("script")
    return None


@dataclass(frozen=True)
class Layout:
    """Where the images find the app's parts: the web package, the worker's package and entry file, the
    package that holds the Drizzle migrations (the root for a single-package app)."""

    manager: str  # pnpm or npm
    lockfile: str | None
    workspace: bool
    web: Package
    worker: Package
    worker_entry: str  # relative to the worker's package
    worker_script: str  # where the entry was read, for the record
    migrations: Migrations | None
    manager_major: int = 0

    @property
    def lockfile_name(self) -> str:
        return "pnpm-lock.yaml" if self.manager == "pnpm" else "package-lock.json"

    def install_lines(self) -> list[str]:
        """The Dockerfile lines that bring the sources in and install the dependencies from the lockfile."""
        if self.manager == "pnpm":
            if not self.lockfile:
                return ["COPY . .", "RUN pnpm install"]
            extra = [f for f in (".npmrc", "pnpm-workspace.yaml") if self._tree_has(f)]
            return [
                "# The store from the lockfile alone (cached while the lockfile is unchanged), then offline",
                f"COPY {' '.join(['package.json', self.lockfile, *extra])} ./",
                "RUN pnpm fetch",
                "COPY . .",
                "RUN pnpm install --offline --frozen-lockfile",
            ]
        install = "npm ci" if self.lockfile else "npm install"
        if self.workspace:
            return ["COPY . .", f"RUN {install}"]
        manifests = " ".join(["package.json", *([self.lockfile] if self.lockfile else [])])
        return [f"COPY {manifests} ./", f"RUN {install}", "COPY . ."]

    @property
    def deploys(self) -> bool:
        """The worker image gets self-contained folders (``pnpm deploy``) rather than the whole workspace."""
        return self.workspace and self.manager == "pnpm" and bool(self.lockfile)

    def deploy_lines(self) -> list[str]:
        """``pnpm deploy`` of the worker (its production dependencies when tsx is one of them) and of the
        package that holds the migrations (with drizzle-kit, a development dependency there)."""
        if not self.deploys:
            return []
        legacy = " --legacy" if self.manager_major >= 10 else ""  # pnpm 10 deploys injected packages only
        prod = " --prod" if "tsx" in (self.worker.data.get("dependencies") or {}) else ""
        lines = [f"pnpm --filter {self.worker.name} deploy{legacy}{prod} /deploy/worker"]
        if self.migrations and self.migrations.package:
            owner = self.migrations.package_name or self.migrations.package
            lines.append(f"pnpm --filter {owner} deploy{legacy} /deploy/migrate")
        what = "the worker, and the migrations with drizzle-kit" if len(lines) > 1 else "the worker"
        return [f"# Self-contained folders for the runtime image: {what}", "RUN " + " \\\n && ".join(lines)]

    @property
    def build(self) -> str:
        if self.manager == "pnpm":
            return f"pnpm --filter {self.web.name} build" if self.web.dir else "pnpm build"
        return f"npm run build --workspace {self.web.dir}" if self.web.dir else "npm run build"

    _files: frozenset[str] = frozenset()

    def _tree_has(self, rel: str) -> bool:
        return rel in self._files


def layout(tree: Tree, worker_entry_file: str = "") -> Layout:
    """Read the app: package manager, workspace packages, and where web, worker and migrations live."""
    pkgs = packages(tree)
    root = pkgs[0]
    manager = (
        "pnpm"
        if str(root.data.get("packageManager", "")).startswith("pnpm") or tree.exists("pnpm-lock.yaml")
        else "npm"
    )
    lock = "pnpm-lock.yaml" if manager == "pnpm" else "package-lock.json"
    built = resolve_script(pkgs, "build")
    web = built[0] if built and built[0].depends_on("next") else None
    web = web or next((p for p in pkgs if p.depends_on("next")), root)
    if worker_entry_file:
        worker, entry, script = root, worker_entry_file, f"tsx {worker_entry_file}"
        for p in pkgs[1:]:
            if worker_entry_file.startswith(p.prefix):
                worker, entry = p, worker_entry_file[len(p.prefix) :]
    else:
        worker, entry, script = _worker_entry(pkgs)
    return Layout(
        manager=manager,
        lockfile=lock if tree.exists(lock) else None,
        workspace=len(pkgs) > 1,
        web=web,
        worker=worker,
        worker_entry=entry,
        worker_script=script,
        migrations=migrations(tree, pkgs),
        manager_major=int(m.group(1))
        if (m := re.match(r"\w+@(\d+)", str(root.data.get("packageManager", ""))))
        else 0,
        _files=frozenset(f for f in tree.files() if "/" not in f),
    )


def _package(tree: Tree) -> dict[str, Any]:
    try:
        data = json.loads(tree.read("package.json") or "{}")
    except json.JSONDecodeError as exc:
        raise ValueError(f"package.json is not valid JSON ({exc}); fix it first") from None
    return data if isinstance(data, dict) else {}


def _worker_entry(pkgs: Sequence[Package]) -> tuple[Package, str, str]:
    """(the worker's package, its TypeScript entry file there, where that was read)."""
    found = resolve_script(pkgs, "worker")
    package, script = found if found else (pkgs[0], "")
    m = re.fullmatch(r"\s*tsx\s+([\w./-]+\.[cm]?[tj]s)\s*", script)
    if not m:
        raise ValueError(
            f"package.json's `worker` script runs {script!r}; the runbook's worker image runs "
            "`tsx <entry file>`. "
            "Set the parameter worker_entry to the worker's entry file (e.g. src/worker/index.ts)"
        )
    where = f"{package.path('package.json')}'s script: {script.strip()}"
    return package, m.group(1), where


@dataclass(frozen=True)
class Migrations:
    config: str  # drizzle.config.ts (in its package)
    folder: str  # its `out` folder (drizzle)
    package: str = ""  # the package folder ("" for the root)
    package_name: str = ""


def migrations(tree: Tree, pkgs: Sequence[Package] | None = None) -> Migrations | None:
    """Drizzle migrations, if ``db:migrate`` runs ``drizzle-kit migrate`` (the worker applies them)."""
    pkgs = pkgs or packages(tree)
    found = resolve_script(pkgs, "db:migrate")
    if found is None or not re.fullmatch(r"\s*drizzle-kit\s+migrate\b.*", found[1]):
        return None
    package = found[0]
    config = next(
        (
            c
            for c in ("drizzle.config.ts", "drizzle.config.js", "drizzle.config.mjs")
            if tree.exists(package.path(c))
        ),
        None,
    )
    if config is None:
        return None
    m = re.search(r"""\bout\s*:\s*['"]\.?/?([\w./-]+?)/?['"]""", tree.read(package.path(config)) or "")
    return Migrations(config, m.group(1) if m else "drizzle", package.dir, package.name)


MIGRATIONS_DOC = (
    " Before it starts, it applies the pending database migrations (`drizzle-kit migrate`, what "
    "`pnpm db:migrate` runs), so new code does not meet an old schema for long."
)


def route_file(tree: Tree, path: str) -> str | None:
    """The file that serves ``path`` in the Next.js app (App Router route or Pages API route), if any;
    in a workspace, in the package that depends on ``next``."""
    rel = path.strip("/")
    bases = [""]
    with contextlib.suppress(ValueError):  # a broken package.json: the root only
        bases = [p.prefix for p in packages(tree) if p.depends_on("next")] + [""]
    candidates = [
        f"{pkg}{base}app/{rel}/route.{ext}"
        for pkg in bases
        for base in ("src/", "")
        for ext in ("ts", "js", "tsx", "mjs")
    ] + [f"{pkg}{base}pages/{rel}.{ext}" for pkg in bases for base in ("src/", "") for ext in ("ts", "js")]
    return next((c for c in candidates if tree.exists(c)), None)


def plan_images(
    app: Tree | str | os.PathLike[str],
    health_path: str = DEFAULT_HEALTH_PATH,
    web_port: int = DEFAULT_WEB_PORT,
    worker_entry_file: str = "",
    overwrite: bool = False,
) -> tuple[list[FileChange], list[StepResult]]:
    """Task 2.12: the two Dockerfiles, ``.dockerignore`` and the Next.js standalone output."""
    tree = Tree.of(app)
    check_health_path(health_path)
    parts = layout(tree, worker_entry_file)
    web_dir = parts.web.prefix
    web = fill(
        template("Dockerfile.web"),
        {
            "NODE_VERSION": NODE_VERSION,
            "INSTALL": "\n".join(parts.install_lines()),
            "BUILD": parts.build,
            "PORT": web_port,
            "HEALTH_PATH": health_path,
            "WEB_DIR": web_dir,
            "COPY_PUBLIC": f"COPY --from=build --chown=node:node /app/{web_dir}public ./{web_dir}public\n"
            if _has_dir(tree, f"{web_dir}public")
            else "",
        },
    )
    worker = fill(template("Dockerfile.worker"), {"NODE_VERSION": NODE_VERSION, **_worker_parts(parts)})
    changes: list[FileChange] = []
    kept: list[StepResult] = []
    for rel, text in (
        (DOCKERFILE_WEB, web),
        (DOCKERFILE_WORKER, worker),
        (DOCKERIGNORE, dockerignore(tree)),
    ):
        c, k = _managed_page(tree, rel, text, overwrite)
        changes += c
        kept += k
    config = next((parts.web.path(n) for n in NEXT_CONFIGS if tree.exists(parts.web.path(n))), None)
    if config is None:
        changes.append(
            FileChange(
                parts.web.path("next.config.mjs"), None, _NEW_NEXT_CONFIG, "created with output: 'standalone'"
            )
        )
    else:
        before = tree.read(config) or ""
        after, problem = with_standalone(before)
        if problem:
            kept.append(StepResult(f"update {config}", "failed", problem))
        else:
            why = "output: 'standalone' already set" if after == before else "output: 'standalone' added"
            changes.append(FileChange(config, before, after, why))
    if parts.lockfile is None:
        install = "pnpm install" if parts.manager == "pnpm" else "npm install"
        kept.append(
            StepResult(
                f"lockfile ({parts.manager})",
                "skipped",
                f"no {parts.lockfile_name} in the repository: "
                f"the images run `{install}` without a lockfile, so two builds may get different "
                "versions. Commit "
                "the lockfile and run this task again (it then installs with the lockfile)",
            )
        )
    return changes, kept


def root_docs_read(tree: Tree) -> dict[str, str]:
    """The Markdown files at the repository's root that something the image builds see names (a source
    file, a package.json, a script): by name, the first file that names it. ``.dockerignore`` keeps these
    in the build context; the other root documents stay out, so a change to them rebuilds nothing. What the
    template leaves out of the builds (docs/, .github/, the Dockerfiles...) names nothing they read."""
    docs = [rel for rel in tree.files() if "/" not in rel and rel.endswith(".md")]
    read: dict[str, str] = {}
    if not docs:
        return read
    patterns = ignore_patterns(template("dockerignore"))
    for rel, text in tree.text_files():
        if rel.endswith(".md") or not in_build_context(rel, patterns):
            continue
        for doc in docs:
            if doc not in read and doc in text:
                read[doc] = rel
    return read


def ignore_patterns(text: str) -> list[tuple[bool, list[str]]]:
    """A ``.dockerignore``'s patterns, in order: (re-included by ``!``, the pattern's path segments)."""
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            negated = line.startswith("!")
            found.append((negated, line.lstrip("!").strip("/").split("/")))
    return found


def in_build_context(rel: str, patterns: list[tuple[bool, list[str]]]) -> bool:
    """Whether ``docker build`` sends ``rel`` under these patterns: each one is matched from the context's
    root, segment by segment, against the path and each of its parent folders; the last match decides."""
    parts = rel.split("/")
    excluded = False
    for negated, pattern in patterns:
        prefix = parts[: len(pattern)]
        if len(prefix) == len(pattern) and all(
            fnmatch.fnmatchcase(a, b) for a, b in zip(prefix, pattern, strict=True)
        ):
            excluded = not negated
    return not excluded


def dockerignore(tree: Tree) -> str:
    """Task 2.12's ``.dockerignore`` for this repository: the template, with a ``!NAME.md`` line (and
    where it is read) for each root document the app reads (:func:`root_docs_read`)."""
    keep = "".join(f"# named in {where}\n!{doc}\n" for doc, where in sorted(root_docs_read(tree).items()))
    return template("dockerignore").replace("@@KEEP_DOCS@@\n", keep)  # a comment has a line of its own


def _worker_parts(parts: Layout) -> dict[str, str]:
    """What the worker's Dockerfile copies into its runtime image, where it starts, and its command."""
    migrate = parts.migrations
    start = f"exec node_modules/.bin/tsx {parts.worker_entry}"
    if parts.deploys:  # /deploy/worker (and /deploy/migrate) from the build stage
        copy = "COPY --from=build --chown=node:node /deploy/ ./\n"
        workdir, into = "/app/worker", "cd /app/migrate && " if migrate and migrate.package else ""
    else:  # the whole app, installed
        copy = "COPY --from=build --chown=node:node /app ./\n"
        workdir = f"/app/{parts.worker.dir}" if parts.worker.dir else ""
        into = f"cd /app/{migrate.package} && " if migrate and migrate.package else ""
    back = f" && cd {workdir}" if into else ""
    if migrate:
        cmd = (
            "# Pending migrations first (drizzle-kit migrate, as `pnpm db:migrate` does), then the worker\n"
            f'CMD ["sh", "-c", "{into}node_modules/.bin/drizzle-kit migrate{back} && {start}"]'
        )
    else:
        cmd = f'CMD ["node_modules/.bin/tsx", "{parts.worker_entry}"]'
    return {
        "INSTALL": "\n".join(parts.install_lines() + parts.deploy_lines()),
        "WORKER_SCRIPT": parts.worker_script,
        "COPY_APP": copy,
        "WORKDIR": f"WORKDIR {workdir}\n" if workdir else "",
        "CMD": cmd,
    }


def _has_dir(tree: Tree, rel: str) -> bool:
    return any(f.startswith(rel + "/") for f in tree.files())


_NEW_NEXT_CONFIG = """/** @type {import('next').NextConfig} */
const nextConfig = {
  output: "standalone",
};

export default nextConfig;
"""


def with_standalone(text: str) -> tuple[str, str]:
    """(the Next.js config with ``output: "standalone"``, a problem that stops the edit or "")."""
    m = re.search(r"""\boutput\s*:\s*(['"])([^'"]*)\1""", text)
    if m:
        if m.group(2) == "standalone":
            return text, ""
        return text, (
            f"the Next.js config sets output: {m.group(2)!r}; the production image needs 'standalone'. "
            "Change it "
            "by hand (an 'export' site has no server for the health check)"
        )
    opener = re.search(
        r"^(?P<indent>[ \t]*)(?:const|let|var)\s+\w+\s*(?::\s*[\w.]+\s*)?=\s*\{[ \t]*\r?$"
        r"|^(?P<indent2>[ \t]*)module\.exports\s*=\s*\{[ \t]*\r?$",
        text,
        re.MULTILINE,
    )
    if not opener:
        return text, (
            "could not find the config object (`const nextConfig = {` or `module.exports = {`) to add "
            "output: 'standalone'; add it by hand"
        )
    nl = newline_of(text)
    line_end = text.index("\n", opener.end() - 1) + 1 if "\n" in text[opener.end() - 1 :] else len(text)
    first = text[line_end:].split("\n", 1)[0]
    indent = re.match(r"[ \t]*", first).group(0) or "  "
    insert = f'{indent}output: "standalone", // the production image runs .next/standalone (task 2.12){nl}'
    return text[:line_end] + insert + text[line_end:], ""


# Dockerfile reading, for the checks (a file the runbook did not write is checked by the same rules).


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    stage: int


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with line continuations joined and comments dropped; ``stage`` counts ``FROM`` s."""
    out: list[Instruction] = []
    stage = -1
    buf = ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if buf and line.lstrip().startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        full = (buf + line).strip()
        buf = ""
        keyword, _, args = full.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        out.append(Instruction(keyword, args.strip(), stage))
    return out


def final_stage(instructions: Sequence[Instruction]) -> list[Instruction]:
    last = max((i.stage for i in instructions), default=-1)
    return [i for i in instructions if i.stage == last]


def _user_is_root(user: str) -> bool:
    name = user.split(":")[0].strip()
    return name in ("", "root", "0")


def check_images(
    check: Any,
    app: Tree | str | os.PathLike[str],
    health_path: str = DEFAULT_HEALTH_PATH,
    web_port: int = DEFAULT_WEB_PORT,
) -> None:
    """Task 2.12's verification, reading the files: what each image runs, as whom, and how it is checked."""
    tree = Tree.of(app)
    route = route_file(tree, health_path)
    check(
        f"the health path {health_path} is served by the app",
        route,
        route or "no route file for it",
        hint="set health_path to the app's health route (e.g. /api/health → src/app/api/health/route.ts)",
    )
    web = tree.read(DOCKERFILE_WEB)
    if check(
        f"{DOCKERFILE_WEB} (web) exists", web is not None, tree.path(DOCKERFILE_WEB), hint="run task 2.12"
    ):
        last = final_stage(parse_dockerfile(web))
        users = [i.args for i in last if i.keyword == "USER"]
        check(
            "web: runs as a non-root user",
            users and not _user_is_root(users[-1]),
            users[-1] if users else "root",
        )
        health = next((i.args for i in last if i.keyword == "HEALTHCHECK"), "")
        check(
            f"web: HEALTHCHECK calls {health_path} on port {web_port}",
            f"{web_port}{health_path}" in health,
            health[:120] or "no HEALTHCHECK",
            hint="run task 2.12 with overwrite=True, or fix the HEALTHCHECK by hand",
        )
        exposed = " ".join(i.args for i in last if i.keyword == "EXPOSE")
        check(f"web: EXPOSE {web_port}", str(web_port) in exposed.split(), exposed or "nothing exposed")
        standalone = any(i.keyword == "COPY" and ".next/standalone" in i.args for i in last)
        cmd = next((i.args for i in reversed(last) if i.keyword in ("CMD", "ENTRYPOINT")), "")
        check(
            "web: runs the Next.js standalone server",
            standalone and "server.js" in cmd,
            cmd or "no CMD",
            hint="copy .next/standalone and run `node server.js`",
        )
    worker = tree.read(DOCKERFILE_WORKER)
    if check(
        f"{DOCKERFILE_WORKER} (worker) exists",
        worker is not None,
        tree.path(DOCKERFILE_WORKER),
        hint="run task 2.12",
    ):
        last = final_stage(parse_dockerfile(worker))
        users = [i.args for i in last if i.keyword == "USER"]
        check(
            "worker: runs as a non-root user",
            users and not _user_is_root(users[-1]),
            users[-1] if users else "root",
        )
        check("worker: exposes no port", not any(i.keyword == "EXPOSE" for i in last), "no EXPOSE")
        cmd = next((i.args for i in reversed(last) if i.keyword in ("CMD", "ENTRYPOINT")), "")
        workdir = next((i.args for i in reversed(last) if i.keyword == "WORKDIR"), "/app")
        inside = workdir.removeprefix("/app").strip("/")
        files = re.findall(r"[\w./-]+\.[cm]?[tj]s\b", cmd)
        try:  # relative to WORKDIR: the app's folder there, or a (deployed) workspace package
            homes = [inside, *(p.dir for p in packages(tree))]
        except ValueError:
            homes = [inside]
        check(
            "worker: its entry file exists in the app",
            files and all(any(tree.exists(f"{h}/{f}" if h else f) for h in homes) for f in files),
            f"{cmd or 'no CMD'} (in {workdir})",
            hint="set worker_entry to the worker's entry file",
        )
        migrate = migrations(tree)
        if migrate:
            copied = " ".join(i.args for i in last if i.keyword == "COPY")
            whole = re.search(r"(?:^|\s)/(?:app|deploy)/?\s+\./?(?:\s|$)", copied)  # all of it
            check(
                "worker: applies the database migrations before it starts",
                "drizzle-kit migrate" in cmd
                and (whole or (migrate.config in copied and migrate.folder in copied)),
                f"{migrate.package + '/' if migrate.package else ''}{migrate.config}, {migrate.folder}/",
                hint="run task 2.12 with overwrite=True, or run `pnpm db:migrate` against production by hand",
            )
    ignore = tree.read(DOCKERIGNORE)
    entries = {
        ln.strip().rstrip("/") for ln in (ignore or "").splitlines() if ln.strip() and not ln.startswith("#")
    }
    missing = [e for e in IGNORED_REQUIRED if e not in entries]
    check(
        f"{DOCKERIGNORE} keeps .env, node_modules, .git and .next out of the images",
        ignore is not None and not missing,
        f"missing: {', '.join(missing)}" if missing else "all excluded",
        hint="run task 2.12 (a .env in the build context would end up in the image)",
    )
    try:
        web_dirs = [p.prefix for p in packages(tree) if p.depends_on("next")] or [""]
    except ValueError:
        web_dirs = [""]
    config = next((d + n for d in web_dirs for n in NEXT_CONFIGS if tree.exists(d + n)), None)
    text = tree.read(config) if config else ""
    check(
        "the Next.js config builds the standalone output",
        config and re.search(r"""\boutput\s*:\s*['"]standalone['"]""", text or ""),
        config or "no next.config.*",
        hint="add output: 'standalone' to the Next.js config",
    )


def app_config_record(tree: Tree, health_path: str, web_port: int) -> dict[str, Any]:
    """What 2.14 (the web app's health check and port) and 2.18 (the probe) need; not secret."""
    return {
        "health_path": health_path,
        "web_port": web_port,
        "health_route": route_file(tree, health_path),
        "dockerfiles": dict(workflow.DOCKERFILES),
        "worker_port": None,
    }
