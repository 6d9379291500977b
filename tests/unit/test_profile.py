"""helpers.app.profile: the app repository read before anything is written (crafted repositories)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from helpers.app import pmcommand, profile
from helpers.app.appfiles import Tree
from helpers.app.packagejson import PackageJsonError
from helpers.app.profile import DEV_WEB, DEV_WORKER, MIGRATE, PUSH, START_WEB, START_WORKER, TEST, VM


def repo(root: Path, files: dict[str, str | dict]) -> Path:
    """Write ``files`` (a dict value is written as package.json-style JSON) under ``root``."""
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content, indent=2) + "\n" if isinstance(content, dict) else content)
    return root


def app(
    tmp_path: Path, scripts: dict[str, str], files: dict[str, str | dict] | None = None
) -> profile.Profile:
    manifest = {"name": "demo", "packageManager": "pnpm@9.12.3", "scripts": scripts}
    return profile.read(repo(tmp_path, {"package.json": manifest, ".env.example": "A=1\n", **(files or {})}))


def kinds(p: profile.Profile) -> dict[str, tuple[str, ...]]:
    return {s.label: s.kinds for s in p.all_scripts()}


# --------------------------------------------------------------------------- scripts


def test_scripts_are_classified_by_what_their_commands_run(tmp_path):
    p = app(
        tmp_path,
        {
            "dev": "next dev --turbo",
            "start": "next start -p 3000",
            "build": "next build",
            "jobs": "tsx watch src/jobs/runner.ts",
            "jobs:prod": "node dist/jobs/runner.js",
            "schema:apply": "drizzle-kit migrate",
            "schema:sync": "dotenv -e .env -- drizzle-kit push",
            "prisma:seed": "prisma db seed",
            "check": "vitest run",
            "typecheck": "tsc --noEmit",
        },
    )
    got = kinds(p)
    assert got["dev"] == (DEV_WEB,) and got["start"] == (START_WEB,) and got["build"] == ("build",)
    assert got["jobs"] == (DEV_WORKER,) and got["jobs:prod"] == (START_WORKER,)
    assert got["schema:apply"] == (MIGRATE,) and got["schema:sync"] == (PUSH,)
    assert got["prisma:seed"] == ("seed",) and got["check"] == (TEST,) and got["typecheck"] == ("other",)
    assert not p.unclear


def test_vm_scripts_are_found_under_any_name_and_through_what_they_run(tmp_path):
    p = app(
        tmp_path,
        {
            "services": "multipass start coolify-vm && multipass info coolify-vm",
            "infra": "bash scripts/stack.sh up",
            "db:host": "./scripts/host.sh",
            "boot": "pnpm run services",
            "stack": "make vm-up",
            "predev": "/snap/bin/multipass start dev-box",
            "ping": "bash scripts/ping.sh",
        },
        {
            "scripts/stack.sh": '#!/usr/bin/env bash\nVM=coolify\nmultipass "$1" "$VM"\n',
            "scripts/host.sh": "#!/bin/sh\nMP=multipass\n$MP info coolify | awk '/IPv4/ {print $2}'\n",
            "Makefile": "vm-up:\n\tmultipass start coolify\n\nclean:\n\trm -rf .next\n",
            "scripts/ping.sh": "#!/bin/sh\nredis-cli ping\n",
        },
    )
    got = kinds(p)
    for name in ("services", "infra", "db:host", "boot", "stack", "predev"):
        assert got[name] == (VM,), name
    assert got["ping"] == ("other",)


def test_a_script_that_mixes_the_vm_with_other_work_is_said_to_be_unclear(tmp_path):
    p = app(tmp_path, {"dev": "multipass start vm && next dev"})
    assert kinds(p)["dev"] == (DEV_WEB, VM)
    assert any("`dev` mixes the VM" in u for u in p.unclear)


def test_dev_that_starts_web_and_worker_is_both(tmp_path):
    p = app(
        tmp_path,
        {
            "dev": 'concurrently -n web,worker -c blue,green "next dev" "tsx watch src/worker/index.ts"',
            "dev:all": "run-p dev:*",
            "dev:web": "next dev",
            "dev:queue": "tsx watch src/queue/consumer.ts",
        },
    )
    got = kinds(p)
    assert got["dev"] == (DEV_WEB, DEV_WORKER) and got["dev:all"] == (DEV_WEB, DEV_WORKER)
    # single-purpose scripts are preferred; the one that does both is the fallback
    assert p.script_for(DEV_WEB).command == "pnpm dev:web"
    assert p.script_for(DEV_WORKER).command == "pnpm dev:queue"
    assert p.commands_for(DEV_WEB, DEV_WORKER) == (["pnpm dev:web", "pnpm dev:queue"], [])


def test_commands_for_starts_a_shared_script_once(tmp_path):
    p = app(tmp_path, {"dev": 'concurrently "next dev" "tsx watch worker.ts"', "dev:web": "next dev"})
    pick = p.script_for(DEV_WORKER)
    assert pick.command == "pnpm dev" and pick.also == (DEV_WEB,)
    # `pnpm dev:web` and `pnpm dev` would start the web app twice: `pnpm dev` alone starts both
    assert p.commands_for(DEV_WEB, DEV_WORKER) == (["pnpm dev"], [])


def test_script_for_says_why_there_is_none(tmp_path):
    p = app(tmp_path, {"dev": "next dev", "db:push": "drizzle-kit push", "vm:up": "multipass start x"})
    pick = p.script_for(MIGRATE)
    assert not pick and pick.command is None and pick.script is None
    assert "no script applies the database migrations" in pick.reason
    assert "`db:push`" in pick.reason and "vm:up" not in pick.reason
    commands, missing = p.commands_for(DEV_WEB, DEV_WORKER)
    assert commands == ["pnpm dev"] and [m.kind for m in missing] == [DEV_WORKER]
    assert p.script_for(PUSH).command == "pnpm db:push"
    with pytest.raises(ValueError, match="unknown script kind"):
        p.script_for("worker")


def test_a_script_classified_by_its_name_only_is_listed_as_unclear(tmp_path):
    p = app(tmp_path, {"dev": "node ./boot.mjs", "worker": "node ./run.js", "db:migrate": "node ./m.js"})
    got = {s.name: s for s in p.all_scripts()}
    assert got["dev"].kinds == (DEV_WEB,) and not got["dev"].sure
    assert got["worker"].kinds == (DEV_WORKER,) and not got["worker"].sure
    assert got["db:migrate"].kinds == (MIGRATE,) and not got["db:migrate"].sure
    text = " | ".join(p.unclear)
    assert "`dev` (`node ./boot.mjs`) taken for the web app by its name only" in text
    assert "`worker`" in text and "`db:migrate`" in text


def test_a_missing_shell_file_is_unclear_not_guessed(tmp_path):
    p = app(tmp_path, {"up": "bash scripts/up.sh"})
    assert kinds(p)["up"] == ("other",)
    assert any("scripts/up.sh, which is not in the repository" in u for u in p.unclear)


def test_pnpm_binary_fallback_and_exec(tmp_path):
    p = app(tmp_path, {"m": "pnpm drizzle-kit migrate", "p": "pnpm exec drizzle-kit push", "x": "npx vitest"})
    assert kinds(p) == {"m": (MIGRATE,), "p": (PUSH,), "x": (TEST,)}


# --------------------------------------------------------------------------- workspaces


def workspace(tmp_path: Path, root_scripts: dict[str, str]) -> profile.Profile:
    return profile.read(
        repo(
            tmp_path,
            {
                "package.json": {"name": "queue-demo", "private": True, "scripts": root_scripts},
                "pnpm-workspace.yaml": "packages:\n  - 'apps/*'\n  - 'packages/*'\n  - '!packages/legacy'\n",
                "pnpm-lock.yaml": "lockfileVersion: '9.0'\n",
                "apps/web/package.json": {
                    "name": "@qd/web",
                    "scripts": {"dev": "next dev", "start": "next start"},
                },
                "apps/worker/package.json": {
                    "name": "@qd/worker",
                    "scripts": {"dev": "tsx watch src/index.ts", "start": "node dist/index.js"},
                },
                "packages/db/package.json": {"name": "@qd/db", "scripts": {"migrate": "drizzle-kit migrate"}},
                "packages/legacy/package.json": {"name": "@qd/legacy", "scripts": {"dev": "next dev"}},
                "apps/web/README.md": "# web\n",
            },
        )
    )


def test_workspace_packages_and_their_scripts(tmp_path):
    p = workspace(tmp_path, {"dev": "pnpm -r --parallel dev", "db:migrate": "pnpm --filter @qd/db migrate"})
    assert [(x.path, x.name) for x in p.packages] == [
        ("apps/web", "@qd/web"),
        ("apps/worker", "@qd/worker"),
        ("packages/db", "@qd/db"),
    ]
    assert p.package_manager == "pnpm" and p.package_manager_why == "lock file pnpm-lock.yaml"
    got = kinds(p)
    assert got["dev"] == (DEV_WEB, DEV_WORKER)
    assert got["apps/worker:dev"] == (DEV_WORKER,) and got["apps/worker:start"] == (START_WORKER,)
    assert got["db:migrate"] == (MIGRATE,)
    assert p.script_for(DEV_WEB).command == "pnpm --filter @qd/web dev"
    assert p.script_for(DEV_WORKER).command == "pnpm --filter @qd/worker dev"
    assert p.script_for(MIGRATE).command == "pnpm db:migrate"  # the root's script first
    assert "apps/web/README.md" in p.docs


def test_workspace_selectors_turbo_and_dir(tmp_path):
    p = workspace(
        tmp_path,
        {
            "dev:web": "pnpm -C apps/web dev",
            "dev:worker": "pnpm --filter=./apps/worker run dev",
            "dev": "turbo run dev --filter=@qd/web",
            "lost": "pnpm --filter @qd/nope dev",
        },
    )
    got = kinds(p)
    assert got["dev:web"] == (DEV_WEB,) and got["dev:worker"] == (DEV_WORKER,) and got["dev"] == (DEV_WEB,)
    assert any("no workspace package matches @qd/nope" in u for u in p.unclear)


def test_npm_workspaces_and_run_lines(tmp_path):
    p = profile.read(
        repo(
            tmp_path,
            {
                "package.json": {"name": "r", "workspaces": ["apps/*"], "scripts": {"test": "jest"}},
                "package-lock.json": "{}",
                "apps/api/package.json": {"name": "api", "scripts": {"dev": "tsx watch src/server.ts"}},
            },
        )
    )
    assert p.package_manager == "npm" and [x.path for x in p.packages] == ["apps/api"]
    assert p.script_for(TEST).command == "npm test"
    assert p.script_for(DEV_WEB).command == "npm run dev --workspace=apps/api"


def test_run_line_uses_run_for_names_that_are_verbs():
    assert pmcommand.run_line("pnpm", "dev") == "pnpm dev"
    assert pmcommand.run_line("pnpm", "deploy") == "pnpm run deploy"
    assert pmcommand.run_line("pnpm", "test") == "pnpm test"
    assert pmcommand.run_line("npm", "dev") == "npm run dev"
    assert pmcommand.run_line("yarn", "db:migrate") == "yarn db:migrate"
    assert pmcommand.run_line("pnpm", "dev", "@a/web", "apps/web") == "pnpm --filter @a/web dev"
    assert pmcommand.run_line("pnpm", "dev", None, "apps/web") == "pnpm --filter ./apps/web dev"


def test_parse_reads_options_selectors_and_verbs():
    call = pmcommand.parse(["pnpm", "--filter", "web", "run", "dev", "--port", "3001"])
    assert call and (call.verb, call.script, call.selectors, call.rest) == (
        "run",
        "dev",
        ("web",),
        ("--port", "3001"),
    )
    assert call.explicit_run
    call = pmcommand.parse(["pnpm", "dev"])
    assert call and call.verb is None and call.script == "dev" and not call.explicit_run
    call = pmcommand.parse(["pnpm", "install", "--frozen-lockfile"])
    assert call and call.verb == "install" and call.script is None
    call = pmcommand.parse(["npm", "t"])
    assert call and call.script == "test" and call.explicit_run
    call = pmcommand.parse(["yarn", "workspace", "web", "dev"])
    assert call and call.selectors == ("web",) and call.script == "dev"
    assert pmcommand.parse(["make", "dev"]) is None


# --------------------------------------------------------------------------- package manager


def test_package_manager_conflicts_and_guesses_are_said(tmp_path):
    p = profile.read(repo(tmp_path, {"package.json": {"packageManager": "pnpm@9.1.0"}, "yarn.lock": ""}))
    assert p.package_manager == "pnpm"
    assert any("lock file(s) belong to yarn" in u for u in p.unclear)
    q = profile.read(repo(tmp_path / "q", {"package.json": {"scripts": {}}}))
    assert q.package_manager == "npm" and any("npm assumed" in u for u in q.unclear)
    r = profile.read(repo(tmp_path / "r", {"package.json": {}, "README.md": "Run `pnpm install` first.\n"}))
    assert r.package_manager == "pnpm" and "the docs run `pnpm install`" in r.package_manager_why


def test_broken_package_json_names_the_line(tmp_path):
    (tmp_path / "package.json").write_text('{\n  "name": "x",\n}\n')
    with pytest.raises(PackageJsonError, match="line 3"):
        profile.read(tmp_path)


# --------------------------------------------------------------------------- environment


def env_profile(tmp_path: Path, text: str) -> profile.Profile:
    return profile.read(repo(tmp_path, {"package.json": {"name": "x"}, ".env.example": text}))


def test_database_and_redis_from_urls(tmp_path):
    p = env_profile(
        tmp_path,
        "# services\r\nexport DATABASE_URL='postgresql://demo:s%40fe@192.168.64.5:5433/queue_demo?schema=app'\r\n"
        'REDIS_URL="redis://:pw@192.168.64.5:6380/2"\r\nEXTRA=1\r\n',
    )
    db, rd = p.database, p.redis
    assert db and (db.user, db.password, db.host, db.port, db.database) == (
        "demo",
        "s@fe",
        "192.168.64.5",
        5433,
        "queue_demo",
    )
    assert db.sources == {k: "DATABASE_URL" for k in ("user", "password", "host", "port", "database")}
    assert rd and (rd.host, rd.port, rd.index, rd.password, rd.url_key) == (
        "192.168.64.5",
        6380,
        2,
        "pw",
        "REDIS_URL",
    )
    assert p.env_keys == ("DATABASE_URL", "REDIS_URL", "EXTRA")
    assert "s@fe" not in " ".join(v for _, v, _ in p.rows())


def test_separate_keys_and_interpolated_urls(tmp_path):
    p = env_profile(
        tmp_path,
        "DB_HOST=192.168.64.7\nDB_PORT=5432\nDB_USER=queue\nDB_PASSWORD=queue\nDB_NAME=jobs\n"
        "DATABASE_URL=postgres://${DB_USER}:${DB_PASSWORD}@${DB_HOST}:${DB_PORT}/${DB_NAME}\n"
        "REDIS_HOST=192.168.64.7\nREDIS_PORT=6379\nREDIS_DB=1\n",
    )
    db, rd = p.database, p.redis
    assert db and (db.user, db.database, db.host, db.port) == ("queue", "jobs", "192.168.64.7", 5432)
    assert db.sources == {
        "user": "DB_USER",
        "password": "DB_PASSWORD",
        "host": "DB_HOST",
        "port": "DB_PORT",
        "database": "DB_NAME",
    }
    assert rd and (rd.host, rd.port, rd.index, rd.url_key) == ("192.168.64.7", 6379, 1, None)
    assert rd.sources == {"host": "REDIS_HOST", "port": "REDIS_PORT", "database": "REDIS_DB"}


def test_url_and_separate_index_combine_and_conflicts_are_unclear(tmp_path):
    p = env_profile(tmp_path, "REDIS_URL=redis://localhost:6379\nREDIS_DB=3\n")
    assert p.redis and p.redis.index == 3 and p.redis.sources["database"] == "REDIS_DB"
    q = env_profile(tmp_path / "q", "REDIS_URL=redis://localhost:6379/1\nREDIS_DB=3\n")
    assert q.redis and q.redis.index == 1
    assert any("REDIS_URL says database '1' but REDIS_DB='3'" in u for u in q.unclear)


def test_no_env_example_is_unclear(tmp_path):
    p = profile.read(repo(tmp_path, {"package.json": {"name": "x"}}))
    assert p.env_file is None and p.database is None and p.redis is None
    assert any("no .env.example" in u for u in p.unclear)


# --------------------------------------------------------------------------- sources: overlay and revisions


def test_profile_of_a_planned_tree_and_of_a_git_revision(tmp_path):
    root = repo(tmp_path, {"package.json": {"scripts": {"vm": "multipass start x"}}, ".env.example": "A=1\n"})
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@x",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@x",
    }
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "base"]):
        subprocess.run(cmd, cwd=root, check=True, env={**env, "PATH": "/usr/bin:/bin"})
    (root / "package.json").write_text('{"scripts": {"docker:up": "docker compose up -d --wait"}}\n')
    now = profile.read(root)
    before = profile.read(root, rev="HEAD")
    planned = profile.read(Tree(root, planned={".env.example": "A=1\nB=2\n"}))
    assert [s.name for s in now.scripts] == ["docker:up"]
    assert [s.name for s in before.scripts] == ["vm"] and before.scripts[0].kinds == (VM,)
    assert planned.env_keys == ("A", "B")
    with pytest.raises(profile.ProfileError, match="cannot read revision"):
        profile.read(root, rev="nope")


def test_no_package_json_says_where_to_point(tmp_path):
    with pytest.raises(profile.ProfileError, match=r"no package\.json"):
        profile.read(tmp_path)


def test_show_prints_both_tables_without_passwords(tmp_path, capsys):
    p = env_profile(tmp_path, "DATABASE_URL=postgresql://u:hunter2@h:5432/d\n")
    profile.show(p)
    out = capsys.readouterr().out
    assert "App profile of" in out and "Its scripts" in out and "u:***@h:5432/d" in out
    assert "hunter2" not in out


# --------------------------------------------------------------------------- the sample app


def test_sample_app_profile_agrees_with_an_independent_reading(app_copy):
    """What 1.15 needs is found, every multipass script is a VM script, the identity is the URL's."""
    from urllib.parse import urlsplit

    from dotenv import dotenv_values

    p = profile.read(app_copy)
    assert p.script_for(DEV_WEB) and p.script_for(DEV_WORKER) and p.script_for(MIGRATE)
    manifest = json.loads((app_copy / "package.json").read_text())
    for s in p.scripts:
        assert (VM in s.kinds) == ("multipass" in manifest["scripts"][s.name]), s
    url = urlsplit(dotenv_values(app_copy / ".env.example")["DATABASE_URL"] or "")
    assert p.database and (p.database.user, p.database.database) == (url.username, url.path.strip("/"))
    assert p.package_manager == manifest["packageManager"].split("@")[0]
