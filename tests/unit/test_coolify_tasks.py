"""Tasks 2.6 to 2.8's steps against the stand-in: idempotent, dry-run changes nothing, secrets stay secret."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from helpers.clients import coolify, errors
from helpers.cloud import coolify_setup
from helpers.core import secrets, state
from helpers.core.checks import Checklist
from helpers.rehearse.coolify import CoolifyStandIn

TOKEN = "3|" + "k9" * 20
BASE = "http://203.0.113.7:8000/api/v1"
NAMES = (
    "COOLIFY_API_TOKEN",
    "PROD_POSTGRES_PASSWORD",
    "PROD_REDIS_PASSWORD",
    "PROD_DATABASE_URL",
    "PROD_REDIS_URL",
)


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RUNBOOK_SECRETS_FILE", str(tmp_path / "secrets.env"))
    monkeypatch.setenv("RUNBOOK_STATE_DIR", str(tmp_path / "state"))
    for name in NAMES:
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def make(**kwargs: Any) -> tuple[CoolifyStandIn, coolify.Client]:
    fake = CoolifyStandIn({TOKEN: kwargs.pop("abilities", None)}, **kwargs)
    return fake, coolify.Client(TOKEN, BASE, transport=fake.transport(), sleep=lambda s: None)


def mutations(fake: CoolifyStandIn) -> list[tuple[str, str]]:
    return [(e.method, e.path) for e in fake.mutating_requests()]


def specs() -> list[coolify_setup.DatabaseSpec]:
    return coolify_setup.database_specs("demo-postgres", "demo-redis")


def deploy(client: coolify.Client, dry_run: bool = False) -> list[Any]:
    """Task 2.8's cells, in order, as the notebook runs them."""
    _, project = coolify_setup.ensure_project(client, "demo", dry_run=True)  # find only
    target = coolify_setup.resolve_target(client, "localhost", project, "production")
    results = []
    for spec in specs():
        results.append(coolify_setup.ensure_password(spec, dry_run))
        step, db = coolify_setup.ensure_database(
            client, project and project["uuid"], "production", target, spec, dry_run=dry_run
        )
        results.append(step)
        results.append(coolify_setup.ensure_started(client, db, spec, dry_run))
        if db is not None and not dry_run:
            db = coolify_setup.wait_healthy(client, db["uuid"], interval=0, progress=lambda line: None)
        results.append(coolify_setup.ensure_connection_url(client, db, spec, dry_run))
    return results


# --------------------------------------------------------------------------- 2.6


def test_2_6_enables_the_api_only_when_asked() -> None:
    fake, client = make(api_enabled=False)
    planned = coolify_setup.ensure_api_enabled(client, enable=True, dry_run=True)
    assert planned.status == "would change" and mutations(fake) == []
    refused = coolify_setup.ensure_api_enabled(client, enable=False)
    assert refused.status == "failed" and "API Access" in refused.detail
    done = coolify_setup.ensure_api_enabled(client, enable=True)
    assert done.status == "changed" and "4.0.0-beta.420" in done.detail
    assert coolify_setup.ensure_api_enabled(client, enable=True).status == "ok"
    assert mutations(fake) == [("POST", "/api/v1/enable")]


def test_2_6_verification_reads_the_api_and_never_shows_the_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COOLIFY_API_TOKEN", TOKEN)
    _, client = make()
    check = Checklist("2.6")
    found = coolify_setup.check_token(check, client, {"version": "4.0.0-beta.420"})
    assert check.failures == [] and found["version"] == "4.0.0-beta.420"
    assert any("usable server" in r.name for r in check.results)
    assert TOKEN not in repr([r.__dict__ for r in check.results])


def test_2_6_verification_fails_loudly_on_a_wrong_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COOLIFY_API_TOKEN", "1|wrong-token-value")
    fake = CoolifyStandIn({TOKEN: None})
    client = coolify.Client("1|wrong-token-value", BASE, transport=fake.transport())
    check = Checklist("2.6")
    coolify_setup.check_token(check, client)
    failed = [r for r in check.failures]
    assert [r.name for r in failed] == ["GET /version with the token (authenticated, API enabled)"]
    assert "Unauthorized" in failed[0].detail and "Keys & Tokens" in failed[0].hint
    assert "wrong-token-value" not in repr([r.__dict__ for r in check.results])


# --------------------------------------------------------------------------- 2.7


