"""A stateful DigitalOcean API v2 stand-in, following the spec subset in ``shared/refs/digitalocean``.

What it answers (the paths task 2.1 and 2.2 use, and their neighbours):

* ``GET /v2/account``; ``GET|POST /v2/account/keys``, ``GET|PUT|DELETE /v2/account/keys/{id or fingerprint}``;
* ``GET|POST /v2/droplets`` (``name`` / ``tag_name`` filters, multi-create with ``names``),
  ``DELETE /v2/droplets?tag_name=``, ``GET|DELETE /v2/droplets/{id}``, droplet actions;
* ``GET /v2/actions/{id}``; ``GET /v2/regions``, ``/v2/sizes``, ``/v2/images`` (``type`` filter);
* ``/v2/firewalls`` (CRUD, ``/droplets``, ``/tags``, ``/rules``); ``/v2/tags`` (CRUD);
* uptime checks and their alerts, monitoring alert policies (:mod:`.digitalocean_ops`).

How it behaves like the real API:

* bearer auth, 401 ``{"id": "unauthorized", ...}``; optional per-token scopes (custom scopes,
  ``droplet:create`` ...) answering 403 ``forbidden`` when a scope is missing;
* errors ``{id, message, request_id}``: 400 unparseable body, 422 invalid fields (the message
  names the field), 404 ``not_found``; firewalls answer 400 for invalid rules, as the spec says;
* ``ratelimit-limit`` / ``ratelimit-remaining`` / ``ratelimit-reset`` on every response, 429
  ``too_many_requests`` with ``retry-after`` past the hourly or per-minute limit, and the separate
  10-per-60-s limit of ``GET /v2/account/keys``;
* pages of 20 (``per_page`` up to 200) with ``links.pages`` ``first/prev/next/last`` and ``meta.total``;
* a droplet is created ``new`` (202, with a ``create`` action ``in-progress``) and becomes ``active``
  with a public IPv4 after N reads and/or S seconds; a firewall is ``waiting`` then ``succeeded``;
* droplet names are **not** unique (as on DigitalOcean): the client must look before it creates.

Rehearsal droplets: give the stand-in a *droplet backend* (an object with ``start(name,
public_keys) -> (host, ssh_port)`` and ``stop(name)``, or the two functions of
``helpers.rehearse.droplet``) and every created droplet starts a real SSH server; its host becomes
the droplet's public IPv4 and its port is reported in ``droplet["x_rehearsal"]["ssh_port"]`` (a
field the real API does not have; clients default to 22). Without a backend, addresses come from
TEST-NET-3 (203.0.113.0/24), which nothing answers.

Run it as a process: ``DIGITALOCEAN_TOKEN=... python -m helpers.rehearse.digitalocean --port 8089``.
"""

from __future__ import annotations

import collections
import copy
import importlib
import inspect
import ipaddress
import itertools
import os
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from helpers.cloud.droplet import fingerprint as ssh_fingerprint
from helpers.rehearse.base import (
    HTTPError,
    Request,
    Response,
    StandIn,
    cli_parser,
    empty_response,
    int_arg,
    iter_pages,
    json_response,
    serve,
)
from helpers.rehearse.digitalocean_ops import SCOPES as OPERATION_SCOPES
from helpers.rehearse.digitalocean_ops import DigitalOceanOperations

HOUR = 3600.0
MINUTE = 60.0

# --------------------------------------------------------------------------- the catalogue

REGIONS: list[tuple[str, str, bool]] = [
    ("nyc1", "New York 1", True),
    ("nyc2", "New York 2", False),
    ("nyc3", "New York 3", True),
    ("ams2", "Amsterdam 2", False),
    ("ams3", "Amsterdam 3", True),
    ("sfo1", "San Francisco 1", False),
    ("sfo2", "San Francisco 2", True),
    ("sfo3", "San Francisco 3", True),
    ("sgp1", "Singapore 1", True),
    ("lon1", "London 1", True),
    ("fra1", "Frankfurt 1", True),
    ("tor1", "Toronto 1", True),
    ("blr1", "Bangalore 1", True),
    ("syd1", "Sydney 1", True),
    ("atl1", "Atlanta 1", True),
]
REGION_FEATURES = ["backups", "ipv6", "metadata", "install_agent", "storage", "image_transfer"]

# slug, memory MB, vcpus, disk GB, transfer TB, $/month, description, regions (None: every available one)
SIZES: list[tuple[str, int, int, int, float, float, str, tuple[str, ...] | None]] = [
    ("s-1vcpu-512mb-10gb", 512, 1, 10, 0.5, 4.0, "Basic", ("nyc1", "nyc3", "ams3", "fra1", "sfo3", "sgp1")),
    ("s-1vcpu-1gb", 1024, 1, 25, 1.0, 6.0, "Basic", None),
    ("s-1vcpu-1gb-amd", 1024, 1, 25, 1.0, 7.0, "Basic AMD", None),
    ("s-1vcpu-1gb-intel", 1024, 1, 25, 1.0, 7.0, "Basic Intel", None),
    ("s-1vcpu-2gb", 2048, 1, 50, 2.0, 12.0, "Basic", None),
    ("s-1vcpu-2gb-amd", 2048, 1, 50, 2.0, 14.0, "Basic AMD", None),
    ("s-2vcpu-2gb", 2048, 2, 60, 3.0, 18.0, "Basic", None),
    ("s-2vcpu-2gb-amd", 2048, 2, 60, 3.0, 21.0, "Basic AMD", None),
    ("s-2vcpu-4gb", 4096, 2, 80, 4.0, 24.0, "Basic", None),
    ("s-2vcpu-4gb-amd", 4096, 2, 80, 4.0, 28.0, "Basic AMD", None),
    ("s-2vcpu-4gb-intel", 4096, 2, 80, 4.0, 28.0, "Basic Intel", None),
    ("s-4vcpu-8gb", 8192, 4, 160, 5.0, 48.0, "Basic", None),
    ("s-4vcpu-8gb-amd", 8192, 4, 160, 5.0, 56.0, "Basic AMD", None),
    ("s-8vcpu-16gb", 16384, 8, 320, 6.0, 96.0, "Basic", None),
    ("c-2", 4096, 2, 25, 4.0, 42.0, "CPU-Optimized", None),
    ("c-4", 8192, 4, 50, 5.0, 84.0, "CPU-Optimized", None),
    ("g-2vcpu-8gb", 8192, 2, 25, 4.0, 63.0, "General Purpose", None),
    ("g-4vcpu-16gb", 16384, 4, 50, 5.0, 126.0, "General Purpose", None),
    ("m-2vcpu-16gb", 16384, 2, 50, 4.0, 84.0, "Memory-Optimized", ("nyc1", "nyc3", "ams3", "fra1", "lon1")),
    ("so-2vcpu-16gb", 16384, 2, 300, 4.0, 131.0, "Storage-Optimized", ("nyc3", "fra1", "sfo3")),
    ("gd-2vcpu-8gb", 8192, 2, 50, 4.0, 68.0, "General Purpose", ("nyc3",)),
    ("s-1vcpu-3gb", 3072, 1, 60, 3.0, 15.0, "Basic (retired)", ()),  # available: false
]

