"""The Coolify client against the stand-in's in-process transport: auth, errors, retries, versions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from helpers.clients import coolify, errors
from helpers.clients.http import retry_delay
from helpers.cloud import coolify_setup
from helpers.rehearse.coolify import CoolifyStandIn
from tests.conftest import free_port

TOKEN = "3|" + "q7" * 20
BASE = "http://203.0.113.7:8000/api/v1"
SECRET_NAMES = ("COOLIFY_API_TOKEN", "COOLIFY_API_URL")


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RUNBOOK_SECRETS_FILE", str(tmp_path / "secrets.env"))
    monkeypatch.setenv("RUNBOOK_STATE_DIR", str(tmp_path / "state"))
    for name in SECRET_NAMES:
        monkeypatch.delenv(name, raising=False)
    return tmp_path


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def make(tokens: Any = None, **kwargs: Any) -> tuple[CoolifyStandIn, coolify.Client, Sleeps]:
    fake = CoolifyStandIn({TOKEN: None} if tokens is None else tokens, **kwargs)
    sleeps = Sleeps()
    return fake, coolify.Client(TOKEN, BASE, transport=fake.transport(), sleep=sleeps), sleeps


def test_base_url_comes_from_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    from helpers.core import state

    with pytest.raises(LookupError, match="COOLIFY_API_URL"):
        coolify.api_url()
    state.update("phase2", droplet={"ipv4": "203.0.113.9", "ssh_port": 22})
    assert coolify.api_url() == "http://203.0.113.9:8000/api/v1"
    state.update(
        "phase2", coolify={"api_url": "http://127.0.0.1:4711/api/v1", "url": "http://127.0.0.1:4711"}
    )
    assert coolify.api_url() == "http://127.0.0.1:4711/api/v1"
    monkeypatch.setenv("COOLIFY_API_URL", "https://coolify_setup.example.com/api/v1/")
    assert coolify.api_url() == "https://coolify_setup.example.com/api/v1"
    assert coolify.dashboard_of(coolify.api_url()) == "https://coolify_setup.example.com"


def test_bad_configuration_is_refused_clearly() -> None:
    with pytest.raises(ValueError, match="must end in /api/v1"):
        coolify.Client(TOKEN, "http://203.0.113.7:8000")
    with pytest.raises(ValueError, match="quotes/spaces"):
        coolify.Client(f'"{TOKEN}"', BASE)
    with pytest.raises(ValueError, match="not an http"):
        coolify.Client(TOKEN, "ftp://x/api/v1")


def test_connect_reads_the_token_from_the_secrets_file(isolated: Path) -> None:
    from helpers.core import secrets

    with pytest.raises(secrets.MissingSecret, match="Keys & Tokens"):
        coolify.connect(BASE)
    secrets.put("COOLIFY_API_TOKEN", TOKEN)
    client = coolify.connect(BASE, transport=CoolifyStandIn({TOKEN: None}).transport())
    assert client.version() == "4.0.0-beta.420"
    assert TOKEN not in repr(client)


def test_wrong_token_is_a_clear_401_without_the_token() -> None:
    fake = CoolifyStandIn({TOKEN: None})
    client = coolify.Client("1|wrongwrongwrong", BASE, transport=fake.transport())
    with pytest.raises(errors.Unauthorized) as info:
        client.servers()
    text = str(info.value)
    assert "401" in text and "Unauthenticated." in text and "Keys & Tokens" in text
    assert "wrongwrong" not in text
    assert client.health() == "OK"  # health needs no token


def test_api_disabled_and_missing_permission_say_what_to_do() -> None:
    _, client, _ = make(api_enabled=False)
    with pytest.raises(coolify.ApiDisabled, match="Settings → Advanced → API Access"):
        client.projects()
    _, reader, _ = make({TOKEN: ["read"]})
    with pytest.raises(errors.Forbidden, match="lacks the 'write' permission"):
        reader.create_project("demo")


def test_422_names_each_field() -> None:
    _, client, _ = make()
    with pytest.raises(errors.InvalidRequest) as info:
        client.create_database("postgresql", {"name": "pg", "is_public": "no"})
    err = info.value
    assert err.status == 422
    assert err.errors["server_uuid"] == ["This field is required."]
    assert err.errors["is_public"] == ["The is public field must be true or false."]
    assert "server_uuid: the uuid of a server" in str(err)


def test_404_409_bodies_become_errors() -> None:
    _, client, _ = make()
    with pytest.raises(errors.NotFound, match="Project not found"):
        client.project("nope")
    uuid = client.create_project("demo")["uuid"]
    with pytest.raises(errors.Conflict, match="already exists"):
        client.create_environment(uuid, "production")


def test_429_is_retried_after_retry_after_then_succeeds() -> None:
    fake, client, sleeps = make()
    fake.inject("/api/v1/projects", 429, method="POST", times=2, headers={"Retry-After": "3"})
    created = client.create_project("demo")
    assert created["uuid"] and sleeps == [3.0, 3.0]
    assert [p["name"] for p in client.projects()] == ["demo"]  # a 429 was not processed: one project
    fake.inject("/api/v1/projects", 429, times=9, headers={"Retry-After": "1"})
    with pytest.raises(errors.RateLimited, match="rate limit"):
        client.projects()


def test_the_stand_ins_own_rate_limit_is_honoured() -> None:
    class Clock:
        now = 1_800_000_000.0

        def __call__(self) -> float:
            return self.now

    clock = Clock()
    fake = CoolifyStandIn({TOKEN: None}, rate_limit_per_minute=2, clock=clock)

    def sleep(seconds: float) -> None:
        clock.now += seconds

    client = coolify.Client(TOKEN, BASE, transport=fake.transport(), sleep=sleep)
    assert [client.version() for _ in range(5)] == ["4.0.0-beta.420"] * 5
    assert clock.now >= 1_800_000_000.0 + 120  # it waited out the window twice


def test_5xx_get_is_retried_but_a_post_is_not() -> None:
    fake, client, sleeps = make()
    fake.inject("/api/v1/projects", 502, method="GET")
    assert client.projects() == [] and sleeps == [1.0]
    fake.inject("/api/v1/projects", 500, method="POST", when="after")
    with pytest.raises(errors.ServerError, match="looks before it creates"):
        client.create_project("demo")
    assert (
        len(coolify_setup.find_project(client, "demo")) == 1
    )  # it was created; the caller looks before retrying


def test_nothing_listening_is_unreachable_with_a_hint() -> None:
    client = coolify.Client(TOKEN, f"http://127.0.0.1:{free_port()}/api/v1", max_retries=0)
    with pytest.raises(errors.Unreachable, match="port 8000 open"):
        client.version()


def test_an_older_coolify_is_a_clear_version_error() -> None:
    _, client, _ = make(legacy=True, version="4.0.0-beta.380")
    uuid = client.create_project("demo")["uuid"]
    with pytest.raises(coolify.UnsupportedVersion) as info:
        client.environments(uuid)
    assert "Coolify 4.0.0-beta.380 has no" in str(info.value) and "update Coolify" in str(info.value)
    assert [e["name"] for e in coolify_setup.list_environments(client, uuid)] == [
        "production"
    ]  # fallback read
    with pytest.raises(coolify.UnsupportedVersion, match="create the environment 'staging'"):
        client.create_environment(uuid, "staging")


def test_version_parsing() -> None:
    assert coolify.parse_version("v4.0.0-beta.420") == (4, 0, 0, 420)
    assert coolify.parse_version("4.0.0-beta.380") < coolify.parse_version("4.0.0-beta.420")


def test_retry_delay_reads_seconds_and_dates() -> None:
    response = httpx.Response(429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:05 GMT"})
    assert retry_delay(response, 0, now=lambda: 1445412480.0) == 5.0
    assert retry_delay(httpx.Response(429), 3) == 8.0


def test_wait_healthy_shows_each_status() -> None:
    _fake, client, sleeps = make()
    project = client.create_project("demo")["uuid"]
    env = client.environment(project, "production")
    server = client.servers()[0]["uuid"]
    target = coolify_setup.Target(server, project, "production", env["uuid"])
    uuid = client.create_database("redis", {**target.body(), "instant_deploy": True})["uuid"]
    seen: list[str] = []
    db = coolify_setup.wait_healthy(client, uuid, interval=0.5, progress=seen.append, sleep=sleeps)
    assert db["status"] == "running:healthy"
    assert [line.rsplit(": ", 1)[1] for line in seen] == ["starting", "running:healthy"]
    stopped = client.create_database("redis", target.body())["uuid"]  # never started

    class Clock:
        t = 0.0

        def __call__(self) -> float:
            self.t += 40
            return self.t

    with pytest.raises(errors.ApiError, match=r"still exited \d+s after its start"):
        coolify_setup.wait_healthy(client, stopped, progress=seen.append, sleep=sleeps, clock=Clock())


def test_the_token_never_reaches_the_request_log() -> None:
    fake, client, _ = make()
    client.create_project("demo", "d")
    logged = json.dumps([e.__dict__ for e in fake.requests()])
    assert TOKEN not in logged
