"""helpers.app.appprod (tasks 2.10-2.12): what the deploy workflow builds and the docs it needs, planned on
copies of the sample app: idempotent, foreign files kept, and every check able to fail."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from helpers.app import appprod, vmtext
from helpers.app.appfiles import Tree, apply, view
from helpers.core.checks import Checklist

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "sample-app"


@pytest.fixture
def app(tmp_path: Path) -> Path:
    dest = tmp_path / "app"
    shutil.copytree(FIXTURE, dest)
    return dest


def failures(checker, app: Path, *args) -> set[str]:
    check = Checklist("t")
    checker(check, app, *args)
    return {f.name for f in check.failures}


# --------------------------------------------------------------------------- 2.10


def test_docs_replace_the_deployment_section_and_are_idempotent(app: Path) -> None:
    changes, kept = appprod.plan_docs(app)
    assert kept == [] and {c.path for c in changes} == {"README.md", "CLAUDE.md", "docs/production.md"}
    readme = next(c for c in changes if c.path == "README.md")
    assert "'## Deployment' replaced" in readme.why
    assert "triggered by hand" not in readme.after and "<!-- production:start" in readme.after
    assert readme.after.count("## Production") == 1 and "## Scripts" in readme.after  # the rest is kept
    # the plan is verified before anything is written (dry run), then written
    assert failures(appprod.check_docs, view(app, changes, dry_run=True)) == set()
    assert failures(appprod.check_docs, Tree(app)) >= {"README.md has the production section"}
    apply(app, changes)
    again, _ = appprod.plan_docs(app)
    assert not any(c.needed for c in again)
    # a different health path rewrites only inside the markers
    moved, _ = appprod.plan_docs(app, health_path="/healthz")
    assert {c.path for c in moved if c.needed} == {"README.md", "CLAUDE.md", "docs/production.md"}


def test_docs_checks_fail_on_a_stale_or_foreign_page(app: Path) -> None:
    (app / "docs" / "production.md").write_text(
        "# Production\n\nAsk Bob, he deploys from the multipass VM.\n"
    )
    changes, kept = appprod.plan_docs(app)
    assert kept[0].status == "skipped" and "overwrite=True" in kept[0].detail
    apply(app, changes)
    bad = failures(appprod.check_docs, app)
    assert any(name.startswith("docs/production.md covers") for name in bad)
    assert "docs/production.md: no Multipass/VM reference" in bad
    changes, kept = appprod.plan_docs(app, overwrite=True)
    apply(app, changes)
    assert failures(appprod.check_docs, app) == set()


def test_a_readme_without_deployment_section_gets_it_appended(app: Path) -> None:
    (app / "README.md").write_text("# demo\r\n\r\nText.\r\n")
    changes, _ = appprod.plan_docs(app)
    readme = next(c for c in changes if c.path == "README.md").after
    assert readme.startswith(
        "# demo\r\n\r\nText.\r\n\r\n<!-- production:start"
    ) and "\n" not in readme.replace("\r\n", "")


# --------------------------------------------------------------------------- 2.11


def test_env_page_documents_every_variable_the_app_reads(app: Path) -> None:
    used = appprod.app_variables(app)
    assert {"DATABASE_URL", "REDIS_URL", "SESSION_SECRET", "QUEUE_NAME", "WORKER_CONCURRENCY"} <= set(used)
    assert "packages/core/src/env.ts" in used["SESSION_SECRET"]  # a workspace package's src/ counts
    changes, _ = appprod.plan_env_page(app)
    apply(app, changes)
    assert failures(appprod.check_env_page, app) == set()
    assert not any(c.needed for c in appprod.plan_env_page(app)[0])
    page = (app / "docs" / "production-env.md").read_text()
    assert "| `COOLIFY_WEB_UUID` | 🔒 secret |" in page and not vmtext.find_in_text(page)


def test_env_check_names_an_undocumented_variable(app: Path) -> None:
    apply(app, appprod.plan_env_page(app)[0])
    env_ts = app / "packages" / "core" / "src" / "env.ts"
    env_ts.write_text(
        env_ts.read_text().replace("    LOG_LEVEL:", "    STRIPE_API_KEY: z.string(),\n    LOG_LEVEL:")
    )
    (app / "apps" / "worker" / "src" / "extra.ts").write_text("export const x = process.env['SENTRY_DSN'];\n")
    check = Checklist("t")
    appprod.check_env_page(check, app)
    [failure] = check.failures
    assert (
        "STRIPE_API_KEY (packages/core/src/env.ts)" in failure.detail
        and "SENTRY_DSN (apps/worker/src/extra.ts)" in failure.detail
    )


def test_secret_leaks_ignores_placeholders_but_not_values(monkeypatch: pytest.MonkeyPatch) -> None:
    assert appprod.secret_leaks("postgresql://USER:PASSWORD@HOST:5432/DB") == []
    assert appprod.secret_leaks("postgresql://app:s3cretpass@db:5432/app") == ["postgresql://app:[REDACTED]@"]
    monkeypatch.setenv("APP_SECRET", "a-configured-session-secret")
    assert appprod.secret_leaks("x a-configured-session-secret y") == [
        "the value of a configured secret (27 characters)"
    ]


# --------------------------------------------------------------------------- 2.12


def test_images_plan_for_the_sample_app(app: Path) -> None:
    changes, kept = appprod.plan_images(app)
    by_path = {c.path: c for c in changes}
    assert set(by_path) == {"Dockerfile", "Dockerfile.worker", ".dockerignore", "apps/web/next.config.mjs"}
    assert kept == []  # the workspace has its lockfile
    web = by_path["Dockerfile"].after
    assert "ARG NODE_IMAGE=node:20-alpine" in web and "FROM ${NODE_IMAGE} AS build" in web  # overridable
    assert "COPY package.json pnpm-lock.yaml pnpm-workspace.yaml ./\nRUN pnpm fetch\n" in web
    assert (
        "RUN pnpm install --offline --frozen-lockfile" in web and "pnpm --filter @demo-app/web build" in web
    )
    assert "/app/apps/web/.next/standalone ./" in web and 'CMD ["node", "apps/web/server.js"]' in web
    assert "/public" not in web  # the fixture has no public/
    worker = by_path["Dockerfile.worker"].after
    assert "pnpm --filter @demo-app/worker deploy --prod /deploy/worker" in worker  # tsx is a dependency
    assert (
        "pnpm --filter @demo-app/core deploy /deploy/migrate" in worker
    )  # with drizzle-kit (a dev dependency)
    assert (
        "cd /app/migrate && node_modules/.bin/drizzle-kit migrate && cd /app/worker && "
        "exec node_modules/.bin/tsx src/index.ts" in worker
    )  # migrations first
    assert "WORKDIR /app/worker" in worker and "USER node" in worker
    config = by_path["apps/web/next.config.mjs"].after
    assert 'output: "standalone"' in config and "transpilePackages" in config  # the rest is kept
    assert failures(appprod.check_images, view(app, changes, dry_run=True)) == set()
    apply(app, changes)
    assert not any(c.needed for c in appprod.plan_images(app)[0])
    assert failures(appprod.check_images, app) == set()


def test_dockerignore_keeps_root_documents_out_unless_the_app_names_one(app: Path) -> None:
    ignore = next(c for c in appprod.plan_images(app)[0] if c.path == ".dockerignore").after
    assert ignore.endswith("\n*.md\n") and "!" not in ignore.split("*.md", 1)[1]  # README.md, CLAUDE.md out
    assert appprod.root_docs_read(Tree(app)) == {}
    (app / "CHANGELOG.md").write_text("# Changes\n")
    (app / "NOTES.md").write_text("see CHANGELOG.md\n")  # a document naming another keeps nothing
    (app / "docs" / "x.txt").write_text("CHANGELOG.md NOTES.md\n")  # docs/ is not in the build context
    assert appprod.root_docs_read(Tree(app)) == {}
    about = app / "apps" / "web" / "lib" / "about.ts"
    about.parent.mkdir(parents=True, exist_ok=True)
    about.write_text("export const changes = readFileSync('CHANGELOG.md', 'utf8')\n")
    assert appprod.root_docs_read(Tree(app)) == {"CHANGELOG.md": "apps/web/lib/about.ts"}
    changes, _ = appprod.plan_images(app)
    ignore = next(c for c in changes if c.path == ".dockerignore").after
    assert ignore.endswith(
        "\n*.md\n# named in apps/web/lib/about.ts\n!CHANGELOG.md\n"
    )  # the exception follows
    apply(app, changes)
    assert all(not c.needed for c in appprod.plan_images(app)[0])  # the second run changes nothing


def test_the_build_context_is_read_from_the_dockerignore_as_docker_reads_it() -> None:
    patterns = appprod.ignore_patterns(
        "# c\n.env\n.env.*\n!.env.example\ndocs\n*.md\n!KEEP.md\nDockerfile*\n"
    )
    sent = {rel: appprod.in_build_context(rel, patterns) for rel in (
        ".env", ".env.local", ".env.example", "docs/a/b.txt", "apps/docs/x.ts", "README.md", "KEEP.md",
        "sub/x.md", "Dockerfile.worker", "apps/web/Dockerfile", "package.json",
    )}  # fmt: skip
    assert [rel for rel, yes in sent.items() if yes] == [
        ".env.example",
        "apps/docs/x.ts",
        "KEEP.md",
        "sub/x.md",
        "apps/web/Dockerfile",
        "package.json",
    ]  # a pattern without a folder matches at the root only (docker build sends sub/x.md; tried)


def test_images_plan_for_a_single_package_app_without_lockfile(tmp_path: Path) -> None:
    app = tmp_path / "single"
    (app / "src" / "worker").mkdir(parents=True)
    (app / "src" / "app" / "api" / "health").mkdir(parents=True)
    (app / "src" / "app" / "api" / "health" / "route.ts").write_text("export async function GET() {}\n")
    (app / "src" / "worker" / "index.ts").write_text("console.log('worker')\n")
    (app / "drizzle.config.ts").write_text('export default { out: "./migrations" };\n')
    (app / "package.json").write_text(
        '{"name": "single", "packageManager": "pnpm@9.15.9", "dependencies": {"next": "14.2.35"},\n'
        ' "scripts": {"build": "next build", "worker": "tsx src/worker/index.ts",'
        ' "db:migrate": "drizzle-kit migrate"}}\n'
    )
    changes, kept = appprod.plan_images(app)
    by_path = {c.path: c.after for c in changes}
    assert (
        kept[0].status == "skipped" and "pnpm-lock.yaml" in kept[0].detail
    )  # says what a lockfile would fix
    assert (
        "COPY . .\nRUN pnpm install\n" in by_path["Dockerfile"]
        and "    pnpm build\n" in by_path["Dockerfile"]
    )
    assert "/app/.next/standalone ./" in by_path["Dockerfile"] and '"server.js"]' in by_path["Dockerfile"]
    worker = by_path["Dockerfile.worker"]
    assert "COPY --from=build --chown=node:node /app ./" in worker and " deploy " not in worker
    assert "drizzle-kit migrate && exec node_modules/.bin/tsx src/worker/index.ts" in worker
    assert "next.config.mjs" in by_path  # created, with the standalone output
    apply(app, changes)
    (app / "pnpm-lock.yaml").write_text("lockfileVersion: '9.0'\n")
    (app / "public").mkdir()
    (app / "public" / "favicon.ico").write_bytes(b"\0")
    changes, kept = appprod.plan_images(app)
    web = next(c for c in changes if c.path == "Dockerfile").after
    assert "COPY package.json pnpm-lock.yaml ./" in web and "--frozen-lockfile" in web and kept == []
    assert "COPY --from=build --chown=node:node /app/public ./public" in web
    apply(app, changes)
    assert failures(appprod.check_images, app) == set()


def test_scripts_that_delegate_to_workspace_packages_are_followed(app: Path) -> None:
    pkgs = appprod.packages(Tree(app))
    assert [p.dir for p in pkgs] == ["", "apps/web", "apps/worker", "packages/core"]
    assert appprod.resolve_script(pkgs, "worker") == (pkgs[2], "tsx src/index.ts")
    assert appprod.resolve_script(pkgs, "db:migrate") == (pkgs[3], "drizzle-kit migrate")
    assert appprod.resolve_script(pkgs, "nope") is None
    root = pkgs[0]
    for command in (
        "pnpm -F ./apps/worker start",
        "pnpm --dir apps/worker run start",
        "npm run start -w apps/worker",
    ):
        other = appprod.Package("", "x", {"scripts": {"worker": command}})
        assert appprod.resolve_script([other, *pkgs[1:]], "worker") == (pkgs[2], "tsx src/index.ts"), command
    assert root.name == "demo-app"


@pytest.mark.parametrize(
    ("text", "expected", "problem"),
    [
        ("module.exports = {\n  reactStrictMode: true,\n};\n", '  output: "standalone",', ""),
        ("const nextConfig: NextConfig = {\n};\nexport default nextConfig;\n", '  output: "standalone",', ""),
        ("const nextConfig = {\n  output: 'standalone',\n};\n", "output: 'standalone'", ""),
        ("const nextConfig = {\n  output: 'export',\n};\n", None, "needs 'standalone'"),
        ("export default withPlugins(config)\n", None, "could not find the config object"),
    ],
)
def test_with_standalone(text: str, expected: str | None, problem: str) -> None:
    after, found = appprod.with_standalone(text)
    if problem:
        assert problem in found and after == text
    else:
        assert found == "" and expected in after
        assert appprod.with_standalone(after) == (after, "")  # idempotent


def test_image_checks_fail_on_a_root_image_without_healthcheck(app: Path) -> None:
    apply(app, appprod.plan_images(app)[0])
    (app / "Dockerfile").write_text(
        "FROM node:20-alpine AS build\nUSER node\nRUN pnpm build\n"
        "FROM node:20-alpine\nCOPY --from=build /app/.next/standalone ./\nCMD node server.js\n"
    )
    (app / ".dockerignore").write_text("node_modules\n")
    (app / "Dockerfile.worker").write_text(
        "FROM node:20\nUSER root\nEXPOSE 9000\nCMD tsx src/worker/gone.ts\n"
    )
    bad = failures(appprod.check_images, app)
    assert bad == {
        "web: runs as a non-root user",
        "web: HEALTHCHECK calls /api/health on port 3000",
        "web: EXPOSE 3000",
        "worker: runs as a non-root user",
        "worker: exposes no port",
        "worker: its entry file exists in the app",
        "worker: applies the database migrations before it starts",
        ".dockerignore keeps .env, node_modules, .git and .next out of the images",
    }
    assert "the health path /healthz is served by the app" in failures(appprod.check_images, app, "/healthz")


def test_foreign_dockerfile_is_kept_and_bad_inputs_are_clear(app: Path) -> None:
    (app / "Dockerfile").write_text("FROM node:20\nCMD node x.js\n")
    changes, kept = appprod.plan_images(app)
    assert "Dockerfile" not in {c.path for c in changes}
    assert any(k.name == "update Dockerfile" and k.status == "skipped" for k in kept)
    with pytest.raises(ValueError, match="health_path"):
        appprod.plan_images(app, health_path="api/health")
    pkg = app / "apps" / "worker" / "package.json"  # where the root's `worker` script leads
    pkg.write_text(pkg.read_text().replace('"start": "tsx src/index.ts"', '"start": "node dist/w.js"'))
    with pytest.raises(ValueError, match="worker_entry"):
        appprod.plan_images(app)
    changes, _ = appprod.plan_images(app, worker_entry_file="apps/worker/src/index.ts")
    worker = next(c for c in changes if c.path == "Dockerfile.worker").after
    assert "exec node_modules/.bin/tsx src/index.ts" in worker and "WORKDIR /app/worker" in worker


def test_parse_dockerfile_joins_continuations_and_counts_stages() -> None:
    text = (
        "# c\nFROM a AS x\nRUN one \\\n  two\n\nFROM b\n# comment\n"
        "USER node\nHEALTHCHECK --interval=1s \\\n  CMD x\n"
    )
    ins = appprod.parse_dockerfile(text)
    assert [(i.keyword, i.stage) for i in ins] == [
        ("FROM", 0),
        ("RUN", 0),
        ("FROM", 1),
        ("USER", 1),
        ("HEALTHCHECK", 1),
    ]
    assert ins[1].args == "one    two" or ins[1].args.split() == ["one", "two"]
    assert [i.keyword for i in appprod.final_stage(ins)] == ["FROM", "USER", "HEALTHCHECK"]


def test_without_drizzle_migrations_the_worker_just_starts(app: Path) -> None:
    pkg = app / "package.json"
    pkg.write_text(pkg.read_text().replace('"db:migrate": "pnpm --filter @demo-app/core db:migrate",\n', ""))
    changes, _ = appprod.plan_images(app)
    worker = next(c for c in changes if c.path == "Dockerfile.worker").after
    assert 'CMD ["node_modules/.bin/tsx", "src/index.ts"]' in worker and "drizzle" not in worker
    assert "/deploy/migrate" not in worker
    docs = next(c for c in appprod.plan_docs(app)[0] if c.path == "docs/production.md").after
    assert "drizzle-kit migrate" not in docs and "results to PostgreSQL.\n" in docs
    apply(app, changes)
    assert failures(appprod.check_images, app) == set()
