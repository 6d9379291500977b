"""helpers.app.envfile: line-preserving .env edits and task 1.9 (.env.example to localhost, .env)."""

from __future__ import annotations

import pytest

from helpers.app import appfiles, envfile
from helpers.app.envfile import EnvFileError, LocalServices
from helpers.core.checks import Checklist

TRICKY = (
    "# header comment\n"
    "\n"
    "export DATABASE_URL=postgresql://u:p@192.168.64.5:5432/app\n"
    'REDIS_URL="redis://192.168.64.5:6379"  # inline comment\n'
    "SINGLE='it''s raw'\n"
    "PLAIN=value # trailing comment\n"
    'MULTI="line one\n'
    'line two"\n'
    "EMPTY=\n"
    "   INDENTED = spaced\n"
    "not an assignment\n"
    "DATABASE_URL=postgresql://u:p@192.168.64.5:5432/other"
)


def test_parse_round_trips_exactly():
    assert envfile.render(envfile.parse(TRICKY)) == TRICKY
    crlf = TRICKY.replace("\n", "\r\n")
    assert envfile.render(envfile.parse(crlf)) == crlf


def test_parse_understands_export_quotes_and_comments():
    entries = {e.key: e for e in envfile.parse(TRICKY) if e.kind == "assign"}
    assert entries["REDIS_URL"].value == "redis://192.168.64.5:6379" and entries["REDIS_URL"].quote == '"'
    assert entries["PLAIN"].value == "value" and entries["PLAIN"].suffix == " # trailing comment"
    assert entries["MULTI"].value == "line one\nline two"
    assert entries["EMPTY"].value == ""
    assert entries["INDENTED"].value == "spaced"
    assert envfile.parse(TRICKY)[2].exported
    kinds = [e.kind for e in envfile.parse(TRICKY)]
    assert kinds[:2] == ["comment", "blank"] and "other" in kinds
    assert envfile.keys(TRICKY).count("DATABASE_URL") == 2
    assert envfile.values(TRICKY)["DATABASE_URL"].endswith("/other"), "last one wins, as with dotenv"


def test_set_key_changes_every_occurrence_and_nothing_else():
    new = envfile.set_key(TRICKY, "DATABASE_URL", "postgresql://a:b@localhost:5432/app")
    assert envfile.all_values(new, "DATABASE_URL") == ["postgresql://a:b@localhost:5432/app"] * 2
    assert "export DATABASE_URL=postgresql://a:b@localhost:5432/app\n" in new
    assert not new.endswith("\n"), "no final newline stays so"
    old_lines, new_lines = TRICKY.split("\n"), new.split("\n")
    changed = [i for i, (a, b) in enumerate(zip(old_lines, new_lines, strict=True)) if a != b]
    assert changed == [2, 11]


def test_set_key_keeps_quotes_and_inline_comment():
    new = envfile.set_key(TRICKY, "REDIS_URL", "redis://localhost:6379")
    assert 'REDIS_URL="redis://localhost:6379"  # inline comment\n' in new


def test_set_key_appends_when_absent():
    assert envfile.set_key("A=1", "B", "2") == "A=1\nB=2\n"
    assert envfile.set_key("A=1\r\n", "B", "x y") == 'A=1\r\nB="x y"\r\n'
    assert envfile.set_key("", "B", "2") == "B=2\n"


def test_rewrite_values_only_touches_vm_values():
    text = "# in the Multipass VM\nA=postgresql://u:p@192.168.64.5:5432/app\nB=192.168.64.7\nC=keep\nD=http://192.168.64.5:8000\n"
    assert envfile.rewrite_values(text) == (
        "# in the Multipass VM\nA=postgresql://u:p@localhost:5432/app\nB=localhost\nC=keep\n"
        "D=http://your-coolify-server:8000\n"
    )


def test_rewrite_references_handles_comments_and_coolify_keys():
    text = (
        "# Services in the Multipass VM\n"
        "# Find the address with `multipass info vm`\n"
        "DATABASE_URL=postgresql://u:p@192.168.64.5:5432/app\n"
        "MULTIPASS_VM=coolify-vm\n"
        "# Coolify dashboard (inside the Multipass VM)\n"
        "COOLIFY_URL=http://192.168.64.5:8000\n"
    )
    out = envfile.rewrite_references(text)
    assert out == (
        "# Services in Docker\n"
        "DATABASE_URL=postgresql://u:p@localhost:5432/app\n"
        f"{envfile.COOLIFY_COMMENT}\n"
        "COOLIFY_URL=http://your-coolify-server:8000\n"
    )
    assert envfile.rewrite_references(out) == out
    # the same result when the values were rewritten first (task 1.9 before 1.12)
    assert envfile.rewrite_references(envfile.rewrite_values(text)) == out


