"""The DigitalOcean stand-in follows the API's contract (spec subset in shared/refs/digitalocean)."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from helpers.rehearse.digitalocean import DigitalOceanStandIn, RateLimits, ssh_fingerprint

TOKEN = "dop_v1_" + "ab" * 32
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHBhbGUgYmx1ZSBkb3QgMDEyMzQ1Njc4OWFiY2RlZmdoaWo= test@example"
DROPLET = {"name": "web-1", "region": "fra1", "size": "s-2vcpu-4gb", "image": "ubuntu-24-04-x64"}


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def make(**kwargs: Any) -> tuple[DigitalOceanStandIn, httpx.Client]:
    fake = DigitalOceanStandIn(kwargs.pop("tokens", [TOKEN]), **kwargs)
    client = httpx.Client(base_url="https://api.digitalocean.com", transport=fake.transport(), headers=AUTH)
    return fake, client


@pytest.fixture
def api() -> tuple[DigitalOceanStandIn, httpx.Client]:
    return make()


def test_account_has_the_fields_the_spec_requires(api) -> None:
    _, c = api
    account = c.get("/v2/account").json()["account"]
    required = {
        "droplet_limit",
        "floating_ip_limit",
        "email",
        "uuid",
        "email_verified",
        "status",
        "status_message",
    }
    assert required <= set(account)
    assert account["status"] == "active"


def test_auth_errors_have_the_vendor_body_and_rate_limit_headers() -> None:
    fake, _ = make()
    anonymous = httpx.Client(base_url="https://api.digitalocean.com", transport=fake.transport())
    response = anonymous.get("/v2/account")
    assert response.status_code == 401
    body = response.json()
    assert (body["id"], body["message"]) == ("unauthorized", "Unable to authenticate you.")
    assert body["request_id"]
    assert {"ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"} <= set(response.headers)


def test_custom_scopes_are_enforced() -> None:
    _, c = make(tokens={TOKEN: ["account:read", "droplet:read"]})
    assert c.get("/v2/account").status_code == 200
    assert c.get("/v2/droplets").status_code == 200
    denied = c.post("/v2/droplets", json=DROPLET)
    assert denied.status_code == 403
    assert denied.json()["id"] == "forbidden"
    assert c.get("/v2/firewalls").status_code == 403
    _, legacy = make(tokens={TOKEN: ["read"]})
    assert legacy.get("/v2/firewalls").status_code == 200
    assert legacy.post("/v2/tags", json={"name": "x"}).status_code == 403


def test_not_found_body(api) -> None:
    _, c = api
    for path in ("/v2/droplets/12345", "/v2/account/keys/12345", "/v2/firewalls/nope", "/v2/tags/nope",
                 "/v2/actions/1"):  # fmt: skip
        response = c.get(path)
        assert response.status_code == 404, path
        assert response.json()["id"] == "not_found"


def test_droplet_goes_from_new_to_active_with_a_public_ipv4(api) -> None:
    _, c = api
    created = c.post("/v2/droplets", json={**DROPLET, "tags": ["coolify"], "monitoring": True})
    assert created.status_code == 202
    droplet = created.json()["droplet"]
    assert (droplet["status"], droplet["networks"]["v4"]) == ("new", [])
    action = created.json()["links"]["actions"][0]
    assert action["rel"] == "create"
    assert action["href"] == f"https://api.digitalocean.com/v2/actions/{action['id']}"
    assert c.get(action["href"]).json()["action"]["status"] == "in-progress"
    seen = [c.get(f"/v2/droplets/{droplet['id']}").json()["droplet"]["status"] for _ in range(3)]
    assert seen == ["new", "new", "active"]  # active_after_polls=2: two reads still see "new"
    active = c.get(f"/v2/droplets/{droplet['id']}").json()["droplet"]
    public = [n for n in active["networks"]["v4"] if n["type"] == "public"]
    assert public and public[0]["ip_address"].startswith("203.0.113.")
    assert "monitoring" in active["features"]
    assert active["tags"] == ["coolify"]
    assert c.get(action["href"]).json()["action"]["status"] == "completed"
    assert c.get("/v2/tags/coolify").status_code == 200  # created with the droplet


def test_droplet_activation_can_wait_for_time_as_well() -> None:
    clock = Clock()
    _, c = make(active_after_polls=0, active_after_seconds=30, clock=clock)
    droplet_id = c.post("/v2/droplets", json=DROPLET).json()["droplet"]["id"]
    assert c.get(f"/v2/droplets/{droplet_id}").json()["droplet"]["status"] == "new"
    clock.now += 31
    assert c.get(f"/v2/droplets/{droplet_id}").json()["droplet"]["status"] == "active"


def test_droplet_names_are_not_unique_and_filters_work(api) -> None:
    _, c = api
    c.post("/v2/droplets", json={**DROPLET, "tags": ["a"]})
    c.post("/v2/droplets", json=DROPLET)  # DigitalOcean accepts a second droplet with the same name
    c.post("/v2/droplets", json={**DROPLET, "name": "other", "tags": ["a"]})
    assert len(c.get("/v2/droplets", params={"name": "WEB-1"}).json()["droplets"]) == 2  # case-insensitive
    assert [d["name"] for d in c.get("/v2/droplets", params={"tag_name": "a"}).json()["droplets"]] == [
        "web-1",
        "other",
    ]
    assert c.get("/v2/droplets", params={"tag_name": "a", "name": "x"}).status_code == 400
    assert c.get("/v2/droplets").json()["meta"]["total"] == 3


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": None}, "name"),
        ({"name": "bad name!"}, "name"),
        ({"size": None}, "size"),
        ({"size": "s-99vcpu"}, "size"),
        ({"size": "s-1vcpu-3gb"}, "size"),  # no longer available
        ({"region": "xyz9"}, "region"),
        ({"region": "nyc2"}, "region"),  # not available for new droplets
        ({"size": "gd-2vcpu-8gb"}, "size"),  # not offered in fra1
        ({"image": "windows-95"}, "image"),
        ({"image": None}, "image"),
        ({"monitoring": "yes"}, "monitoring"),
        ({"backups": 1}, "backups"),
        ({"ssh_keys": [12345]}, "ssh_keys"),
        ({"tags": ["has space"]}, "tags"),
        ({"tags": "coolify"}, "tags"),
    ],
)
def test_invalid_droplet_requests_answer_422_naming_the_field(
    api, change: dict[str, Any], field: str
) -> None:
    fake, c = api
    body = {k: v for k, v in {**DROPLET, **change}.items() if v is not None}
    response = c.post("/v2/droplets", json=body)
    assert response.status_code == 422
    assert response.json()["id"] == "unprocessable_entity"
    assert field.split("_")[0] in response.json()["message"].lower()
    assert fake.droplets == {}


def test_unparseable_body_is_400(api) -> None:
    _, c = api
    response = c.post("/v2/droplets", content=b"{not json", headers={"Content-Type": "application/json"})
    assert (response.status_code, response.json()["id"]) == (400, "bad_request")


def test_droplet_limit(api) -> None:
    _, c = make(droplet_limit=1)
    assert c.post("/v2/droplets", json=DROPLET).status_code == 202
    over = c.post("/v2/droplets", json={**DROPLET, "name": "web-2"})
    assert over.status_code == 422
    assert "droplet limit" in over.json()["message"]


def test_ssh_keys_fingerprint_duplicates_and_lookup(api, tmp_path: Path) -> None:
    _, c = api
    key_file = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key_file)], check=True)
    public = (tmp_path / "id_ed25519.pub").read_text().strip()
    md5 = subprocess.run(["ssh-keygen", "-l", "-E", "md5", "-f", str(key_file) + ".pub"], capture_output=True,
                         text=True, check=True).stdout.split()[1].removeprefix("MD5:")  # fmt: skip
    created = c.post("/v2/account/keys", json={"name": "laptop", "public_key": public})
    assert created.status_code == 201
    key = created.json()["ssh_key"]
    assert key["fingerprint"] == md5 == ssh_fingerprint(public)  # the same fingerprint ssh-keygen shows
    assert c.get(f"/v2/account/keys/{md5}").json()["ssh_key"]["id"] == key["id"]
    assert c.get(f"/v2/account/keys/{key['id']}").json()["ssh_key"]["name"] == "laptop"
    again = c.post("/v2/account/keys", json={"name": "again", "public_key": public})
    assert (again.status_code, again.json()["message"]) == (422, "SSH Key is already in use on your account")
    for bad in ({"name": "x"}, {"public_key": public}, {"name": "x", "public_key": "ssh-ed25519 notbase64!"},
                {"name": "x", "public_key": "-----BEGIN OPENSSH PRIVATE KEY-----"}):  # fmt: skip
        assert c.post("/v2/account/keys", json=bad).status_code == 422
    assert (
        c.put(f"/v2/account/keys/{key['id']}", json={"name": "renamed"}).json()["ssh_key"]["name"]
        == "renamed"
    )
    assert c.delete(f"/v2/account/keys/{md5}").status_code == 204
    assert c.get(f"/v2/account/keys/{md5}").status_code == 404


def test_pagination_links_and_meta(api) -> None:
    _, c = api
    first = c.get("/v2/images", params={"type": "distribution", "per_page": 5}).json()
    assert len(first["images"]) == 5
    assert first["meta"]["total"] == 11
    pages = first["links"]["pages"]
    assert set(pages) == {"next", "last"}
    assert "type=distribution" in pages["next"] and "page=2" in pages["next"]
    last = c.get(pages["last"]).json()
    assert len(last["images"]) == 1
    assert set(last["links"]["pages"]) == {"first", "prev"}
    middle = c.get(pages["next"]).json()["links"]["pages"]
    assert set(middle) == {"first", "prev", "next", "last"}
    assert c.get("/v2/regions").json()["links"] == {}  # one page: no page links
    assert len(c.get("/v2/sizes", params={"per_page": 500}).json()["sizes"]) == 22  # capped at 200
    assert c.get("/v2/sizes", params={"page": 0}).status_code == 400


def test_rate_limit_headers_and_429_with_retry_after() -> None:
    clock = Clock()
    _, c = make(rate_limits=RateLimits(per_hour=100, per_minute=3), clock=clock)
    remaining = [int(c.get("/v2/regions").headers["ratelimit-remaining"]) for _ in range(3)]
    assert remaining == [99, 98, 97]
    limited = c.get("/v2/regions")
    assert limited.status_code == 429
    assert limited.json()["id"] == "too_many_requests"
    assert limited.headers["ratelimit-remaining"] == "0"
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert int(limited.headers["ratelimit-reset"]) == int(clock.now + 3600)
    clock.now += int(limited.headers["retry-after"])
    assert c.get("/v2/regions").status_code == 200


def test_listing_ssh_keys_has_its_own_limit() -> None:
    _, c = make()
    assert [c.get("/v2/account/keys").status_code for _ in range(10)] == [200] * 10
    eleventh = c.get("/v2/account/keys")
    assert eleventh.status_code == 429
    assert "retry-after" in eleventh.headers
    assert c.get("/v2/account").status_code == 200  # other endpoints are not affected


FIREWALL = {
    "name": "coolify-fw",
    "inbound_rules": [{"protocol": "tcp", "ports": "22", "sources": {"addresses": ["0.0.0.0/0", "::/0"]}}],
    "outbound_rules": [{"protocol": "tcp", "ports": "all", "destinations": {"addresses": ["0.0.0.0/0"]}}],
    "tags": ["coolify"],
}


def test_firewall_goes_from_waiting_to_succeeded_and_back_on_update(api) -> None:
    _, c = api
    assert c.post("/v2/firewalls", json=FIREWALL).status_code == 400  # the tag does not exist yet
    c.post("/v2/tags", json={"name": "coolify"})
    droplet_id = c.post("/v2/droplets", json={**DROPLET, "tags": ["coolify"]}).json()["droplet"]["id"]
    created = c.post("/v2/firewalls", json=FIREWALL)
    assert created.status_code == 202
    fw = created.json()["firewall"]
    assert fw["status"] == "waiting"
    assert fw["pending_changes"] == [{"droplet_id": droplet_id, "removing": False, "status": "waiting"}]
    statuses = [c.get(f"/v2/firewalls/{fw['id']}").json()["firewall"]["status"] for _ in range(3)]
    assert statuses == ["waiting", "succeeded", "succeeded"]
    updated = c.put(
        f"/v2/firewalls/{fw['id']}", json={**FIREWALL, "inbound_rules": FIREWALL["inbound_rules"] * 2}
    )
    assert updated.status_code == 200
    assert updated.json()["firewall"]["status"] == "waiting"
    assert c.post(f"/v2/firewalls/{fw['id']}/tags", json={"tags": ["nope"]}).status_code == 400
    assert (
        c.request("DELETE", f"/v2/firewalls/{fw['id']}/tags", json={"tags": ["coolify"]}).status_code == 204
    )
    assert c.get(f"/v2/firewalls/{fw['id']}").json()["firewall"]["tags"] == []
    assert c.delete(f"/v2/firewalls/{fw['id']}").status_code == 204
    assert c.get("/v2/firewalls").json()["firewalls"] == []


@pytest.mark.parametrize(
    ("change", "word"),
    [
        ({"name": ""}, "name"),
        ({"inbound_rules": [], "outbound_rules": []}, "inbound_rules"),
        (
            {
                "inbound_rules": [
                    {"protocol": "tcp", "ports": "99999", "sources": {"addresses": ["0.0.0.0/0"]}}
                ]
            },
            "ports",
        ),
        (
            {"inbound_rules": [{"protocol": "gre", "ports": "1", "sources": {"addresses": ["0.0.0.0/0"]}}]},
            "protocol",
        ),
        ({"inbound_rules": [{"protocol": "tcp", "ports": "22"}]}, "sources"),
        (
            {"inbound_rules": [{"protocol": "tcp", "ports": "22", "sources": {"addresses": ["nowhere"]}}]},
            "addresses",
        ),
        ({"droplet_ids": [1]}, "droplet_ids"),
    ],
)
def test_invalid_firewalls_answer_400_naming_the_field(api, change: dict[str, Any], word: str) -> None:
    _, c = api
    c.post("/v2/tags", json={"name": "coolify"})
    response = c.post("/v2/firewalls", json={**FIREWALL, **change})
    assert response.status_code == 400
    assert word in response.json()["message"]


def test_tags_are_case_stable(api) -> None:
    _, c = api
    assert c.post("/v2/tags", json={"name": "PROD"}).json()["tag"]["name"] == "PROD"
    assert c.post("/v2/tags", json={"name": "prod"}).json()["tag"]["name"] == "PROD"
    assert c.get("/v2/tags/prod").status_code == 404  # URLs need the canonical capitalisation
    assert c.get("/v2/tags/PROD").status_code == 200
    bad = c.post("/v2/tags", json={"name": "no spaces"})
    assert bad.status_code == 400 and "invalid characters" in bad.json()["error"]


class RecordingBackend:
    """A droplet backend that records calls and can be released or made to fail."""

    def __init__(self, fail: bool = False) -> None:
        self.started: list[tuple[str, list[str]]] = []
        self.stopped: list[str] = []
        self.release = threading.Event()
        self.fail = fail

    def start(self, name: str, public_keys: list[str]) -> tuple[str, int]:
        self.started.append((name, public_keys))
        self.release.wait(10)
        if self.fail:
            raise RuntimeError("no image")
        return "127.0.0.1", 2222

    def stop(self, name: str) -> None:
        self.stopped.append(name)


def test_a_droplet_backend_provides_the_public_address_and_ssh_port() -> None:
    backend = RecordingBackend()
    fake, c = make(droplet_backend=backend, active_after_polls=0)
    key = c.post("/v2/account/keys", json={"name": "k", "public_key": ED25519}).json()["ssh_key"]
    droplet_id = c.post("/v2/droplets", json={**DROPLET, "ssh_keys": [key["fingerprint"]]}).json()["droplet"][
        "id"
    ]
    assert c.get(f"/v2/droplets/{droplet_id}").json()["droplet"]["status"] == "new"  # the backend is starting
    backend.release.set()
    fake.wait_for_backends()
    droplet = c.get(f"/v2/droplets/{droplet_id}").json()["droplet"]
    assert droplet["status"] == "active"
    assert droplet["networks"]["v4"][0] == {
        **droplet["networks"]["v4"][0],
        "ip_address": "127.0.0.1",
        "type": "public",
    }
    assert droplet["x_rehearsal"] == {"ssh_host": "127.0.0.1", "ssh_port": 2222}
    assert backend.started == [("web-1", [ED25519])]  # the registered keys go to the droplet
    assert c.delete(f"/v2/droplets/{droplet_id}").status_code == 204
    assert backend.stopped == ["web-1"]


def test_a_plain_function_backend_and_stopping_at_close() -> None:
    calls: list[str] = []
    fake = DigitalOceanStandIn(
        [TOKEN], droplet_backend=lambda name: calls.append(name) or ("127.0.0.1", 2200)
    )
    with fake:
        httpx.post(f"{fake.url}/v2/droplets", json=DROPLET, headers=AUTH)
        fake.wait_for_backends()
        assert calls == ["web-1"]
    assert fake.droplets == {}  # close() destroyed what the backend started


def test_a_failing_backend_errors_the_create_action() -> None:
    backend = RecordingBackend(fail=True)
    backend.release.set()
    fake, c = make(droplet_backend=backend, active_after_polls=0)
    created = c.post("/v2/droplets", json=DROPLET).json()
    fake.wait_for_backends()
    droplet_id = created["droplet"]["id"]
    assert c.get(f"/v2/droplets/{droplet_id}").json()["droplet"]["status"] == "new"
    action_id = created["links"]["actions"][0]["id"]
    assert c.get(f"/v2/droplets/{droplet_id}/actions/{action_id}").json()["action"]["status"] == "errored"


def test_container_backend_says_clearly_when_the_module_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    from helpers.rehearse import digitalocean as module

    real = importlib.import_module

    def fake_import(name: str, *args: Any) -> Any:
        if name == "helpers.rehearse.droplet":
            raise ModuleNotFoundError(name)
        return real(name, *args)

    monkeypatch.setattr(module.importlib, "import_module", fake_import)
    with pytest.raises(RuntimeError, match="--droplet-backend none"):
        module.container_backend()


def test_deleting_a_droplet_while_its_container_starts_does_not_leak_it() -> None:
    backend = RecordingBackend()
    fake, c = make(droplet_backend=backend)
    droplet_id = c.post("/v2/droplets", json=DROPLET).json()["droplet"]["id"]
    assert c.delete(f"/v2/droplets/{droplet_id}").status_code == 204
    assert backend.stopped == []  # still starting: nothing to stop yet
    backend.release.set()
    fake.wait_for_backends()
    assert backend.stopped == ["web-1"]  # stopped as soon as it had started
