"""Tasks 2.14 to 2.17 against the Coolify stand-in (simulated runtime): apps, env vars, deployments."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from helpers.app import workflow
from helpers.clients import coolify, errors
from helpers.cloud import coolify_apps, coolify_setup
from helpers.core import secrets, state
from helpers.core.checks import VerificationFailed, verify
from helpers.core.paths import PROJECT_ROOT
from helpers.rehearse.coolify import CoolifyStandIn

TOKEN = "3|" + "k9" * 20
READ_ONLY = "4|" + "r7" * 20
NO_DEPLOY = "5|" + "w5" * 20
BASE = "http://203.0.113.7:8000/api/v1"
REPO = "Acme/Demo-App"
IMAGES = {"repository": REPO, **workflow.image_names(REPO), "deploy_tag": "main"}  # as task 2.9 records


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RUNBOOK_SECRETS_FILE", str(tmp_path / "secrets.env"))
    monkeypatch.setenv("RUNBOOK_STATE_DIR", str(tmp_path / "state"))
    for name in (
        "COOLIFY_API_TOKEN",
        "APP_SECRET",
        "PROD_DATABASE_URL",
        "PROD_REDIS_URL",
        "RUNBOOK_FINGERPRINT_SECRET",
        "GHCR_TOKEN",
    ):
        monkeypatch.delenv(name, raising=False)
    secrets.put("PROD_DATABASE_URL", "postgres://app:" + "p" * 30 + "@dbuuid:5432/app")
    secrets.put("PROD_REDIS_URL", "redis://default:" + "q" * 30 + "@redisuuid:6379/0")
    return tmp_path


@pytest.fixture
def world() -> dict[str, Any]:
    fake = CoolifyStandIn(
        {TOKEN: ("read", "write", "deploy"), READ_ONLY: ("read",), NO_DEPLOY: ("read", "write")}
    )
    client = coolify.Client(TOKEN, BASE, transport=fake.transport(), sleep=lambda s: None)
    project = client.create_project("demo")
    target = coolify_setup.resolve_target(client, "localhost", client.project(project["uuid"]), "production")
    return {"fake": fake, "client": client, "project": project["uuid"], "target": target}


def mutations(fake: CoolifyStandIn) -> list[tuple[str, str]]:
    return [(e.method, e.path) for e in fake.mutating_requests()]


def raw(fake: CoolifyStandIn, token: str = TOKEN) -> httpx.Client:
    return httpx.Client(
        base_url=BASE, transport=fake.transport(), headers={"Authorization": f"Bearer {token}"}
    )


def apps(world: dict[str, Any], dry_run: bool = False) -> dict[str, Any]:
    out = {}
    specs = (
        coolify_apps.web_spec("demo-web", images=IMAGES),
        coolify_apps.worker_spec("demo-worker", IMAGES),
    )
    for spec in specs:
        step, app = coolify_apps.ensure_app(
            world["client"], world["project"], "production", world["target"], spec, dry_run
        )
        out[spec.role] = (step, app, spec)
    return out


# --------------------------------------------------------------------------- the stand-in's contract


def test_create_app_201_then_422_and_409(world: dict[str, Any]) -> None:
    http = raw(world["fake"])
    body = {
        **world["target"].body(),
        "docker_registry_image_name": "ghcr.io/acme/demo-web",
        "domains": "https://a.example.com",
    }
    created = http.post("/applications/dockerimage", json=body)
    assert created.status_code == 201 and set(created.json()) == {"uuid"}
    missing = http.post("/applications/dockerimage", json={"name": "x", "bogus": 1})
    assert missing.status_code == 422
    complaints = missing.json()["errors"]
    assert {
        "project_uuid",
        "server_uuid",
        "environment_name",
        "environment_uuid",
        "docker_registry_image_name",
    } <= set(complaints)
    assert complaints["bogus"] == ["This field is not allowed."]
    duplicate = http.post("/applications/dockerimage", json=body)
    assert duplicate.status_code == 409 and "Domain conflicts" in duplicate.json()["message"]
    with pytest.raises(errors.InvalidRequest, match="docker_registry_image_name"):
        world["client"].create_dockerimage_app(world["target"].body())
    with pytest.raises(errors.Conflict):
        world["client"].create_dockerimage_app(body)


def test_envs_hide_values_without_read_sensitive_and_bulk_upserts(world: dict[str, Any]) -> None:
    app = world["client"].create_dockerimage_app(
        {**world["target"].body(), "docker_registry_image_name": "ghcr.io/acme/demo-worker"}
    )
    http = raw(world["fake"])
    first = http.patch(
        f"/applications/{app['uuid']}/envs/bulk",
        json={"data": [{"key": "A", "value": "1"}, {"key": "B", "value": "2"}]},
    )
    assert first.status_code == 201 and [e["key"] for e in first.json()] == ["A", "B"]
    again = http.patch(f"/applications/{app['uuid']}/envs/bulk", json={"data": [{"key": "A", "value": "3"}]})
    assert again.status_code == 201
    listed = http.get(f"/applications/{app['uuid']}/envs").json()
    assert [e["key"] for e in listed] == ["A", "B"] and all(
        "value" not in e and "real_value" not in e for e in listed
    )
    stored = {e["key"]: e["value"] for e in world["fake"].envs.values()}
    assert stored == {"A": "3", "B": "2"}
    # Coolify's rules (ApplicationsController::create_bulk_envs): value nullable, unknown item fields dropped,
    # the key checked; items are saved one by one, so those before an invalid one stay saved
    lax = http.patch(f"/applications/{app['uuid']}/envs/bulk", json={"data": [{"key": " C ", "note": "x"}]})
    assert lax.status_code == 201 and lax.json()[0]["key"] == "C" and "note" not in lax.json()[0]
    assert {e["key"]: e["value"] for e in world["fake"].envs.values()}["C"] is None
    bad = http.patch(
        f"/applications/{app['uuid']}/envs/bulk",
        json={"data": [{"key": "D", "value": "4"}, {"key": "bad-key"}]},
    )
    assert bad.status_code == 422 and list(bad.json()["errors"]) == ["key"]
    assert "D" in {e["key"] for e in world["fake"].envs.values()}
    assert http.patch(f"/applications/{app['uuid']}/envs/bulk", json={"data": []}).status_code == 400
    assert http.post(f"/applications/{app['uuid']}/envs", json={"key": "A", "value": "x"}).status_code == 409
    logged = [e.body for e in world["fake"].requests("PATCH")]
    assert "1" not in str(logged) and "[REDACTED]" in str(logged)  # values never in the request log


def test_deploy_webhook_needs_deploy_permission_and_moves_through_states(world: dict[str, Any]) -> None:
    app = world["client"].create_dockerimage_app(
        {**world["target"].body(), "docker_registry_image_name": "ghcr.io/acme/demo-web"}
    )
    refused = raw(world["fake"], NO_DEPLOY).post("/deploy", params={"uuid": app["uuid"]})
    assert refused.status_code == 403 and refused.json()["message"] == "Missing required permissions: deploy"
    assert raw(world["fake"], "nope").post("/deploy", params={"uuid": app["uuid"]}).status_code == 401
    assert raw(world["fake"]).post("/deploy").status_code == 400
    # Coolify v4.2.0 made the webhook POST-only: a GET deploys nothing and says so
    old_style = raw(world["fake"]).get("/deploy", params={"uuid": app["uuid"]})
    assert (old_style.status_code, old_style.headers["allow"]) == (405, "POST")
    assert world["fake"].deployments == {}
    queued = world["client"].deploy([app["uuid"]])
    dep_uuid = queued[0]["deployment_uuid"]
    seen = [world["client"].deployment(dep_uuid)["status"] for _ in range(3)]
    assert seen == ["in_progress", "finished", "finished"]
    assert world["fake"].deployments[dep_uuid]["is_webhook"] is True
    assert world["client"].application(app["uuid"])["status"] == "running:unknown"  # no health check
    assert [d["deployment_uuid"] for d in world["client"].app_deployments(app["uuid"])] == [dep_uuid]


# --------------------------------------------------------------------------- the steps


def test_2_14_2_15_create_once_then_ok_dry_run_sends_nothing(world: dict[str, Any]) -> None:
    fake = world["fake"]
    before = len(mutations(fake))
    planned = apps(world, dry_run=True)
    assert {s.status for s, _, _ in planned.values()} == {"would change"}
    assert len(mutations(fake)) == before
    first = apps(world)
    assert {s.status for s, _, _ in first.values()} == {"changed"}
    web = fake.applications[first["web"][1]["uuid"]]
    assert (
        web["docker_registry_image_name"] == "ghcr.io/acme/demo-app-web"
        and web["ports_mappings"] == "3000:3000"
    )
    assert web["health_check_enabled"] is True and web["health_check_path"] == "/api/health"
    worker = fake.applications[first["worker"][1]["uuid"]]
    assert worker["health_check_enabled"] is False and not worker["fqdn"] and not worker["ports_mappings"]
    assert world["fake"].deployments == {}  # nothing deployed before the env vars exist
    before = len(mutations(fake))
    second = apps(world)
    assert {s.status for s, _, _ in second.values()} == {"ok"} and len(mutations(fake)) == before
    with verify("apps") as check:
        for _, _, spec in second.values():
            coolify_apps.check_app(check, world["client"], world["project"], "production", spec)


def test_check_app_fails_on_a_drifted_app(world: dict[str, Any]) -> None:
    first = apps(world)
    world["fake"].applications[first["web"][1]["uuid"]]["ports_exposes"] = "8080"
    with pytest.raises(VerificationFailed), verify("apps") as check:
        coolify_apps.check_app(check, world["client"], world["project"], "production", first["web"][2])


def test_2_16_envs_bulk_once_fingerprints_then_no_patch(world: dict[str, Any]) -> None:
    made = apps(world)
    assert coolify_apps.ensure_app_secret().status == "changed"
    assert coolify_apps.ensure_app_secret().status == "ok"
    fake, client = world["fake"], world["client"]
    for role in ("web", "worker"):
        wanted = coolify_apps.wanted_env(role, "http://203.0.113.7:3000")
        assert (
            coolify_apps.ensure_envs(client, made[role][1], role, wanted, dry_run=True)[0].status
            == "would change"
        )
    assert [m for m in mutations(fake) if "envs" in m[1]] == []
    results = {}
    for role in ("web", "worker"):
        wanted = coolify_apps.wanted_env(role, "http://203.0.113.7:3000")
        results[role] = coolify_apps.ensure_envs(client, made[role][1], role, wanted)
    assert [r.status for rs in results.values() for r in rs] == ["changed", "changed"]
    web_keys = {e["key"] for e in fake.envs.values() if e["application_uuid"] == made["web"][1]["uuid"]}
    assert {
        "DATABASE_URL",
        "REDIS_URL",
        "SESSION_SECRET",
        "NODE_ENV",
        "PORT",
        "QUEUE_NAME",
        "NEXT_PUBLIC_APP_URL",
    } <= web_keys
    worker_keys = {e["key"] for e in fake.envs.values() if e["application_uuid"] == made["worker"][1]["uuid"]}
    assert "PORT" not in worker_keys and "NEXT_PUBLIC_APP_URL" not in worker_keys
    recorded = (tmp_state := state.load("phase2"))["coolify_envs"]
    assert secrets.get("APP_SECRET") not in str(tmp_state) and len(recorded) == 2
    before = len(mutations(fake))
    for role in ("web", "worker"):
        wanted = coolify_apps.wanted_env(role, "http://203.0.113.7:3000")
        assert [r.status for r in coolify_apps.ensure_envs(client, made[role][1], role, wanted)] == ["ok"]
        with verify(role) as check:
            coolify_apps.check_envs(check, client, made[role][1]["uuid"], role, wanted)
    assert len(mutations(fake)) == before  # second run: no PATCH
    # a changed value (new public URL) is noticed through its fingerprint and only that key is sent
    wanted = coolify_apps.wanted_env("web", "https://app.example.com")
    with pytest.raises(VerificationFailed), verify("web") as check:
        coolify_apps.check_envs(check, client, made["web"][1]["uuid"], "web", wanted)
    step = coolify_apps.ensure_envs(client, made["web"][1], "web", wanted)[0]
    assert step.status == "changed" and step.detail.endswith("NEXT_PUBLIC_APP_URL")
    assert secrets.get("PROD_DATABASE_URL") not in step.diff


def test_2_17_deploys_through_the_webhook_once_then_ok(world: dict[str, Any]) -> None:
    made = apps(world)
    client, fake = world["client"], world["fake"]
    coolify_apps.ensure_app_secret()
    for role in ("web", "worker"):
        coolify_apps.ensure_envs(client, made[role][1], role, coolify_apps.wanted_env(role, "http://x:3000"))
    lines: list[str] = []
    dry, _ = coolify_apps.ensure_deployed(client, "web", made["web"][1], dry_run=True)
    assert dry.status == "would change" and "deploy?uuid=" in dry.diff and fake.deployments == {}
    for role in ("web", "worker"):
        step, dep = coolify_apps.ensure_deployed(
            client, role, made[role][1], progress=lines.append, interval=0
        )
        assert step.status == "changed" and dep["status"] == "finished", step
    assert any("in_progress" in line for line in lines) and any("finished" in line for line in lines)
    assert [d["is_webhook"] for d in fake.deployments.values()] == [True, True]
    for role in ("web", "worker"):
        step, _ = coolify_apps.ensure_deployed(client, role, made[role][1], interval=0)
        assert step.status == "ok", step
        with verify(role) as check:
            coolify_apps.check_deployed(check, client, role, made[role][1]["uuid"])
    again, _ = coolify_apps.ensure_deployed(client, "web", made["web"][1], redeploy=True, interval=0)
    assert again.status == "changed" and "redeploy=True" in again.detail
    assert len(fake.deployments) == 3
    # The workflow's webhook call after a push makes a newer deployment: still current, no redeploy.
    queued = client.deploy([made["web"][1]["uuid"]])[0]
    coolify_apps.wait_deployment(client, queued["deployment_uuid"], progress=lines.append, interval=0)
    after_push, _ = coolify_apps.ensure_deployed(client, "web", made["web"][1], interval=0)
    assert after_push.status == "ok" and len(fake.deployments) == 4, after_push
    url = coolify_apps.webhook_url(client, made["web"][1]["uuid"])
    assert url == f"http://203.0.113.7:8000/api/v1/deploy?uuid={made['web'][1]['uuid']}&force=false"


def deployed_once(world: dict[str, Any]) -> dict[str, Any]:
    """Apps with their variables, as 2.14 to 2.16 leave them (nothing deployed)."""
    made = apps(world)
    coolify_apps.ensure_app_secret()
    for role in ("web", "worker"):
        wanted = coolify_apps.wanted_env(role, "http://x:3000")
        coolify_apps.ensure_envs(world["client"], made[role][1], role, wanted)
    return made


def deploy_requests(fake: CoolifyStandIn) -> list[Any]:
    return fake.requests("POST", "/api/v1/deploy")


def test_2_17_rerun_adopts_the_push_deployment_in_flight_and_queues_none(world: dict[str, Any]) -> None:
    """Issue 12: a re-run of 2.17 while the push's webhook deployment is in progress waits for that one."""
    client, fake = world["client"], world["fake"]
    made = deployed_once(world)
    for role in ("web", "worker"):
        step, _ = coolify_apps.ensure_deployed(client, role, made[role][1], interval=0)
        assert step.status == "changed", step
    fake.clear_log()
    # The workflow's deploy job calls both webhooks after the push (as the GitHub stand-in's run does).
    pushed = raw(fake).post(
        "/deploy", params={"uuid": f"{made['web'][1]['uuid']},{made['worker'][1]['uuid']}"}
    )
    in_flight = {d["resource_uuid"]: d["deployment_uuid"] for d in pushed.json()["deployments"]}
    fake.deploy_after_polls = 4  # reads of a deployment (simulated runtime) before it finishes
    dry, _ = coolify_apps.ensure_deployed(client, "web", made["web"][1], dry_run=True, interval=0)
    assert dry.status == "would change" and "would wait for it" in dry.detail, dry
    lines: list[str] = []
    for role in ("web", "worker"):
        step, dep = coolify_apps.ensure_deployed(
            client, role, made[role][1], progress=lines.append, interval=0
        )
        assert step.status == "ok" and "already under way" in step.detail, step
        assert dep is not None and dep["deployment_uuid"] == in_flight[made[role][1]["uuid"]]
        assert dep["status"] == "finished"
    assert any("waiting for it instead of queuing another" in line for line in lines)
    # Read from the stand-in's request log: exactly one deploy request since the push, the webhook's.
    sent = deploy_requests(fake)
    assert len(sent) == 1 and sent[0].query["uuid"] == [
        f"{made['web'][1]['uuid']},{made['worker'][1]['uuid']}"
    ]
    assert len(fake.deployments) == 4
    again, _ = coolify_apps.ensure_deployed(client, "web", made["web"][1], interval=0)
    assert again.status == "ok" and len(deploy_requests(fake)) == 1