def test_2_7_dry_run_then_create_then_nothing_to_do() -> None:
    fake, client = make()
    step, project = coolify_setup.ensure_project(client, "demo", "the demo", dry_run=True)
    assert step.status == "would change" and project is None
    assert step.diff.startswith(f"POST {BASE}/projects")
    env_step, env = coolify_setup.ensure_environment(client, project, "production", dry_run=True)
    assert env_step.status == "would change" and env is None
    assert mutations(fake) == []

    step, project = coolify_setup.ensure_project(client, "demo", "the demo")
    assert step.status == "changed" and project["name"] == "demo"
    env_step, env = coolify_setup.ensure_environment(client, project, "production")
    assert env_step.status == "ok"  # Coolify makes production with every project
    state.update("phase2", coolify_project=coolify_setup.project_record(project, env))

    again, _ = coolify_setup.ensure_project(client, "demo", "the demo")
    assert again.status == "ok"
    assert mutations(fake) == [("POST", "/api/v1/projects")]
    check = Checklist("2.7")
    coolify_setup.check_project(check, client, "demo", "production", state.get("phase2", "coolify_project"))
    assert check.failures == []


def test_2_7_creates_a_missing_environment_and_refuses_duplicates() -> None:
    _fake, client = make()
    _, project = coolify_setup.ensure_project(client, "demo")
    client.delete(f"/projects/{project['uuid']}/environments/production")
    step, env = coolify_setup.ensure_environment(client, project, "production")
    assert step.status == "changed" and env["name"] == "production"
    client.create_project("demo")
    dup, _ = coolify_setup.ensure_project(client, "demo")
    assert dup.status == "failed" and "delete the extras" in dup.detail
    check = Checklist("2.7")
    coolify_setup.check_project(check, client, "demo", "production", None)
    assert [r.name for r in check.failures] == ["exactly one project named 'demo'"]


def test_2_7_a_lost_create_response_makes_no_duplicate() -> None:
    fake, client = make()
    fake.inject("/api/v1/projects", 500, method="POST", when="after")
    with pytest.raises(errors.ServerError):
        coolify_setup.ensure_project(client, "demo")
    step, _ = coolify_setup.ensure_project(client, "demo")  # the re-run looks first
    assert step.status == "ok" and len(coolify_setup.find_project(client, "demo")) == 1


def test_2_7_on_an_older_coolify_without_the_environment() -> None:
    _fake, client = make(legacy=True, version="4.0.0-beta.380")
    _, project = coolify_setup.ensure_project(client, "demo")
    assert coolify_setup.ensure_environment(client, project, "production")[0].status == "ok"
    with pytest.raises(coolify.UnsupportedVersion, match=r"4\.0\.0-beta\.380"):
        coolify_setup.ensure_environment(client, project, "staging")


# --------------------------------------------------------------------------- 2.8


def test_2_8_dry_run_before_anything_exists_sends_nothing(isolated: Path) -> None:
    fake, client = make()
    results = deploy(client, dry_run=True)
    assert {r.status for r in results} == {"would change"}
    assert mutations(fake) == []
    assert not (isolated / "secrets.env").exists()
    creating = [r for r in results if r.diff]
    assert all("<PROD_" in r.diff for r in creating)  # placeholders, never a password


def test_2_8_deploys_once_and_the_second_run_changes_nothing(isolated: Path) -> None:
    fake, client = make()
    coolify_setup.ensure_project(client, "demo")
    first = deploy(client)
    assert [r.status for r in first] == ["changed", "changed", "ok", "ok"] * 2
    posts = mutations(fake)
    assert posts == [
        ("POST", "/api/v1/projects"),
        ("POST", "/api/v1/databases/postgresql"),
        ("POST", "/api/v1/databases/redis"),
    ]
    sent = fake.requests("POST", "/api/v1/databases/postgresql")[0].body
    assert sent["is_public"] is False and sent["instant_deploy"] is True
    assert {"server_uuid", "project_uuid", "environment_name", "environment_uuid"} <= set(sent)
    assert sent["postgres_password"] == "[REDACTED]"  # the stand-in's log never keeps it

    pg_password = secrets.get("PROD_POSTGRES_PASSWORD")
    assert len(pg_password) >= 32 and pg_password != secrets.get("PROD_REDIS_PASSWORD")
    pg = fake.databases[next(iter(fake.databases))]
    assert pg["postgres_password"] == pg_password and pg["image"] == "postgres:15-alpine"
    assert secrets.get("PROD_DATABASE_URL") == f"postgres://app:{pg_password}@{pg['uuid']}:5432/app"
    assert secrets.get("PROD_REDIS_URL").startswith("redis://default:")
    shown = repr([r.__dict__ for r in first])
    for value in secrets.known_values():
        assert value not in shown

    second = deploy(client)
    assert {r.status for r in second} == {"ok"}
    assert mutations(fake) == posts

    record = coolify_setup.databases_record(client, first_project(client), "production", specs())
    assert set(record) == {"postgresql", "redis"} and record["redis"]["url_name"] == "PROD_REDIS_URL"
    state.update("phase2", coolify_databases=record)
    check = Checklist("2.8")
    coolify_setup.check_databases(
        check, client, first_project(client), "production", specs(), state.get("phase2", "coolify_databases")
    )
    assert check.failures == [], check.failures


