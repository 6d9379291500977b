"""DigitalOcean's API v2: the client (plain httpx), its configuration and its error translation.

The base URL comes from configuration (``DIGITALOCEAN_API_URL``, default ``https://api.digitalocean.com``)
and the transport can be swapped, so a rehearsal against a local stand-in is configuration, not a code path.

What the client does for every call:

* retries a 429 after the ``retry-after`` the API sends (any method: a 429 was not processed);
* retries 5xx and network errors only for idempotent methods (GET, PUT, DELETE): a failed
  ``POST`` may have been processed, so the *caller* looks before trying again
  (:func:`helpers.cloud.droplet.create_droplet_once` does this for droplets);
* follows ``links.pages.next`` (:meth:`Client.paginate`), only on the configured host;
* turns ``{id, message, request_id}`` error bodies into the :mod:`helpers.clients.errors` family, with
  what to do next: 401 how to make a token with the least scope, 403 which scope is missing, 400/422
  which field.

Why httpx rather than the official ``pydo``: pydo (83 MB with azure-core) refuses plain-http
endpoints unless every call says so, returns 404 bodies as dicts instead of raising, and retries
on its own (10 times, including POST); here every retry is a decision we can test.

The steps of tasks 2.1 and 2.2 that use this client are in :mod:`helpers.cloud.droplet`.
"""

from __future__ import annotations

import contextlib
import os
import re
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import httpx

from helpers.clients.errors import (
    ApiError,
    Forbidden,
    InvalidRequest,
    NotFound,
    RateLimited,
    ServerError,
    Unauthorized,
    Unreachable,
)
from helpers.clients.http import JsonApiClient, error_body, is_http_url, token_in_clear
from helpers.core import secrets
from helpers.core.settings import env

VENDOR = "DigitalOcean"
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


def api_url() -> str:
    return env.digitalocean_api_url or DEFAULT_API_URL


def token_help() -> str:
    scopes = ", ".join(TOKEN_SCOPES)
    return (
        f"create a personal access token at {TOKEN_URL} (API → Tokens → Generate New Token): "
        f"choose 'Custom Scopes' and tick only {scopes}; set an expiry; copy it once and store it as "
        f"{TOKEN_NAME}=... in {secrets.secrets_file()} (git-ignored) or export it (task 2.1 shows how)"
    )


def token_source() -> str:
    """Where the token comes from (never its value)."""
    if os.environ.get(TOKEN_NAME):
        return "environment variable"
    if secrets.has(TOKEN_NAME):
        return f"secrets file {secrets.secrets_file()}"
    return "nowhere"


# --------------------------------------------------------------------------- errors


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


def _error_from(response: httpx.Response, method: str, path: str, sent: Any) -> ApiError:
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
        "vendor": VENDOR,
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
    return ApiError(message, hint="unexpected answer; see the message", **common)


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

    def _error(self, response: httpx.Response, method: str, path: str, sent: Any) -> ApiError:
        return _error_from(response, method, path, sent)

    def _network_error(self, message: str, *, method: str, path: str, hint: str) -> Unreachable:
        return Unreachable(message, vendor=VENDOR, method=method, path=path, hint=hint)

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

    # ---------------------------------------------------------------- operations (monitoring, teardown)

    def delete_firewall(self, firewall_id: str) -> None:
        self.delete(f"/v2/firewalls/{firewall_id}")

    def delete_ssh_key(self, id_or_fingerprint: str | int) -> None:
        self.delete(f"/v2/account/keys/{id_or_fingerprint}")

    def delete_tag(self, name: str) -> None:
        self.delete(f"/v2/tags/{urllib.parse.quote(name, safe=':')}")

    def uptime_checks(self) -> list[dict[str, Any]]:
        return list(self.paginate("/v2/uptime/checks", "checks"))

    def create_uptime_check(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.post("/v2/uptime/checks", dict(body))["check"]

    def update_uptime_check(self, check_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.put(f"/v2/uptime/checks/{check_id}", dict(body))["check"]

    def delete_uptime_check(self, check_id: str) -> None:
        self.delete(f"/v2/uptime/checks/{check_id}")

    def uptime_check_state(self, check_id: str) -> dict[str, Any]:
        return self.get(f"/v2/uptime/checks/{check_id}/state")["state"]

    def uptime_alerts(self, check_id: str) -> list[dict[str, Any]]:
        return list(self.paginate(f"/v2/uptime/checks/{check_id}/alerts", "alerts"))

    def create_uptime_alert(self, check_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.post(f"/v2/uptime/checks/{check_id}/alerts", dict(body))["alert"]

    def update_uptime_alert(self, check_id: str, alert_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.put(f"/v2/uptime/checks/{check_id}/alerts/{alert_id}", dict(body))["alert"]

    def alert_policies(self) -> list[dict[str, Any]]:
        return list(self.paginate("/v2/monitoring/alerts", "policies"))

    def create_alert_policy(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.post("/v2/monitoring/alerts", dict(body))["policy"]

    def update_alert_policy(self, uuid: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.put(f"/v2/monitoring/alerts/{uuid}", dict(body))["policy"]

    def delete_alert_policy(self, uuid: str) -> None:
        self.delete(f"/v2/monitoring/alerts/{uuid}")


def connect(token: str | None = None, base_url: str | None = None, **kwargs: Any) -> Client:
    """A client with the token from the environment / ``.env`` and the configured base URL."""
    return Client(token or secrets.get(TOKEN_NAME), base_url or api_url(), **kwargs)