# slug, distribution (one of the description's enum), name, kind (distribution / application), min disk
IMAGES: list[tuple[str, str, str, str, int]] = [
    ("ubuntu-24-04-x64", "Ubuntu", "24.04 (LTS) x64", "distribution", 7),
    ("ubuntu-24-10-x64", "Ubuntu", "24.10 x64", "distribution", 7),
    ("ubuntu-22-04-x64", "Ubuntu", "22.04 (LTS) x64", "distribution", 7),
    ("ubuntu-20-04-x64", "Ubuntu", "20.04 (LTS) x64", "distribution", 7),
    ("debian-12-x64", "Debian", "12 x64", "distribution", 7),
    ("debian-11-x64", "Debian", "11 x64", "distribution", 7),
    ("fedora-41-x64", "Fedora", "41 x64", "distribution", 7),
    ("fedora-40-x64", "Fedora", "40 x64", "distribution", 7),
    ("centos-stream-9-x64", "CentOS", "Stream 9 x64", "distribution", 10),
    ("rockylinux-9-x64", "Rocky Linux", "9 x64", "distribution", 7),
    ("rockylinux-8-x64", "Rocky Linux", "8 x64", "distribution", 7),
    ("docker-20-04", "Ubuntu", "Docker on Ubuntu 22.04", "application", 25),
    ("coolify", "Ubuntu", "Coolify on Ubuntu 24.04", "application", 25),
    ("lamp-20-04", "Ubuntu", "LAMP on Ubuntu 22.04", "application", 25),
    ("wordpress-20-04", "Ubuntu", "WordPress on Ubuntu 22.04", "application", 25),
    ("nodejs-20-04", "Ubuntu", "NodeJS on Ubuntu 22.04", "application", 25),
    ("mongodb-7-0", "Ubuntu", "MongoDB 7.0 on Ubuntu 22.04", "application", 25),
    ("postgresql", "Ubuntu", "PostgreSQL on Ubuntu 22.04", "application", 25),
    ("redis", "Ubuntu", "Redis on Ubuntu 22.04", "application", 25),
    ("gitlab", "Ubuntu", "GitLab on Ubuntu 22.04", "application", 50),
]

# What GET /v2/images?type= filters on (the API's own notion; the image objects do not carry it)
IMAGE_KINDS: dict[str, str] = {slug: kind for slug, _, _, kind, _ in IMAGES}

# Scopes the spec names for each operation (security: bearer_auth). Legacy "read" grants every *:read.
SCOPES: dict[tuple[str, str], str] = {
    ("GET", "/v2/account"): "account:read",
    ("GET", "/v2/account/keys"): "ssh_key:read",
    ("POST", "/v2/account/keys"): "ssh_key:create",
    ("GET", "/v2/account/keys/{key}"): "ssh_key:read",
    ("PUT", "/v2/account/keys/{key}"): "ssh_key:update",
    ("DELETE", "/v2/account/keys/{key}"): "ssh_key:delete",
    ("GET", "/v2/actions/{action_id:int}"): "actions:read",
    ("GET", "/v2/droplets"): "droplet:read",
    ("POST", "/v2/droplets"): "droplet:create",
    ("DELETE", "/v2/droplets"): "droplet:delete",
    ("GET", "/v2/droplets/{droplet_id:int}"): "droplet:read",
    ("DELETE", "/v2/droplets/{droplet_id:int}"): "droplet:delete",
    ("GET", "/v2/droplets/{droplet_id:int}/actions"): "droplet:read",
    ("GET", "/v2/droplets/{droplet_id:int}/actions/{action_id:int}"): "droplet:read",
    ("GET", "/v2/regions"): "regions:read",
    ("GET", "/v2/sizes"): "sizes:read",
    ("GET", "/v2/images"): "image:read",
    ("GET", "/v2/firewalls"): "firewall:read",
    ("POST", "/v2/firewalls"): "firewall:create",
    ("GET", "/v2/firewalls/{firewall_id}"): "firewall:read",
    ("PUT", "/v2/firewalls/{firewall_id}"): "firewall:update",
    ("DELETE", "/v2/firewalls/{firewall_id}"): "firewall:delete",
    ("POST", "/v2/firewalls/{firewall_id}/droplets"): "firewall:update",
    ("DELETE", "/v2/firewalls/{firewall_id}/droplets"): "firewall:update",
    ("POST", "/v2/firewalls/{firewall_id}/tags"): "firewall:update",
    ("DELETE", "/v2/firewalls/{firewall_id}/tags"): "firewall:update",
    ("POST", "/v2/firewalls/{firewall_id}/rules"): "firewall:update",
    ("DELETE", "/v2/firewalls/{firewall_id}/rules"): "firewall:update",
    ("GET", "/v2/tags"): "tag:read",
    ("POST", "/v2/tags"): "tag:create",
    ("GET", "/v2/tags/{tag_id}"): "tag:read",
    ("DELETE", "/v2/tags/{tag_id}"): "tag:delete",
    **OPERATION_SCOPES,  # uptime checks and alert policies (the operations: monitoring, teardown)
}

DROPLET_NAME = re.compile(r"^[a-zA-Z0-9]?[a-z0-9A-Z.\-]*[a-z0-9A-Z]$")
FIREWALL_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9\.-]+$")
TAG_NAME = re.compile(r"^[a-zA-Z0-9_\-\:]+$")


def now_iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------- droplet backends


class DropletBackend(Protocol):
    def start(self, name: str, public_keys: Sequence[str]) -> tuple[str, int]: ...

    def stop(self, name: str) -> None: ...


@dataclass
class FunctionBackend:
    """A backend made of two functions: ``start(name[, public_keys=...]) -> (host, port)``, ``stop(name)``."""

    start_fn: Callable[..., tuple[str, int]]
    stop_fn: Callable[[str], Any] | None = None

    def start(self, name: str, public_keys: Sequence[str]) -> tuple[str, int]:
        try:
            accepts_keys = "public_keys" in inspect.signature(self.start_fn).parameters
        except (TypeError, ValueError):
            accepts_keys = False
        if accepts_keys:
            return self.start_fn(name, public_keys=list(public_keys))
        return self.start_fn(name)

    def stop(self, name: str) -> None:
        if self.stop_fn is not None:
            self.stop_fn(name)


