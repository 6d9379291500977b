"""helpers.app.envexample: task 1.9 keeps the app's identity, changes only the host (and a chosen port),
rewrites VM comments as whole lines, and lists what no rule is sure about."""

from __future__ import annotations

import json

import pytest

from helpers.app import appfiles, envexample, envfile, profile, vmtext
from helpers.app.envexample import LocalServices
from helpers.app.envfile import EnvFileError
from helpers.core.checks import Checklist

LEDGER = (
    "# ledger: copy to .env\r\n"
    "#\r\n"
    "# Postgres + Redis live in the dev VM (Coolify). Get the address with `pnpm vm:ip`.\r\n"
    "DATABASE_URL=postgresql://demo:demo@192.168.64.2:5432/queue_demo\r\n"
    "REDIS_URL=redis://192.168.64.2:6379\r\n"
    "\r\n"
    "LOCALE='de-DE'  # used by Intl.NumberFormat\r\n"
    "\r\n"
    "# Coolify dashboard in the VM (only needed to recreate the databases)\r\n"
    "COOLIFY_URL=http://192.168.64.2:8000\r\n"
)
SEPARATE = (
    "# Everything below points at the services VM. Run `pnpm services` first, then\n"
    "# `pnpm services:ip`, and replace 192.168.64.9 if your VM got another address.\n"
    "# Details: docs/dev/vm.md\n"
    "\n"
    'export DATABASE_URL="postgres://queue:queue@192.168.64.9:5432/jobs"\n'
    "export REDIS_HOST=192.168.64.9\n"
    "export REDIS_PORT=6379\n"
    "# db 1: db 0 is used by the Coolify instance in the VM\n"
    "export REDIS_DB=1\n"
)


def _profile(text: str, tmp_path) -> profile.Profile:
    (tmp_path / "package.json").write_text(json.dumps({"name": "x", "packageManager": "pnpm@9.1.0"}))
    (tmp_path / ".env.example").write_bytes(text.encode())
    return profile.read(tmp_path)


# --------------------------------------------------------------------------- the app's identity


def test_local_services_keep_the_app_identity_or_take_the_runbook_s(tmp_path):
    p = _profile(LEDGER.replace("6379", "6379/4"), tmp_path)
    mine = LocalServices.for_app(p)
    assert (mine.user, mine.password, mine.database, mine.redis_index) == ("demo", "demo", "queue_demo", 4)
    assert (mine.postgres_port, mine.redis_port) == (5432, 6379)
    chosen = LocalServices.for_app(p, postgres_port=5433)
    assert chosen.postgres_port == 5433 and chosen.user == "demo"
    theirs = LocalServices.for_app(p, identity="runbook")
    assert (theirs.user, theirs.database, theirs.redis_index) == ("postgres", "app", 0)
    with pytest.raises(EnvFileError, match="identity must be"):
        LocalServices.for_app(p, identity="mine")
    with pytest.raises(EnvFileError, match="is not a TCP port"):
        LocalServices.for_app(p, redis_port=70000)


def test_local_is_what_this_machine_s_compose_runs():
    s = LocalServices(user="demo", database="queue_demo", password="demo", redis_index=2)
    local = s.local({"POSTGRES_PORT": "55432", "REDIS_PORT": "56379"})
    assert local.database_url() == "postgresql://demo:demo@localhost:55432/queue_demo"
    assert local.redis_url == "redis://localhost:56379/2"
    assert s.local({}) == s
    with pytest.raises(EnvFileError, match="POSTGRES_PORT='abc' is not a TCP port"):
        s.local({"POSTGRES_PORT": "abc"})


def test_point_at_changes_only_the_host_where_the_app_keeps_it(tmp_path):
    services = LocalServices.for_app(_profile(LEDGER, tmp_path))
    out = envexample.point_at(LEDGER, services)
    assert "DATABASE_URL=postgresql://demo:demo@localhost:5432/queue_demo\r\n" in out
    assert "REDIS_URL=redis://localhost:6379\r\n" in out
    assert [a for a, b in zip(LEDGER.split("\r\n"), out.split("\r\n"), strict=True) if a != b] == [
        "DATABASE_URL=postgresql://demo:demo@192.168.64.2:5432/queue_demo",
        "REDIS_URL=redis://192.168.64.2:6379",
    ]
    # separate keys: the host key changes, the db index stays, no REDIS_URL is added
    sep = envexample.point_at(SEPARATE, LocalServices.for_app(_profile(SEPARATE, tmp_path)))
    assert "export REDIS_HOST=localhost\n" in sep and "export REDIS_DB=1\n" in sep
    assert "REDIS_URL" not in sep and 'postgres://queue:queue@localhost:5432/jobs"' in sep
    # ${VAR} inside the URL: the key it comes from
    pulse = "export POSTGRES_HOST=10.13.37.5\nexport DATABASE_URL=postgresql://u:p@${POSTGRES_HOST}:5432/d\n"
    out = envexample.point_at(pulse, LocalServices.for_app(_profile(pulse, tmp_path)))
    assert out.startswith("export POSTGRES_HOST=localhost\n") and "${POSTGRES_HOST}" in out
    # a chosen port, and the runbook's identity
    runbook = envexample.point_at(LEDGER, LocalServices(postgres_port=5433, redis_port=6380))
    assert "postgresql://postgres:postgres@localhost:5433/app" in runbook
    assert "redis://localhost:6380" in runbook


