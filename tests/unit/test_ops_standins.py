"""The stand-ins' operations routes keep the vendors' contracts: fields, validation, status codes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from helpers.rehearse import coolify_ops
from helpers.rehearse.coolify import CoolifyStandIn
from helpers.rehearse.digitalocean import DigitalOceanStandIn

TOKEN = "4|" + "op" * 20


@pytest.fixture
def cool() -> tuple[CoolifyStandIn, httpx.Client, dict[str, Any]]:
    fake = CoolifyStandIn({TOKEN: None})
    api = httpx.Client(
        base_url="http://coolify.invalid/api/v1",
        transport=fake.transport(),
        headers={"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"},
    )
    server = api.get("/servers").json()[0]
    project = api.post("/projects", json={"name": "p"}).json()
    (env,) = api.get(f"/projects/{project['uuid']}/environments").json()
    target = {"project_uuid": project["uuid"], "server_uuid": server["uuid"], "environment_uuid": env["uuid"]}
    db = api.post("/databases/postgresql", json={**target, "postgres_db": "app"}).json()
    redis = api.post("/databases/redis", json=target).json()
    app = api.post(
        "/applications/dockerimage",
        json={
            **target,
            "environment_name": "production",
            "docker_registry_image_name": "ghcr.io/t/a-web",
            "ports_exposes": "3000",
        },
    ).json()
    return fake, api, {"db": db["uuid"], "redis": redis["uuid"], "app": app["uuid"], **target}


@pytest.mark.parametrize(
    ("expression", "valid"),
    [
        ("daily", True),
        ("@weekly", True),
        ("0 3 * * *", True),
        ("*/15 0-6 1,15 * 1-5", True),
        ("0 3 * *", False),
        ("61 * * * *", False),
        ("sometimes", False),
    ],
)
def test_cron_expressions_as_coolify_validates_them(expression: str, valid: bool) -> None:
    assert coolify_ops.valid_cron(expression) is valid


def test_a_backup_is_created_with_its_database_as_default_and_listed_with_its_executions(cool) -> None:
    _, api, ids = cool
    created = api.post(f"/databases/{ids['db']}/backups", json={"frequency": "0 3 * * *", "backup_now": True})
    assert created.status_code == 201 and set(created.json()) == {"uuid", "message"}
    (backup,) = api.get(f"/databases/{ids['db']}/backups").json()
    assert backup["databases_to_backup"] == "app" and backup["frequency"] == "0 3 * * *"
    assert "database_uuid" not in backup and isinstance(backup["executions"], list)
    runs = api.get(f"/databases/{ids['db']}/backups/{backup['uuid']}/executions").json()["executions"]
    assert runs and set(runs[0]) == {"uuid", "filename", "size", "created_at", "message", "status"}
    assert runs[0]["filename"].startswith("/data/coolify/backups/databases/root-team-0/")
    assert runs[0]["filename"].endswith(".dmp") and "pg-dump-app-" in runs[0]["filename"]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({}, 400, None),  # an empty JSON body
        ({"enabled": True}, 422, "frequency"),
        ({"frequency": "sometimes"}, 422, "frequency"),
        ({"frequency": "daily", "save_s3": True}, 422, "s3_storage_uuid"),
        ({"frequency": "daily", "s3_storage_uuid": "nope"}, 422, "s3_storage_uuid"),
        ({"frequency": "daily", "timeout": 10}, 422, "timeout"),
        ({"frequency": "daily", "database_backup_retention_amount_locally": -1}, 422, None),
        ({"frequency": "daily", "color": "red"}, 422, "color"),
    ],
)
def test_invalid_backups_are_refused_like_coolify(
    cool, body: dict[str, Any], status: int, field: str | None
) -> None:
    _, api, ids = cool
    answer = api.post(f"/databases/{ids['db']}/backups", json=body)
    assert answer.status_code == status, answer.text
    if field:
        assert field in answer.json()["errors"]


def test_redis_has_no_scheduled_backups_and_unknown_ids_are_404(cool) -> None:
    _, api, ids = cool
    assert api.post(f"/databases/{ids['redis']}/backups", json={"frequency": "daily"}).status_code == 422
    assert api.post("/databases/nope/backups", json={"frequency": "daily"}).status_code == 404
    assert api.get(f"/databases/{ids['db']}/backups/nope/executions").status_code == 404


def test_backup_patch_and_delete(cool) -> None:
    _, api, ids = cool
    uuid = api.post(f"/databases/{ids['db']}/backups", json={"frequency": "daily"}).json()["uuid"]
    patched = api.patch(
        f"/databases/{ids['db']}/backups/{uuid}", json={"database_backup_retention_amount_locally": 3}
    )
    assert patched.status_code == 200
    assert (
        api.get(f"/databases/{ids['db']}/backups").json()[0]["database_backup_retention_amount_locally"] == 3
    )
    assert api.delete(f"/databases/{ids['db']}/backups/{uuid}").status_code == 200
    assert api.get(f"/databases/{ids['db']}/backups").json() == []


def test_s3_storages_never_answer_their_keys(cool) -> None:
    _, api, _ = cool
    body = {
        "name": "b",
        "endpoint": "https://s3.example.invalid",
        "bucket": "k",
        "region": "r",
        "key": "AK",
        "secret": "SK",
    }
    created = api.post("/s3-storages", json=body)
    assert created.status_code == 201
    listed = api.get("/s3-storages").json()
    assert listed and not {"key", "secret", "id"} & set(listed[0])
    assert api.post("/s3-storages", json={k: v for k, v in body.items() if k != "secret"}).status_code == 422
    assert api.post("/s3-storages", json={**body, "endpoint": "not a url"}).status_code == 422


def test_logs_of_a_container_that_does_not_run_answer_400(cool) -> None:
    _, api, ids = cool
    answer = api.get(f"/applications/{ids['app']}/logs", params={"lines": 5})
    assert answer.status_code == 400 and answer.json() == {"message": "Application is not running."}
    assert api.get(f"/databases/{ids['db']}/logs").json() == {"message": "Database is not running."}
    assert coolify_ops.log_lines("0") == 100 and coolify_ops.log_lines("99999") == 10000


def test_application_updates_validate_the_fields(cool) -> None:
    _, api, ids = cool
    ok = api.patch(f"/applications/{ids['app']}", json={"docker_registry_image_tag": "sha256-" + "a" * 64})
    assert ok.status_code == 200 and ok.json() == {"uuid": ids["app"]}
    app = api.get(f"/applications/{ids['app']}").json()
    assert app["docker_registry_image_tag"] == "sha256-" + "a" * 64
    assert (
        api.patch(f"/applications/{ids['app']}", json={"docker_registry_image_tag": "bad tag!"}).status_code
        == 422
    )
    assert api.patch(f"/applications/{ids['app']}", json={"health_check_type": "tcp"}).status_code == 422
    assert api.patch(f"/applications/{ids['app']}", json={"favourite": 1}).json()["errors"] == {
        "favourite": ["This field is not allowed."]
    }


def test_digest_tags_deploy_the_image_by_digest() -> None:
    from helpers.rehearse.coolify import Runtime

    app = {"docker_registry_image_name": "ghcr.io/t/a-web", "docker_registry_image_tag": "sha256-" + "b" * 64}
    assert Runtime.image_reference(app) == "ghcr.io/t/a-web@sha256:" + "b" * 64
    assert Runtime.image_reference({**app, "docker_registry_image_tag": "main"}) == "ghcr.io/t/a-web:main"


# --------------------------------------------------------------------------- DigitalOcean


@pytest.fixture
def do() -> httpx.Client:
    fake = DigitalOceanStandIn([TOKEN], email="team@example.invalid")
    return httpx.Client(
        base_url="http://do.invalid", transport=fake.transport(), headers={"Authorization": f"Bearer {TOKEN}"}
    )


CHECK = {
    "name": "site",
    "type": "https",
    "target": "https://app.example.invalid/",
    "regions": ["us_east"],
    "enabled": True,
}


def test_uptime_checks_and_alerts_crud_with_the_documented_statuses(do: httpx.Client) -> None:
    created = do.post("/v2/uptime/checks", json=CHECK)
    assert created.status_code == 201
    check = created.json()["check"]
    assert do.get(f"/v2/uptime/checks/{check['id']}").json()["check"] == check
    alert = {
        "name": "down",
        "type": "down",
        "period": "2m",
        "notifications": {"email": ["team@example.invalid"], "slack": []},
    }
    made = do.post(f"/v2/uptime/checks/{check['id']}/alerts", json=alert)
    assert made.status_code == 201 and not any(k.startswith("_") for k in made.json()["alert"])
    assert (
        do.put(f"/v2/uptime/checks/{check['id']}", json={"enabled": False}).json()["check"]["enabled"]
        is False
    )
    assert do.delete(f"/v2/uptime/checks/{check['id']}").status_code == 204
    assert do.get(f"/v2/uptime/checks/{check['id']}/alerts").status_code == 404


@pytest.mark.parametrize(
    "change",
    [
        {"type": "tcp"},
        {"regions": ["mars"]},
        {"type": "http"},  # an https:// target is not an http check
        {"enabled": "yes"},
    ],
)
def test_invalid_uptime_checks_are_422(do: httpx.Client, change: dict[str, Any]) -> None:
    answer = do.post("/v2/uptime/checks", json={**CHECK, **change})
    assert answer.status_code == 422 and answer.json()["id"] == "unprocessable_entity"


def test_alerts_go_only_to_a_verified_email_and_need_both_channels(do: httpx.Client) -> None:
    check = do.post("/v2/uptime/checks", json=CHECK).json()["check"]
    base = {"name": "down", "type": "down", "period": "2m"}
    stranger = do.post(
        f"/v2/uptime/checks/{check['id']}/alerts",
        json={**base, "notifications": {"email": ["x@y.z"], "slack": []}},
    )
    assert stranger.status_code == 422 and "not a verified email" in stranger.json()["message"]
    missing = do.post(
        f"/v2/uptime/checks/{check['id']}/alerts", json={**base, "notifications": {"email": []}}
    )
    assert missing.status_code == 422
    latency = {**base, "type": "latency", "notifications": {"email": [], "slack": []}}
    assert do.post(f"/v2/uptime/checks/{check['id']}/alerts", json=latency).status_code == 422  # no threshold


def test_alert_policies_answer_200_and_watch_existing_droplets_only(do: httpx.Client) -> None:
    body = {
        "type": "v1/insights/droplet/cpu",
        "description": "cpu",
        "compare": "GreaterThan",
        "value": 80,
        "window": "5m",
        "entities": ["123"],
        "tags": [],
        "alerts": {"email": ["team@example.invalid"], "slack": []},
        "enabled": True,
    }
    assert do.post("/v2/monitoring/alerts", json=body).status_code == 422  # droplet 123 is not ours
    created = do.post("/v2/monitoring/alerts", json={**body, "entities": []})
    assert created.status_code == 200
    policy = created.json()["policy"]
    listed = do.get("/v2/monitoring/alerts").json()
    assert listed["policies"] == [policy] and listed["meta"]["total"] == 1
    assert (
        do.put(f"/v2/monitoring/alerts/{policy['uuid']}", json={**body, "entities": [], "value": 90}).json()[
            "policy"
        ]["value"]
        == 90
    )
    assert do.delete(f"/v2/monitoring/alerts/{policy['uuid']}").status_code == 204
    assert do.get(f"/v2/monitoring/alerts/{policy['uuid']}").status_code == 404
    for bad in ({"window": "7m"}, {"compare": "Above"}, {"type": "v1/insights/droplet/nope"}):
        assert do.post("/v2/monitoring/alerts", json={**body, "entities": [], **bad}).status_code == 422


def test_a_token_without_the_uptime_scope_is_refused() -> None:
    fake = DigitalOceanStandIn({TOKEN: ["droplet:read"]})
    api = httpx.Client(
        base_url="http://do.invalid", transport=fake.transport(), headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert api.post("/v2/uptime/checks", json=CHECK).status_code == 403
    assert api.get("/v2/monitoring/alerts").status_code == 403
