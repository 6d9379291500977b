"""The DigitalOcean client: retries, pagination, and errors that say what to do next."""

from __future__ import annotations

import email.utils
from typing import Any

import httpx
import pytest

from helpers.clients import digitalocean as doapi
from helpers.clients import errors
from helpers.clients.http import retry_delay
from helpers.cloud import droplet as do
from helpers.rehearse.digitalocean import DigitalOceanStandIn, RateLimits

TOKEN = "dop_v1_" + "cd" * 32
BASE = "https://api.digitalocean.com"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make(
    clock: Clock, tokens: Any = None, token: str = TOKEN, **kwargs: Any
) -> tuple[DigitalOceanStandIn, doapi.Client]:
    fake = DigitalOceanStandIn(tokens or [TOKEN], clock=clock, **kwargs)
    return fake, doapi.Client(token, BASE, transport=fake.transport(), sleep=clock.sleep)


def test_429_with_retry_after_is_retried_then_succeeds(clock: Clock) -> None:
    fake, client = make(clock)
    fake.inject("/v2/account", 429, times=2, headers={"retry-after": "7"})
    assert client.account()["status"] == "active"
    assert clock.slept == [7.0, 7.0]
    assert [e.status for e in fake.requests(path="/v2/account")] == [429, 429, 200]


def test_the_real_burst_limit_is_waited_out(clock: Clock) -> None:
    fake, client = make(clock, rate_limits=RateLimits(per_minute=2))
    for _ in range(3):
        client.regions()
    assert len(clock.slept) == 1 and 1 <= clock.slept[0] <= 60  # waited what retry-after said
    assert [e.status for e in fake.requests()] == [200, 200, 429, 200]
    assert client.rate_limit is not None and client.rate_limit.limit == 5000


def test_a_429_that_outlasts_the_retries_explains_the_limit(clock: Clock) -> None:
    fake, client = make(clock)
    fake.inject("/v2/account", 429, times=10, headers={"retry-after": "1"})
    with pytest.raises(errors.RateLimited, match="250/minute") as err:
        client.account()
    assert len(fake.requests()) == client.max_retries + 1
    assert err.value.status == 429


def test_a_retry_after_longer_than_max_wait_is_not_slept(clock: Clock) -> None:
    fake, client = make(clock)
    client.max_wait = 60
    fake.inject("/v2/account", 429, headers={"retry-after": "3600"})
    with pytest.raises(errors.RateLimited):
        client.account()
    assert clock.slept == []


def test_retry_delay_reads_seconds_an_http_date_or_backs_off() -> None:
    def response(value: str | None) -> httpx.Response:
        return httpx.Response(429, headers={"retry-after": value} if value else {})

    assert retry_delay(response("12"), 0) == 12
    date = email.utils.formatdate(1_800_000_030, usegmt=True)
    assert retry_delay(response(date), 0, now=lambda: 1_800_000_000) == pytest.approx(30)
    assert [retry_delay(response(None), n) for n in (0, 1, 2, 10)] == [1, 2, 4, 30]


def test_5xx_is_retried_for_get_but_never_for_post(clock: Clock) -> None:
    fake, client = make(clock)
    fake.inject("/v2/regions", 503, times=2)
    assert client.regions()
    fake.inject("/v2/tags", 500, method="POST")
    with pytest.raises(errors.ServerError, match="looks before it creates") as err:
        client.create_tag("x")
    assert len(fake.requests(method="POST")) == 1  # not retried: it may have been processed
    assert err.value.request_id  # DigitalOcean's request id, for support


def test_401_says_how_to_make_a_least_scope_token_and_never_shows_the_token(clock: Clock) -> None:
    wrong = "dop_v1_" + "ee" * 32
    _, client = make(clock, token=wrong)
    with pytest.raises(errors.Unauthorized) as err:
        client.account()
    message = str(err.value)
    assert "401 unauthorized" in message and "Unable to authenticate you." in message
    for needed in (
        "Custom Scopes",
        "droplet:create",
        "ssh_key:create",
        "firewall:update",
        "DIGITALOCEAN_TOKEN",
    ):
        assert needed in message
    assert wrong not in message and TOKEN not in message
    assert wrong not in repr(client)


def test_403_names_the_missing_scope(clock: Clock) -> None:
    _, client = make(clock, tokens={TOKEN: ["account:read"]})
    with pytest.raises(errors.Forbidden, match="'droplet:read' scope"):
        client.droplets()
    with pytest.raises(errors.Forbidden, match="'firewall:update' scope"):
        client.update_firewall("abc", {"name": "x"})


@pytest.mark.parametrize(
    ("body", "field", "hint"),
    [
        ({"name": "a", "size": "s-99", "image": "ubuntu-24-04-x64"}, "size", "GET /v2/sizes"),
        ({"name": "a", "size": "s-1vcpu-1gb", "image": "nope", "region": "fra1"}, "image", "distribution"),
        (
            {"name": "a", "size": "s-1vcpu-1gb", "image": "debian-12-x64", "region": "xx1"},
            "region",
            "regions",
        ),
        ({"size": "s-1vcpu-1gb", "image": "debian-12-x64"}, "name", "letters"),
        (
            {"name": "a", "size": "s-1vcpu-1gb", "image": "debian-12-x64", "ssh_keys": [1]},
            "ssh_keys",
            "register",
        ),
        (
            {"name": "a", "size": "s-1vcpu-1gb", "image": "debian-12-x64", "monitoring": "on"},
            "monitoring",
            "'on'",
        ),
    ],
)
def test_422_names_the_field_and_the_fix(clock: Clock, body: dict[str, Any], field: str, hint: str) -> None:
    _, client = make(clock)
    with pytest.raises(errors.InvalidRequest) as err:
        client.create_droplet(body)
    assert err.value.status == 422
    assert err.value.field == field
    assert f"fix the `{field}` field" in str(err.value)
    assert hint in str(err.value)


