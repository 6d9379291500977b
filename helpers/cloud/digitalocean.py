"""DigitalOcean: the API client and the idempotent steps of tasks 2.1 (token) and 2.2 (droplet).

The client is plain httpx: the base URL comes from configuration
(``DIGITALOCEAN_API_URL``, default ``https://api.digitalocean.com``) and the
transport can be swapped, so rehearsal against the local stand-in
(:mod:`helpers.rehearse.digitalocean`) is configuration, not a code path.

What the client does for every call:

* retries a 429 after the ``retry-after`` the API sends (any method: a 429 was not processed);
* retries 5xx and network errors only for idempotent methods (GET, PUT, DELETE): a failed
  ``POST`` may have been processed, so the *caller* looks before trying again
  (:func:`create_droplet_once` does this for droplets);
* follows ``links.pages.next`` (:meth:`Client.paginate`), only on the configured host;
* turns ``{id, message, request_id}`` error bodies into exceptions that say what to do next:
  401 how to make a token with the least scope, 403 which scope is missing, 400/422 which field.

Why httpx rather than the official ``pydo``: pydo (83 MB with azure-core) refuses plain-http
endpoints unless every call says so, returns 404 bodies as dicts instead of raising, and retries
on its own (10 times, including POST); here every retry is a decision we can test.
"""

from __future__ import annotations

import base64
import contextlib
import difflib
import hashlib
import json
import os
import re
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import httpx

from helpers.clients.http import IDEMPOTENT as IDEMPOTENT  # re-exported: this module's public names
from helpers.clients.http import LOOPBACK as LOOPBACK
from helpers.clients.http import JsonApiClient, error_body, is_http_url, token_in_clear
from helpers.clients.http import retry_delay as retry_delay
from helpers.core import secrets, steps
from helpers.core.settings import env
from helpers.core.steps import StepResult

DEFAULT_API_URL = "https://api.digitalocean.com"
TOKEN_NAME = "DIGITALOCEAN_TOKEN"
TOKEN_URL = "https://cloud.digitalocean.com/account/api/tokens"

# The custom scopes tasks 2.1 and 2.2 need (DigitalOcean adds required read scopes itself:
# droplet:create needs droplet:read, regions:read, sizes:read, image:read, actions:read).
TOKEN_SCOPES: tuple[str, ...] = (
    "account:read",
    "droplet:create",
    "droplet:read",
    "droplet:delete",
    "ssh_key:create",
    "ssh_key:read",
    "firewall:create",
    "firewall:read",
    "firewall:update",
    "tag:create",
    "tag:read",
    "regions:read",
    "sizes:read",
    "image:read",
    "actions:read",
)

# Why each scope is needed (shown by task 2.1).
SCOPE_REASONS: dict[str, str] = {
    "account:read": "2.1 checks the account: status, email verified, droplet limit",
    "droplet:create": "2.2 creates the droplet",
    "droplet:read": "2.2 looks for an existing droplet first and waits until it is active",
    "droplet:delete": "to destroy the droplet when the project ends (no task deletes it by itself)",
    "ssh_key:create": "2.2 registers your public SSH key once",
    "ssh_key:read": "2.2 finds the key by fingerprint instead of adding it twice",
    "firewall:create": "2.2 creates the cloud firewall (22, 80, 443, 8000)",
    "firewall:read": "2.2 finds the firewall by name and compares its rules",
    "firewall:update": "2.2 corrects the rules (e.g. closes 8000 once a domain is set)",
    "tag:create": "2.2 creates the tag that identifies the droplet and attaches the firewall",
    "tag:read": "2.2 finds droplets and the firewall's attachment by tag",
    "regions:read": "2.2 validates the region against the API's list",
    "sizes:read": "2.2 validates the size (and its price) against the API's list",
    "image:read": "2.2 validates the image against the API's list",
    "actions:read": "2.2 follows the droplet's create action",
}

# What a read-only probe of each read scope calls (task 2.1 verifies the token with these).
READ_PROBES: tuple[tuple[str, str], ...] = (
    ("account:read", "/v2/account"),
    ("droplet:read", "/v2/droplets"),
    ("ssh_key:read", "/v2/account/keys"),
    ("firewall:read", "/v2/firewalls"),
    ("tag:read", "/v2/tags"),
    ("regions:read", "/v2/regions"),
    ("sizes:read", "/v2/sizes"),
    ("image:read", "/v2/images"),
)


# Coolify's documented minimum server: 2 vCPU, 2 GB RAM, 30 GB disk.
COOLIFY_MIN_VCPUS, COOLIFY_MIN_MEMORY_MB, COOLIFY_MIN_DISK_GB = 2, 2048, 30


def api_url() -> str:
    return env.digitalocean_api_url or DEFAULT_API_URL


def token_help() -> str:
    scopes = ", ".join(TOKEN_SCOPES)
    return (
        f"create a personal access token at {TOKEN_URL} (API → Tokens → Generate New Token): "
        f"choose 'Custom Scopes' and tick only {scopes}; set an expiry; copy it once and store it as "
        f"{TOKEN_NAME}=... in {secrets.secrets_file()} (git-ignored) or export it (task 2.1 shows how)"
    )


# --------------------------------------------------------------------------- errors


class DigitalOceanError(RuntimeError):
    """The API answered an error (or could not be reached). ``hint`` is the next step."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        error_id: str = "",
        request_id: str = "",
        method: str = "",
        path: str = "",
        hint: str = "",
        field: str | None = None,
    ):
        self.status = status
        self.error_id = error_id
        self.api_message = message
        self.request_id = request_id
        self.method = method
        self.path = path
        self.hint = hint
        self.field = field
        head = f"DigitalOcean {method} {path}".strip()
        if status:
            head += f" answered {status}" + (f" {error_id}" if error_id else "")
        text = f"{head}: {message}"
        if request_id:
            text += f" (request id {request_id}: quote it to DigitalOcean support)"
        if hint:
            text += f"\nnext step: {hint}"
        super().__init__(text)


class Unauthorized(DigitalOceanError):
    """401: the token is missing, mistyped, expired or revoked."""


class Forbidden(DigitalOceanError):
    """403: the token lacks the scope this call needs."""


class NotFound(DigitalOceanError):
    """404."""


class InvalidRequest(DigitalOceanError):
    """400 / 422: the request had an invalid field (``field`` names it when it can be told)."""


class RateLimited(DigitalOceanError):
    """429 that outlasted the retries."""


class ServerError(DigitalOceanError):
    """5xx: DigitalOcean's side; a POST may or may not have been processed."""