def test_point_at_adds_what_the_app_lacks():
    out = envexample.point_at("A=1\n", LocalServices())
    assert envfile.values(out) == {
        "A": "1",
        "DATABASE_URL": "postgresql://postgres:postgres@localhost:5432/app",
        "REDIS_URL": "redis://localhost:6379",
    }


# --------------------------------------------------------------------------- comments and other values


def test_vm_comments_become_one_whole_line_and_coolify_its_own():
    text, unsure, _ = envexample.rewrite_env(envexample.point_at(LEDGER, LocalServices()), manager="pnpm")
    lines = text.split("\r\n")
    assert lines[2] == envexample.services_comment("pnpm")
    assert "`pnpm docker:up`" in lines[2] and text.count("\r\n") == LEDGER.count("\r\n")
    assert envexample.COOLIFY_COMMENT in lines and f"COOLIFY_URL={vmtext.COOLIFY_PLACEHOLDER}" in lines
    assert unsure == []
    assert envexample.rewrite_env(text)[0] == text, "stable: a second pass changes nothing"


def test_a_comment_group_becomes_one_line_the_sentence_that_goes_on_too():
    rules = vmtext.Rules.from_params(hosts=["192.168.64.9"])
    gone = {"docs/dev/vm.md": "README.md#local-development-with-docker"}
    text, unsure, _ = envexample.rewrite_env(
        SEPARATE, rules, "pnpm", gone, vm_scripts=frozenset({"services", "services:ip"})
    )
    head = text.split("\n")[:3]
    assert head == [envexample.services_comment("pnpm"), "# Details: README.md", ""]
    assert [u.where for u in unsure] == [".env.example:8"]
    assert unsure[0].proposal == "(remove the line)" and "REDIS_DB" in unsure[0].why


def test_a_ruled_header_keeps_its_rule_and_width():
    old = "# --- Services in the Multipass VM --------------------------------------------"
    text, _, _ = envexample.rewrite_env(f"{old}\nDATABASE_URL=postgresql://a@192.168.64.5/app\n")
    first = text.split("\n")[0]
    assert first.startswith("# --- Services in Docker (docker-compose.yml) ---") and len(first) == len(old)


def test_another_service_on_the_vm_is_listed_not_guessed_and_accepted_on_request():
    rules = vmtext.Rules.from_params(hosts=["harbor-dev.local"])
    text = '# Object storage (MinIO, also on the VM)\nS3_ENDPOINT="http://harbor-dev.local:9000"\nB=1\n'
    new, unsure, accepted = envexample.rewrite_env(text, rules)
    assert new == text and accepted == []
    assert [(u.where, u.proposal) for u in unsure] == [
        (".env.example:1", "# Object storage (MinIO)"),
        (
            ".env.example:2",
            'S3_ENDPOINT="http://localhost:9000"   (only if that service runs on this machine)',
        ),
    ]
    new, unsure, accepted = envexample.rewrite_env(text, rules, accept=(".env.example:2",))
    assert [u.where for u in accepted] == [".env.example:2"] and len(unsure) == 1
    assert 'S3_ENDPOINT="http://localhost:9000"\n' in new and new.startswith("# Object storage (MinIO, also")
    all_of_it = envexample.rewrite_env(text, rules, accept=("all",))[0]
    assert all_of_it.startswith("# Object storage (MinIO)\n")
    assert envexample.rewrite_env(all_of_it, rules)[1] == []


# --------------------------------------------------------------------------- task 1.9 on the fixture


def _check(app, services=None, **kw) -> Checklist:
    check = Checklist("1.9")
    envexample.check_env_example(check, app, services or LocalServices(), **kw)
    return check