def test_400_from_firewalls_names_the_field(clock: Clock) -> None:
    _, client = make(clock)
    body = {
        "name": "fw",
        "inbound_rules": [{"protocol": "tcp", "ports": "x", "sources": {"addresses": ["0.0.0.0/0"]}}],
    }
    with pytest.raises(errors.InvalidRequest) as err:
        client.create_firewall(body)
    assert (err.value.status, err.value.field) == (400, "inbound_rules")


def test_404_raises_not_found_and_lookups_answer_none(clock: Clock) -> None:
    _, client = make(clock)
    with pytest.raises(errors.NotFound):
        client.droplet(999)
    assert client.ssh_key("00:11:22") is None
    assert client.tag("absent") is None


def test_paginate_follows_next_links(clock: Clock) -> None:
    fake, client = make(clock)
    images = list(client.paginate("/v2/images", "images", per_page=5))
    assert len(images) == 20
    assert len({i["id"] for i in images}) == 20
    assert len(fake.requests(path="/v2/images")) == 4
    assert len(client.images("distribution")) == 11
    assert len(client.sizes()) == 22  # one request of 200 per page by default


def test_paginate_stays_on_the_configured_host() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        if request.url.params.get("page") == "2":
            return httpx.Response(200, json={"things": [2], "links": {}})
        return httpx.Response(
            200, json={"things": [1], "links": {"pages": {"next": "https://evil.test/v2/x?page=2"}}}
        )

    client = doapi.Client(TOKEN, BASE, transport=httpx.MockTransport(handler))
    assert list(client.paginate("/v2/x", "things")) == [1, 2]
    assert seen[1] == f"{BASE}/v2/x?page=2"  # the token was not sent to another host


def test_network_errors_retry_gets_and_explain_posts(clock: Clock) -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        raise httpx.ConnectError("connection refused", request=request)

    client = doapi.Client(
        TOKEN, "http://127.0.0.1:9", transport=httpx.MockTransport(handler), sleep=clock.sleep
    )
    with pytest.raises(errors.Unreachable, match="DIGITALOCEAN_API_URL"):
        client.account()
    assert calls == ["GET"] * 5
    calls.clear()
    with pytest.raises(errors.Unreachable, match="look before trying again"):
        client.create_tag("x")
    assert calls == ["POST"]


def test_configuration_guards() -> None:
    with pytest.raises(ValueError, match="plain http"):
        doapi.Client(TOKEN, "http://api.example.com")
    with pytest.raises(ValueError, match="quotes/spaces"):
        doapi.Client(f" {TOKEN}\n", BASE)
    with pytest.raises(ValueError, match="quotes/spaces"):
        doapi.Client(f'"{TOKEN}"', BASE)
    with pytest.raises(ValueError, match="not an http"):
        doapi.Client(TOKEN, "ftp://x")
    assert doapi.Client(TOKEN, "http://127.0.0.1:8089/").base_url == "http://127.0.0.1:8089"
    assert doapi.Client(TOKEN, "http://localhost:8089").base_url == "http://localhost:8089"


def test_base_url_and_token_come_from_configuration(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("RUNBOOK_SECRETS_FILE", str(tmp_path / "none.env"))
    monkeypatch.delenv("DIGITALOCEAN_API_URL", raising=False)
    monkeypatch.delenv("DIGITALOCEAN_TOKEN", raising=False)
    assert doapi.api_url() == "https://api.digitalocean.com"
    assert doapi.token_source() == "nowhere"
    with pytest.raises(LookupError, match="DIGITALOCEAN_TOKEN is not set"):
        doapi.connect()
    monkeypatch.setenv("DIGITALOCEAN_API_URL", "http://127.0.0.1:8089")
    monkeypatch.setenv("DIGITALOCEAN_TOKEN", TOKEN)
    client = doapi.connect()
    assert client.base_url == "http://127.0.0.1:8089"
    assert doapi.token_source() == "environment variable"


def test_required_scope() -> None:
    assert doapi.required_scope("POST", "/v2/droplets") == "droplet:create"
    assert doapi.required_scope("GET", "/v2/account/keys/ab:cd") == "ssh_key:read"
    assert doapi.required_scope("GET", "/v2/account") == "account:read"
    assert doapi.required_scope("POST", "/v2/firewalls/x/tags") == "firewall:update"
    assert doapi.required_scope("DELETE", "/v2/droplets/1") == "droplet:delete"
    assert doapi.required_scope("GET", "/v2/images?type=distribution") == "image:read"
    assert set(doapi.TOKEN_SCOPES) >= {doapi.required_scope("GET", p) for _, p in do.READ_PROBES}


def test_the_client_against_a_real_local_server(clock: Clock) -> None:
    with DigitalOceanStandIn([TOKEN]) as fake:
        client = doapi.Client(TOKEN, fake.url, sleep=clock.sleep)
        fake.inject("/v2/sizes", 429, headers={"retry-after": "2"})
        assert len(client.sizes()) == 22
        assert clock.slept == [2.0]
        client.close()