class Unreachable(DigitalOceanError):
    """No HTTP answer at all (DNS, refused connection, timeout)."""


FIELD_HINTS = {
    "region": "choose an available region slug from GET /v2/regions (task 2.2 lists them), e.g. fra1",
    "size": "choose a size slug that GET /v2/sizes lists as available in your region, e.g. s-2vcpu-4gb",
    "image": "choose an image slug from GET /v2/images?type=distribution, e.g. ubuntu-24-04-x64",
    "ssh_keys": "register the key first (POST /v2/account/keys) or pass the fingerprint of a registered key",
    "public_key": "point at the public key (*.pub: 'ssh-ed25519 AAAA... comment'), not the private key",
    "name": "use letters, digits, '.' and '-' (droplets) for the name",
    "tags": "tag names may hold letters, digits, ':', '-' and '_' only",
}


def required_scope(method: str, path: str) -> str:
    """The custom scope a call needs, read off its path (``POST /v2/droplets`` → ``droplet:create``)."""
    parts = [p for p in urllib.parse.urlsplit(path).path.split("/") if p][1:]  # drop "v2"
    resource = {
        "account": "account",
        "droplets": "droplet",
        "firewalls": "firewall",
        "tags": "tag",
        "regions": "regions",
        "sizes": "sizes",
        "images": "image",
        "actions": "actions",
    }
    name = resource.get(parts[0], parts[0]) if parts else "account"
    if parts[:2] == ["account", "keys"]:
        name = "ssh_key"
    verb = {"GET": "read", "HEAD": "read", "POST": "create", "PUT": "update", "PATCH": "update"}.get(
        method, "delete"
    )
    if name == "firewall" and len(parts) > 2:  # adding/removing droplets, tags or rules updates the firewall
        verb = "update"
    return f"{name}:{verb}"


def _error_from(response: httpx.Response, method: str, path: str, sent: Any) -> DigitalOceanError:
    body = error_body(response)
    error_id = str(body.get("id") or body.get("error") or "")
    message = str(body.get("message") or body.get("error") or response.text[:300] or response.reason_phrase)
    request_id = str(body.get("request_id") or response.headers.get("x-request-id") or "")
    status = response.status_code
    common = {
        "status": status,
        "error_id": error_id,
        "request_id": request_id,
        "method": method,
        "path": path,
    }
    if status == 401:
        return Unauthorized(message, hint=f"the token in {TOKEN_NAME} was refused; {token_help()}", **common)
    if status == 403:
        scope = required_scope(method, path)
        hint = (
            f"the token lacks the {scope!r} scope: DigitalOcean cannot add scopes to an existing token, so "
            f"generate a new one with the scopes task 2.1 lists ({TOKEN_URL}) and replace {TOKEN_NAME}"
        )
        return Forbidden(message, hint=hint, **common)
    if status == 404:
        return NotFound(
            message, hint="the resource does not exist (any more); check the id or name", **common
        )
    if status in (400, 422):
        bad = _field_in(message, sent)
        if bad:
            value = sent.get(bad) if isinstance(sent, dict) else None
            hint = f"fix the `{bad}` field" + (f" (sent {value!r})" if value is not None else "")
            hint += f": {FIELD_HINTS[bad]}" if bad in FIELD_HINTS else ""
        else:
            hint = "compare the request body with the API reference; the message says what was refused"
        return InvalidRequest(message, hint=hint, field=bad, **common)
    if status == 429:
        return RateLimited(
            message,
            hint="the API rate limit (250/minute, 5,000/hour per token) is exhausted; wait for the "
            f"ratelimit-reset time ({response.headers.get('ratelimit-reset', '?')}) and re-run",
            **common,
        )
    if status >= 500:
        hint = "DigitalOcean had a problem; re-run the task in a few minutes (it looks before it creates)"
        return ServerError(message, hint=hint, **common)
    return DigitalOceanError(message, hint="unexpected answer; see the message", **common)


def _field_in(message: str, sent: Any) -> str | None:
    """The request field the message talks about (longest key first, word boundaries)."""
    candidates = list(sent) if isinstance(sent, dict) else []
    candidates += [k for k in FIELD_HINTS if k not in candidates]
    for key in sorted(candidates, key=len, reverse=True):
        if re.search(rf"(?<![A-Za-z_]){re.escape(key)}(?![A-Za-z_])", message, re.IGNORECASE):
            return key
    return None


# --------------------------------------------------------------------------- the client


@dataclass
class RateLimit:
    limit: int
    remaining: int
    reset: int


