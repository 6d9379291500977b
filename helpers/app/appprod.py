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
  (``src/lib/env.ts``, ``process.env.X`` in ``src/``, ``.env.example``): every variable it reads must be
  documented, or listed as local-only.
* 2.12: ``Dockerfile`` (web: Next.js standalone output, non-root, ``HEALTHCHECK`` on the health path),
  ``Dockerfile.worker`` (non-root, no port), ``.dockerignore``, ``output: "standalone"`` in the Next.js
  config; the health path is recorded for tasks 2.14 and 2.18. A Dockerfile the runbook did not write is
  kept (its diff shown; ``overwrite=True`` replaces it) and checked by the same rules.
"""

from __future__ import annotations

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
    values = {
        "BRANCH": branch,
        "HEALTH_PATH": check_health_path(health_path),
        "WEB_PORT": web_port,
        "MIGRATIONS": MIGRATIONS_DOC if migrations(tree) else "",
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


def env_page() -> str:
    from helpers.app import prodenv

    return fill(
        template("production-env.md"),
        {
            "ENV_TABLE": prodenv.production_env_markdown(),
            "NOT_IN_PRODUCTION": local_only_markdown(),
            "GITHUB_SECRETS": github_secrets_markdown(),
        },
    )


def plan_env_page(
    app: Tree | str | os.PathLike[str], overwrite: bool = False
) -> tuple[list[FileChange], list[StepResult]]:
    return _managed_page(Tree.of(app), ENV_PAGE, env_page(), overwrite)


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
        if not rel.startswith("src/") or not rel.endswith((".ts", ".tsx", ".js", ".mjs", ".cjs")):
            continue
        for a, b in PROCESS_ENV.findall(text):
            if (a or b) not in PLATFORM:
                add(a or b, rel)
        if rel.endswith("lib/env.ts") or rel.endswith("env.mjs"):
            body = text[text.find("z.object(") :] if "z.object(" in text else ""
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
class Toolchain:
    manager: str  # pnpm or npm
    lockfile: str | None

    @property
    def lockfile_name(self) -> str:
        return "pnpm-lock.yaml" if self.manager == "pnpm" else "package-lock.json"

    @property
    def manifests(self) -> str:
        return " ".join(["package.json", *([self.lockfile] if self.lockfile else [])])

    @property
    def install(self) -> str:
        if self.manager == "pnpm":
            return "pnpm install --frozen-lockfile" if self.lockfile else "pnpm install"
        return "npm ci" if self.lockfile else "npm install"

    @property
    def build(self) -> str:
        return "pnpm build" if self.manager == "pnpm" else "npm run build"


def toolchain(tree: Tree) -> Toolchain:
    pkg = _package(tree)
    manager = (
        "pnpm"
        if str(pkg.get("packageManager", "")).startswith("pnpm") or tree.exists("pnpm-lock.yaml")
        else "npm"
    )
    lock = Toolchain(manager, None).lockfile_name
    return Toolchain(manager, lock if tree.exists(lock) else None)


def _package(tree: Tree) -> dict[str, Any]:
    try:
        data = json.loads(tree.read("package.json") or "{}")
    except json.JSONDecodeError as exc:
        raise ValueError(f"package.json is not valid JSON ({exc}); fix it first") from None
    return data if isinstance(data, dict) else {}


def worker_entry(tree: Tree) -> tuple[str, str]:
    """(the worker's TypeScript entry file, the package.json script it came from)."""
    scripts = _package(tree).get("scripts") or {}
    script = str(scripts.get("worker", ""))
    m = re.fullmatch(r"\s*tsx\s+([\w./-]+\.[cm]?[tj]s)\s*", script)
    if not m:
        raise ValueError(
            f"package.json's `worker` script is {script!r}; the runbook's worker image runs "
            "`tsx <entry file>`. "
            "Set the parameter worker_entry to the worker's entry file (e.g. src/worker/index.ts)"
        )
    return m.group(1), f"package.json's worker script: {script.strip()}"


@dataclass(frozen=True)
class Migrations:
    config: str  # drizzle.config.ts
    folder: str  # its `out` folder (drizzle)


def migrations(tree: Tree) -> Migrations | None:
    """Drizzle migrations, if ``db:migrate`` runs ``drizzle-kit migrate`` (the worker applies them)."""
    script = str((_package(tree).get("scripts") or {}).get("db:migrate", ""))
    if not re.fullmatch(r"\s*drizzle-kit\s+migrate\b.*", script):
        return None
    config = next(
        (c for c in ("drizzle.config.ts", "drizzle.config.js", "drizzle.config.mjs") if tree.exists(c)), None
    )
    if config is None:
        return None
    m = re.search(r"""\bout\s*:\s*['"]\.?/?([\w./-]+?)/?['"]""", tree.read(config) or "")
    return Migrations(config, m.group(1) if m else "drizzle")


MIGRATIONS_DOC = (
    " Before it starts, it applies the pending database migrations (`drizzle-kit migrate`, what "
    "`pnpm db:migrate` runs), so new code does not meet an old schema for long."
)


def route_file(tree: Tree, path: str) -> str | None:
    """The file that serves ``path`` in the Next.js app (App Router route or Pages API route), if any."""
    rel = path.strip("/")
    candidates = [
        f"{base}app/{rel}/route.{ext}" for base in ("src/", "") for ext in ("ts", "js", "tsx", "mjs")
    ] + [f"{base}pages/{rel}.{ext}" for base in ("src/", "") for ext in ("ts", "js")]
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
    tools = toolchain(tree)
    entry, script = (
        (worker_entry_file, f"tsx {worker_entry_file}") if worker_entry_file else worker_entry(tree)
    )
    common = {"NODE_VERSION": NODE_VERSION, "MANIFESTS": tools.manifests, "INSTALL": tools.install}
    web = fill(
        template("Dockerfile.web"),
        {
            **common,
            "BUILD": tools.build,
            "PORT": web_port,
            "HEALTH_PATH": health_path,
            "COPY_PUBLIC": "COPY --from=build --chown=node:node /app/public ./public\n"
            if _has_dir(tree, "public")
            else "",
        },
    )
    migrate = migrations(tree)
    tsx = f'"node_modules/.bin/tsx", "{entry}"'
    if migrate:
        copy_migrations = (
            f"COPY --chown=node:node {migrate.config} ./\n"
            f"COPY --chown=node:node {migrate.folder} ./{migrate.folder}\n"
        )
        cmd = (
            "# Pending migrations first (drizzle-kit migrate, as `pnpm db:migrate` does), then the worker\n"
            f'CMD ["sh", "-c", "node_modules/.bin/drizzle-kit migrate && exec node_modules/.bin/tsx {entry}"]'
        )
    else:
        copy_migrations, cmd = "", f"CMD [{tsx}]"
    worker = fill(
        template("Dockerfile.worker"),
        {**common, "WORKER_SCRIPT": script, "COPY_MIGRATIONS": copy_migrations, "CMD": cmd},
    )
    changes: list[FileChange] = []
    kept: list[StepResult] = []
    for rel, text in (
        (DOCKERFILE_WEB, web),
        (DOCKERFILE_WORKER, worker),
        (DOCKERIGNORE, template("dockerignore")),
    ):
        c, k = _managed_page(tree, rel, text, overwrite)
        changes += c
        kept += k
    config = next((n for n in NEXT_CONFIGS if tree.exists(n)), None)
    if config is None:
        changes.append(
            FileChange("next.config.mjs", None, _NEW_NEXT_CONFIG, "created with output: 'standalone'")
        )
    else:
        before = tree.read(config) or ""
        after, problem = with_standalone(before)
        if problem:
            kept.append(StepResult(f"update {config}", "failed", problem))
        else:
            why = "output: 'standalone' already set" if after == before else "output: 'standalone' added"
            changes.append(FileChange(config, before, after, why))
    if tools.lockfile is None:
        kept.append(
            StepResult(
                f"lockfile ({tools.manager})",
                "skipped",
                f"no {tools.lockfile_name} in the repository: "
                f"the images run `{tools.install}` without a lockfile, so two builds may get different "
                "versions. Commit "
                "the lockfile and run this task again (it then installs with the lockfile)",
            )
        )
    return changes, kept


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
        files = re.findall(r"[\w./-]+\.[cm]?[tj]s\b", cmd)
        check(
            "worker: its entry file exists in the app",
            files and all(tree.exists(f) for f in files),
            cmd or "no CMD",
            hint="set worker_entry to the worker's entry file",
        )
        migrate = migrations(tree)
        if migrate:
            copied = " ".join(i.args for i in last if i.keyword == "COPY")
            check(
                "worker: applies the database migrations before it starts",
                "drizzle-kit migrate" in cmd and migrate.config in copied and migrate.folder in copied,
                f"{migrate.config}, {migrate.folder}/",
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
    config = next((n for n in NEXT_CONFIGS if tree.exists(n)), None)
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