def as_backend(backend: DropletBackend | Callable[..., tuple[str, int]] | None) -> DropletBackend | None:
    if backend is None or hasattr(backend, "start"):
        return backend  # type: ignore[return-value]
    return FunctionBackend(backend)


def container_backend() -> DropletBackend:
    """The real droplet containers of ``helpers.rehearse.droplet`` (an sshd container per droplet)."""
    try:
        module = importlib.import_module("helpers.rehearse.droplet")
    except ModuleNotFoundError as exc:
        raise RuntimeError(
            "the container droplet backend needs helpers/rehearse/droplet.py (start_droplet/stop_droplet), "
            f"which is not importable here ({exc}); run the stand-in with --droplet-backend none"
        ) from exc
    return FunctionBackend(module.start_droplet, getattr(module, "stop_droplet", None))


# --------------------------------------------------------------------------- rate limits


@dataclass
class RateLimits:
    per_hour: int = 5000
    per_minute: int = 250
    keys_list_per_minute: int = 10  # GET /v2/account/keys: 10 per 60 s


@dataclass
class _Window:
    hour: collections.deque[float] = field(default_factory=collections.deque)
    minute: collections.deque[float] = field(default_factory=collections.deque)
    keys: collections.deque[float] = field(default_factory=collections.deque)


# --------------------------------------------------------------------------- the stand-in