class Client(JsonApiClient):
    """A small DigitalOcean API v2 client. ``transport`` swaps the network (tests, stand-ins).

    The retry rules and the token/URL checks are :class:`helpers.clients.http.JsonApiClient`'s; here: the
    URL checks (plain http only to this machine), the error translation and the rate-limit headers.
    """

    token_name = TOKEN_NAME
    extra_headers: ClassVar[Mapping[str, str]] = {"Content-Type": "application/json"}
    rate_limit: RateLimit | None = None  # the ratelimit-* headers of the last answer

    def token_help(self) -> str:
        return token_help()

    def default_base_url(self) -> str:
        return api_url()

    def check_base_url(self, split: urllib.parse.SplitResult) -> None:
        if not is_http_url(split):
            raise ValueError(f"DIGITALOCEAN_API_URL {self.base_url!r} is not an http(s) URL")
        if token_in_clear(split):
            raise ValueError(
                f"refusing to send the DigitalOcean token over plain http to {split.hostname}; "
                "use https (plain http is only for a local stand-in on 127.0.0.1)"
            )

    def _error(self, response: httpx.Response, method: str, path: str, sent: Any) -> DigitalOceanError:
        return _error_from(response, method, path, sent)

    def _network_error(self, message: str, *, method: str, path: str, hint: str) -> Unreachable:
        return Unreachable(message, method=method, path=path, hint=hint)

    def _unreachable_hint(self) -> str:
        return f"check the network and DIGITALOCEAN_API_URL ({self.base_url})"

    def _observe(self, response: httpx.Response) -> None:
        h = response.headers
        with contextlib.suppress(KeyError, ValueError):
            self.rate_limit = RateLimit(
                int(h["ratelimit-limit"]), int(h["ratelimit-remaining"]), int(h["ratelimit-reset"])
            )

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return self.request("GET", path, params=params).json()

    def post(self, path: str, body: Any) -> dict[str, Any]:
        return self._json("POST", path, json=body)

    def put(self, path: str, body: Any) -> dict[str, Any]:
        return self._json("PUT", path, json=body)

    def delete(self, path: str, params: Mapping[str, Any] | None = None) -> None:
        self.request("DELETE", path, params=params)

    def paginate(
        self, path: str, key: str, params: Mapping[str, Any] | None = None, per_page: int = 200
    ) -> Iterator[dict[str, Any]]:
        """Every item of a collection, following ``links.pages.next``."""
        query: dict[str, Any] | None = {**(params or {}), "per_page": per_page}
        url: str | None = path
        seen: set[str] = set()
        while url:
            data = self.get(url, query)
            yield from data.get(key) or []
            pages = (data.get("links") or {}).get("pages") or {}
            url = pages.get("next")
            if url:
                url = self._relative(url)
                if url in seen:
                    break
                seen.add(url)
            query = None  # the next link carries the query

    # ---------------------------------------------------------------- resources

    def account(self) -> dict[str, Any]:
        return self.get("/v2/account")["account"]

    def regions(self) -> list[dict[str, Any]]:
        return list(self.paginate("/v2/regions", "regions"))

    def sizes(self) -> list[dict[str, Any]]:
        return list(self.paginate("/v2/sizes", "sizes"))

    def images(self, kind: str | None = None) -> list[dict[str, Any]]:
        return list(self.paginate("/v2/images", "images", {"type": kind} if kind else None))

    def ssh_keys(self) -> list[dict[str, Any]]:
        return list(self.paginate("/v2/account/keys", "ssh_keys"))

    def ssh_key(self, id_or_fingerprint: str | int) -> dict[str, Any] | None:
        try:
            return self.get(f"/v2/account/keys/{id_or_fingerprint}")["ssh_key"]
        except NotFound:
            return None

    def create_ssh_key(self, name: str, public_key: str) -> dict[str, Any]:
        return self.post("/v2/account/keys", {"name": name, "public_key": public_key})["ssh_key"]

    def droplets(self, *, name: str | None = None, tag_name: str | None = None) -> list[dict[str, Any]]:
        params = {k: v for k, v in (("name", name), ("tag_name", tag_name)) if v}
        return list(self.paginate("/v2/droplets", "droplets", params))

    def droplet(self, droplet_id: int) -> dict[str, Any]:
        return self.get(f"/v2/droplets/{droplet_id}")["droplet"]

    def droplet_actions(self, droplet_id: int) -> list[dict[str, Any]]:
        return list(self.paginate(f"/v2/droplets/{droplet_id}/actions", "actions"))

    def create_droplet(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.post("/v2/droplets", dict(body))["droplet"]

    def delete_droplet(self, droplet_id: int) -> None:
        self.delete(f"/v2/droplets/{droplet_id}")

    def firewalls(self) -> list[dict[str, Any]]:
        return list(self.paginate("/v2/firewalls", "firewalls"))

    def firewall(self, firewall_id: str) -> dict[str, Any]:
        return self.get(f"/v2/firewalls/{firewall_id}")["firewall"]

    def create_firewall(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.post("/v2/firewalls", dict(body))["firewall"]

    def update_firewall(self, firewall_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.put(f"/v2/firewalls/{firewall_id}", dict(body))["firewall"]

    def tag(self, name: str) -> dict[str, Any] | None:
        try:
            return self.get(f"/v2/tags/{urllib.parse.quote(name, safe=':')}")["tag"]
        except NotFound:
            return None

    def create_tag(self, name: str) -> dict[str, Any]:
        return self.post("/v2/tags", {"name": name})["tag"]


def connect(token: str | None = None, base_url: str | None = None, **kwargs: Any) -> Client:
    """A client with the token from the environment / ``.env`` and the configured base URL."""
    return Client(token or secrets.get(TOKEN_NAME), base_url or api_url(), **kwargs)


# --------------------------------------------------------------------------- task 2.1: the token and account


def check_account(check: Any, client: Client, droplets_needed: int = 1) -> dict[str, Any]:
    """Record the account checks of task 2.1 on a :class:`helpers.core.checks.Checklist`."""
    account = (
        check.call("the token is accepted (GET /v2/account)", lambda: client.account(), hint=token_help())
        or {}
    )
    if not account:
        return {}
    check(
        "account status is active",
        account.get("status") == "active",
        f"{account.get('status')} {account.get('status_message') or ''}".strip(),
        hint="a 'warning' or 'locked' account cannot create droplets: see the banner in the control "
        "panel (billing, verification) and contact DigitalOcean support",
    )
    check(
        "email address verified",
        account.get("email_verified") is True,
        account.get("email_verified"),
        hint="open the verification mail DigitalOcean sent at sign-up (or resend it from the control panel)",
    )
    existing = len(client.droplets())
    limit = int(account.get("droplet_limit") or 0)
    check(
        f"droplet limit leaves room for {droplets_needed} more",
        limit - existing >= droplets_needed,
        f"limit {limit}, in use {existing}",
        hint="delete an unused droplet or ask DigitalOcean support to raise the droplet limit",
    )
    return account


def check_token_scopes(check: Any, client: Client) -> list[str]:
    """Probe each read scope with a harmless GET; record one check per scope. Returns missing scopes."""
    missing = []
    for scope, path in READ_PROBES:
        try:
            client.get(path, {"per_page": 1})
            ok, detail = True, "granted"
        except Forbidden:
            ok, detail = False, "403 forbidden"
            missing.append(scope)
        check(
            f"token can {scope}",
            ok,
            detail,
            hint=f"generate a new token that includes {scope} ({TOKEN_URL}); scopes cannot be added later",
        )
    return missing


def check_token_and_account(check: Any, droplets_needed: int = 1) -> Client | None:
    """Task 2.1's whole verification: token configured and accepted, account able, read scopes granted."""
    configured = secrets.has(TOKEN_NAME)
    check("token is configured", configured, token_source(), hint=token_help())
    if not configured:
        return None
    token = secrets.get(TOKEN_NAME)
    check(
        "token has the shape of a personal access token",
        token.startswith("dop_v1_") and token == token.strip(),
        "as expected" if token.startswith("dop_v1_") else "unexpected shape",
        hint="personal access tokens start with dop_v1_; copy the whole token, without quotes or spaces",
    )
    client = Client(token, api_url())
    account = check_account(check, client, droplets_needed)
    if not account:
        return client
    check_token_scopes(check, client)
    limit = client.rate_limit
    check(
        "API rate limit leaves room for the runbook",
        limit is not None and limit.remaining >= 100,
        f"{limit.remaining} of {limit.limit} requests left this hour" if limit else "no rate-limit headers",
        hint="wait for the hourly window to move on (ratelimit-reset) or stop other scripts using this token",
    )
    return client


def scope_rows() -> list[tuple[str, str]]:
    return [(scope, SCOPE_REASONS[scope]) for scope in TOKEN_SCOPES]


def token_source() -> str:
    """Where the token comes from (never its value)."""
    if os.environ.get(TOKEN_NAME):
        return "environment variable"
    if secrets.has(TOKEN_NAME):
        return f"secrets file {secrets.secrets_file()}"
    return "nowhere"


# --------------------------------------------------------------------------- task 2.2: specs


@dataclass(frozen=True)
class DropletSpec:
    """What task 2.2 asks DigitalOcean for. ``tag`` identifies the droplet (lookups, firewall)."""

    name: str
    region: str
    size: str
    image: str
    tag: str
    extra_tags: tuple[str, ...] = ()
    monitoring: bool = True
    backups: bool = False
    ipv6: bool = False

    @property
    def tags(self) -> list[str]:
        return [self.tag, *(t for t in self.extra_tags if t and t != self.tag)]

    def request_body(self, ssh_key_fingerprint: str) -> dict[str, Any]:
        """The exact body of ``POST /v2/droplets``."""
        return {
            "name": self.name,
            "region": self.region,
            "size": self.size,
            "image": self.image,
            "ssh_keys": [ssh_key_fingerprint],
            "backups": self.backups,
            "ipv6": self.ipv6,
            "monitoring": self.monitoring,
            "tags": self.tags,
        }


def firewall_ports(domain: str) -> tuple[int, ...]:
    """22, 80, 443, and 8000 (Coolify's dashboard) only while no domain fronts it."""
    return (22, 80, 443) if domain.strip() else (22, 80, 443, 8000)


ANYWHERE = ["0.0.0.0/0", "::/0"]


@dataclass(frozen=True)
class FirewallSpec:
    name: str
    tag: str
    ports: tuple[int, ...]

    def request_body(self) -> dict[str, Any]:
        """Inbound: only ``ports`` over TCP from anywhere; outbound: everything (updates, images)."""
        return {
            "name": self.name,
            "inbound_rules": [
                {"protocol": "tcp", "ports": str(p), "sources": {"addresses": list(ANYWHERE)}}
                for p in self.ports
            ],
            "outbound_rules": [
                {
                    "protocol": proto,
                    "ports": "0" if proto == "icmp" else "all",
                    "destinations": {"addresses": list(ANYWHERE)},
                }
                for proto in ("tcp", "udp", "icmp")
            ],
            "droplet_ids": [],
            "tags": [self.tag],
        }


def _rule_key(rule: Mapping[str, Any], target: str) -> tuple[Any, ...]:
    ports = str(rule.get("ports", "0"))
    if rule.get("protocol") == "icmp" or ports.lower() in ("all", "0", "1-65535"):
        ports = "all"
    where = rule.get(target) or {}
    return (
        rule.get("protocol"),
        ports,
        tuple(sorted(where.get("addresses") or [])),
        tuple(sorted(where.get("tags") or [])),
        tuple(sorted(where.get("droplet_ids") or [])),
        tuple(sorted(where.get("load_balancer_uids") or [])),
    )


def normalized_rules(firewall: Mapping[str, Any]) -> dict[str, list[tuple[Any, ...]]]:
    """A firewall's rules in a comparable form (order-free; 'all' == '0' == '1-65535')."""
    return {
        "inbound": sorted(_rule_key(r, "sources") for r in firewall.get("inbound_rules") or []),
        "outbound": sorted(_rule_key(r, "destinations") for r in firewall.get("outbound_rules") or []),
    }


def open_inbound_ports(firewall: Mapping[str, Any]) -> list[str]:
    """Inbound ports open to anyone (0.0.0.0/0), e.g. ['22', '443']."""
    out = []
    for rule in firewall.get("inbound_rules") or []:
        if "0.0.0.0/0" in ((rule.get("sources") or {}).get("addresses") or []):
            out.append(str(rule.get("ports")) if rule.get("protocol") != "icmp" else "icmp")
    return sorted(out, key=lambda p: (len(p), p))


# --------------------------------------------------------------------------- task 2.2: validating the choice


class InvalidChoice(ValueError):
    """Region, size or image are not what the API offers; the message lists what it does offer."""


@dataclass
class Choice:
    region: dict[str, Any]
    size: dict[str, Any]
    image: dict[str, Any]
    problems: list[str] = field(default_factory=list)

    @property
    def monthly_price(self) -> float:
        return float(self.size.get("price_monthly") or 0)

    def rows(self) -> list[tuple[str, str, str]]:
        s = self.size
        return [
            ("region", self.region["slug"], self.region.get("name", "")),
            (
                "size",
                s["slug"],
                f"{s['vcpus']} vCPU, {s['memory'] // 1024} GB RAM, {s['disk']} GB disk, "
                f"${s['price_monthly']:.2f}/month",
            ),
            (
                "image",
                str(self.image.get("slug") or self.image["id"]),
                f"{self.image.get('distribution', '')} {self.image.get('name', '')}".strip(),
            ),
        ]


def _listing(values: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(values[:limit])
    return shown + (f", … ({len(values) - limit} more)" if len(values) > limit else "") if values else "none"


def validate_choice(client: Client, spec: DropletSpec) -> Choice:
    """Check region, size and image against the API's own lists; raise :class:`InvalidChoice`."""
    regions = client.regions()
    sizes = client.sizes()
    images = client.images()
    available = [r["slug"] for r in regions if r.get("available")]
    region = next((r for r in regions if r["slug"] == spec.region), None)
    if region is None:
        raise InvalidChoice(
            f"region {spec.region!r} is not a DigitalOcean region; available: {_listing(available)}"
        )
    if not region.get("available"):
        raise InvalidChoice(
            f"region {spec.region!r} takes no new droplets now; available: {_listing(available)}"
        )
    size = next((s for s in sizes if s["slug"] == spec.size), None)
    in_region = [s["slug"] for s in sizes if s.get("available") and spec.region in (s.get("regions") or [])]
    suitable = [
        s["slug"]
        for s in sizes
        if s["slug"] in in_region
        and s["vcpus"] >= COOLIFY_MIN_VCPUS
        and s["memory"] >= COOLIFY_MIN_MEMORY_MB
        and s["disk"] >= COOLIFY_MIN_DISK_GB
    ]
    if size is None or not size.get("available"):
        what = "is not a size DigitalOcean offers" if size is None else "is no longer available"
        raise InvalidChoice(
            f"size {spec.size!r} {what}; sizes in {spec.region} big enough for Coolify: {_listing(suitable)}"
        )
    if spec.region not in (size.get("regions") or []) or spec.size not in (
        region.get("sizes") or [spec.size]
    ):
        raise InvalidChoice(
            f"size {spec.size!r} is not offered in region {spec.region}; offered there (big enough for "
            "Coolify): "
            f"{_listing(suitable)}; or pick a region among {_listing(size.get('regions') or [])}"
        )
    image = next((i for i in images if spec.image in (i.get("slug"), str(i.get("id")))), None)
    distributions = [i["slug"] for i in images if i.get("slug") and i.get("type") in ("base", "distribution")]
    if image is None:
        raise InvalidChoice(
            f"image {spec.image!r} is not listed by GET /v2/images; e.g. {_listing(distributions)}"
        )
    if image.get("status") not in (None, "available"):
        raise InvalidChoice(f"image {spec.image!r} is {image.get('status')}; e.g. {_listing(distributions)}")
    if spec.region not in (image.get("regions") or []):
        raise InvalidChoice(
            f"image {spec.image!r} is not available in {spec.region}; "
            f"it is in {_listing(image.get('regions') or [])}"
        )
    if (image.get("min_disk_size") or 0) > size["disk"]:
        raise InvalidChoice(
            f"image {spec.image!r} needs {image['min_disk_size']} GB of disk; {spec.size} has {size['disk']}"
        )
    problems = []
    if size["vcpus"] < COOLIFY_MIN_VCPUS or size["memory"] < COOLIFY_MIN_MEMORY_MB:
        problems.append(f"{spec.size} is below Coolify's minimum of 2 vCPU and 2 GB RAM")
    if size["disk"] < COOLIFY_MIN_DISK_GB:
        problems.append(f"{spec.size} has {size['disk']} GB of disk; Coolify wants 30 GB or more")
    return Choice(region=region, size=size, image=image, problems=problems)


# --------------------------------------------------------------------------- task 2.2: SSH keys


SSH_KEY_TYPES = (
    "ssh-rsa",
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)


def fingerprint(public_key: str) -> str:
    """DigitalOcean's fingerprint of an OpenSSH public key: MD5 of the key blob, colon-separated hex.

    Raises ``ValueError`` naming what is wrong with the key.
    """
    parts = public_key.strip().split()
    if len(parts) < 2:
        raise ValueError("public_key must look like '<type> <base64 data> [comment]'")
    kind, data = parts[0], parts[1]
    if kind not in SSH_KEY_TYPES:
        raise ValueError(f"public_key type {kind!r} is not supported; use one of {', '.join(SSH_KEY_TYPES)}")
    try:
        blob = base64.b64decode(data, validate=True)
    except ValueError:
        raise ValueError("public_key data is not valid base64") from None
    n = int.from_bytes(blob[:4], "big") if len(blob) >= 4 else -1
    if n < 0 or blob[4 : 4 + n].decode("ascii", "replace") != kind:
        raise ValueError(f"public_key data does not encode a {kind} key")
    digest = hashlib.md5(blob, usedforsecurity=False).hexdigest()  # the fingerprint format, not security
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def default_ssh_key() -> Path:
    """The private key whose public half 2.2 registers: ``RUNBOOK_SSH_KEY``, else task 2.3's default
    (``helpers.cloud.ssh.default_key_path``: ``RUNBOOK_SSH_DIR``, a rehearsal's own folder, or ``~/.ssh``)."""
    if env.ssh_key:
        return Path(env.ssh_key).expanduser()
    try:
        from helpers.cloud.ssh import default_key_path
    except ImportError:
        return Path("~/.ssh/id_ed25519").expanduser()
    return default_key_path()


def read_public_key(path: str | Path) -> str:
    """The one-line OpenSSH public key in ``path``, checked; clear errors for the usual mistakes."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(
            f"public key {p} does not exist; let task 2.2 generate it (dry_run=False) or "
            f"run `ssh-keygen -t ed25519 -f {p.with_suffix('')}`"
        )
    text = p.read_text(encoding="utf-8", errors="replace").strip()
    if "PRIVATE KEY" in text:
        raise ValueError(
            f"{p} is a private key; point at the public half ({p}.pub) and never upload the private one"
        )
    try:
        fingerprint(text)
    except ValueError as exc:
        raise ValueError(f"{p} is not an OpenSSH public key: {exc}") from None
    return text


def ensure_local_keypair(
    private_key: str | Path, dry_run: bool = False, comment: str = "implementation3-runbook"
) -> StepResult:
    """Make sure ``private_key`` and ``private_key.pub`` exist (ed25519, mode 600); never overwrite."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Path(private_key).expanduser()
    pub = key.with_name(key.name + ".pub")
    name = f"local SSH key pair {key}"
    if pub.is_file() and key.is_file():
        return steps.ok(name, "exists")
    if pub.is_file() and not key.is_file():
        return steps.ok(name, f"public key {pub} exists (its private half is elsewhere: fine for this task)")
    if key.is_file():
        if dry_run:
            return steps.changed(name, f"would write {pub} from the existing private key", dry_run=True)
        private = serialization.load_ssh_private_key(key.read_bytes(), password=None)
        line = private.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        pub.write_text(f"{line.decode()} {comment}\n", encoding="utf-8")
        return steps.changed(name, f"wrote {pub} from the existing private key")
    if dry_run:
        return steps.changed(name, f"would generate an ed25519 key pair at {key}", dry_run=True)
    key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    private = Ed25519PrivateKey.generate()
    data = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    line = private.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    pub.write_text(f"{line.decode()} {comment}\n", encoding="utf-8")
    return steps.changed(name, f"generated an ed25519 key pair ({key}, {pub.name})")


def ensure_ssh_key(
    client: Client, public_key_path: str | Path, name: str, dry_run: bool = False
) -> tuple[StepResult, dict[str, Any] | None, str]:
    """Register the public key once, found by fingerprint. Returns (result, key or None, fingerprint)."""
    step = "SSH key registered with DigitalOcean"
    if dry_run and not Path(public_key_path).expanduser().is_file():
        return (
            steps.changed(step, f"would register {public_key_path} (generated first)", dry_run=True),
            None,
            "",
        )
    text = read_public_key(public_key_path)
    fp = fingerprint(text)
    existing = client.ssh_key(fp)
    if existing is not None:
        return (
            steps.ok(step, f"already registered as {existing['name']!r} (id {existing['id']}, {fp})"),
            existing,
            fp,
        )
    body = {"name": name, "public_key": text}
    diff = f"POST {client.base_url}/v2/account/keys\n{json.dumps(body, indent=2)}"
    if dry_run:
        return steps.changed(step, f"would register {fp} as {name!r}", diff=diff, dry_run=True), None, fp
    try:
        key = client.create_ssh_key(name, text)
    except InvalidRequest as exc:
        if "already in use" not in exc.api_message:
            raise
        key = client.ssh_key(fp)  # registered meanwhile (or by a lost response): use it
        if key is None:
            raise
        return steps.ok(step, f"already registered as {key['name']!r} (id {key['id']}, {fp})"), key, fp
    return steps.changed(step, f"registered {fp} as {name!r} (id {key['id']})", diff=diff), key, fp


def ensure_tag(client: Client, tag: str, dry_run: bool = False) -> StepResult:
    step = f"tag {tag!r}"
    if client.tag(tag) is not None:
        return steps.ok(step, "exists")
    if dry_run:
        return steps.changed(
            step,
            "would create it",
            diff=f"POST {client.base_url}/v2/tags\n{json.dumps({'name': tag})}",
            dry_run=True,
        )
    client.create_tag(tag)
    return steps.changed(step, "created")


# --------------------------------------------------------------------------- task 2.2: the droplet


class PaidResourceRefused(RuntimeError):
    """A droplet would be created, which costs money, and ``allow_create_paid`` is off."""


def find_droplets(client: Client, spec: DropletSpec) -> list[dict[str, Any]]:
    """Droplets that already are this one: same name or carrying its tag (deduplicated)."""
    found: dict[int, dict[str, Any]] = {}
    for d in client.droplets(name=spec.name) + client.droplets(tag_name=spec.tag):
        found[d["id"]] = d
    return [found[i] for i in sorted(found)]


def require_paid_permission(
    existing: Sequence[Mapping[str, Any]], choice: Choice, allow_create_paid: bool, dry_run: bool
) -> str:
    """Raise :class:`PaidResourceRefused` before anything changes if a droplet would be bought unasked."""
    if existing:
        return "the droplet exists: nothing will be bought"
    price = f"${choice.monthly_price:.2f}/month (${choice.size.get('price_hourly', 0):.4f}/hour)"
    if dry_run:
        return f"dry-run: a droplet costing {price} would be created"
    if not allow_create_paid:
        raise PaidResourceRefused(
            f"creating the droplet costs {price}, billed until it is destroyed. Re-run with "
            "allow_create_paid=True (papermill: -p allow_create_paid True; or RUNBOOK_ALLOW_PAID=1), "
            "or with dry_run=True to see the exact request first"
        )
    return f"a droplet costing {price} will be created (allow_create_paid=True)"


def check_preflight(
    check: Any, choice: Choice, existing: Sequence[Mapping[str, Any]], allow_create_paid: bool, dry_run: bool
) -> None:
    """Task 2.2's checks before anything changes: size fit for Coolify, no ambiguity, permission to buy."""
    check(
        "size is big enough for Coolify",
        not choice.problems,
        "; ".join(choice.problems) or choice.size["slug"],
        hint="choose a size with 2 vCPU, 2 GB RAM and 30 GB disk or more (e.g. s-2vcpu-4gb)",
    )
    check(
        "at most one droplet has this name or tag",
        len(existing) <= 1,
        ", ".join(f"{d['id']} {d['name']}" for d in existing) or "none yet",
        hint="delete the extra droplets in the control panel, then re-run",
    )
    check.call(
        "allowed to create what is missing",
        lambda: require_paid_permission(existing, choice, allow_create_paid, dry_run),
        hint="set allow_create_paid = True to buy the droplet, or dry_run = True to see the plan",
    )


def create_droplet_once(
    client: Client,
    body: Mapping[str, Any],
    lookup: Callable[[], list[dict[str, Any]]],
    attempts: int = 3,
    settle: Sequence[float] = (1.0, 2.0, 4.0),
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """``POST /v2/droplets`` without ever making a duplicate.

    A 5xx or a lost connection does not tell whether the droplet was created, so before
    each retry the droplet is looked up (by name and tag, a few times, since a new droplet
    may take a moment to be listed); only when it is still absent is the POST repeated.
    """
    last: DigitalOceanError | None = None
    for _ in range(attempts):
        try:
            return client.create_droplet(body)
        except (ServerError, Unreachable) as exc:
            last = exc
        for wait in (0.0, *settle):
            sleep(wait)
            found = lookup()
            if len(found) > 1:
                raise DigitalOceanError(
                    f"{len(found)} droplets named {body.get('name')!r} exist after a failed create",
                    hint="delete the extra droplet(s) in the control panel, then re-run task 2.2",
                )
            if found:
                return found[0]
    assert last is not None
    raise last


def ensure_droplet(
    client: Client,
    spec: DropletSpec,
    key_fingerprint: str,
    *,
    allow_create_paid: bool = False,
    dry_run: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[StepResult, dict[str, Any] | None]:
    step = f"droplet {spec.name!r}"
    existing = find_droplets(client, spec)
    if len(existing) > 1:
        ids = ", ".join(f"{d['id']} ({d['name']})" for d in existing)
        return steps.failed(
            step,
            f"{len(existing)} droplets have name {spec.name!r} or tag {spec.tag!r}: {ids}; "
            "delete the extra ones in the control panel, then re-run",
        ), None
    if existing:
        d = existing[0]
        notes = [
            f"{what} is {have} (parameter says {want})"
            for what, have, want in (
                ("name", d["name"], spec.name),
                ("region", d["region"]["slug"], spec.region),
                ("size", d.get("size_slug"), spec.size),
                ("image", (d.get("image") or {}).get("slug"), spec.image),
            )
            if have != want
        ]
        detail = f"exists (id {d['id']}, {d['status']})" + (f"; note: {'; '.join(notes)}" if notes else "")
        return steps.ok(step, detail), d
    body = spec.request_body(key_fingerprint or "<fingerprint of the key registered above>")
    diff = f"POST {client.base_url}/v2/droplets\n{json.dumps(body, indent=2)}"
    if dry_run:
        return steps.changed(step, "would create it", diff=diff, dry_run=True), None
    if not allow_create_paid:
        return steps.failed(step, "creating it costs money: set allow_create_paid=True"), None
    droplet = create_droplet_once(client, body, lambda: find_droplets(client, spec), sleep=sleep)
    return steps.changed(
        step, f"created (id {droplet['id']}, status {droplet['status']})", diff=diff
    ), droplet


def public_ipv4(droplet: Mapping[str, Any]) -> str | None:
    for net in (droplet.get("networks") or {}).get("v4") or []:
        if net.get("type") == "public" and net.get("ip_address"):
            return str(net["ip_address"])
    return None


def ssh_port(droplet: Mapping[str, Any]) -> int:
    """22 on DigitalOcean; the stand-in's droplet containers report their published port."""
    return int((droplet.get("x_rehearsal") or {}).get("ssh_port") or 22)


def wait_for_droplet(
    client: Client,
    droplet_id: int,
    timeout: float = 600.0,
    interval: float = 5.0,
    progress: Callable[[str], None] = print,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Poll until the droplet is ``active`` with a public IPv4; show each change of state."""
    start = clock()
    last = None
    polls = 0
    while True:
        droplet = client.droplet(droplet_id)
        ip = public_ipv4(droplet)
        state = (droplet["status"], ip)
        elapsed = clock() - start
        if state != last:
            progress(
                f"[{elapsed:5.0f}s] droplet {droplet['name']} ({droplet_id}): status {droplet['status']}, "
                f"public IPv4 {ip or '—'}"
            )
            last = state
        if droplet["status"] == "active" and ip:
            return droplet
        polls += 1
        if droplet["status"] == "new" and polls % 5 == 0:
            errored = [
                a
                for a in client.droplet_actions(droplet_id)
                if a.get("type") == "create" and a.get("status") == "errored"
            ]
            if errored:
                raise DigitalOceanError(
                    f"creating droplet {droplet_id} failed (action {errored[0]['id']} errored)",
                    hint="delete the droplet in the control panel, then re-run task 2.2",
                )
        if elapsed >= timeout:
            raise TimeoutError(
                f"droplet {droplet_id} is still {droplet['status']} (public IPv4 {ip or 'none'}) after "
                f"{timeout:.0f}s; re-running task 2.2 resumes waiting (it never creates a second droplet)"
            )
        sleep(interval)


# --------------------------------------------------------------------------- task 2.2: the cloud firewall


def ensure_firewall(
    client: Client, spec: FirewallSpec, dry_run: bool = False
) -> tuple[StepResult, dict[str, Any] | None]:
    """Create the firewall (attached by tag) or bring its rules and tag in line; idempotent."""
    step = f"cloud firewall {spec.name!r} (inbound {', '.join(map(str, spec.ports))})"
    found = [f for f in client.firewalls() if f["name"] == spec.name]
    if len(found) > 1:
        return steps.failed(step, f"{len(found)} firewalls are named {spec.name!r}; delete the extras"), None
    want = spec.request_body()
    if not found:
        diff = f"POST {client.base_url}/v2/firewalls\n{json.dumps(want, indent=2)}"
        if dry_run:
            return steps.changed(step, "would create it", diff=diff, dry_run=True), None
        fw = client.create_firewall(want)
        return steps.changed(step, f"created (id {fw['id']}, {fw['status']})", diff=diff), fw
    fw = found[0]
    same_rules = normalized_rules(fw) == normalized_rules(want)
    has_tag = spec.tag in (fw.get("tags") or [])
    if same_rules and has_tag:
        return steps.ok(step, f"rules and tag as wanted (id {fw['id']}, {fw['status']})"), fw
    body = {
        **want,
        "droplet_ids": list(fw.get("droplet_ids") or []),
        "tags": sorted({*(fw.get("tags") or []), spec.tag}),
    }
    before = "\n".join(f"inbound tcp {p}" for p in open_inbound_ports(fw))
    after = "\n".join(f"inbound tcp {p}" for p in spec.ports)
    diff = _unified(before, after, "rules now", "rules wanted")
    if not has_tag:
        diff += f"\n+ attach to tag {spec.tag}"
    if dry_run:
        return steps.changed(
            step, "would update its rules/tags (PUT, full replacement)", diff=diff, dry_run=True
        ), fw
    fw = client.update_firewall(fw["id"], body)
    return steps.changed(step, f"updated (id {fw['id']}, {fw['status']})", diff=diff), fw


def _unified(before: str, after: str, a: str, b: str) -> str:
    return "\n".join(difflib.unified_diff(before.splitlines(), after.splitlines(), a, b, lineterm=""))


def wait_for_firewall(
    client: Client,
    firewall_id: str,
    timeout: float = 300.0,
    interval: float = 3.0,
    progress: Callable[[str], None] = print,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    start = clock()
    last = None
    while True:
        fw = client.firewall(firewall_id)
        if fw["status"] != last:
            progress(f"[{clock() - start:5.0f}s] firewall {fw['name']}: {fw['status']}")
            last = fw["status"]
        if fw["status"] == "succeeded":
            return fw
        if fw["status"] == "failed":
            raise DigitalOceanError(
                f"firewall {fw['name']} failed to apply: {fw.get('pending_changes')}",
                hint="check the firewall in the control panel; re-run task 2.2",
            )
        if clock() - start >= timeout:
            raise TimeoutError(
                f"firewall {fw['name']} still {fw['status']} after {timeout:.0f}s; re-run task 2.2"
            )
        sleep(interval)


# --------------------------------------------------------------------------- task 2.2: verification


def check_droplet(
    check: Any,
    client: Client,
    spec: DropletSpec,
    fw_spec: FirewallSpec,
    recorded: Mapping[str, Any] | None = None,
    key_fingerprint: str = "",
) -> dict[str, Any] | None:
    """Re-read DigitalOcean's real state and record task 2.2's checks on ``check``."""
    matches = find_droplets(client, spec)
    check(
        "exactly one droplet has this name or tag",
        len(matches) == 1,
        ", ".join(f"{d['id']} {d['name']}" for d in matches) or "none",
        hint="none: run the creation cells (allow_create_paid=True); several: delete the extras",
    )
    if len(matches) != 1:
        return None
    d = client.droplet(matches[0]["id"])
    ip = public_ipv4(d)
    check(
        "droplet is active",
        d["status"] == "active",
        d["status"],
        hint="wait and re-run; see the control panel",
    )
    check(
        "droplet has a public IPv4", bool(ip), ip or "none", hint="wait until networking is assigned, re-run"
    )
    check(
        "region, size and image as asked",
        (d["region"]["slug"], d["size_slug"], (d.get("image") or {}).get("slug"))
        == (spec.region, spec.size, spec.image),
        f"{d['region']['slug']}, {d['size_slug']}, {(d.get('image') or {}).get('slug')}",
        hint="an existing droplet was kept as it is; resize or rebuild it by hand if it must change",
    )
    check(
        f"droplet carries tag {spec.tag!r}",
        spec.tag in d["tags"],
        ", ".join(d["tags"]),
        hint="add the tag in the control panel: the firewall is attached through it",
    )
    check(
        "monitoring agent requested",
        ("monitoring" in d.get("features", [])) == spec.monitoring,
        ", ".join(d.get("features", [])) or "no features",
        hint="monitoring is chosen at creation: enable it in the control panel or set monitoring to match",
    )
    fws = [f for f in client.firewalls() if f["name"] == fw_spec.name]
    check(
        "exactly one firewall with this name",
        len(fws) == 1,
        len(fws),
        hint="re-run task 2.2; delete duplicates",
    )
    if len(fws) == 1:
        fw = client.firewall(fws[0]["id"])
        ports = open_inbound_ports(fw)
        wanted = sorted(map(str, fw_spec.ports), key=lambda p: (len(p), p))
        check(
            "firewall opens exactly the wanted ports",
            ports == wanted,
            ", ".join(ports),
            hint=f"wanted {', '.join(wanted)}; re-run task 2.2 to update the rules",
        )
        check(
            f"firewall attached to tag {spec.tag!r}",
            spec.tag in (fw.get("tags") or []),
            fw.get("tags"),
            hint="re-run task 2.2",
        )
        check(
            "firewall rules applied (succeeded)",
            fw["status"] == "succeeded",
            fw["status"],
            hint="wait a minute and re-run the verification",
        )
    if key_fingerprint:
        check("our SSH key is registered (by fingerprint)", client.ssh_key(key_fingerprint) is not None,
              key_fingerprint, hint="re-run task 2.2: it registers the key")  # fmt: skip
    if recorded is not None:
        check(
            "state file records this droplet",
            recorded.get("id") == d["id"] and recorded.get("ipv4") == ip,
            f"{recorded.get('id')} {recorded.get('ipv4')}",
            hint="re-run the 'record' cell",
        )
    return d


def check_plan(check: Any, results: Sequence[StepResult]) -> None:
    """Dry-run verification: nothing changed, nothing failed, every step said what it would do."""
    changed = [r.name for r in results if r.status == "changed"]
    failed = [r.name for r in results if r.status == "failed"]
    check("dry-run changed nothing", not changed, ", ".join(changed) or "no step changed anything",
          hint="a step ignored dry_run: report it as a bug")  # fmt: skip
    check("no step failed", not failed, ", ".join(failed) or "none",
          hint="fix what the failed step says, then run the dry-run again")  # fmt: skip
    planned = [r.name for r in results if r.status == "would change"]
    check("the plan", True, "; ".join(planned) or "nothing to do: everything already exists")


def droplet_record(
    droplet: Mapping[str, Any],
    spec: DropletSpec,
    key: Mapping[str, Any] | None,
    key_fingerprint: str,
    firewall: Mapping[str, Any] | None,
    private_key: str | Path,
) -> dict[str, Any]:
    """What later tasks need (non-secret): ids, address, SSH port and key path."""
    return {
        "id": droplet["id"],
        "name": droplet["name"],
        "ipv4": public_ipv4(droplet),
        "ssh_port": ssh_port(droplet),
        "region": droplet["region"]["slug"],
        "size": droplet["size_slug"],
        "image": (droplet.get("image") or {}).get("slug"),
        "tag": spec.tag,
        "ssh_key_id": key["id"] if key else None,
        "ssh_key_fingerprint": key_fingerprint,
        "ssh_key_path": str(Path(private_key).expanduser()),
        "firewall_id": firewall["id"] if firewall else None,
        "firewall_ports": list(firewall_ports_of(firewall)) if firewall else [],
    }


def firewall_ports_of(firewall: Mapping[str, Any]) -> list[int]:
    return [int(p) for p in open_inbound_ports(firewall) if p.isdigit()]
