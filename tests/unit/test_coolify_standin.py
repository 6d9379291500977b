"""The Coolify stand-in follows the v4 API's contract (shared/refs/coolify: openapi.yaml and NOTES.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from helpers.core.paths import PROJECT_ROOT
from helpers.rehearse.base import HTTPError, StandInProcess
from helpers.rehearse.coolify import CoolifyStandIn, validate

TOKEN = "3|" + "a1b2c3d4" * 5
BASE = "http://coolify.test:8000/api/v1"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def make(tokens: Any = None, **kwargs: Any) -> tuple[CoolifyStandIn, httpx.Client]:
    fake = CoolifyStandIn({TOKEN: None} if tokens is None else tokens, **kwargs)
    client = httpx.Client(
        base_url=BASE, transport=fake.transport(), headers={"Authorization": f"Bearer {TOKEN}"}
    )
    return fake, client


@pytest.fixture
def api() -> tuple[CoolifyStandIn, httpx.Client]:
    return make()


def project_with_env(c: httpx.Client, name: str = "demo") -> tuple[str, str, str]:
    project = c.post("/projects", json={"name": name}).json()["uuid"]
    env = c.get(f"/projects/{project}/production").json()["uuid"]
    server = c.get("/servers").json()[0]["uuid"]
    return project, env, server


def test_health_needs_no_token_and_answers_ok_as_text() -> None:
    fake, _ = make()
    anonymous = httpx.Client(transport=fake.transport())
    for path in ("http://x/api/health", "http://x/api/v1/health"):
        response = anonymous.get(path)
        assert (response.status_code, response.text) == (200, "OK")
        assert response.headers["content-type"].startswith("text/html")


def test_version_is_text_and_needs_a_token(api) -> None:
    fake, c = api
    assert c.get("/version").text == "4.0.0-beta.420"
    response = httpx.Client(transport=fake.transport()).get(f"{BASE}/version")
    assert response.status_code == 401
    assert response.json() == {"message": "Unauthenticated."}
    wrong = httpx.Client(transport=fake.transport(), headers={"Authorization": "Bearer 1|nope"})
    assert wrong.get(f"{BASE}/servers").status_code == 401


def test_a_fresh_install_has_its_api_disabled_until_enable() -> None:
    _, c = make(api_enabled=False)
    response = c.get("/projects")
    assert response.status_code == 403
    assert response.json()["message"] == "API is disabled."
    assert c.get("/health").status_code == 200  # health is outside the switch
    assert c.post("/enable").json() == {"message": "API enabled."}
    assert c.get("/projects").status_code == 200


def test_abilities_are_enforced_per_route() -> None:
    _, c = make({TOKEN: ["read"]})
    assert c.get("/projects").status_code == 200
    denied = c.post("/projects", json={"name": "x"})
    assert denied.status_code == 403
    assert denied.json() == {"message": "Missing required permissions: write"}
    with pytest.raises(ValueError, match="unknown abilities"):
        CoolifyStandIn({TOKEN: ["admin"]})


def test_the_localhost_server_exists_after_install(api) -> None:
    _, c = api
    servers = c.get("/servers").json()
    assert [s["name"] for s in servers] == ["localhost"]
    server = servers[0]
    assert server["is_reachable"] is True and server["is_usable"] is True
    assert c.get(f"/servers/{server['uuid']}").json()["uuid"] == server["uuid"]
    assert c.get("/servers/nope").json() == {"message": "Server not found."}


def test_create_project_validates_like_coolify(api) -> None:
    _, c = api
    missing = c.post("/projects", json={"description": "x"})
    assert missing.status_code == 422
    assert missing.json() == {
        "message": "Validation failed.",
        "errors": {"name": ["This field is required."]},
    }
    wrong = c.post("/projects", json={"name": 7, "colour": "red"})
    assert wrong.status_code == 422
    assert wrong.json()["errors"] == {
        "name": ["The name field must be a string."],
        "colour": ["This field is not allowed."],
    }
    not_json = c.post(
        "/projects", content=b"name=x", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert not_json.status_code == 400
    assert not_json.json()["message"] == "Invalid request."
    broken = c.post("/projects", content=b"{", headers={"Content-Type": "application/json"})
    assert broken.status_code == 400 and broken.json()["error"] == "Invalid JSON."


def test_a_new_project_gets_a_production_environment(api) -> None:
    _, c = api
    created = c.post("/projects", json={"name": "demo", "description": "d"})
    assert created.status_code == 201
    uuid = created.json()["uuid"]
    assert [p["name"] for p in c.get("/projects").json()] == ["demo"]
    project = c.get(f"/projects/{uuid}").json()
    assert [e["name"] for e in project["environments"]] == ["production"]
    assert [e["name"] for e in c.get(f"/projects/{uuid}/environments").json()] == ["production"]
    env = c.get(f"/projects/{uuid}/production").json()
    assert env["postgresqls"] == [] and env["redis"] == []
    assert c.get(f"/projects/{uuid}/{env['uuid']}").json()["name"] == "production"  # by uuid too
    assert c.get("/projects/nope").json() == {"message": "Project not found."}
    assert c.get(f"/projects/{uuid}/staging").json() == {"message": "Environment not found."}


def test_environments_conflict_and_create(api) -> None:
    _, c = api
    uuid = c.post("/projects", json={"name": "demo"}).json()["uuid"]
    duplicate = c.post(f"/projects/{uuid}/environments", json={"name": "production"})
    assert duplicate.status_code == 409
    assert duplicate.json() == {"message": "Environment with this name already exists."}
    staging = c.post(f"/projects/{uuid}/environments", json={"name": "staging"})
    assert staging.status_code == 201 and staging.json()["uuid"]
    assert c.delete(f"/projects/{uuid}/environments/staging").status_code == 200
    assert [e["name"] for e in c.get(f"/projects/{uuid}/environments").json()] == ["production"]


def test_database_creation_requires_the_documented_fields(api) -> None:
    _, c = api
    project, env, server = project_with_env(c)
    missing = c.post("/databases/postgresql", json={"name": "pg"})
    assert missing.status_code == 422
    errors = missing.json()["errors"]
    assert errors["server_uuid"] == ["This field is required."]
    assert errors["project_uuid"] == ["This field is required."]
    typed = c.post(
        "/databases/postgresql",
        json={"server_uuid": server, "project_uuid": project, "environment_name": "production",
              "is_public": "yes", "instant_deploy": "soon", "public_port": "x", "redis_password": "p"},
    )  # fmt: skip
    assert typed.status_code == 422
    assert set(typed.json()["errors"]) == {"is_public", "instant_deploy", "public_port", "redis_password"}
    no_env = c.post("/databases/redis", json={"server_uuid": server, "project_uuid": project})
    assert no_env.status_code == 422
    assert "environment_name or environment_uuid" in no_env.json()["message"]
    bad_env = c.post(
        "/databases/redis", json={"server_uuid": server, "project_uuid": project, "environment_name": "qa"}
    )
    assert bad_env.status_code == 422
    assert c.post(
        "/databases/redis", json={"server_uuid": "nope", "project_uuid": project, "environment_uuid": env}
    ).json() == {"message": "Server not found."}
    assert c.post(
        "/databases/redis", json={"server_uuid": server, "project_uuid": "nope", "environment_uuid": env}
    ).json() == {"message": "Project not found."}


def test_database_lifecycle_and_internal_url(api) -> None:
    _fake, c = api
    project, env, server = project_with_env(c)
    body = {
        "server_uuid": server,
        "project_uuid": project,
        "environment_name": "production",
        "environment_uuid": env,
        "name": "pg",
        "image": "postgres:15-alpine",
        "postgres_user": "app",
        "postgres_password": "pw-" + "x" * 30,
        "postgres_db": "app",
        "is_public": False,
    }
    created = c.post("/databases/postgresql", json=body)
    assert created.status_code == 201
    uuid = created.json()["uuid"]
    assert created.json()["internal_db_url"] == f"postgres://app:{body['postgres_password']}@{uuid}:5432/app"
    db = c.get(f"/databases/{uuid}").json()
    assert (db["status"], db["image"], db["is_public"], db["name"]) == (
        "exited",
        "postgres:15-alpine",
        False,
        "pg",
    )
    assert c.post(f"/databases/{uuid}/start").json()["message"] == "Database starting request queued."
    statuses = [c.get(f"/databases/{uuid}").json()["status"] for _ in range(3)]
    assert statuses == ["starting", "running:healthy", "running:healthy"]
    again = c.post(f"/databases/{uuid}/start")
    assert again.status_code == 400 and again.json()["message"] == "Database is already running."
    listed = c.get(f"/projects/{project}/production").json()["postgresqls"]
    assert [d["uuid"] for d in listed] == [uuid]
    assert [d["uuid"] for d in c.get("/databases").json()] == [uuid]
    assert c.get("/databases/nope").json() == {"message": "Database not found."}
    # instant_deploy starts a new database at once
    redis = c.post("/databases/redis", json={**{k: body[k] for k in list(body)[:4]}, "instant_deploy": True})
    assert c.get(f"/databases/{redis.json()['uuid']}").json()["status"] == "starting"
    assert redis.json()["internal_db_url"].startswith("redis://default:")


def test_sensitive_fields_need_read_sensitive(api) -> None:
    fake, c = api
    project, env, server = project_with_env(c)
    uuid = c.post(
        "/databases/postgresql",
        json={
            "server_uuid": server,
            "project_uuid": project,
            "environment_uuid": env,
            "postgres_password": "s" * 32,
        },
    ).json()["uuid"]
    reader = "4|" + "r" * 40
    fake.abilities[reader] = frozenset({"read"})
    fake.tokens.add(reader)
    plain = httpx.Client(
        base_url=BASE, transport=fake.transport(), headers={"Authorization": f"Bearer {reader}"}
    )
    db = plain.get(f"/databases/{uuid}").json()
    assert "postgres_password" not in db and "internal_db_url" not in db
    assert "s" * 32 not in plain.get(f"/projects/{project}/production").text
    assert c.get(f"/databases/{uuid}").json()["postgres_password"] == "s" * 32


def test_rate_limit_answers_429_with_retry_after() -> None:
    clock = Clock()
    _, c = make(rate_limit_per_minute=3, clock=clock)
    assert [c.get("/version").status_code for _ in range(3)] == [200, 200, 200]
    limited = c.get("/version")
    assert limited.status_code == 429
    assert limited.json()["message"] == "Rate limit exceeded. Please try again later."
    assert int(limited.headers["Retry-After"]) == 60
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    clock.now += 61
    assert c.get("/version").status_code == 200


def test_legacy_coolify_has_no_environments_endpoint() -> None:
    _, c = make(legacy=True, version="4.0.0-beta.380")
    uuid = c.post("/projects", json={"name": "demo"}).json()["uuid"]
    listed = c.get(f"/projects/{uuid}/environments")
    assert listed.status_code == 404  # the path falls through to /projects/{uuid}/{environment_name_or_uuid}
    assert listed.json() == {"message": "Environment not found."}
    assert c.post(f"/projects/{uuid}/environments", json={"name": "staging"}).status_code == 405
    assert [e["name"] for e in c.get(f"/projects/{uuid}").json()["environments"]] == ["production"]


def test_injected_faults_and_the_request_log(api) -> None:
    fake, c = api
    fake.inject("/api/v1/projects", 500, method="POST", when="after")
    lost = c.post("/projects", json={"name": "demo"})
    assert lost.status_code == 500
    assert [p["name"] for p in c.get("/projects").json()] == ["demo"]  # created although the answer was lost
    assert [(e.method, e.status) for e in fake.requests(path="/api/v1/projects")] == [
        ("POST", 500),
        ("GET", 200),
    ]


def test_validate_rules() -> None:
    validate({"a": "x", "b": True, "n": "12"}, {"a": "string|required", "b": "boolean", "n": "numeric"})
    with pytest.raises(HTTPError) as info:
        validate({"a": "x" * 300}, {"a": "string|max:255"})
    assert info.value.extra["errors"] == {"a": ["The a field must not be greater than 255 characters."]}


def test_state_file_keeps_everything_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    _first, c = make(state_file=path)
    project, env, server = project_with_env(c)
    db = c.post(
        "/databases/redis", json={"server_uuid": server, "project_uuid": project, "environment_uuid": env,
                                  "instant_deploy": True},
    ).json()["uuid"]  # fmt: skip
    c.get(f"/databases/{db}")
    c.get(f"/databases/{db}")
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    _second, c2 = make(state_file=path)
    assert [p["uuid"] for p in c2.get("/projects").json()] == [project]
    assert c2.get("/servers").json()[0]["uuid"] == server
    assert c2.get(f"/databases/{db}").json()["status"] == "running:healthy"
    assert json.loads(path.read_text())["settings"]["is_api_enabled"] is True


def test_runs_as_a_process_with_the_token_from_the_environment(tmp_path: Path) -> None:
    env = {"COOLIFY_API_TOKEN": TOKEN, "COOLIFY_STANDIN_VERSION": "4.0.0-beta.999"}
    with StandInProcess("helpers.rehearse.coolify", ["--api", "enabled"], env=env, cwd=PROJECT_ROOT) as proc:
        http = httpx.Client(base_url=proc.url + "/api/v1", headers={"Authorization": f"Bearer {TOKEN}"})
        assert http.get("/version").text == "4.0.0-beta.999"
        assert http.post("/projects", json={"name": "p"}).status_code == 201
        with proc.control() as control:
            logged = control.get("/requests").json()["requests"]
        assert [(e["method"], e["path"]) for e in logged][-1] == ("POST", "/api/v1/projects")