def test_2_17_adopts_a_deployment_whose_answer_was_lost_only_when_it_started_after_the_variables() -> None:
    now = [1_700_000_000.0]
    fake = CoolifyStandIn({TOKEN: ("read", "write", "deploy")}, clock=lambda: now[0])
    client = coolify.Client(TOKEN, BASE, transport=fake.transport(), sleep=lambda s: None)
    project = client.create_project("demo")
    target = coolify_setup.resolve_target(client, "localhost", client.project(project["uuid"]), "production")
    made = deployed_once({"client": client, "project": project["uuid"], "target": target})
    web = made["web"][1]
    # 2.17's webhook call reached Coolify, its answer did not: Coolify queued a deployment, 2.17 failed.
    now[0] += 5
    fake.inject("/api/v1/deploy", 500, method="POST", when="after")
    with pytest.raises(errors.ServerError):
        coolify_apps.ensure_deployed(client, "web", web, interval=0)
    assert len(deploy_requests(fake)) == 1 and len(fake.deployments) == 1
    lost = next(iter(fake.deployments))
    while client.deployment(lost)["status"] != "finished":  # it finished meanwhile
        pass
    # The re-run takes that deployment as its own: no second deploy request.
    step, dep = coolify_apps.ensure_deployed(client, "web", web, interval=0)
    assert step.status == "ok" and "started after the variables were set" in step.detail, step
    assert len(deploy_requests(fake)) == 1 and dep is not None and dep["status"] == "finished"
    # A deployment from before the variables last changed does not count: it ran other values.
    wanted = coolify_apps.wanted_env("worker", "http://x:3000")
    worker = made["worker"][1]
    raw(fake).post("/deploy", params={"uuid": worker["uuid"]})
    now[0] += 5
    raw(fake).patch(
        f"/applications/{worker['uuid']}/envs/bulk", json={"data": [{"key": "EXTRA", "value": "1"}]}
    )
    client.deployment(next(iter(fake.deployments)))  # the simulated runtime moves on when read
    step, _ = coolify_apps.ensure_deployed(client, "worker", worker, interval=0)
    assert step.status == "changed" and len(deploy_requests(fake)) == 3, step
    assert set(wanted) <= {e["key"] for e in client.envs(worker["uuid"])}


