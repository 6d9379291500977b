"""The operations' API steps against the stand-ins: idempotent, dry runs change nothing, checks can fail.

Production is made here as phase 2 leaves it (a Coolify project with PostgreSQL, Redis, web and worker;
a DigitalOcean droplet with its tag and firewall, recorded in the state file), on in-process stand-ins
without containers: what needs a running database or a server (a real backup, the drill, the rollback's
images) is rehearsed against real containers in ``tests/integration/test_rehearse_phase2.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from helpers.clients import coolify
from helpers.clients import digitalocean as do_client
from helpers.core import state
from helpers.core.checks import Checklist
from helpers.ops import backups, logs, monitoring, teardown
from helpers.rehearse.coolify import CoolifyStandIn
from helpers.rehearse.digitalocean import DigitalOceanStandIn

TOKEN = "5|" + "ops" * 14
DO_TOKEN = "dop_v1_" + "ab" * 32
NAME = "rb-unit-droplet"


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNBOOK_SECRETS_FILE", str(tmp_path / "secrets.env"))
    monkeypatch.setenv("RUNBOOK_STATE_DIR", str(tmp_path / "state"))
    for name in ("BACKUP_S3_ACCESS_KEY", "BACKUP_S3_SECRET_KEY", "RUNBOOK_FINGERPRINT_SECRET"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def prod() -> dict[str, Any]:
    """Coolify and DigitalOcean as phase 2 leaves them, and the records it makes."""
    cool = CoolifyStandIn({TOKEN: None}, deploy_after_polls=1)
    client = coolify.Client(
        TOKEN, "http://203.0.113.7:8000/api/v1", transport=cool.transport(), sleep=lambda s: None
    )
    server = client.servers()[0]
    project = client.create_project("demo")
    (env,) = client.environments(project["uuid"])
    target = {"project_uuid": project["uuid"], "server_uuid": server["uuid"], "environment_uuid": env["uuid"]}
    pg = client.create_database("postgresql", {**target, "postgres_db": "app", "name": "demo-postgres"})
    redis = client.create_database("redis", {**target, "name": "demo-redis"})
    apps = {}
    for role in ("web", "worker"):
        body = {
            **target,
            "environment_name": "production",
            "name": f"demo-{role}",
            "ports_exposes": "3000",
            "docker_registry_image_name": f"ghcr.io/team/demo-app-{role}",
            "docker_registry_image_tag": "main",
            "health_check_enabled": role == "web",
            "health_check_path": "/api/health",
        }
        apps[role] = {
            "uuid": client.create_dockerimage_app(body)["uuid"],
            "name": f"demo-{role}",
            "port": 3000,
        }
    fake_do = DigitalOceanStandIn([DO_TOKEN], email="team@example.invalid", active_after_polls=0)
    do = do_client.Client(DO_TOKEN, "http://127.0.0.1:1", transport=fake_do.transport(), sleep=lambda s: None)
    do.create_tag(NAME)
    key = do.create_ssh_key(
        "runbook", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDf0dGVzdGtleWZvcnRoZXVuaXR0ZXN0c29ubHlY unit"
    )
    droplet = do.create_droplet(
        {
            "name": NAME,
            "region": "fra1",
            "size": "s-2vcpu-4gb",
            "image": "ubuntu-24-04-x64",
            "tags": [NAME],
            "backups": True,
            "ssh_keys": [key["id"]],
        }
    )
    rule = {"protocol": "tcp", "ports": "22", "sources": {"addresses": ["0.0.0.0/0"]}}
    fw = do.create_firewall({"name": NAME, "tags": [NAME], "inbound_rules": [rule]})
    record = {"id": droplet["id"], "name": NAME, "ipv4": "203.0.113.9"}
    state.update(
        "phase2",
        droplet={**record, "ssh_key_id": key["id"], "firewall_id": fw["id"]},
        coolify={"api_url": client.base_url},
        coolify_project={"uuid": project["uuid"], "name": "demo"},
        coolify_databases={
            "postgresql": {"uuid": pg["uuid"], "name": "demo-postgres"},
            "redis": {"uuid": redis["uuid"], "name": "demo-redis"},
        },
        applications=apps,
    )
    return {
        "cool": cool,
        "client": client,
        "do_fake": fake_do,
        "do": do,
        "pg": pg["uuid"],
        "apps": apps,
        "droplet": droplet,
    }


def mutations(fake: Any) -> list[tuple[str, str]]:
    return [(e.method, e.path) for e in fake.mutating_requests()]


# --------------------------------------------------------------------------- backups


def test_the_schedule_is_created_once_corrected_when_it_differs_and_a_dry_run_sends_nothing(prod) -> None:
    client, cool = prod["client"], prod["cool"]
    spec = backups.BackupSpec("0 3 * * *", keep=7)
    before = len(mutations(cool))
    step, backup = backups.ensure_schedule(client, prod["pg"], spec, dry_run=True)
    assert step.status == "would change" and backup is None and len(mutations(cool)) == before
    step, backup = backups.ensure_schedule(client, prod["pg"], spec)
    assert step.status == "changed" and backup["frequency"] == "0 3 * * *"
    again, _ = backups.ensure_schedule(client, prod["pg"], spec)
    assert again.status == "ok"
    changed, backup = backups.ensure_schedule(client, prod["pg"], backups.BackupSpec("hourly", keep=24))
    assert changed.status == "changed" and "frequency" in changed.detail
    assert (backup["frequency"], backup["database_backup_retention_amount_locally"]) == ("hourly", 24)
    assert len(client.database_backups(prod["pg"])) == 1  # corrected in place, not a second schedule


def test_a_backup_that_failed_is_a_failed_step_and_fails_the_verification(prod) -> None:
    client = prod["client"]
    spec = backups.BackupSpec("daily")
    _, backup = backups.ensure_schedule(client, prod["pg"], spec)
    step, execution = backups.ensure_fresh_backup(
        client, prod["pg"], backup, timeout=30, interval=0.01, progress=lambda m: None
    )
    assert step.status == "failed" and "no Docker runtime" in step.detail  # the stand-in has no database here
    check = Checklist("backup")
    backups.check_backup(check, execution, None, spec, backup)
    assert {r.name for r in check.failures} == {
        "latest backup execution finished with success",
        "its file is not empty",
        "the file is on the server with that size",
    }


def test_a_recent_successful_backup_is_ok_and_its_verification_passes(prod) -> None:
    client, cool = prod["client"], prod["cool"]
    spec = backups.BackupSpec("daily")
    _, backup = backups.ensure_schedule(client, prod["pg"], spec)
    cool.run_backup(cool.backups[backup["uuid"]])  # an execution, then as a real dump would finish it:
    (execution,) = (e for e in cool.executions.values())
    execution.update(status="success", size=2048, message=None)
    step, latest = backups.ensure_fresh_backup(client, prod["pg"], backup, fresh_hours=24)
    assert step.status == "ok" and latest["size"] == 2048
    check = Checklist("backup")
    backups.check_backup(check, latest, 2048, spec, client.database_backups(prod["pg"])[0])
    assert not check.failures
    check = Checklist("backup, file gone")
    backups.check_backup(check, latest, None, spec, client.database_backups(prod["pg"])[0])
    assert [r.name for r in check.failures] == ["the file is on the server with that size"]


def test_the_s3_destination_needs_its_secrets_and_never_shows_them(
    prod, monkeypatch: pytest.MonkeyPatch
) -> None:
    from helpers.core import secrets

    client = prod["client"]
    with pytest.raises(secrets.MissingSecret, match="BACKUP_S3_ACCESS_KEY"):
        backups.ensure_s3_storage(client, "b", "https://s3.example.invalid", "bucket", "r")
    secrets.put("BACKUP_S3_ACCESS_KEY", "AKIAUNITTESTKEY0001")
    secrets.put("BACKUP_S3_SECRET_KEY", "unit-secret-value-0123456789")
    step, uuid = backups.ensure_s3_storage(client, "b", "https://s3.example.invalid", "bucket", "r")
    assert step.status == "changed" and uuid
    again, same = backups.ensure_s3_storage(client, "b", "https://s3.example.invalid", "bucket", "r")
    assert again.status == "ok" and same == uuid
    secrets.put("BACKUP_S3_SECRET_KEY", "rotated-secret-value-987654")
    rotated, _ = backups.ensure_s3_storage(client, "b", "https://s3.example.invalid", "bucket", "r")
    assert rotated.status == "changed"  # the fingerprint saw the new key
    text = " ".join(s.detail for s in (step, again, rotated)) + str(state.load("operations"))
    assert "unit-secret-value" not in text and "rotated-secret" not in text
    spec = backups.BackupSpec("daily", s3_storage_uuid=uuid)
    step, backup = backups.ensure_schedule(client, prod["pg"], spec)
    assert backup["save_s3"] is True and backups.ensure_schedule(client, prod["pg"], spec)[0].status == "ok"


# --------------------------------------------------------------------------- logs


def test_logs_are_scrubbed_filtered_and_errors_marked() -> None:
    raw = (
        "2026-12-02T10:00:00.000Z booting\n"
        "2026-12-02T10:10:00.000Z connecting to postgres://app:hunter2-secret@db:5432/app\n"
        "2026-12-02T10:20:00.000Z Error: connection refused\n"
    )
    since = logs.since_time("2026-12-02T10:05:00Z")
    lines = logs.select(raw, since=since)
    assert len(lines) == 2 and "hunter2-secret" not in "\n".join(lines) and "[REDACTED]" in lines[0]
    assert lines[1].startswith(logs.MARK) and not lines[0].startswith(logs.MARK)
    assert logs.select(raw, pattern="booting") == ["2026-12-02T10:00:00.000Z booting"]
    assert logs.select(raw, lines=1) == [logs.MARK + "2026-12-02T10:20:00.000Z Error: connection refused"]
    with pytest.raises(ValueError, match="give a duration"):
        logs.since_time("yesterday")


def test_a_service_that_does_not_run_has_no_lines_and_the_check_says_so(prod) -> None:
    client = prod["client"]
    (web,) = logs.sources(["web"])
    block = logs.read(client, web, lines=10)  # not deployed: Coolify answers 400, no SSH given
    assert not block.lines and "not running" in block.note
    check = Checklist("logs")
    logs.check_logs(check, [block])
    assert [r.name for r in check.failures] == ["web: logs read"]
    client.deploy([web.uuid])
    while client.app_deployments(web.uuid)[0]["status"] != "finished":
        pass  # the simulated deployment advances when it is read
    block = logs.read(client, web, lines=10)
    assert block.lines and block.via == "Coolify API"
    with pytest.raises(ValueError, match="unknown service"):
        logs.sources(["nginx"])


# --------------------------------------------------------------------------- monitoring


def test_health_checks_are_set_once_and_read_back(prod) -> None:
    client = prod["client"]
    web = monitoring.HealthCheck("web", "http", "/api/health", "3000", interval=30, retries=3)
    worker = monitoring.HealthCheck("worker", "cmd", command="kill -0 1")
    for role, wanted in (("web", web), ("worker", worker)):
        uuid = prod["apps"][role]["uuid"]
        assert monitoring.ensure_health_check(client, uuid, wanted, dry_run=True).status == "would change"
        step = monitoring.ensure_health_check(
            client, uuid, wanted, timeout=30, interval=0.01, progress=lambda m: None
        )
        assert step.status == "changed" and "(deployed)" in step.detail
        assert monitoring.ensure_health_check(client, uuid, wanted).status == "ok"
        check = Checklist("health")
        monitoring.check_health_settings(check, client, uuid, wanted)
        assert not check.failures, check.failures
    with pytest.raises(ValueError):
        monitoring.HealthCheck("worker", "cmd")


def test_uptime_check_alerts_and_policies_are_created_once_and_read_back(prod) -> None:
    do, fake = prod["do"], prod["do_fake"]
    url = "https://app.example.invalid/api/health"
    name, limits, droplet = f"{NAME}: web", monitoring.Thresholds(), prod["droplet"]

    def run(dry_run: bool = False) -> list[Any]:
        step, check = monitoring.ensure_uptime_check(do, name, url, dry_run=dry_run)
        out = [step, *monitoring.ensure_uptime_alerts(do, check, name, "team@example.invalid", True, dry_run)]
        return out + monitoring.ensure_alert_policies(
            do, droplet["id"], NAME, "team@example.invalid", limits, dry_run
        )

    before = len(mutations(fake))
    assert {s.status for s in run(dry_run=True)} == {"would change"} and len(mutations(fake)) == before
    first = run()
    assert [s.status for s in first] == ["changed"] * 6  # check, 2 alerts (https), 3 policies
    assert {s.status for s in run()} == {"ok"}  # the second run changes nothing
    check = Checklist("alerting")
    monitoring.check_alerting(check, do, name, url, "team@example.invalid", droplet["id"], NAME, limits)
    failing = {r.name for r in check.failures}
    assert failing == {"the uptime check sees the site up"}  # nothing answers on app.example.invalid
    higher = monitoring.Thresholds(cpu=95)
    changed = monitoring.ensure_alert_policies(do, droplet["id"], NAME, "team@example.invalid", higher)
    assert [s.status for s in changed] == ["changed", "ok", "ok"]


# --------------------------------------------------------------------------- teardown


def test_teardown_lists_costs_refuses_without_the_name_and_leaves_nothing(prod) -> None:
    client, do, fake = prod["client"], prod["do"], prod["do_fake"]
    monitoring.ensure_uptime_check(do, f"{NAME}: web", "https://app.example.invalid/")
    monitoring.ensure_alert_policies(
        do, prod["droplet"]["id"], NAME, "team@example.invalid", monitoring.Thresholds()
    )
    inv = teardown.inventory(client, do, NAME, NAME)
    kinds = [r.kind for r in inv.resources]
    assert kinds == [
        *("web application", "worker application", "postgresql database", "redis database", "project"),
        *("uptime check (and its alerts)", "alert policy", "alert policy", "alert policy", "droplet"),
        *("firewall", "tag", "SSH key"),
    ]
    assert inv.monthly == pytest.approx(24.0 * 1.2)  # s-2vcpu-4gb with backups
    before = len(mutations(fake))
    results, removed = teardown.remove(inv, client, do, confirm="")  # a dry run by default
    assert removed == [] and len(mutations(fake)) == before
    assert {r.status for r in results} == {"would change", "skipped"}  # the SSH key is kept unless asked
    with pytest.raises(teardown.TeardownRefused, match="Type it exactly"):
        teardown.remove(inv, client, do, confirm=NAME.upper(), dry_run=False)
    results, removed = teardown.remove(
        inv, client, do, confirm=NAME, dry_run=False, remove_ssh_key=True, interval=0.01
    )
    assert len(removed) == len(inv.resources)
    check = Checklist("nothing left")
    teardown.check_nothing_left(check, do, inv, client, removed)
    assert not check.failures, check.failures
    teardown.forget()
    assert state.get("phase2", "droplet") is None
    again = teardown.inventory(client, do, NAME, NAME)
    assert again.resources == [] and teardown.remove(again, client, do, "", True)[0][0].status == "ok"


def test_the_nothing_left_check_fails_when_a_droplet_remains(prod) -> None:
    inv = teardown.inventory(prod["client"], prod["do"], NAME, NAME)
    check = Checklist("left")
    teardown.check_nothing_left(check, prod["do"], inv, prod["client"], [])
    assert f"no droplet left with tag {NAME!r} or name {NAME!r}" in {r.name for r in check.failures}