def test_local_services_follow_the_compose_variables():
    s = LocalServices.from_env(
        {"POSTGRES_USER": "dev", "POSTGRES_DB": "demo", "POSTGRES_PORT": "5433", "REDIS_PORT": "6380"}
    )
    assert s.wanted() == {
        "DATABASE_URL": "postgresql://dev:postgres@localhost:5433/demo",
        "REDIS_URL": "redis://localhost:6380",
    }
    assert (
        LocalServices.from_env({}).wanted()["DATABASE_URL"]
        == "postgresql://postgres:postgres@localhost:5432/app"
    )
    assert s.database_url("p@ss/w") == "postgresql://dev:p%40ss%2Fw@localhost:5433/demo"
    with pytest.raises(EnvFileError, match="POSTGRES_PORT='abc' is not a TCP port"):
        LocalServices.from_env({"POSTGRES_PORT": "abc"})


# --------------------------------------------------------------------------- task 1.9 on the fixture


def _check(app, **kw) -> Checklist:
    check = Checklist("1.9")
    envfile.check_env_example(check, app, LocalServices(), **kw)
    return check


def test_example_rewritten_env_created_then_ok(app_copy):
    before = (app_copy / ".env.example").read_text()
    changes, notes = envfile.plan(app_copy, LocalServices())
    assert notes == [] and [c.path for c in changes] == [".env.example", ".env"]
    results = appfiles.apply(app_copy, changes)
    assert [r.status for r in results] == ["changed", "changed"] and results[1].diff == ""
    example = (app_copy / ".env.example").read_text()
    assert envfile.values(example)["DATABASE_URL"] == "postgresql://postgres:postgres@localhost:5432/app"
    assert envfile.values(example)["REDIS_URL"] == "redis://localhost:6379"
    assert envfile.keys(example) == envfile.keys(before)
    assert next(x for x in before.splitlines() if x.startswith("#")) in example
    assert "192.168.64" not in (app_copy / ".env").read_text()
    assert not _check(app_copy).failures
    changes, notes = envfile.plan(app_copy, LocalServices())
    assert [r.status for r in appfiles.apply(app_copy, changes) + notes] == ["ok", "ok"]


def test_existing_env_is_left_alone_and_reported(app_copy):
    mine = "DATABASE_URL=postgresql://me:hunter2x@192.168.64.5:5432/app\nMY_OWN=1\n"
    (app_copy / ".env").write_text(mine)
    changes, notes = envfile.plan(app_copy, LocalServices())
    appfiles.apply(app_copy, changes)
    assert (app_copy / ".env").read_text() == mine
    assert notes[0].status == "skipped" and "rewrite_env=True" in notes[0].detail
    failed = {r.name for r in _check(app_copy).failures}
    assert failed == {".env points at no VM address"}

    changes, _ = envfile.plan(app_copy, LocalServices(), rewrite_env=True)
    results = appfiles.apply(app_copy, changes)
    assert "hunter2x" not in "".join(r.diff + r.detail for r in results)
    assert (app_copy / ".env").read_text() == mine.replace("192.168.64.5", "localhost")
    assert not _check(app_copy).failures


def test_configured_password_goes_to_env_only(app_copy):
    changes, _ = envfile.plan(app_copy, LocalServices(), password="n0t-default")
    appfiles.apply(app_copy, changes)
    assert "n0t-default" not in (app_copy / ".env.example").read_text()
    assert envfile.values((app_copy / ".env").read_text())["DATABASE_URL"] == (
        "postgresql://postgres:n0t-default@localhost:5432/app"
    )


def test_no_env_without_create_env(app_copy):
    changes, notes = envfile.plan(app_copy, LocalServices(), create_env=False)
    assert [c.path for c in changes] == [".env.example"] and notes[0].status == "skipped"
    appfiles.apply(app_copy, changes)
    assert not (app_copy / ".env").exists()
    assert [r.name for r in _check(app_copy).failures] == [".env exists (task 1.5 reads it)"]
    assert not _check(app_copy, require_env=False).failures


def test_check_fails_on_lost_key_or_comment_and_unignored_env(app_copy):
    appfiles.apply(app_copy, envfile.plan(app_copy, LocalServices())[0])
    path = app_copy / ".env.example"
    path.write_text(
        path.read_text().replace("QUEUE_NAME=jobs\n", "").replace("# Jobs the worker", "# Workers")
    )
    (app_copy / ".gitignore").write_text("node_modules/\n")
    failed = {r.name for r in _check(app_copy).failures}
    assert failed == {
        "every key of the committed .env.example is kept, in order",
        "every other comment is kept",
        ".env is ignored by git (it holds secrets)",
    }


def test_duplicated_keys_are_all_set_and_reported(app_copy):
    path = app_copy / ".env.example"
    path.write_text(path.read_text() + "DATABASE_URL=postgresql://x@192.168.64.9/app\n")
    changes, _ = envfile.plan(app_copy, LocalServices())
    assert "DATABASE_URL appears 2 times" in changes[0].why
    appfiles.apply(app_copy, changes)
    assert not _check(app_copy).failures


def test_app_without_env_example_gets_one(tmp_path):
    (tmp_path / "package.json").write_text("{}\n")
    changes, _ = envfile.plan(tmp_path, LocalServices())
    assert changes[0].action == "create" and changes[0].after.startswith("# Local development")
    appfiles.apply(tmp_path, changes)
    assert set(envfile.keys((tmp_path / ".env.example").read_text())) == {"DATABASE_URL", "REDIS_URL"}