class DigitalOceanStandIn(DigitalOceanOperations, StandIn):
    """See the module docstring. ``tokens`` maps a token to its scopes (``None``: full access)."""

    name = "digitalocean"

    def __init__(
        self,
        tokens: Mapping[str, Iterable[str] | None] | Sequence[str] = (),
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        active_after_polls: int = 2,
        active_after_seconds: float = 0.0,
        firewall_after_polls: int = 1,
        droplet_limit: int = 10,
        email: str = "rehearsal@example.invalid",
        email_verified: bool = True,
        account_status: str = "active",
        rate_limits: RateLimits | None = None,
        droplet_backend: DropletBackend | Callable[..., tuple[str, int]] | None = None,
        clock: Callable[[], float] = time.time,
    ):
        scopes = dict(tokens) if isinstance(tokens, Mapping) else dict.fromkeys(tokens)
        super().__init__(tokens=scopes, host=host, port=port)
        self.scopes: dict[str, frozenset[str] | None] = {
            t: (None if s is None else frozenset(s)) for t, s in scopes.items()
        }
        self.active_after_polls = active_after_polls
        self.active_after_seconds = active_after_seconds
        self.firewall_after_polls = firewall_after_polls
        self.rate_limits = rate_limits or RateLimits()
        self.backend = as_backend(droplet_backend)
        self.clock = clock
        self.account: dict[str, Any] = {
            "droplet_limit": droplet_limit,
            "floating_ip_limit": 3,
            "email": email,
            "name": "Rehearsal",
            "uuid": uuid.uuid4().hex,
            "email_verified": email_verified,
            "status": account_status,
            "status_message": "",
        }
        self.ssh_keys: dict[int, dict[str, Any]] = {}
        self.droplets: dict[int, dict[str, Any]] = {}
        self.firewalls: dict[str, dict[str, Any]] = {}
        self.tags: dict[str, dict[str, Any]] = {}  # canonical name -> {"name": ...}
        self.actions: dict[int, dict[str, Any]] = {}
        self._droplet_meta: dict[int, dict[str, Any]] = {}
        self._firewall_polls: dict[str, int] = {}
        self._windows: dict[str, _Window] = collections.defaultdict(_Window)
        self._ids = itertools.count(_seed_id())
        self._ips = itertools.count(10)
        self._backend_threads: list[threading.Thread] = []
        self.regions, self.sizes, self.images = _catalogue()
        self._init_operations()
        self._register()

    # ---------------------------------------------------------------- vendor shapes

    def error_body(self, status: int, message: str, code: str | None, request: Request) -> Any:
        default = {
            400: "bad_request",
            401: "unauthorized",
            403: "forbidden",
            404: "not_found",
            405: "not_found",
            422: "unprocessable_entity",
            429: "too_many_requests",
        }
        return {
            "id": code or default.get(status, "server_error"),
            "message": message,
            "request_id": request.request_id,
        }

    def authenticate(self, request: Request) -> None:
        token = self.bearer_token(request)
        scopes = self.scopes.get(token)
        needed = SCOPES.get((request.method, request.route))
        if scopes is None or needed is None:
            return
        legacy_read = "read" in scopes and needed.endswith(":read")
        if needed not in scopes and not legacy_read and "write" not in scopes:
            raise HTTPError(403, "You do not have access for the attempted action.", "forbidden")

    def _token(self, request: Request) -> str:
        value = request.header("Authorization") or ""
        return value.partition(" ")[2].strip()

    def before(self, request: Request) -> None:
        token = self._token(request)
        window = self._windows[token]
        now = self.clock()
        limits = self.rate_limits
        with self.lock:
            for dq, span in ((window.hour, HOUR), (window.minute, MINUTE), (window.keys, MINUTE)):
                while dq and dq[0] <= now - span:
                    dq.popleft()
            keys_list = request.method == "GET" and request.route == "/v2/account/keys"
            retry: float | None = None
            if len(window.hour) >= limits.per_hour:
                retry = window.hour[0] + HOUR - now
            elif len(window.minute) >= limits.per_minute:
                retry = window.minute[0] + MINUTE - now
            elif keys_list and len(window.keys) >= limits.keys_list_per_minute:
                retry = window.keys[0] + MINUTE - now
            if retry is not None:
                raise HTTPError(
                    429,
                    "API Rate limit exceeded.",
                    "too_many_requests",
                    headers={"retry-after": str(max(1, int(retry + 0.999)))},
                )
            window.hour.append(now)
            window.minute.append(now)
            if keys_list:
                window.keys.append(now)

    def decorate(self, request: Request, response: Response) -> None:
        window = self._windows.get(self._token(request)) or _Window()
        now = self.clock()
        with self.lock:
            used = sum(1 for t in window.hour if t > now - HOUR)
            oldest = window.hour[0] if window.hour else now
        remaining = max(0, self.rate_limits.per_hour - used)
        if response.status == 429:
            remaining = 0
        response.headers.setdefault("ratelimit-limit", str(self.rate_limits.per_hour))
        response.headers.setdefault("ratelimit-remaining", str(remaining))
        response.headers.setdefault("ratelimit-reset", str(int(oldest + HOUR)))
        response.headers.setdefault("x-request-id", request.request_id)

    # ---------------------------------------------------------------- routes

    def _register(self) -> None:
        r = self.add_route
        r("GET", "/v2/account", self._get_account)
        r("GET", "/v2/account/keys", self._list_keys)
        r("POST", "/v2/account/keys", self._create_key)
        r("GET", "/v2/account/keys/{key}", self._get_key)
        r("PUT", "/v2/account/keys/{key}", self._update_key)
        r("DELETE", "/v2/account/keys/{key}", self._delete_key)
        r("GET", "/v2/actions/{action_id:int}", self._get_action)
        r("GET", "/v2/droplets", self._list_droplets)
        r("POST", "/v2/droplets", self._create_droplets)
        r("DELETE", "/v2/droplets", self._delete_droplets_by_tag)
        r("GET", "/v2/droplets/{droplet_id:int}", self._get_droplet)
        r("DELETE", "/v2/droplets/{droplet_id:int}", self._delete_droplet)
        r("GET", "/v2/droplets/{droplet_id:int}/actions", self._list_droplet_actions)
        r("GET", "/v2/droplets/{droplet_id:int}/actions/{action_id:int}", self._get_droplet_action)
        r("GET", "/v2/regions", lambda q: self._page(q, "regions", self.regions))
        r("GET", "/v2/sizes", lambda q: self._page(q, "sizes", self.sizes))
        r("GET", "/v2/images", self._list_images)
        r("GET", "/v2/firewalls", self._list_firewalls)
        r("POST", "/v2/firewalls", self._create_firewall)
        r("GET", "/v2/firewalls/{firewall_id}", self._get_firewall)
        r("PUT", "/v2/firewalls/{firewall_id}", self._update_firewall)
        r("DELETE", "/v2/firewalls/{firewall_id}", self._delete_firewall)
        for sub in ("droplets", "tags", "rules"):
            r("POST", f"/v2/firewalls/{{firewall_id}}/{sub}", self._firewall_add)
            r("DELETE", f"/v2/firewalls/{{firewall_id}}/{sub}", self._firewall_remove)
        r("GET", "/v2/tags", self._list_tags)
        r("POST", "/v2/tags", self._create_tag)
        r("GET", "/v2/tags/{tag_id}", self._get_tag)
        r("DELETE", "/v2/tags/{tag_id}", self._delete_tag)
        self._register_operations()

    # ---------------------------------------------------------------- helpers

    def _body(self, request: Request) -> dict[str, Any]:
        try:
            body = request.json()
        except ValueError:
            raise HTTPError(400, "error parsing request body", "bad_request") from None
        if not isinstance(body, dict):
            raise HTTPError(400, "error parsing request body: a JSON object is expected", "bad_request")
        return body

    def _page(self, request: Request, key: str, items: Sequence[Any]) -> Response:
        per_page = int_arg(request, "per_page", 20, 1, 200)
        page = int_arg(request, "page", 1, 1)
        chunk, pages = iter_pages(items, page, per_page)
        query = {k: v for k, v in request.query.items() if k not in ("page", "per_page")}

        def link(n: int) -> str:
            return request.url_for(request.path, {**query, "page": n, "per_page": per_page})

        links: dict[str, str] = {}
        if page > 1:
            links["first"] = link(1)
            links["prev"] = link(min(page - 1, pages))
        if page < pages:
            links["next"] = link(page + 1)
            links["last"] = link(pages)
        body = {
            key: copy.deepcopy(chunk),
            "links": {"pages": links} if links else {},
            "meta": {"total": len(items)},
        }
        return json_response(body)

    def _new_id(self) -> int:
        return next(self._ids)

    def _canonical_tag(self, name: str) -> str | None:
        for canonical in self.tags:
            if canonical.lower() == name.lower():
                return canonical
        return None

    def _ensure_tag(self, name: str) -> str:
        canonical = self._canonical_tag(name)
        if canonical is None:
            self.tags[name] = {"name": name}
            canonical = name
        return canonical

    # ---------------------------------------------------------------- account and keys

    def _get_account(self, request: Request) -> Response:
        return json_response({"account": dict(self.account)})

    def _list_keys(self, request: Request) -> Response:
        return self._page(request, "ssh_keys", [self.ssh_keys[k] for k in sorted(self.ssh_keys)])

    def _find_key(self, identifier: str) -> dict[str, Any]:
        for key in self.ssh_keys.values():
            if str(key["id"]) == identifier or key["fingerprint"] == identifier:
                return key
        raise HTTPError(404, "The resource you requested could not be found.", "not_found")

    def _get_key(self, request: Request) -> Response:
        return json_response({"ssh_key": dict(self._find_key(request.params["key"]))})

    def _create_key(self, request: Request) -> Response:
        body = self._body(request)
        name, public_key = body.get("name"), body.get("public_key")
        if not isinstance(name, str) or not name.strip():
            raise HTTPError(
                422, "name is required: a human-readable name for the key", "unprocessable_entity"
            )
        if not isinstance(public_key, str) or not public_key.strip():
            raise HTTPError(422, "public_key is required: the whole public key line", "unprocessable_entity")
        try:
            fingerprint = ssh_fingerprint(public_key)
        except ValueError as exc:
            raise HTTPError(422, f"Key invalid: {exc}", "unprocessable_entity") from None
        if any(k["fingerprint"] == fingerprint for k in self.ssh_keys.values()):
            raise HTTPError(422, "SSH Key is already in use on your account", "unprocessable_entity")
        key = {
            "id": self._new_id(),
            "fingerprint": fingerprint,
            "public_key": public_key.strip(),
            "name": name,
        }
        self.ssh_keys[key["id"]] = key
        return json_response({"ssh_key": dict(key)}, 201)

    def _update_key(self, request: Request) -> Response:
        key = self._find_key(request.params["key"])
        body = self._body(request)
        if "name" in body:
            if not isinstance(body["name"], str) or not body["name"].strip():
                raise HTTPError(422, "name must be a non-empty string", "unprocessable_entity")
            key["name"] = body["name"]
        return json_response({"ssh_key": dict(key)})

    def _delete_key(self, request: Request) -> Response:
        key = self._find_key(request.params["key"])
        del self.ssh_keys[key["id"]]
        return empty_response()

    # ---------------------------------------------------------------- actions

    def _new_action(self, kind: str, droplet: dict[str, Any]) -> dict[str, Any]:
        action = {
            "id": self._new_id(),
            "status": "in-progress",
            "type": kind,
            "started_at": now_iso(self.clock()),
            "completed_at": None,
            "resource_id": droplet["id"],
            "resource_type": "droplet",
            "region": copy.deepcopy(droplet["region"]),
            "region_slug": droplet["region"]["slug"],
        }
        self.actions[action["id"]] = action
        return action

    def _get_action(self, request: Request) -> Response:
        action = self.actions.get(request.params["action_id"])
        if action is None:
            raise HTTPError(404, "The resource you requested could not be found.", "not_found")
        if action["resource_id"] in self.droplets:
            self._advance(self.droplets[action["resource_id"]], poll=False)
        return json_response({"action": dict(action)})

    # ---------------------------------------------------------------- droplets

    def _droplet(self, droplet_id: int) -> dict[str, Any]:
        droplet = self.droplets.get(droplet_id)
        if droplet is None:
            raise HTTPError(404, "The resource you requested could not be found.", "not_found")
        return droplet

    def _advance(self, droplet: dict[str, Any], poll: bool = True) -> None:
        """Move a droplet from ``new`` to ``active`` once its time, polls and backend allow it."""
        meta = self._droplet_meta[droplet["id"]]
        if poll:
            meta["polls"] += 1
        if droplet["status"] != "new":
            return
        backend = meta.get("backend")
        if backend is not None and backend["state"] == "failed":
            self.actions[meta["action_id"]].update(status="errored", completed_at=now_iso(self.clock()))
            return
        ready = (
            meta["polls"] > self.active_after_polls
            and self.clock() >= meta["created"] + self.active_after_seconds
            and (backend is None or backend["state"] == "ready")
        )
        if not ready:
            return
        if backend is not None:
            public_ip = backend["host"]
            droplet["x_rehearsal"] = {"ssh_host": backend["host"], "ssh_port": backend["port"]}
        else:
            public_ip = f"203.0.113.{next(self._ips) % 250 + 2}"
        private_ip = f"10.110.0.{droplet['id'] % 250 + 2}"
        droplet["networks"]["v4"] = [
            {
                "ip_address": public_ip,
                "netmask": "255.255.240.0",
                "gateway": public_ip.rsplit(".", 1)[0] + ".1",
                "type": "public",
            },
            {"ip_address": private_ip, "netmask": "255.255.240.0", "gateway": "", "type": "private"},
        ]
        droplet["status"] = "active"
        droplet["locked"] = False
        self.actions[meta["action_id"]].update(status="completed", completed_at=now_iso(self.clock()))

    def _view(self, droplet: dict[str, Any], poll: bool = True) -> dict[str, Any]:
        self._advance(droplet, poll)
        return copy.deepcopy(droplet)

    def _list_droplets(self, request: Request) -> Response:
        tag_name, name, kind = request.arg("tag_name"), request.arg("name"), request.arg("type")
        if tag_name is not None and (name is not None or kind is not None):
            raise HTTPError(400, "tag_name can not be combined with name or type", "bad_request")
        if kind not in (None, "droplets", "gpus"):
            raise HTTPError(400, f"type must be 'droplets' or 'gpus', got {kind!r}", "bad_request")
        found = [self.droplets[i] for i in sorted(self.droplets)]
        if tag_name is not None:
            found = [d for d in found if tag_name in d["tags"]]
        if name is not None:
            found = [d for d in found if d["name"].lower() == name.lower()]
        if kind == "gpus":
            found = []
        return self._page(request, "droplets", [self._view(d) for d in found])

    def _get_droplet(self, request: Request) -> Response:
        return json_response({"droplet": self._view(self._droplet(request.params["droplet_id"]))})

    def _validate_droplet(self, body: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
        """Check a create request like the API does; return (names, resolved catalogue entries)."""

        def fail(message: str) -> HTTPError:
            return HTTPError(422, message, "unprocessable_entity")

        if "names" in body:
            names = body["names"]
            if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
                raise fail("names must be a non-empty array of droplet names")
            if len(names) > 10:
                raise fail("names: up to 10 droplets can be created at once")
        elif "name" in body:
            names = [body["name"]]
        else:
            raise fail("name is required: the droplet's human-readable name (and hostname)")
        for n in names:
            if not isinstance(n, str) or len(n) > 255 or not DROPLET_NAME.match(n):
                raise fail(f"name {n!r} is invalid: use letters, digits, '.' and '-' (up to 255 characters)")
        for key in ("size", "image"):
            if key not in body:
                raise fail(f"{key} is required")
        for key in (
            "backups",
            "ipv6",
            "monitoring",
            "private_networking",
            "with_droplet_agent",
            "public_networking",
        ):
            if key in body and not isinstance(body[key], bool):
                raise fail(f"{key} must be a boolean (true or false), got {body[key]!r}")
        region = None
        if body.get("region") is not None:
            if not isinstance(body["region"], str):
                raise fail("region must be a region slug string such as 'fra1'")
            region = next((r for r in self.regions if r["slug"] == body["region"]), None)
            if region is None:
                prefix = [r for r in self.regions if r["slug"].startswith(body["region"]) and r["available"]]
                region = prefix[0] if prefix and len(body["region"]) == 3 else None
            if region is None:
                raise fail(f"You specified an invalid region for Droplet creation: {body['region']!r}.")
            if not region["available"]:
                raise fail(f"region {region['slug']} is not available for new droplets.")
        else:
            region = next(r for r in self.regions if r["available"])
        if not isinstance(body["size"], str):
            raise fail("size must be a size slug string such as 's-2vcpu-4gb'")
        size = next((s for s in self.sizes if s["slug"] == body["size"]), None)
        if size is None or not size["available"]:
            raise fail(f"You specified an invalid size for Droplet creation: {body['size']!r}.")
        if region["slug"] not in size["regions"]:
            raise fail(
                f"Size is not available in this region: size {size['slug']} in region {region['slug']}."
            )
        image_ref = body["image"]
        if isinstance(image_ref, bool) or not isinstance(image_ref, str | int):
            raise fail("image must be an image slug (string) or id (integer)")
        image = next((i for i in self.images if image_ref in (i["slug"], i["id"])), None)
        if image is None:
            raise fail(f"You specified an invalid image for Droplet creation: {image_ref!r}.")
        if region["slug"] not in image["regions"]:
            raise fail(f"image {image['slug']} is not available in region {region['slug']}.")
        if image.get("min_disk_size") and size["disk"] < image["min_disk_size"]:
            raise fail(f"size {size['slug']} has a smaller disk than image {image['slug']} needs.")
        keys = body.get("ssh_keys") or []
        if not isinstance(keys, list):
            raise fail("ssh_keys must be an array of key ids or fingerprints")
        resolved_keys = []
        for ref in keys:
            if isinstance(ref, bool) or not isinstance(ref, str | int):
                raise fail(f"ssh_keys: {ref!r} is neither a key id nor a fingerprint")
            key = next(
                (k for k in self.ssh_keys.values() if str(ref) in (str(k["id"]), k["fingerprint"])), None
            )
            if key is None:
                raise fail(
                    f"ssh_keys: {ref!r} is not an SSH key of this account; add it with POST /v2/account/keys"
                )
            resolved_keys.append(key)
        tags = body.get("tags") or []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise fail("tags must be an array of tag names (strings)")
        for t in tags:
            if not TAG_NAME.match(t) or len(t) > 255:
                raise fail(f"tags: {t!r} is not a valid tag name (letters, digits, ':', '-' and '_' only)")
        if "user_data" in body and (not isinstance(body["user_data"], str) or len(body["user_data"]) > 65536):
            raise fail("user_data must be plain text of at most 64 KiB")
        if len(self.droplets) + len(names) > self.account["droplet_limit"]:
            raise fail(
                f"creating this/these droplet(s) will exceed your droplet limit "
                f"({self.account['droplet_limit']}); ask support to raise it or delete a droplet"
            )
        return names, {"region": region, "size": size, "image": image, "keys": resolved_keys, "tags": tags}

    def _create_droplets(self, request: Request) -> Response:
        body = self._body(request)
        names, ctx = self._validate_droplet(body)
        created, actions = [], []
        for name in names:
            droplet_id = self._new_id()
            tags = [self._ensure_tag(t) for t in ctx["tags"]]
            features = [
                f
                for f, on in (
                    ("backups", body.get("backups")),
                    ("monitoring", body.get("monitoring")),
                    ("ipv6", body.get("ipv6")),
                )
                if on
            ]
            droplet = {
                "id": droplet_id,
                "name": name,
                "memory": ctx["size"]["memory"],
                "vcpus": ctx["size"]["vcpus"],
                "disk": ctx["size"]["disk"],
                "disk_info": [{"type": "local", "size": {"amount": ctx["size"]["disk"], "unit": "gib"}}],
                "locked": True,
                "status": "new",
                "kernel": None,
                "created_at": now_iso(self.clock()),
                "features": features,
                "backup_ids": [],
                "next_backup_window": (
                    {"start": now_iso(self.clock() + 86400), "end": now_iso(self.clock() + 93600)}
                    if body.get("backups")
                    else None
                ),
                "snapshot_ids": [],
                "image": copy.deepcopy(ctx["image"]),
                "volume_ids": [],
                "size": copy.deepcopy(ctx["size"]),
                "size_slug": ctx["size"]["slug"],
                "networks": {"v4": [], "v6": []},
                "region": copy.deepcopy(ctx["region"]),
                "tags": tags,
                "vpc_uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, ctx["region"]["slug"])),
            }
            self.droplets[droplet_id] = droplet
            action = self._new_action("create", droplet)
            meta: dict[str, Any] = {"polls": 0, "created": self.clock(), "action_id": action["id"]}
            self._droplet_meta[droplet_id] = meta
            if self.backend is not None:
                meta["backend"] = {"state": "starting"}
                self._start_backend(name, meta["backend"], [k["public_key"] for k in ctx["keys"]])
            created.append(copy.deepcopy(droplet))
            actions.append(
                {"id": action["id"], "rel": "create", "href": request.url_for(f"/v2/actions/{action['id']}")}
            )
        if "names" in body:
            return json_response({"droplets": created, "links": {"actions": actions}}, 202)
        return json_response({"droplet": created[0], "links": {"actions": actions}}, 202)

    def _start_backend(self, name: str, state: dict[str, Any], public_keys: list[str]) -> None:
        backend = self.backend
        assert backend is not None

        def run() -> None:
            try:
                host, port = backend.start(name, public_keys)
            except Exception as exc:  # reported through the create action ("errored")
                with self.lock:
                    state.update(state="failed", error=f"{type(exc).__name__}: {exc}")
                print(f"digitalocean stand-in: droplet backend failed for {name}: {exc}", file=sys.stderr)
                return
            with self.lock:
                cancelled = state.get("cancelled", False)
                state.update(state="ready", host=host, port=int(port))
            if cancelled:  # the droplet was deleted while its container started
                backend.stop(name)

        thread = threading.Thread(target=run, name=f"droplet-backend:{name}", daemon=True)
        self._backend_threads.append(thread)
        thread.start()

    def _destroy(self, droplet: dict[str, Any]) -> None:
        del self.droplets[droplet["id"]]
        meta = self._droplet_meta.pop(droplet["id"], {})
        for fw in self.firewalls.values():
            if droplet["id"] in fw["droplet_ids"]:
                fw["droplet_ids"].remove(droplet["id"])
        if meta.get("backend", {}).get("state") == "starting":
            meta["backend"]["cancelled"] = True  # its thread stops the container once it has started
        elif self.backend is not None and meta.get("backend", {}).get("state") == "ready":
            try:
                self.backend.stop(droplet["name"])
            except Exception as exc:  # the droplet is gone from the API either way
                print(f"digitalocean stand-in: stopping {droplet['name']} failed: {exc}", file=sys.stderr)

    def _delete_droplet(self, request: Request) -> Response:
        self._destroy(self._droplet(request.params["droplet_id"]))
        return empty_response()

    def _delete_droplets_by_tag(self, request: Request) -> Response:
        tag = request.arg("tag_name")
        if not tag:
            raise HTTPError(400, "tag_name is required to delete droplets by tag", "bad_request")
        for droplet in [d for d in self.droplets.values() if tag in d["tags"]]:
            self._destroy(droplet)
        return empty_response()

    def _list_droplet_actions(self, request: Request) -> Response:
        droplet = self._droplet(request.params["droplet_id"])
        self._advance(droplet, poll=False)
        found = [a for a in self.actions.values() if a["resource_id"] == droplet["id"]]
        return self._page(request, "actions", found)

    def _get_droplet_action(self, request: Request) -> Response:
        droplet = self._droplet(request.params["droplet_id"])
        self._advance(droplet, poll=False)
        action = self.actions.get(request.params["action_id"])
        if action is None or action["resource_id"] != droplet["id"]:
            raise HTTPError(404, "The resource you requested could not be found.", "not_found")
        return json_response({"action": dict(action)})

    # ---------------------------------------------------------------- images

    def _list_images(self, request: Request) -> Response:
        kind = request.arg("type")
        if kind not in (None, "distribution", "application"):
            raise HTTPError(400, f"type must be 'distribution' or 'application', got {kind!r}", "bad_request")
        found = [i for i in self.images if kind is None or IMAGE_KINDS[i["slug"]] == kind]
        if request.arg("private") in ("true", "1"):
            found = [i for i in found if not i["public"]]
        if request.arg("tag_name"):
            found = [i for i in found if request.arg("tag_name") in i["tags"]]
        return self._page(request, "images", found)

    # ---------------------------------------------------------------- firewalls

    def _validate_firewall(self, body: dict[str, Any]) -> dict[str, Any]:
        def fail(message: str) -> HTTPError:
            return HTTPError(400, message, "bad_request")

        name = body.get("name")
        if not isinstance(name, str) or not FIREWALL_NAME.match(name):
            raise fail(
                "name is required: it must begin with a letter or digit, then letters, digits, '.' or '-'"
            )
        inbound, outbound = body.get("inbound_rules") or [], body.get("outbound_rules") or []
        if not isinstance(inbound, list) or not isinstance(outbound, list):
            raise fail("inbound_rules and outbound_rules must be arrays of rules")
        if not inbound and not outbound:
            raise fail("at least one inbound_rules or outbound_rules entry is required")
        for direction, rules, target in (
            ("inbound_rules", inbound, "sources"),
            ("outbound_rules", outbound, "destinations"),
        ):
            for i, rule in enumerate(rules):
                where = f"{direction}[{i}]"
                if not isinstance(rule, dict):
                    raise fail(f"{where} must be an object")
                if rule.get("protocol") not in ("tcp", "udp", "icmp"):
                    raise fail(
                        f"{where}.protocol must be one of tcp, udp, icmp; got {rule.get('protocol')!r}"
                    )
                ports = rule.get("ports", "0" if rule.get("protocol") == "icmp" else None)
                if rule.get("protocol") != "icmp" and not _valid_ports(ports):
                    raise fail(f"{where}.ports must be a string: a port, a range like '8000-9000', or '0'")
                spec = rule.get(target)
                if not isinstance(spec, dict) or not any(
                    spec.get(k)
                    for k in ("addresses", "droplet_ids", "tags", "load_balancer_uids", "kubernetes_ids")
                ):
                    raise fail(f"{where}.{target} is required and must name addresses, droplet_ids or tags")
                for address in spec.get("addresses") or []:
                    try:
                        ipaddress.ip_network(address, strict=False)
                    except (TypeError, ValueError):
                        raise fail(
                            f"{where}.{target}.addresses: {address!r} is not an IP address or CIDR"
                        ) from None
                for tag in spec.get("tags") or []:
                    if self._canonical_tag(tag) is None:
                        raise fail(f"{where}.{target}.tags: tag {tag!r} does not exist; create it first")
        droplet_ids = body.get("droplet_ids") or []
        if not isinstance(droplet_ids, list) or not all(isinstance(i, int) for i in droplet_ids):
            raise fail("droplet_ids must be an array of droplet ids (integers)")
        for droplet_id in droplet_ids:
            if droplet_id not in self.droplets:
                raise fail(f"droplet_ids: droplet {droplet_id} does not exist")
        tags = body.get("tags") or []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise fail("tags must be an array of existing tag names")
        for tag in tags:
            if self._canonical_tag(tag) is None:
                raise fail(f"tags: tag {tag!r} does not exist; create it first (POST /v2/tags)")
        return {
            "name": name,
            "inbound_rules": copy.deepcopy(inbound),
            "outbound_rules": copy.deepcopy(outbound),
            "droplet_ids": list(droplet_ids),
            "tags": [self._canonical_tag(t) for t in tags],
        }

    def _firewall(self, firewall_id: str) -> dict[str, Any]:
        fw = self.firewalls.get(firewall_id)
        if fw is None:
            raise HTTPError(404, "The resource you requested could not be found.", "not_found")
        return fw

    def _firewall_changed(self, fw: dict[str, Any]) -> None:
        affected = set(fw["droplet_ids"]) | {
            d["id"] for d in self.droplets.values() if set(d["tags"]) & set(fw["tags"])
        }
        fw["status"] = "waiting"
        fw["pending_changes"] = [
            {"droplet_id": i, "removing": False, "status": "waiting"} for i in sorted(affected)
        ]
        self._firewall_polls[fw["id"]] = 0

    def _firewall_view(self, fw: dict[str, Any]) -> dict[str, Any]:
        if fw["status"] == "waiting":
            self._firewall_polls[fw["id"]] = self._firewall_polls.get(fw["id"], 0) + 1
            if self._firewall_polls[fw["id"]] > self.firewall_after_polls:
                fw["status"] = "succeeded"
                fw["pending_changes"] = []
        return copy.deepcopy(fw)

    def _list_firewalls(self, request: Request) -> Response:
        return self._page(request, "firewalls", [self._firewall_view(f) for f in self.firewalls.values()])

    def _create_firewall(self, request: Request) -> Response:
        fields = self._validate_firewall(self._body(request))
        fw = {
            "id": str(uuid.uuid4()),
            "status": "waiting",
            "created_at": now_iso(self.clock()),
            "pending_changes": [],
            **fields,
        }
        self.firewalls[fw["id"]] = fw
        self._firewall_changed(fw)
        return json_response({"firewall": copy.deepcopy(fw)}, 202)

    def _get_firewall(self, request: Request) -> Response:
        return json_response({"firewall": self._firewall_view(self._firewall(request.params["firewall_id"]))})

    def _update_firewall(self, request: Request) -> Response:
        fw = self._firewall(request.params["firewall_id"])
        fw.update(self._validate_firewall(self._body(request)))  # a full replacement, as PUT says
        self._firewall_changed(fw)
        return json_response({"firewall": copy.deepcopy(fw)})

    def _delete_firewall(self, request: Request) -> Response:
        del self.firewalls[self._firewall(request.params["firewall_id"])["id"]]
        return empty_response()

    def _firewall_edit(self, request: Request, add: bool) -> Response:
        fw = self._firewall(request.params["firewall_id"])
        body = self._body(request)
        what = request.path.rstrip("/").rsplit("/", 1)[1]
        candidate = copy.deepcopy(fw)
        if what == "droplets":
            ids = body.get("droplet_ids")
            if not isinstance(ids, list) or not ids:
                raise HTTPError(400, "droplet_ids is required: an array of droplet ids", "bad_request")
            candidate["droplet_ids"] = (
                sorted(set(candidate["droplet_ids"]) | set(ids))
                if add
                else [i for i in candidate["droplet_ids"] if i not in ids]
            )
        elif what == "tags":
            tags = body.get("tags")
            if not isinstance(tags, list) or not tags:
                raise HTTPError(400, "tags is required: an array of tag names", "bad_request")
            candidate["tags"] = (
                candidate["tags"] + [t for t in tags if t not in candidate["tags"]]
                if add
                else [t for t in candidate["tags"] if t not in tags]
            )
        else:
            for key in ("inbound_rules", "outbound_rules"):
                rules = body.get(key) or []
                candidate[key] = (
                    candidate[key] + rules if add else [r for r in candidate[key] if r not in rules]
                )
        fw.update(self._validate_firewall(candidate))
        self._firewall_changed(fw)
        return empty_response()

    def _firewall_add(self, request: Request) -> Response:
        return self._firewall_edit(request, add=True)

    def _firewall_remove(self, request: Request) -> Response:
        return self._firewall_edit(request, add=False)

    # ---------------------------------------------------------------- tags

    def _tag_view(self, name: str) -> dict[str, Any]:
        droplets = [d for d in self.droplets.values() if name in d["tags"]]
        last = f"/v2/droplets/{droplets[-1]['id']}" if droplets else None
        empty = {"count": 0}
        resources = {
            "count": len(droplets),
            "droplets": {"count": len(droplets)},
            "images": dict(empty),
            "volumes": dict(empty),
            "volume_snapshots": dict(empty),
            "databases": dict(empty),
        }
        if last:
            resources["last_tagged_uri"] = last
            resources["droplets"]["last_tagged_uri"] = last
        return {"name": name, "resources": resources}

    def _list_tags(self, request: Request) -> Response:
        return self._page(request, "tags", [self._tag_view(t) for t in sorted(self.tags)])

    def _create_tag(self, request: Request) -> Response:
        # this operation documents its own 400 body (error_with_root_causes), not the generic {id, message}
        def bad_request(message: str) -> Response:
            cause = f"rpc error: code = InvalidArgument desc = {message}"
            return json_response({"error": message, "messages": None, "root_causes": [cause]}, 400)

        try:
            body = request.json()
        except (ValueError, UnicodeDecodeError):
            return bad_request("error parsing request body: invalid character in JSON")
        if not isinstance(body, dict):
            return bad_request("error parsing request body: a JSON object is expected")
        name = body.get("name")
        if not isinstance(name, str) or not name or len(name) > 255 or not TAG_NAME.match(name):
            return bad_request(
                f"Error validating resource tag: tag-name {name!r} contains invalid characters"
            )
        return json_response({"tag": self._tag_view(self._ensure_tag(name))}, 201)

    def _get_tag(self, request: Request) -> Response:
        name = request.params["tag_id"]
        if name not in self.tags:  # the API wants the canonical capitalisation in URLs
            raise HTTPError(404, "The resource you requested could not be found.", "not_found")
        return json_response({"tag": self._tag_view(name)})

    def _delete_tag(self, request: Request) -> Response:
        name = request.params["tag_id"]
        if name not in self.tags:
            raise HTTPError(404, "The resource you requested could not be found.", "not_found")
        del self.tags[name]
        for d in self.droplets.values():
            if name in d["tags"]:
                d["tags"].remove(name)
        for fw in self.firewalls.values():
            if name in fw["tags"]:
                fw["tags"].remove(name)
        return empty_response()

    # ---------------------------------------------------------------- lifecycle

    def wait_for_backends(self, timeout: float = 120.0) -> None:
        """Wait until every droplet backend start has finished (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        for thread in list(self._backend_threads):
            thread.join(max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        """Stop every droplet backend this stand-in started (they outlive no stand-in)."""
        if self.backend is None:
            return
        self.wait_for_backends()
        with self.lock:
            droplets = list(self.droplets.values())
        for droplet in droplets:
            with self.lock:
                if droplet["id"] in self.droplets:
                    self._destroy(droplet)


def _valid_ports(ports: Any) -> bool:
    if not isinstance(ports, str):
        return False
    if ports == "0" or ports.lower() == "all":
        return True
    low, _, high = ports.partition("-")
    try:
        values = [int(low)] + ([int(high)] if high else [])
    except ValueError:
        return False
    return all(1 <= v <= 65535 for v in values) and values == sorted(values)


def _seed_id() -> int:
    return 400_000_000 + int(time.time()) % 1_000_000 * 10


def _catalogue() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    available = [slug for slug, _, ok in REGIONS if ok]
    sizes = []
    for slug, memory, vcpus, disk, transfer, monthly, description, regions in SIZES:
        where = available if regions is None else [r for r in regions if r in available]
        sizes.append(
            {
                "slug": slug,
                "memory": memory,
                "vcpus": vcpus,
                "disk": disk,
                "transfer": transfer,
                "price_monthly": monthly,
                "price_hourly": round(monthly / 672, 5),
                "regions": where,
                "available": regions != (),
                "description": description,
                "disk_info": [{"type": "local", "size": {"amount": disk, "unit": "gib"}}],
            }
        )
    regions_out = []
    for slug, name, ok in REGIONS:
        regions_out.append(
            {
                "name": name,
                "slug": slug,
                "features": list(REGION_FEATURES),
                "available": ok,
                "sizes": [s["slug"] for s in sizes if slug in s["regions"] and s["available"]] if ok else [],
            }
        )
    images = []
    for n, (slug, distribution, name, _, min_disk) in enumerate(IMAGES):
        images.append(
            {
                "id": 150_000_000 + n * 1013,
                "name": name,
                "distribution": distribution,
                "slug": slug,
                "public": True,
                "regions": list(available),
                "created_at": "2024-10-01T12:00:00Z",
                "type": "base",
                "min_disk_size": min_disk,
                "size_gigabytes": round(min_disk * 0.35, 2),
                "description": f"{distribution} {name}",
                "tags": [],
                "status": "available",
                "error_message": "",
            }
        )
    return regions_out, sizes, images


# --------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> None:
    parser = cli_parser("A local, stateful DigitalOcean API v2 stand-in (rehearsal of tasks 2.1 and 2.2).")
    parser.add_argument(
        "--active-after-polls",
        type=int,
        default=2,
        help="reads of a new droplet before it is active (default 2)",
    )
    parser.add_argument(
        "--active-after-seconds",
        type=float,
        default=0.0,
        help="seconds after creation before a droplet is active (default 0)",
    )
    parser.add_argument(
        "--firewall-after-polls",
        type=int,
        default=1,
        help="reads of a changed firewall before it has succeeded (default 1)",
    )
    parser.add_argument("--droplet-limit", type=int, default=10, help="the account's droplet limit")
    parser.add_argument(
        "--droplet-backend",
        choices=("none", "container"),
        default="none",
        help="'container': each droplet is a real sshd container (helpers.rehearse.droplet)",
    )
    parser.add_argument("--rate-limit-per-minute", type=int, default=250)
    parser.add_argument("--rate-limit-per-hour", type=int, default=5000)
    args = parser.parse_args(argv)
    token = os.environ.get("DIGITALOCEAN_TOKEN", "")
    if not token:
        parser.error(
            "set DIGITALOCEAN_TOKEN in the environment: the token this stand-in accepts "
            "(kept off the command line, where `ps` would show it)"
        )
    standin = DigitalOceanStandIn(
        [token],
        host=args.host,
        port=args.port,
        active_after_polls=args.active_after_polls,
        active_after_seconds=args.active_after_seconds,
        firewall_after_polls=args.firewall_after_polls,
        droplet_limit=args.droplet_limit,
        rate_limits=RateLimits(per_hour=args.rate_limit_per_hour, per_minute=args.rate_limit_per_minute),
        droplet_backend=container_backend() if args.droplet_backend == "container" else None,
    )
    serve(standin, args.ready_file)


if __name__ == "__main__":
    main()