def test_example_rewritten_env_created_then_ok(app_copy):
    before = (app_copy / ".env.example").read_text()
    changes, notes, unsure = envexample.plan(app_copy, LocalServices())
    assert notes == [] and unsure == [] and [c.path for c in changes] == [".env.example", ".env"]
    results = appfiles.apply(app_copy, changes)
    assert [r.status for r in results] == ["changed", "changed"] and results[1].diff == ""
    example = (app_copy / ".env.example").read_text()
    assert envfile.values(example)["DATABASE_URL"] == "postgresql://postgres:postgres@localhost:5432/app"
    assert envfile.values(example)["REDIS_URL"] == "redis://localhost:6379"
    assert envfile.keys(example) == envfile.keys(before)
    assert next(x for x in before.splitlines() if x.startswith("#")) in example
    assert "192.168.64" not in (app_copy / ".env").read_text()
    assert not _check(app_copy).failures
    changes, notes, _ = envexample.plan(app_copy, LocalServices())
    assert [r.status for r in appfiles.apply(app_copy, changes) + notes] == ["ok", "ok"]


def test_the_test_s_ports_go_to_env_never_to_env_example(app_copy, monkeypatch):
    monkeypatch.setenv("POSTGRES_PORT", "55432")
    monkeypatch.setenv("REDIS_PORT", "56379")
    appfiles.apply(app_copy, envexample.plan(app_copy, LocalServices())[0])
    assert "55432" not in (app_copy / ".env.example").read_text()
    local = envfile.values((app_copy / ".env").read_text())
    assert local["DATABASE_URL"].endswith("@localhost:55432/app") and local["REDIS_URL"].endswith(":56379")


def test_existing_env_is_left_alone_and_reported(app_copy):
    mine = "DATABASE_URL=postgresql://me:hunter2x@192.168.64.5:5432/app\nMY_OWN=1\n"
    (app_copy / ".env").write_text(mine)
    changes, notes, _ = envexample.plan(app_copy, LocalServices())
    appfiles.apply(app_copy, changes)
    assert (app_copy / ".env").read_text() == mine
    assert notes[0].status == "skipped" and "rewrite_env=True" in notes[0].detail
    failed = {r.name for r in _check(app_copy).failures}
    assert failed == {".env points at no VM address"}

    changes, _, _ = envexample.plan(app_copy, LocalServices(), rewrite_env=True)
    results = appfiles.apply(app_copy, changes)
    assert "hunter2x" not in "".join(r.diff + r.detail for r in results)
    assert (
        (app_copy / ".env").read_text().startswith("DATABASE_URL=postgresql://me:hunter2x@localhost:5432/app")
    )
    assert not _check(app_copy).failures


def test_configured_password_goes_to_env_only(app_copy):
    changes, _, _ = envexample.plan(app_copy, LocalServices(), password="n0t-default")
    appfiles.apply(app_copy, changes)
    assert "n0t-default" not in (app_copy / ".env.example").read_text()
    assert envfile.values((app_copy / ".env").read_text())["DATABASE_URL"] == (
        "postgresql://postgres:n0t-default@localhost:5432/app"
    )


def test_no_env_without_create_env(app_copy):
    changes, notes, _ = envexample.plan(app_copy, LocalServices(), create_env=False)
    assert [c.path for c in changes] == [".env.example"] and notes[0].status == "skipped"
    appfiles.apply(app_copy, changes)
    assert not (app_copy / ".env").exists()
    assert [r.name for r in _check(app_copy).failures] == [".env exists (task 1.5 reads it)"]
    assert not _check(app_copy, require_env=False).failures


def test_check_fails_on_a_replaced_identity_a_lost_key_or_comment_and_unignored_env(app_copy):
    appfiles.apply(app_copy, envexample.plan(app_copy, LocalServices())[0])
    path = app_copy / ".env.example"
    path.write_text(
        path.read_text()
        .replace("QUEUE_NAME=jobs\n", "")
        .replace("# Jobs the worker", "# Workers")
        .replace("postgres:postgres@localhost:5432/app", "postgres:postgres@localhost:5432/other")
    )
    (app_copy / ".gitignore").write_text("node_modules/\n")
    failed = {r.name: r.detail for r in _check(app_copy).failures}
    assert set(failed) == {
        "PostgreSQL on localhost as port 5432, user postgres, database app",
        "every key of the committed .env.example is kept, in order",
        "every other comment is kept",
        ".env is ignored by git (it holds secrets)",
    }
    assert "database" in failed["PostgreSQL on localhost as port 5432, user postgres, database app"]


def test_app_without_env_example_gets_one(tmp_path):
    (tmp_path / "package.json").write_text("{}\n")
    changes, _, _ = envexample.plan(tmp_path, LocalServices())
    assert changes[0].action == "create" and changes[0].after.startswith("# Local development")
    appfiles.apply(tmp_path, changes)
    assert set(envfile.keys((tmp_path / ".env.example").read_text())) == {"DATABASE_URL", "REDIS_URL"}