def first_project(client: coolify.Client) -> str:
    return coolify_setup.find_project(client, "demo")[0]["uuid"]


def test_2_8_verification_fails_when_a_database_is_public_or_down() -> None:
    fake, client = make()
    coolify_setup.ensure_project(client, "demo")
    deploy(client)
    for db in fake.databases.values():
        if db["kind"] == "redis":
            db["is_public"], db["public_port"] = True, 16379
            fake.lifecycle(db["uuid"]).stop()
    check = Checklist("2.8")
    coolify_setup.check_databases(check, client, first_project(client), "production", specs(), None)
    assert sorted(r.name for r in check.failures) == ["demo-redis: not public", "demo-redis: running:healthy"]


def test_2_8_starts_a_stopped_database_and_rebuilds_a_lost_url(isolated: Path) -> None:
    fake, client = make()
    coolify_setup.ensure_project(client, "demo")
    deploy(client)
    redis = next(d for d in fake.databases.values() if d["kind"] == "redis")
    fake.lifecycle(redis["uuid"]).stop()
    text = (isolated / "secrets.env").read_text()
    (isolated / "secrets.env").write_text(
        "\n".join(line for line in text.splitlines() if "PROD_REDIS_URL" not in line)
    )
    import os

    os.environ.pop("PROD_REDIS_URL", None)
    results = deploy(client)
    assert [r.status for r in results][4:] == ["ok", "ok", "changed", "changed"]
    assert secrets.get("PROD_REDIS_URL").endswith(f"@{redis['uuid']}:6379/0")


def test_2_8_without_password_or_sensitive_read_fails_with_next_step(isolated: Path, monkeypatch) -> None:
    _fake, client = make(abilities=["read", "write", "deploy"])
    coolify_setup.ensure_project(client, "demo")
    deploy(client)
    for name in ("PROD_POSTGRES_PASSWORD", "PROD_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    (isolated / "secrets.env").write_text("")
    spec = specs()[0]
    db = coolify_setup.find_databases(client, first_project(client), "production", spec)[0]
    step = coolify_setup.ensure_connection_url(client, db, spec)
    assert step.status == "failed" and "read:sensitive" in step.detail


def test_2_8_a_lost_create_response_keeps_one_database(isolated: Path) -> None:
    fake, client = make()
    coolify_setup.ensure_project(client, "demo")
    fake.inject("/api/v1/databases/postgresql", 500, method="POST", when="after")
    with pytest.raises(errors.ServerError):
        deploy(client)
    results = deploy(client)  # the re-run finds it by name and rebuilds the URL from the stored password
    assert results[1].status == "ok" and results[3].status == "changed"
    assert len([d for d in fake.databases.values() if d["kind"] == "postgresql"]) == 1
    check = Checklist("2.8")
    coolify_setup.check_databases(check, client, first_project(client), "production", specs(), None)
    assert check.failures == []


def test_database_specs_refuse_wrong_majors() -> None:
    with pytest.raises(ValueError, match="major version 15"):
        coolify_setup.database_specs("pg", "r", postgres_image="postgres:16-alpine")
    with pytest.raises(ValueError, match="major version 7"):
        coolify_setup.database_specs("pg", "r", redis_image="redis:latest")
    with pytest.raises(ValueError, match="PostgreSQL identifier"):
        coolify_setup.database_specs("pg", "r", postgres_user="App-User")