def test_the_apps_use_the_images_task_2_9_recorded() -> None:
    with pytest.raises(LookupError, match=r"run task 2\.9 first"):
        coolify_apps.web_spec("demo-web")
    state.update("phase2", images={**IMAGES, "deploy_tag": "release"})
    web, worker = coolify_apps.web_spec("demo-web"), coolify_apps.worker_spec("demo-worker")
    assert (web.image, web.tag) == ("ghcr.io/acme/demo-app-web", "release")
    assert (worker.image, worker.tag) == ("ghcr.io/acme/demo-app-worker", "release")
    state.update("phase2", images={"repository": REPO, "web": IMAGES["web"]})
    with pytest.raises(LookupError, match=r"lacks worker, deploy_tag: run task 2\.9 again"):
        coolify_apps.worker_spec("demo-worker")


def test_registry_login_is_skipped_for_public_images_and_needs_the_token_for_private_ones() -> None:
    public = coolify_apps.registry_login(False, "deploy", images=IMAGES)
    assert public.status == "skipped" and "public" in public.detail
    private = coolify_apps.ensure_registry_login(None, "acme", private=True)
    assert private.status == "failed" and "GHCR_TOKEN is not set" in private.detail


def test_bad_input_says_what_to_do() -> None:
    with pytest.raises(ValueError, match=r"host name only"):
        coolify_apps.check_domain("https://app.example.com")
    with pytest.raises(LookupError, match=r"2\.16"):
        secrets_missing = coolify_apps.wanted_env("web", "http://x:3000")
        assert secrets_missing  # APP_SECRET is not set yet


def test_no_app_stand_in_image_is_left() -> None:
    """The rehearsal runs the app's own images, built and pushed as its workflow does: no stand-in."""
    assert not (PROJECT_ROOT / "scripts" / "standins" / "app").exists()
    assert not (PROJECT_ROOT / "tests" / "fixtures" / "sample-app" / "stub").exists()
