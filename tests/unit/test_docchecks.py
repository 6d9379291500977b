"""helpers.app.docchecks: each check finds the false line (file:line) and passes once it is true."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.app import docchecks, profile
from helpers.app.appfiles import Tree
from helpers.core.checks import Checklist, VerificationFailed, verify


def repo(root: Path, files: dict[str, str | dict]) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        data = json.dumps(content, indent=2) + "\n" if isinstance(content, dict) else content
        path.write_bytes(data.encode())
    return root


MANIFEST = {
    "name": "demo",
    "packageManager": "pnpm@9.12.3",
    "scripts": {"dev": "next dev", "worker": "tsx src/worker.ts", "db:push": "drizzle-kit push"},
    "devDependencies": {"drizzle-kit": "^0.24.0", "typescript": "^5.5.0"},
}


def where(found: list[docchecks.Finding]) -> list[str]:
    return [f.where for f in found]


# --------------------------------------------------------------------------- reading Markdown


def test_read_markdown_places_spans_code_and_links_on_their_lines():
    md = docchecks.read_markdown(
        "# T\n\nA paragraph over\ntwo lines with `pnpm dev` and [a](docs/a.md).\n\n"
        "| script | what |\n| --- | --- |\n| `pnpm worker` | the worker |\n\n"
        "- `db:push` pushes\n\n```bash\ncd apps/web\npnpm dev\n```\n"
    )
    spans = {(s.text, s.line, s.container) for s in md.spans}
    assert ("pnpm dev", 4, "para") in spans
    assert ("pnpm worker", 8, "row") in spans and ("db:push", 10, "item") in spans
    assert next(s for s in md.spans if s.text == "pnpm worker").context == "script what"
    assert md.links == [("docs/a.md", 4)]
    assert [(c.text, c.line) for c in md.code] == [("cd apps/web", 13), ("pnpm dev", 14)]
    assert {12, 13, 14, 15} <= md.in_code


# --------------------------------------------------------------------------- check 1: commands


def test_commands_name_real_scripts_verbs_or_binaries(tmp_path):
    readme = (
        "# demo\n\n"
        "```bash\n"
        "pnpm install --frozen-lockfile\n"  # a verb
        "pnpm db:migrate        # the app has db:push\n"  # line 5: false
        "pnpm run dev\n"
        "pnpm drizzle-kit generate\n"  # a binary of a dependency
        "pnpm run tsc\n"  # line 8: `run` needs a script
        "pnpm exec tsx x.ts && pnpm dlx something\n"
        "npm run build\n"  # line 10: no build script
        "```\n\n"
        "Then `pnpm worker` and `pnpm services`.\n"  # line 13: services is no script
        "\n```ts\nexecSync('pnpm nothing-here');\n```\n"  # code in another language: not a command
        "\n```yaml\n- run: pnpm docker:up\n```\n"  # line 20: a CI step names a script too
    )
    app = repo(tmp_path, {"package.json": MANIFEST, "README.md": readme})
    found = docchecks.commands(app)
    assert where(found) == ["README.md:5", "README.md:8", "README.md:10", "README.md:20", "README.md:13"]
    assert found[0].why == "package.json has no script 'db:migrate'"
    assert found[0].text == "pnpm db:migrate        # the app has db:push"
    assert found[-1].text == "`pnpm services`"


def test_commands_follow_workspace_selectors_cd_and_package_readmes(tmp_path):
    app = repo(
        tmp_path,
        {
            "package.json": {
                "name": "ws",
                "packageManager": "pnpm@9.1.0",
                "scripts": {"dev:web": "pnpm -C apps/web dev"},
            },
            "pnpm-workspace.yaml": "packages:\n  - apps/*\n",
            "apps/web/package.json": {"name": "@ws/web", "scripts": {"dev": "next dev", "test": "vitest"}},
            "apps/web/README.md": "Run `pnpm dev` here.\n",  # the package's own script
            "README.md": (
                "```sh\n"
                "pnpm --filter @ws/web dev\n"
                "pnpm --filter @ws/api dev\n"  # line 3: no such package
                "pnpm dev\n"  # line 4: the root has no dev
                "cd apps/web\n"
                "pnpm test\n"  # runs in apps/web: fine
                "```\n"
                "`pnpm -r test` and `pnpm -r lint`\n"  # line 8: no package has lint
            ),
        },
    )
    found = docchecks.commands(app)
    assert [(f.where, f.why) for f in found] == [
        ("README.md:3", "no workspace package '@ws/api'"),
        ("README.md:4", "package.json has no script 'dev'"),
        ("README.md:8", "no package has a script 'lint'"),
    ]


def test_commands_pass_when_every_command_is_real(tmp_path):
    app = repo(tmp_path, {"package.json": MANIFEST, "README.md": "```bash\npnpm dev\npnpm worker\n```\n"})
    assert docchecks.commands(app) == []


# --------------------------------------------------------------------------- check 2: rows and items


def test_rows_and_items_for_scripts_the_app_does_not_have(tmp_path):
    before = profile.read(
        repo(
            tmp_path / "before",
            {"package.json": {**MANIFEST, "scripts": {**MANIFEST["scripts"], "services": "x"}}},
        )
    )
    readme = (
        "## Scripts\n\n"
        "| Script | What |\n| --- | --- |\n"
        "| `pnpm dev` | web |\n"
        "| `pnpm vm:start` | start the Docker services |\n"  # line 6: no such script
        "| `db:seed` | seed data |\n"  # line 7: a bare name in a scripts table
        "\n"
        "- `services` — boots the dev VM\n"  # line 9: removed from package.json
        "- `jobs` is the queue name\n"  # not a script, not about scripts: fine
        "- `worker` runs the worker\n"
    )
    app = repo(tmp_path / "app", {"package.json": MANIFEST, "README.md": readme})
    found = docchecks.script_rows(app, before)
    assert [(f.where, f.why) for f in found] == [
        ("README.md:6", "package.json has no script 'vm:start'"),
        ("README.md:7", "package.json has no script 'db:seed'"),
        ("README.md:9", "script 'services' was removed from package.json"),
    ]
    assert found[0].text == "| `pnpm vm:start` | start the Docker services |"
    fixed = readme.replace("vm:start", "dev").replace("db:seed", "db:push").replace("services", "worker")
    (app / "README.md").write_text(fixed)
    assert docchecks.script_rows(app, before) == []


# --------------------------------------------------------------------------- check 3: VM text


def test_vm_text_in_docs_and_env_example(tmp_path):
    before = profile.read(
        repo(
            tmp_path / "before",
            {
                "package.json": MANIFEST,
                ".env.example": "DATABASE_URL=postgresql://a:b@harbor-dev.local:5432/x\n",
            },
        )
    )
    files = {
        "package.json": MANIFEST,
        "README.md": (
            "# demo\n\n"
            "Services (PostgreSQL 15, Redis 7) run in Coolify in Docker (IP localhost).\n"  # 3
            "Production runs on Coolify; deployments come from the webhook.\n"
            "Run `docker compose ps` and check the VM is Running.\n"  # 5
            "Use `harbor-dev.local` as host name.\n"  # 6: the VM's old address
            "Install [Multipass](https://multipass.run) first.\n"  # 7
            "\n| | local | production |\n| --- | --- | --- |\n"
            "| PostgreSQL | Coolify in Docker (localhost) | Coolify on the droplet |\n"  # 11: the local cell
            "| Web | your machine | Coolify on the droplet |\n"
            "In development the app runs with pnpm; in production Coolify runs it.\n"
        ),
        "CLAUDE.md": "## Local services\n\n- Coolify manages them.\n",  # 3: Coolify in a local section
        "docs/troubleshooting-docker.md": "# Guide\n\nWSL 2 runs Docker in a lightweight VM.\n",
        "docs/ops.md": (
            "# Ops\n\nThe database answers on 192.168.64.5.\n\n"  # 3
            "## Backups\n\nCoolify backs up nightly (http://coolify.example.com).\n\n"  # not local: fine
            "## Local database\n\nRecreate it in Coolify (http://your-coolify-server:8000).\n"  # 11
        ),
        ".env.example": (
            "# Services run in the dev VM\r\n"  # 1
            "DATABASE_URL=postgresql://a:b@localhost:5432/x\r\n"
            "S3_ENDPOINT=http://harbor-dev.local:9000\r\n"  # 3
            "COOLIFY_URL=http://localhost:8000\r\n"  # 4: Coolify is no local service
        ),
    }
    app = repo(tmp_path / "app", files)
    found = docchecks.vm_text(app, before)
    assert where(found) == [
        "CLAUDE.md:3",
        "README.md:3",
        "README.md:5",
        "README.md:6",
        "README.md:7",
        "README.md:11",
        "docs/ops.md:3",
        "docs/ops.md:11",
        ".env.example:1",
        ".env.example:3",
        ".env.example:4",
    ]
    assert "Coolify as the local setup" in found[1].why and "harbor-dev.local" in found[3].why
    assert found[8].text == "# Services run in the dev VM"


def test_vm_text_passes_on_true_docs(tmp_path):
    app = repo(
        tmp_path,
        {
            "package.json": MANIFEST,
            "README.md": "PostgreSQL and Redis run in Docker.\n\nProduction runs on Coolify.\n",
            ".env.example": "# local services: pnpm docker:up\nDATABASE_URL=postgresql://a:b@localhost:5432/x\n",
        },
    )
    assert docchecks.vm_text(app) == []


# --------------------------------------------------------------------------- check 4: links


def test_links_and_paths_to_files_that_are_gone(tmp_path):
    before_files = {"package.json": MANIFEST, "docs/vm-setup.md": "# VM\n", "docs/queues.md": "# Q\n"}
    before = profile.read(repo(tmp_path / "before", before_files))
    app = repo(
        tmp_path / "app",
        {
            "package.json": MANIFEST,
            "docs/queues.md": "# Queues\n\nBack to the [README](../README.md#setup).\n",
            "README.md": (
                "See [setup](docs/vm-setup.md), [queues](docs/queues.md), [docs](docs/) and "
                "[site](https://example.com/x.md).\n"  # line 1: one dead link
                "VM setup details: docs/vm-setup.md\n"  # line 2: a path that is gone
                "Name new files `sql/NNN_name.sql`.\n"  # a pattern, never a file: fine
                "```text\ndocs/vm-setup.md   (the old page)\n```\n"  # inside code: fine
            ),
            ".env.example": "# Details: docs/vm-setup.md\nA=1\n",
        },
    )
    found = docchecks.links(app, before)
    assert [(f.where, f.why) for f in found] == [
        ("README.md:1", "links to docs/vm-setup.md, which does not exist"),
        ("README.md:2", "names docs/vm-setup.md, which does not exist"),
        (".env.example:1", "names docs/vm-setup.md, which does not exist"),
    ]
    (app / "docs" / "vm-setup.md").write_text("# Setup\n")
    assert docchecks.links(app, before) == []


# --------------------------------------------------------------------------- check 5: identity


def test_identity_catches_a_replaced_user_database_index_and_dropped_keys(tmp_path):
    before = profile.read(
        repo(
            tmp_path / "before",
            {
                "package.json": MANIFEST,
                ".env.example": (
                    "DATABASE_URL=postgresql://demo:demo@192.168.64.2:5432/queue_demo\n"
                    "REDIS_URL=redis://192.168.64.2:6379/1\nQUEUE_NAME=jobs\n"
                ),
            },
        )
    )
    app = repo(
        tmp_path / "app",
        {
            "package.json": MANIFEST,
            ".env.example": (
                "# local\nDATABASE_URL=postgresql://postgres:postgres@localhost:5432/app\nREDIS_URL=redis://localhost:6379\n"
            ),
        },
    )
    found = docchecks.identity(app, before)
    assert [(f.where, f.why) for f in found] == [
        (".env.example:2", "the database user changed from 'demo' to 'postgres'"),
        (".env.example:2", "the database name changed from 'queue_demo' to 'app'"),
        (".env.example:3", "the Redis db index changed from 1 to 0"),
        (".env.example", "the key QUEUE_NAME was dropped"),
    ]
    assert all("postgres:postgres@" not in f.text for f in found)  # the password is masked
    (app / ".env.example").write_text(
        "DATABASE_URL=postgresql://demo:demo@localhost:5432/queue_demo\nREDIS_URL=redis://localhost:6379/1\n"
        "QUEUE_NAME=jobs\n"
    )
    assert docchecks.identity(app, before) == []


def test_identity_with_separate_keys_points_at_the_key(tmp_path):
    before = profile.read(
        repo(tmp_path / "b", {"package.json": MANIFEST, ".env.example": "REDIS_HOST=10.0.0.5\nREDIS_DB=1\n"})
    )
    app = repo(
        tmp_path / "a", {"package.json": MANIFEST, ".env.example": "REDIS_HOST=localhost\nREDIS_DB=0\n"}
    )
    assert [(f.where, f.text) for f in docchecks.identity(app, before)] == [(".env.example:2", "REDIS_DB=0")]
    # a URL added next to the keys the app reads: the app will not read it
    (app / ".env.example").write_text("REDIS_HOST=localhost\nREDIS_DB=1\nREDIS_URL=redis://localhost:6380\n")
    assert [(f.where, f.why) for f in docchecks.identity(app, before)] == [
        (".env.example:3", "REDIS_URL was added, but the app reads REDIS_HOST, REDIS_DB")
    ]


# --------------------------------------------------------------------------- in a verification table


def test_check_docs_records_one_row_per_check_and_fails(tmp_path):
    app = repo(tmp_path, {"package.json": MANIFEST, "README.md": "Run `pnpm db:migrate` in the VM.\n"})
    before = profile.read(app)
    checklist = Checklist("docs")
    found = docchecks.check_docs(checklist, app, before)
    rows = {r.name: r for r in checklist.results}
    assert set(rows) == {t for name, t in docchecks.CHECKS.items() if name != "clean"}  # not committed yet
    assert not rows[docchecks.CHECKS["commands"]].ok and not rows[docchecks.CHECKS["vm-text"]].ok
    assert rows[docchecks.CHECKS["links"]].ok and rows[docchecks.CHECKS["identity"]].ok
    assert "README.md:1" in rows[docchecks.CHECKS["commands"]].detail
    assert rows[docchecks.CHECKS["commands"]].hint
    assert {f.check for f in found} == {"commands", "vm-text"}
    with pytest.raises(VerificationFailed, match="2 of 5 checks failed"), verify("docs") as check:
        docchecks.check_docs(check, app, before)


def test_accepted_lines_are_not_findings(tmp_path):
    app = repo(tmp_path, {"package.json": MANIFEST, "docs/adr.md": "# ADR\n\nWe ran a VM.\n"})
    assert where(docchecks.findings(app)) == ["docs/adr.md:3"]
    assert docchecks.findings(app, accepted=["docs/adr.md:3"]) == []
    assert docchecks.findings(app, accepted=["We ran a VM."]) == []


def test_a_planned_tree_is_checked_without_writing(tmp_path):
    app = repo(tmp_path, {"package.json": MANIFEST, "README.md": "`pnpm dev`\n"})
    planned = Tree(app, planned={"README.md": "`pnpm vm:up`\n"})
    assert where(docchecks.commands(planned)) == ["README.md:1"]
    assert (app / "README.md").read_text() == "`pnpm dev`\n"


def test_uncommitted_lists_what_the_commit_left_out(tmp_path):
    import subprocess

    app = repo(tmp_path, {"package.json": MANIFEST, "docs/a.md": "# A\n", ".gitignore": ".env\n"})
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@x",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@x",
    }
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "base"]):
        subprocess.run(cmd, cwd=app, check=True, env={**env, "PATH": "/usr/bin:/bin"})
    (app / ".env").write_text("SECRET=1\n")  # ignored: never a finding
    assert docchecks.uncommitted(app) == []
    (app / "docs" / "a.md").unlink()
    (app / "new.md").write_text("x\n")
    assert [(f.where, f.why) for f in docchecks.uncommitted(app)] == [
        ("docs/a.md", "deleted and not committed"),
        ("new.md", "new and not committed"),
    ]
    checklist = Checklist("after 1.14")
    docchecks.check_docs(checklist, app, committed=True)
    row = next(r for r in checklist.results if r.name == docchecks.CHECKS["clean"])
    assert not row.ok and "docs/a.md" in row.detail


# --------------------------------------------------------------------------- more of what the checks catch


def test_a_removed_script_named_in_an_env_comment_is_a_finding(tmp_path):
    env = (
        "# Get the address with `pnpm vm:ip`.\nDATABASE_URL=postgresql://a:b@localhost:5432/x\n# `pnpm dev`\n"
    )
    app = repo(tmp_path, {"package.json": MANIFEST, ".env.example": env})
    assert [(f.where, f.why) for f in docchecks.commands(app)] == [
        (".env.example:1", "package.json has no script 'vm:ip'")
    ]


def test_a_superseded_decision_record_is_history_not_vm_text(tmp_path):
    adr = "# 2. Services in a Multipass VM\n\n## Status\n\n{}\n\n## Decision\n\nWe run a VM.\n"
    app = repo(tmp_path, {"package.json": MANIFEST, "docs/adr/0002.md": adr.format("Accepted")})
    assert where(docchecks.vm_text(app)) == ["docs/adr/0002.md:1", "docs/adr/0002.md:9"]
    (app / "docs/adr/0002.md").write_text(adr.format("Superseded by Docker Compose."))
    assert docchecks.vm_text(app) == []


def test_findings_scoped_to_a_task_with_what_other_tasks_add(tmp_path):
    readme = "Run `pnpm docker:up`; see [the guide](docs/troubleshooting-docker.md).\n"
    app = repo(tmp_path, {"package.json": MANIFEST, "README.md": readme, "docs/x.md": "In the VM.\n"})
    assert {f.check for f in docchecks.findings(app)} == {"commands", "links", "vm-text"}
    scoped = docchecks.findings(
        app,
        paths=lambda rel: rel == "README.md",
        planned_scripts=["docker:up"],
        planned_files=["docs/troubleshooting-docker.md"],
    )
    assert scoped == []


def test_the_runbook_identity_chosen_on_purpose_is_no_finding_but_a_lost_key_is(tmp_path):
    before = profile.read(
        repo(
            tmp_path / "b",
            {"package.json": MANIFEST, ".env.example": "DATABASE_URL=postgresql://d:d@h/q\nA=1\n"},
        )
    )
    app = repo(
        tmp_path / "a",
        {"package.json": MANIFEST, ".env.example": "DATABASE_URL=postgresql://p:p@localhost/app\n"},
    )
    assert {f.why for f in docchecks.identity(app, before)} >= {"the key A was dropped"}
    assert [f.why for f in docchecks.identity(app, before, keep=False)] == ["the key A was dropped"]


def test_check_scope_fails_on_what_is_left_and_passes_once_accepted(tmp_path):
    import subprocess

    from helpers.app import appfiles, references

    ops = "# Ops\n\n## Local database\n\nThe local database lives in the dev VM.\n\nDone.\n"
    app = repo(tmp_path, {"package.json": MANIFEST, "docs/ops.md": ops})
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "base"]):
        subprocess.run(cmd, cwd=app, check=True, capture_output=True, env={
            "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@x", "PATH": "/usr/bin:/bin",
        })  # fmt: skip
    ctx = references.context(app, references.rules_for(app))
    checklist = Checklist("1.6")
    left = docchecks.check_scope(checklist, app, "docs", ctx)
    failed = {r.name: r.detail for r in checklist.failures}
    assert "docs/ops.md:5" in failed["every line about the VM was rewritten by a sure rule, or accepted"]
    assert "docs/ops.md:5" in failed[docchecks.CHECKS["vm-text"]]
    assert [u.where for u in left.unsure] == ["docs/ops.md:5"]
    plan = references.plan(app, ctx.rules, "docs", ("docs/ops.md:5",), ctx)
    appfiles.apply(app, plan.changes)
    assert "The local database lives in Docker." in (app / "docs/ops.md").read_text()
    checklist = Checklist("1.6 again")
    docchecks.check_scope(checklist, app, "docs", ctx)
    assert not checklist.failures, checklist.failures
