"""A local, stateful stand-in for the Coolify v4 API: rehearsal of tasks 2.5 to 2.8 (2.14 to 2.17 extend it).

It follows ``coolify-openapi.yaml`` (coollabsio/coolify, see ``shared/refs/coolify/NOTES.md``) and, where the
spec is vague, the controllers it was generated from:

* base URL ``http://<server>:8000/api/v1``; ``GET /api/health`` and ``/api/v1/health`` answer ``OK`` (text,
  no token); ``GET /version`` answers the version as text (``4.0.0-beta.420``);
* auth: ``Authorization: Bearer <token>``, else 401 ``{"message": "Unauthenticated."}``; every token has
  *abilities* (``root``, ``read``, ``write``, ``deploy``, ``read:sensitive``) and each route needs one, else
  403 ``{"message": "Missing required permissions: write"}``; without ``root`` or ``read:sensitive``,
  passwords and ``internal_db_url`` are left out of answers, as Coolify does;
* the API is off after an install, as on a fresh Coolify: 403 ``{"message": "API is disabled."}`` until
  ``GET|POST /enable`` (a ``write`` token of the root team: all tokens here) or ``--api enabled``;
* JSON bodies: a body that is not JSON answers 400 ``{"message": "Invalid request.", "error": ...}``; unknown
  fields, missing or mistyped ones answer 422 ``{"message": "Validation failed.", "errors": {field: [..]}}``;
* rate limit (Laravel's ``throttle:api``): ``rate_limit_per_minute`` per token, then 429 with ``Retry-After``;
  faults (429, 500, lost responses) are injected with :meth:`StandIn.inject` (see :mod:`.base`);
* resources: the ``localhost`` server Coolify creates on install (with its destination), projects (a new
  project gets a ``production`` environment, as in Coolify), environments, PostgreSQL and Redis databases
  whose status moves ``exited`` → ``starting`` → ``running:healthy`` after a start (or ``instant_deploy``).

``legacy=True`` answers like an older v4 beta (spec of 2024-12): no ``/projects/{uuid}/environments`` routes
(the path falls through to ``/projects/{uuid}/{environment_name_or_uuid}``, as it did), no
``environment_uuid`` requirement. The client must turn that into a clear error, not a crash.

Extending it (applications, their env vars, deployments and the deploy webhook for tasks 2.14 to 2.17):
subclass :class:`CoolifyStandIn` or add to it along the same lines:

* register routes with :meth:`CoolifyStandIn.api` (path under ``/api/v1``, the ability it needs);
* validate bodies with :func:`validate` (Laravel-like rules, Coolify's 422 body) and
  :meth:`CoolifyStandIn.json_body` (the 400 checks);
* find the parents with :meth:`CoolifyStandIn.project_or_404`, :meth:`CoolifyStandIn.environment_for`,
  :meth:`CoolifyStandIn.server_or_404`;
* give a resource a :class:`Lifecycle` for its asynchronous status, and call :meth:`CoolifyStandIn.touch`
  after a change so that ``--state-file`` persists it; keep new collections in :attr:`CoolifyStandIn.store`
  (a dict of dicts keyed by uuid) so that persistence and ``environment_details`` pick them up.

Run it: ``COOLIFY_API_TOKEN=... python -m helpers.rehearse.coolify --port 8000 --api enabled``. Task 2.5's
rehearsal installs exactly this module on the droplet container as ``coolify.service`` (see
``coolify-install.sh`` beside this file). Only the standard library and :mod:`.base` are imported at module
level: the droplet's python3 has nothing else.
"""

from __future__ import annotations

import collections
import copy
import json
import os
import re
import secrets
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helpers.rehearse.base import (
    HTTPError,
    Request,
    Response,
    StandIn,
    cli_parser,
    json_response,
    serve,
)
from helpers.rehearse.coolify_ops import CoolifyOperations

API = "/api/v1"
DEFAULT_VERSION = "4.0.0-beta.420"
LEGACY_VERSION = "4.0.0-beta.380"
ABILITIES: tuple[str, ...] = ("root", "read", "write", "deploy", "read:sensitive")
DEFAULT_ABILITIES: tuple[str, ...] = ("read", "write", "deploy", "read:sensitive")
SENSITIVE_FIELDS = frozenset(
    {
        "internal_db_url",
        "external_db_url",
        "postgres_password",
        "redis_password",
        "dragonfly_password",
        "keydb_password",
        "mongo_initdb_root_password",
        "clickhouse_admin_password",
    }
)
MINUTE = 60.0


_SAVE_LOCK = threading.Lock()  # one writer of a state file at a time (see CoolifyStandIn.save)


def now_iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(ts))


def new_uuid() -> str:
    """Coolify's resource uuids are cuid2-like: 24 lower-case letters and digits."""
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return secrets.choice(alphabet[:26]) + "".join(secrets.choice(alphabet) for _ in range(23))


# --------------------------------------------------------------------------- validation (Laravel-like)


def _attribute(name: str) -> str:
    return name.replace("_", " ")


def _check_rule(name: str, value: Any, rule: str) -> str | None:
    """The error message for ``value`` against one rule, or None when it holds."""
    kind, _, arg = rule.partition(":")
    attr = _attribute(name)
    if kind == "string" and not isinstance(value, str):
        return f"The {attr} field must be a string."
    if kind == "boolean" and not (isinstance(value, bool) or value in (0, 1, "0", "1")):
        return f"The {attr} field must be true or false."
    if kind == "numeric":
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        if not numeric and not (isinstance(value, str) and re.fullmatch(r"-?\d+(\.\d+)?", value)):
            return f"The {attr} field must be a number."
    if kind == "integer" and not (isinstance(value, int) and not isinstance(value, bool)):
        return f"The {attr} field must be an integer."
    if kind == "array" and not isinstance(value, list | dict):
        return f"The {attr} field must be an array."
    if kind == "max" and isinstance(value, str) and len(value) > int(arg):
        return f"The {attr} field must not be greater than {arg} characters."
    if kind == "in" and value not in arg.split(","):
        return f"The selected {attr} is invalid."
    return None


def validate(body: Mapping[str, Any], rules: Mapping[str, str], allowed: Iterable[str] | None = None) -> None:
    """Check ``body`` against Laravel-style ``rules`` (``"string|max:255|required"``); raise Coolify's 422.

    ``allowed``: the fields the endpoint accepts (others: "This field is not allowed."); default the rules'.
    """
    errors: dict[str, list[str]] = collections.defaultdict(list)
    for name, spec in rules.items():
        parts = spec.split("|")
        present = name in body
        value = body.get(name)
        if "required" in parts and (not present or value is None or value == ""):
            errors[name].append("This field is required.")
            continue
        if not present or (value is None and "nullable" in parts):
            continue
        for rule in parts:
            if rule in ("required", "nullable"):
                continue
            message = _check_rule(name, value, rule)
            if message:
                errors[name].append(message)
    for name in body:
        if name not in set(allowed if allowed is not None else rules):
            errors[name].append("This field is not allowed.")
    if errors:
        raise HTTPError(422, "Validation failed.", extra={"errors": dict(errors)})


def truthy(value: Any) -> bool:
    return value in (True, 1, "1", "true")


# --------------------------------------------------------------------------- asynchronous status


@dataclass
class Lifecycle:
    """A resource's container status as Coolify reports it: ``exited`` → ``starting`` → ``running:healthy``.

    The status advances when it is read (``after_polls`` reads and ``after_seconds`` after the start), so a
    client that polls sees every state; applications (issue 6) reuse it with their own ``healthy`` status.
    """

    status: str = "exited"
    started_at: float | None = None
    polls: int = 0
    healthy: str = "running:healthy"

    def start(self, now: float) -> None:
        self.status, self.started_at, self.polls = "starting", now, 0

    def stop(self) -> None:
        self.status, self.started_at, self.polls = "exited", None, 0

    def advance(self, now: float, after_polls: int, after_seconds: float) -> bool:
        """Count one read; True when the status changed."""
        if self.status != "starting":
            return False
        self.polls += 1
        if self.polls >= after_polls and now - (self.started_at or now) >= after_seconds:
            self.status = self.healthy
            return True
        return False

    @property
    def running(self) -> bool:
        return self.status.startswith("running")


# --------------------------------------------------------------------------- database kinds


@dataclass(frozen=True)
class DatabaseKind:
    """One ``POST /databases/<path>`` type: its fields, defaults and connection URL."""

    path: str  # postgresql, redis
    type: str  # standalone-postgresql
    relation: str  # the key in environment details: postgresqls, redis
    default_image: str
    port: int
    rules: Mapping[str, str]
    defaults: Callable[[], dict[str, Any]]
    url: Callable[[Mapping[str, Any], str], str]  # (database, host) -> connection URL


COMMON_RULES: dict[str, str] = {
    "name": "string|max:255",
    "description": "string|nullable",
    "image": "string",
    "project_uuid": "string|required",
    "environment_name": "string|nullable",
    "environment_uuid": "string|nullable",
    "server_uuid": "string|required",
    "destination_uuid": "string",
    "is_public": "boolean",
    "public_port": "numeric|nullable",
    "public_port_timeout": "integer|nullable",
    "limits_memory": "string",
    "limits_memory_swap": "string",
    "limits_memory_swappiness": "numeric",
    "limits_memory_reservation": "string",
    "limits_cpus": "string",
    "limits_cpuset": "string|nullable",
    "limits_cpu_shares": "numeric",
    "instant_deploy": "boolean",
    "tags": "array",
}


def _password() -> str:
    return secrets.token_urlsafe(24)


KINDS: dict[str, DatabaseKind] = {
    "postgresql": DatabaseKind(
        path="postgresql",
        type="standalone-postgresql",
        relation="postgresqls",
        default_image="postgres:16-alpine",
        port=5432,
        rules={
            "postgres_user": "string",
            "postgres_password": "string",
            "postgres_db": "string",
            "postgres_initdb_args": "string",
            "postgres_host_auth_method": "string",
            "postgres_conf": "string",
        },
        defaults=lambda: {
            "postgres_user": "postgres",
            "postgres_password": _password(),
            "postgres_db": "postgres",
        },
        url=lambda d, host: (
            f"postgres://{d['postgres_user']}:{d['postgres_password']}@{host}:5432/{d['postgres_db']}"
        ),
    ),
    "redis": DatabaseKind(
        path="redis",
        type="standalone-redis",
        relation="redis",
        default_image="redis:7.2",
        port=6379,
        rules={"redis_password": "string", "redis_conf": "string"},
        defaults=lambda: {"redis_password": _password(), "redis_username": "default"},
        url=lambda d, host: (
            f"redis://{d.get('redis_username') or 'default'}:{d['redis_password']}@{host}:6379/0"
        ),
    ),
}


# ------------------------------------------------------------------------ applications (tasks 2.14 to 2.17)

# POST /applications/dockerimage: the spec's required fields, the types the runbook sends; every other
# property of the spec is accepted (APP_FIELDS) and anything else answers "This field is not allowed."
APP_RULES: dict[str, str] = {
    "project_uuid": "string|required",
    "server_uuid": "string|required",
    "environment_name": "string|required",
    "environment_uuid": "string|required",
    "docker_registry_image_name": "string|required",
    "docker_registry_image_tag": "string|nullable",
    "ports_exposes": "string|nullable",
    "ports_mappings": "string|nullable",
    "name": "string|max:255|nullable",
    "description": "string|nullable",
    "domains": "string|nullable",
    "destination_uuid": "string",
    "health_check_enabled": "boolean",
    "health_check_path": "string|nullable",
    "health_check_port": "string|nullable",
    "health_check_method": "string",
    "health_check_return_code": "numeric",
    "health_check_interval": "numeric",
    "instant_deploy": "boolean",
    "force_domain_override": "boolean",
    "custom_docker_run_options": "string|nullable",
}
APP_FIELDS: frozenset[str] = frozenset(APP_RULES) | frozenset(
    (
        "noindex_domains",
        "health_check_host",
        "health_check_scheme",
        "health_check_response_text",
        "health_check_timeout",
        "health_check_retries",
        "health_check_start_period",
        "limits_memory",
        "limits_memory_swap",
        "limits_memory_swappiness",
        "limits_memory_reservation",
        "limits_cpus",
        "limits_cpuset",
        "limits_cpu_shares",
        "custom_labels",
        "post_deployment_command",
        "post_deployment_command_container",
        "pre_deployment_command",
        "pre_deployment_command_container",
        "redirect",
        "is_force_https_enabled",
        "stop_grace_period",
        "docker_images_to_keep",
        "is_gzip_enabled",
        "is_stripprefix_enabled",
        "is_consistent_container_name_enabled",
        "custom_internal_name",
        "max_restart_count",
        "connect_to_docker_network",
        "autogenerate_domain",
        "is_container_label_escape_enabled",
        "tags",
    )
)
# PATCH /applications/{uuid}/envs/bulk: what ApplicationsController::create_bulk_envs keeps of an item
# (collect($item)->only([...])) and its rules (customApiValidator); Coolify at the refs' commit 379abb25
BULK_ENV_FIELDS: frozenset[str] = frozenset(
    ("key", "value", "is_preview", "is_literal", "is_multiline", "is_shown_once", "is_runtime",
     "is_buildtime", "comment")
)  # fmt: skip
BULK_ENV_RULES: dict[str, str] = {
    "key": "required|string|max:255",
    "value": "string|nullable",
    "is_preview": "boolean",
    "is_literal": "boolean",
    "is_multiline": "boolean",
    "is_shown_once": "boolean",
    "is_runtime": "boolean",
    "is_buildtime": "boolean",
    "comment": "string|nullable|max:256",
}
ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")  # ValidationPatterns::ENVIRONMENT_VARIABLE_KEY_PATTERN
ENV_RULES: dict[str, str] = {
    "key": "string",
    "value": "string",
    "is_preview": "boolean",
    "is_literal": "boolean",
    "is_multiline": "boolean",
    "is_shown_once": "boolean",
}


# --------------------------------------------------------------------------- the stand-in


@dataclass
class RouteMeta:
    ability: str | None  # None: no token needed
    gated: bool  # answers 403 "API is disabled." while the API is off


class CoolifyStandIn(CoolifyOperations, StandIn):
    """See the module docstring. ``tokens`` maps a token to its abilities (``None``: ``root``)."""

    name = "coolify"
    # what the operations mixin (helpers.rehearse.coolify_ops) uses of this module, without importing it
    check_body = staticmethod(validate)
    make_uuid = staticmethod(new_uuid)
    iso = staticmethod(now_iso)
    # env values are secrets, and the database URLs carry passwords: the request log keeps neither
    secret_fields = frozenset({"value", "real_value", "internal_db_url", "external_db_url"})

    def __init__(
        self,
        tokens: Mapping[str, Iterable[str] | None] | Sequence[str] = (),
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        version: str = DEFAULT_VERSION,
        api_enabled: bool = True,
        legacy: bool = False,
        healthy_after_polls: int = 2,
        healthy_after_seconds: float = 0.0,
        rate_limit_per_minute: int = 200,
        server_ip: str = "host.docker.internal",
        state_file: Path | str | None = None,
        clock: Callable[[], float] = time.time,
        runtime: Any = None,
        deploy_after_polls: int = 2,
    ):
        abilities = dict(tokens) if isinstance(tokens, Mapping) else dict.fromkeys(tokens)
        super().__init__(tokens=list(abilities), host=host, port=port)
        self.abilities: dict[str, frozenset[str]] = {
            t: frozenset(("root",) if a is None else a) for t, a in abilities.items()
        }
        for granted in self.abilities.values():
            unknown = set(granted) - set(ABILITIES)
            if unknown:
                raise ValueError(f"unknown abilities {sorted(unknown)} (Coolify has {', '.join(ABILITIES)})")
        self.version = version
        self.legacy = legacy
        if legacy:  # an older release than the description in shared/refs: its log is not held to it
            self.name = "coolify-legacy"
        self.healthy_after_polls = healthy_after_polls
        self.healthy_after_seconds = healthy_after_seconds
        self.rate_limit_per_minute = rate_limit_per_minute
        self.clock = clock
        self.state_file = Path(state_file) if state_file else None
        self.meta: dict[tuple[str, str], RouteMeta] = {}
        self.settings: dict[str, Any] = {"is_api_enabled": api_enabled}
        # every collection keyed by uuid; extensions add theirs (applications, deployments...)
        self.store: dict[str, dict[str, dict[str, Any]]] = {
            "servers": {},
            "projects": {},
            "environments": {},
            "databases": {},
            "applications": {},
            "envs": {},
            "deployments": {},
        }
        self.runtime = runtime  # a Runtime: real containers; None: simulated statuses
        self.deploy_after_polls = deploy_after_polls
        self.lifecycles: dict[str, Lifecycle] = {}
        self.counters: dict[str, int] = collections.defaultdict(int)
        self._windows: dict[str, collections.deque[float]] = collections.defaultdict(collections.deque)
        self._dirty = False
        if not (self.state_file and self._load()):
            self._install(server_ip)
        self._register()

    # ---------------------------------------------------------------- collections (shortcuts)

    @property
    def servers(self) -> dict[str, dict[str, Any]]:
        return self.store["servers"]

    @property
    def projects(self) -> dict[str, dict[str, Any]]:
        return self.store["projects"]

    @property
    def environments(self) -> dict[str, dict[str, Any]]:
        return self.store["environments"]

    @property
    def databases(self) -> dict[str, dict[str, Any]]:
        return self.store["databases"]

    def next_id(self, collection: str) -> int:
        self.counters[collection] += 1
        return self.counters[collection]

    def touch(self) -> None:
        """Mark the state changed (persisted after the response when ``state_file`` is set)."""
        self._dirty = True

    # ---------------------------------------------------------------- install: what Coolify creates

    def _install(self, server_ip: str) -> None:
        now = now_iso(self.clock())
        server_uuid = new_uuid()
        self.servers[server_uuid] = {
            "id": self.next_id("servers") - 1,  # Coolify's own server is id 0
            "uuid": server_uuid,
            "name": "localhost",
            "description": "This is the server where Coolify is running on. Don't delete this!",
            "ip": server_ip,
            "user": "root",
            "port": 22,
            "proxy_type": "traefik",
            "proxy": {"type": "traefik", "status": "running"},
            "is_coolify_host": True,
            "settings": {"is_reachable": True, "is_usable": True, "is_build_server": False},
            "destinations": [{"uuid": new_uuid(), "name": "localhost-coolify", "network": "coolify"}],
            "created_at": now,
            "updated_at": now,
        }
        self.touch()

    # ---------------------------------------------------------------- persistence

    def _snapshot(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "settings": self.settings,
            "store": self.store,
            "lifecycles": {k: vars(v) for k, v in self.lifecycles.items()},
            "counters": dict(self.counters),
        }

    def _load(self) -> bool:
        assert self.state_file is not None
        if not self.state_file.is_file():
            return False
        data = json.loads(self.state_file.read_text(encoding="utf-8"))
        self.settings.update(data.get("settings") or {})
        for name, items in (data.get("store") or {}).items():
            self.store[name] = items
        self.lifecycles = {k: Lifecycle(**v) for k, v in (data.get("lifecycles") or {}).items()}
        self.counters.update(data.get("counters") or {})
        return bool(self.servers)

    def save(self) -> None:
        if self.state_file is None:
            return
        with _SAVE_LOCK:  # deployment threads and request threads save concurrently: one writer at a time
            with self.lock:
                payload = json.dumps(self._snapshot(), indent=1, sort_keys=True)
                self._dirty = False
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.state_file.with_name(self.state_file.name + ".tmp")
            tmp.write_text(payload, encoding="utf-8")
            os.chmod(tmp, 0o600)  # it holds the databases' passwords, as Coolify's database does
            tmp.replace(self.state_file)

    # ---------------------------------------------------------------- routes

    def api(
        self,
        method: str,
        path: str,
        handler: Callable[[Request], Response],
        ability: str | None = "read",
        gated: bool = True,
    ) -> None:
        """Register ``API + path``; ``ability`` None: no token needed; ``gated``: obeys the API switch."""
        template = API + path
        self.add_route(method, template, handler, auth=ability is not None)
        self.meta[(method.upper(), template)] = RouteMeta(ability, gated)

    def acting(
        self, path: str, handler: Callable[[Request], Response], ability: str, gated: bool = True
    ) -> None:
        """A route that changes state: POST only since Coolify v4.2.0, whose GET answers 405
        (coollabsio/coolify 0633b543, OtherController::post_required); ``legacy`` still acts on GET too."""
        self.api("POST", path, handler, ability=ability, gated=gated)
        self.api("GET", path, handler if self.legacy else self._post_required, ability=ability, gated=gated)

    def _post_required(self, request: Request) -> Response:
        return json_response(
            {"message": "This endpoint has changed to a POST request."}, 405, headers={"Allow": "POST"}
        )

    def _register(self) -> None:
        self.add_route("GET", "/api/health", self._health, auth=False)
        self.meta[("GET", "/api/health")] = RouteMeta(None, False)
        self.add_route("GET", "/", self._dashboard, auth=False)
        self.meta[("GET", "/")] = RouteMeta(None, False)
        self.api("GET", "/health", self._health, ability=None, gated=False)
        self.acting("/enable", self._enable, ability="write", gated=False)
        self.acting("/disable", self._disable, ability="write", gated=False)
        self.api("GET", "/version", self._version)
        self.api("GET", "/servers", self._list_servers)
        self.api("GET", "/servers/{uuid}", self._get_server)
        self.api("GET", "/servers/{uuid}/resources", self._server_resources)
        self.api("GET", "/projects", self._list_projects)
        self.api("POST", "/projects", self._create_project, ability="write")
        self.api("GET", "/projects/{uuid}", self._get_project)
        self.api("DELETE", "/projects/{uuid}", self._delete_project, ability="write")
        if not self.legacy:
            self.api("GET", "/projects/{uuid}/environments", self._list_environments)
            self.api("POST", "/projects/{uuid}/environments", self._create_environment, ability="write")
            self.api(
                "DELETE",
                "/projects/{uuid}/environments/{environment_name_or_uuid}",
                self._delete_environment,
                ability="write",
            )
        self.api("GET", "/projects/{uuid}/{environment_name_or_uuid}", self._environment_details)
        self.api("GET", "/databases", self._list_databases)
        for kind in KINDS.values():
            self.api("POST", f"/databases/{kind.path}", self._creator(kind), ability="write")
        self.api("GET", "/databases/{uuid}", self._get_database)
        self.api("DELETE", "/databases/{uuid}", self._delete_database, ability="write")
        self.acting("/databases/{uuid}/start", self._start_database, ability="deploy")
        self.acting("/databases/{uuid}/stop", self._stop_database, ability="deploy")
        self._register_applications()
        self._register_operations()  # backups, S3 storages, logs, app updates (helpers.rehearse.coolify_ops)

    # ---------------------------------------------------------------- hooks: errors, auth, API switch, limits

    def error_body(self, status: int, message: str, code: str | None, request: Request) -> Any:
        return {"message": message}

    def _token(self, request: Request) -> str:
        scheme, _, token = (request.header("Authorization") or "").partition(" ")
        return token.strip() if scheme.lower() == "bearer" else ""

    def authenticate(self, request: Request) -> None:
        token = self._token(request)
        if not token or token not in self.abilities:
            raise HTTPError(401, "Unauthenticated.")

    def can_read_sensitive(self, request: Request) -> bool:
        granted = self.abilities.get(self._token(request), frozenset())
        return "root" in granted or "read:sensitive" in granted

    def before(self, request: Request) -> None:
        meta = self.meta.get((request.method, request.route))
        if meta is None or meta.ability is None:
            return
        if meta.gated and not self.settings.get("is_api_enabled"):
            raise HTTPError(403, "API is disabled.", extra={"success": True})
        granted = self.abilities.get(self._token(request), frozenset())
        if "root" not in granted and meta.ability not in granted:
            raise HTTPError(403, f"Missing required permissions: {meta.ability}")
        window = self._windows[self._token(request)]
        now = self.clock()
        with self.lock:
            while window and window[0] <= now - MINUTE:
                window.popleft()
            if len(window) >= self.rate_limit_per_minute:
                retry = max(1, int(window[0] + MINUTE - now + 0.999))
                raise HTTPError(
                    429,
                    "Rate limit exceeded. Please try again later.",
                    headers={"Retry-After": str(retry), "X-RateLimit-Reset": str(int(now + retry))},
                )
            window.append(now)

    def decorate(self, request: Request, response: Response) -> None:
        meta = self.meta.get((request.method, request.route))
        if meta is not None and meta.ability is not None:
            used = len(self._windows.get(self._token(request)) or ())
            response.headers.setdefault("X-RateLimit-Limit", str(self.rate_limit_per_minute))
            response.headers.setdefault(
                "X-RateLimit-Remaining", str(max(0, self.rate_limit_per_minute - used))
            )
        if self._dirty:
            self.save()

    # ---------------------------------------------------------------- request bodies

    def json_body(self, request: Request) -> dict[str, Any]:
        """Coolify's ``validateIncomingRequest``: JSON content type, valid JSON, a non-empty object."""
        content_type = (request.header("Content-Type") or "").lower()
        if "json" not in content_type:
            raise HTTPError(
                400, "Invalid request.", extra={"error": "Content-Type must be application/json."}
            )
        try:
            body = request.json()
        except ValueError:
            raise HTTPError(400, "Invalid request.", extra={"error": "Invalid JSON."}) from None
        if not isinstance(body, dict):
            raise HTTPError(400, "Invalid request.", extra={"error": "Invalid JSON."})
        if not body:
            raise HTTPError(400, "Invalid request.", extra={"error": "Empty JSON."})
        return body

    # ---------------------------------------------------------------- lookups for handlers (and extensions)

    def project_or_404(self, project_uuid: str) -> dict[str, Any]:
        project = self.projects.get(project_uuid)
        if project is None:
            raise HTTPError(404, "Project not found.")
        return project

    def server_or_404(self, server_uuid: str) -> dict[str, Any]:
        server = self.servers.get(server_uuid)
        if server is None:
            raise HTTPError(404, "Server not found.")
        return server

    def project_environments(self, project: Mapping[str, Any]) -> list[dict[str, Any]]:
        envs = [e for e in self.environments.values() if e["project_id"] == project["id"]]
        return sorted(envs, key=lambda e: e["id"])

    def environment_named(self, project: Mapping[str, Any], name_or_uuid: str) -> dict[str, Any] | None:
        """By name first, then by uuid (as Coolify's controllers look)."""
        envs = self.project_environments(project)
        return next((e for e in envs if e["name"] == name_or_uuid), None) or next(
            (e for e in envs if e["uuid"] == name_or_uuid), None
        )

    def environment_for(self, project: Mapping[str, Any], body: Mapping[str, Any]) -> dict[str, Any]:
        """The environment a create request names (``environment_name`` and/or ``environment_uuid``)."""
        name, env_uuid = body.get("environment_name"), body.get("environment_uuid")
        if not name and not env_uuid:
            raise HTTPError(422, "You need to provide at least one of environment_name or environment_uuid.")
        env = (self.environment_named(project, name) if name else None) or (
            self.environment_named(project, env_uuid) if env_uuid else None
        )
        if env is None:
            raise HTTPError(422, "You need to provide a valid environment_name or environment_uuid.")
        return env

    def lifecycle(self, resource_uuid: str) -> Lifecycle:
        return self.lifecycles.setdefault(resource_uuid, Lifecycle())

    def status_of(self, resource_uuid: str, poll: bool = True) -> str:
        if self.runtime is not None and (
            resource_uuid in self.databases or resource_uuid in self.applications
        ):
            return self.runtime.status(resource_uuid)  # the real container's state
        life = self.lifecycle(resource_uuid)
        if poll and life.advance(self.clock(), self.healthy_after_polls, self.healthy_after_seconds):
            self.touch()
        return life.status

    # ---------------------------------------------------------------- health, version, API switch

    def _health(self, request: Request) -> Response:
        return Response(200, b"OK", {"content-type": "text/html; charset=UTF-8"})

    def _dashboard(self, request: Request) -> Response:
        page = b"<!doctype html><title>Coolify</title><p>Coolify (rehearsal stand-in): log in at /login</p>"
        return Response(302, page, {"Location": "/login", "content-type": "text/html; charset=UTF-8"})

    def _version(self, request: Request) -> Response:
        return Response(200, self.version.encode(), {"content-type": "text/html; charset=UTF-8"})

    def _enable(self, request: Request) -> Response:
        self.settings["is_api_enabled"] = True
        self.touch()
        return json_response({"message": "API enabled."})

    def _disable(self, request: Request) -> Response:
        self.settings["is_api_enabled"] = False
        self.touch()
        return json_response({"message": "API disabled."})

    # ---------------------------------------------------------------- servers

    def _server_view(self, server: Mapping[str, Any]) -> dict[str, Any]:
        view = {k: copy.deepcopy(v) for k, v in server.items() if k not in ("destinations",)}
        view["is_reachable"] = server["settings"]["is_reachable"]
        view["is_usable"] = server["settings"]["is_usable"]
        return view

    def _list_servers(self, request: Request) -> Response:
        return json_response([self._server_view(s) for s in self.servers.values()])

    def _get_server(self, request: Request) -> Response:
        return json_response(self._server_view(self.server_or_404(request.params["uuid"])))

    def _server_resources(self, request: Request) -> Response:
        self.server_or_404(request.params["uuid"])
        items = [
            {
                "uuid": d["uuid"],
                "name": d["name"],
                "type": d["type"],
                "status": self.status_of(d["uuid"], False),
            }
            for d in self.databases.values()
        ]
        return json_response(items)

    # ---------------------------------------------------------------- projects and environments

    def _project_view(self, project: Mapping[str, Any], with_environments: bool = False) -> dict[str, Any]:
        view = {k: project[k] for k in ("id", "uuid", "name", "description")}
        if with_environments:
            view.update({k: project[k] for k in ("team_id", "created_at", "updated_at")})
            view["environments"] = [self._environment_view(e) for e in self.project_environments(project)]
        return view

    def _environment_view(self, env: Mapping[str, Any]) -> dict[str, Any]:
        return {
            k: env[k] for k in ("id", "uuid", "name", "project_id", "description", "created_at", "updated_at")
        }

    def _list_projects(self, request: Request) -> Response:
        items = sorted(self.projects.values(), key=lambda p: p["id"])
        return json_response([self._project_view(p) for p in items])

    def _get_project(self, request: Request) -> Response:
        return json_response(self._project_view(self.project_or_404(request.params["uuid"]), True))

    def _create_project(self, request: Request) -> Response:
        body = self.json_body(request)
        validate(body, {"name": "string|max:255|required", "description": "string|nullable"})
        now = now_iso(self.clock())
        project = {
            "id": self.next_id("projects"),
            "uuid": new_uuid(),
            "name": body["name"],
            "description": body.get("description"),
            "team_id": 0,
            "created_at": now,
            "updated_at": now,
        }
        self.projects[project["uuid"]] = project
        self.new_environment(project, "production")  # Project::created does this in Coolify
        self.touch()
        return json_response({"uuid": project["uuid"]}, 201)

    def new_environment(self, project: Mapping[str, Any], name: str) -> dict[str, Any]:
        now = now_iso(self.clock())
        env = {
            "id": self.next_id("environments"),
            "uuid": new_uuid(),
            "name": name,
            "project_id": project["id"],
            "description": None,
            "created_at": now,
            "updated_at": now,
        }
        self.environments[env["uuid"]] = env
        self.touch()
        return env

    def resources_in(self, env: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
        """What ``GET /projects/{uuid}/{env}`` lists per relation (extensions add ``applications``...)."""
        out: dict[str, list[dict[str, Any]]] = {
            "applications": [],
            "postgresqls": [],
            "redis": [],
            "mongodbs": [],
            "mysqls": [],
            "mariadbs": [],
            "services": [],
        }
        for db in sorted(self.databases.values(), key=lambda d: d["id"]):
            if db["environment_id"] == env["id"]:
                out[KINDS[db["kind"]].relation].append(db)
        for app in sorted(self.applications.values(), key=lambda a: a["id"]):
            if app["environment_id"] == env["id"]:
                out["applications"].append(app)
        return out

    def _delete_project(self, request: Request) -> Response:
        project = self.project_or_404(request.params["uuid"])
        for env in self.project_environments(project):
            if any(self.resources_in(env).values()):
                raise HTTPError(400, "Project has resources, so it cannot be deleted.")
        for env in self.project_environments(project):
            del self.environments[env["uuid"]]
        del self.projects[project["uuid"]]
        self.touch()
        return json_response({"message": "Project deleted."})

    def _list_environments(self, request: Request) -> Response:
        project = self.project_or_404(request.params["uuid"])
        return json_response([self._environment_view(e) for e in self.project_environments(project)])

    def _create_environment(self, request: Request) -> Response:
        project = self.project_or_404(request.params["uuid"])
        body = self.json_body(request)
        validate(body, {"name": "string|max:255|required", "description": "string|nullable"})
        if any(e["name"] == body["name"] for e in self.project_environments(project)):
            raise HTTPError(409, "Environment with this name already exists.")
        env = self.new_environment(project, body["name"])
        return json_response({"uuid": env["uuid"]}, 201)

    def _delete_environment(self, request: Request) -> Response:
        project = self.project_or_404(request.params["uuid"])
        env = self.environment_named(project, request.params["environment_name_or_uuid"])
        if env is None:
            raise HTTPError(404, "Environment not found.")
        if any(self.resources_in(env).values()):
            raise HTTPError(400, "Environment has resources, so it cannot be deleted.")
        del self.environments[env["uuid"]]
        self.touch()
        return json_response({"message": "Environment deleted."})

    def _environment_details(self, request: Request) -> Response:
        project = self.project_or_404(request.params["uuid"])
        env = self.environment_named(project, request.params["environment_name_or_uuid"])
        if env is None:
            raise HTTPError(404, "Environment not found.")
        view = self._environment_view(env)
        sensitive = self.can_read_sensitive(request)
        for relation, items in self.resources_in(env).items():
            view[relation] = [self.resource_view(item, sensitive) for item in items]
        return json_response(view)

    # ---------------------------------------------------------------- databases

    def resource_view(
        self, resource: Mapping[str, Any], sensitive: bool, poll: bool = False
    ) -> dict[str, Any]:
        view = {k: copy.deepcopy(v) for k, v in resource.items() if k not in ("id", "kind")}
        view["status"] = self.status_of(resource["uuid"], poll)
        if "kind" in resource:
            kind = KINDS[resource["kind"]]
            view["internal_db_url"] = kind.url(resource, resource["uuid"])
            if resource.get("is_public") and resource.get("public_port"):
                server = self.servers.get(resource.get("server_uuid", ""), {})
                public = kind.url(resource, str(server.get("ip", "127.0.0.1")))
                view["external_db_url"] = public.replace(f":{kind.port}/", f":{resource['public_port']}/")
        if not sensitive:
            for key in SENSITIVE_FIELDS:
                view.pop(key, None)
        return view

    def _creator(self, kind: DatabaseKind) -> Callable[[Request], Response]:
        def create(request: Request) -> Response:
            return self._create_database(request, kind)

        return create

    def _create_database(self, request: Request, kind: DatabaseKind) -> Response:
        body = self.json_body(request)
        # Coolify wants environment_name or environment_uuid (the spec marks both required; we accept either)
        validate(body, {**COMMON_RULES, **kind.rules})
        project = self.project_or_404(body["project_uuid"])
        env = self.environment_for(project, body)
        server = self.server_or_404(body["server_uuid"])
        destinations = server.get("destinations") or []
        if not destinations:
            raise HTTPError(400, "Server has no destinations.")
        if len(destinations) > 1 and "destination_uuid" not in body:
            raise HTTPError(400, "Server has multiple destinations and you do not set destination_uuid.")
        public_port = body.get("public_port")
        is_public = truthy(body.get("is_public")) and bool(public_port)
        if public_port not in (None, "") and not 1024 <= int(float(public_port)) <= 65535:
            raise HTTPError(
                422,
                "Validation failed.",
                extra={"errors": {"public_port": "The public port should be between 1024 and 65535."}},
            )
        if is_public and any(
            d.get("is_public") and d.get("public_port") == public_port for d in self.databases.values()
        ):
            raise HTTPError(400, "Public port already used by another database.")
        now = now_iso(self.clock())
        db_uuid = new_uuid()
        db: dict[str, Any] = {
            "id": self.next_id("databases"),
            "kind": kind.path,
            "uuid": db_uuid,
            "name": body.get("name") or f"{kind.path}-database-{db_uuid}",
            "description": body.get("description"),
            "type": kind.type,
            "database_type": kind.type,
            "image": body.get("image") or kind.default_image,
            "is_public": is_public,
            "public_port": public_port if is_public else None,
            "limits_memory": body.get("limits_memory", "0"),
            "limits_cpus": body.get("limits_cpus", "0"),
            "environment_id": env["id"],
            "destination_uuid": destinations[0]["uuid"],
            "server_uuid": server["uuid"],
            "created_at": now,
            "updated_at": now,
            **kind.defaults(),
        }
        for key in kind.rules:
            if key in body and not key.endswith("_conf"):
                db[key] = body[key]
        self.databases[db_uuid] = db
        life = self.lifecycle(db_uuid)
        if truthy(body.get("instant_deploy")):
            life.start(self.clock())
            self.run_database(db)
        self.touch()
        payload = {"uuid": db_uuid, "internal_db_url": kind.url(db, db_uuid)}
        if is_public:
            payload["external_db_url"] = self.resource_view(db, True)["external_db_url"]
        return json_response(payload, 201)

    def database_or_404(self, db_uuid: str) -> dict[str, Any]:
        db = self.databases.get(db_uuid)
        if db is None:
            raise HTTPError(404, "Database not found.")
        return db

    def _list_databases(self, request: Request) -> Response:
        sensitive = self.can_read_sensitive(request)
        items = sorted(self.databases.values(), key=lambda d: d["id"])
        return json_response([self.resource_view(d, sensitive) for d in items])

    def _get_database(self, request: Request) -> Response:
        db = self.database_or_404(request.params["uuid"])
        return json_response(self.resource_view(db, self.can_read_sensitive(request), poll=True))

    def _delete_database(self, request: Request) -> Response:
        db = self.database_or_404(request.params["uuid"])
        del self.databases[db["uuid"]]
        self.lifecycles.pop(db["uuid"], None)
        if self.runtime is not None:
            self.runtime.remove(db["uuid"])
        self.touch()
        return json_response({"message": "Database deletion request queued."})

    def _start_database(self, request: Request) -> Response:
        db = self.database_or_404(request.params["uuid"])
        life = self.lifecycle(db["uuid"])
        if "running" in life.status:
            raise HTTPError(400, "Database is already running.")
        if life.status != "starting":
            life.start(self.clock())
        self.run_database(db)
        self.touch()
        return json_response({"message": "Database starting request queued.", "uuid": db["uuid"]})

    def _stop_database(self, request: Request) -> Response:
        db = self.database_or_404(request.params["uuid"])
        self.lifecycle(db["uuid"]).stop()
        if self.runtime is not None:
            self.runtime.stop(db["uuid"])
        self.touch()
        return json_response({"message": "Database stopping request queued.", "uuid": db["uuid"]})

    # ---------------------------------------------------------------- applications (tasks 2.14 to 2.17)

    @property
    def applications(self) -> dict[str, dict[str, Any]]:
        return self.store["applications"]

    @property
    def envs(self) -> dict[str, dict[str, Any]]:
        return self.store["envs"]

    @property
    def deployments(self) -> dict[str, dict[str, Any]]:
        return self.store["deployments"]

    def _register_applications(self) -> None:
        self.api("GET", "/applications", self._list_applications)
        self.api("POST", "/applications/dockerimage", self._create_dockerimage_app, ability="write")
        self.api("GET", "/applications/{uuid}", self._get_application)
        self.api("DELETE", "/applications/{uuid}", self._delete_application, ability="write")
        self.api("GET", "/applications/{uuid}/envs", self._list_envs)
        self.api("POST", "/applications/{uuid}/envs", self._create_env, ability="write")
        self.api("PATCH", "/applications/{uuid}/envs", self._update_env, ability="write")
        self.api("PATCH", "/applications/{uuid}/envs/bulk", self._bulk_envs, ability="write")
        self.api("DELETE", "/applications/{uuid}/envs/{env_uuid}", self._delete_env, ability="write")
        self.acting("/applications/{uuid}/start", self._start_application, ability="deploy")
        self.acting("/applications/{uuid}/restart", self._start_application, ability="deploy")
        self.acting("/applications/{uuid}/stop", self._stop_application, ability="deploy")
        self.acting("/deploy", self._deploy, ability="deploy")
        self.api("GET", "/deployments", self._list_running_deployments)
        self.api("GET", "/deployments/{uuid}", self._get_deployment)
        self.api("GET", "/deployments/applications/{uuid}", self._app_deployments)

    def application_or_404(self, app_uuid: str) -> dict[str, Any]:
        app = self.applications.get(app_uuid)
        if app is None:
            raise HTTPError(404, "Application not found.")
        return app

    def _app_view(self, app: Mapping[str, Any]) -> dict[str, Any]:
        view = {k: copy.deepcopy(v) for k, v in app.items() if k not in ("environment_uuid",)}
        view["status"] = self.status_of(app["uuid"])
        return view

    def _list_applications(self, request: Request) -> Response:
        items = sorted(self.applications.values(), key=lambda a: a["id"])
        return json_response([self._app_view(a) for a in items])

    def _get_application(self, request: Request) -> Response:
        return json_response(self._app_view(self.application_or_404(request.params["uuid"])))

    def _create_dockerimage_app(self, request: Request) -> Response:
        body = self.json_body(request)
        validate(body, APP_RULES, allowed=APP_FIELDS)
        project = self.project_or_404(body["project_uuid"])
        env = self.environment_for(project, body)
        server = self.server_or_404(body["server_uuid"])
        domains = [d.strip() for d in str(body.get("domains") or "").split(",") if d.strip()]
        for domain in domains:
            if not re.fullmatch(r"https?://[A-Za-z0-9.-]+(:\d+)?(/\S*)?", domain):
                raise HTTPError(
                    422, "Validation failed.", extra={"errors": {"domains": [f"Invalid domain: {domain}"]}}
                )
        taken = [
            {
                "domain": d,
                "resource_name": a["name"],
                "resource_uuid": a["uuid"],
                "resource_type": "application",
            }
            for a in self.applications.values()
            for d in domains
            if d in str(a.get("fqdn") or "").split(",")
        ]
        if taken and not truthy(body.get("force_domain_override")):
            raise HTTPError(
                409,
                "Domain conflicts detected. Use force_domain_override=true to proceed.",
                extra={
                    "conflicts": taken,
                    "warning": "Using the same domain for several resources breaks routing.",
                },
            )
        now = now_iso(self.clock())
        app_uuid = new_uuid()
        app: dict[str, Any] = {
            "id": self.next_id("applications"),
            "uuid": app_uuid,
            "name": body.get("name") or f"docker-image-{app_uuid}",
            "description": body.get("description"),
            "build_pack": "dockerimage",
            "docker_registry_image_name": body["docker_registry_image_name"],
            "docker_registry_image_tag": body.get("docker_registry_image_tag") or "latest",
            "ports_exposes": str(body.get("ports_exposes") or "80"),
            "ports_mappings": body.get("ports_mappings"),
            "fqdn": ",".join(domains) or None,
            "health_check_enabled": truthy(body.get("health_check_enabled", False)),
            "health_check_path": body.get("health_check_path") or "/",
            "health_check_port": body.get("health_check_port"),
            "health_check_method": body.get("health_check_method") or "GET",
            "health_check_return_code": body.get("health_check_return_code") or 200,
            "health_check_interval": body.get("health_check_interval") or 5,
            "custom_docker_run_options": body.get("custom_docker_run_options"),
            "environment_id": env["id"],
            "environment_uuid": env["uuid"],
            "destination_uuid": (server.get("destinations") or [{}])[0].get("uuid"),
            "server_uuid": server["uuid"],
            "created_at": now,
            "updated_at": now,
        }
        self.applications[app_uuid] = app
        self.lifecycle(app_uuid).healthy = (
            "running:healthy" if app["health_check_enabled"] else "running:unknown"
        )
        if truthy(body.get("instant_deploy")):
            self.queue_deployment(app, force=False, webhook=False)
        self.touch()
        return json_response({"uuid": app_uuid}, 201)

    def _delete_application(self, request: Request) -> Response:
        app = self.application_or_404(request.params["uuid"])
        for env_uuid in [e["uuid"] for e in self.envs.values() if e["application_uuid"] == app["uuid"]]:
            del self.envs[env_uuid]
        del self.applications[app["uuid"]]
        if self.runtime is not None:
            self.runtime.remove(app["uuid"])
        self.touch()
        return json_response({"message": "Application deletion request queued."})

    # envs: Coolify hides values from a token without read:sensitive

    def _env_view(self, env: Mapping[str, Any], sensitive: bool) -> dict[str, Any]:
        view = {k: v for k, v in env.items() if k != "application_uuid"}
        view["real_value"] = env["value"]
        if not sensitive:
            view.pop("value", None)
            view.pop("real_value", None)
        return view

    def app_envs(self, app: Mapping[str, Any]) -> list[dict[str, Any]]:
        items = [e for e in self.envs.values() if e["application_uuid"] == app["uuid"]]
        return sorted(items, key=lambda e: e["id"])

    def _list_envs(self, request: Request) -> Response:
        app = self.application_or_404(request.params["uuid"])
        sensitive = self.can_read_sensitive(request)
        return json_response([self._env_view(e, sensitive) for e in self.app_envs(app)])

    def _upsert_env(
        self, app: Mapping[str, Any], item: Mapping[str, Any], create_only: bool
    ) -> dict[str, Any]:
        preview = truthy(item.get("is_preview", False))
        found = next(
            (e for e in self.app_envs(app) if e["key"] == item["key"] and e["is_preview"] == preview), None
        )
        now = now_iso(self.clock())
        if found is not None:
            if create_only:
                raise HTTPError(409, "Environment variable already exists. Use PATCH request to update it.")
            found["value"] = item.get("value")
            for flag in ("is_literal", "is_multiline", "is_shown_once", "is_runtime", "is_buildtime"):
                if flag in item:
                    found[flag] = truthy(item[flag])
            if "comment" in item:
                found["comment"] = item["comment"]
            found["updated_at"] = now
            return found
        env = {
            "id": self.next_id("envs"),
            "uuid": new_uuid(),
            "application_uuid": app["uuid"],
            "resourceable_type": "App\\Models\\Application",
            "resourceable_id": app["id"],
            "key": item["key"],
            "value": item.get("value"),
            "comment": item.get("comment"),
            "is_preview": preview,
            "is_literal": truthy(item.get("is_literal", False)),
            "is_multiline": truthy(item.get("is_multiline", False)),
            "is_shown_once": truthy(item.get("is_shown_once", False)),
            "is_runtime": truthy(item.get("is_runtime", True)),
            "is_buildtime": truthy(item.get("is_buildtime", True)),
            "is_shared": False,
            "created_at": now,
            "updated_at": now,
        }
        self.envs[env["uuid"]] = env
        return env

    def _create_env(self, request: Request) -> Response:
        app = self.application_or_404(request.params["uuid"])
        body = self.json_body(request)
        validate(body, {**ENV_RULES, "key": "string|required", "value": "string|required"})
        env = self._upsert_env(app, body, create_only=True)
        self.touch()
        return json_response({"uuid": env["uuid"]}, 201)

    def _update_env(self, request: Request) -> Response:
        app = self.application_or_404(request.params["uuid"])
        body = self.json_body(request)
        validate(body, {**ENV_RULES, "key": "string|required", "value": "string|required"})
        preview = truthy(body.get("is_preview", False))
        if not any(e["key"] == body["key"] and e["is_preview"] == preview for e in self.app_envs(app)):
            raise HTTPError(404, "Environment variable not found.")
        env = self._upsert_env(app, body, create_only=False)
        self.touch()
        return json_response(self._env_view(env, self.can_read_sensitive(request)), 201)

    def _bulk_envs(self, request: Request) -> Response:
        """``PATCH /applications/{uuid}/envs/bulk`` as ``ApplicationsController::create_bulk_envs`` does it.

        Each item keeps only the fields Coolify reads (others are dropped, not refused); ``key`` is required
        (trimmed, ``[A-Za-z_][A-Za-z0-9_.]*``, at most 255), ``value`` is a nullable string, the flags are
        booleans. Items are validated and saved one after the other: the first invalid one answers 422
        with its errors by field name, and the items before it stay saved (as in Coolify).
        """
        app = self.application_or_404(request.params["uuid"])
        body = self.json_body(request)
        data = body.get("data")
        if not data:
            raise HTTPError(400, "Bulk data is required.")
        items = data if isinstance(data, list) else list(data.values()) if isinstance(data, dict) else [data]
        updated = []
        for raw in items:
            item = {k: v for k, v in raw.items() if k in BULK_ENV_FIELDS} if isinstance(raw, dict) else {}
            if isinstance(item.get("key"), str):
                item["key"] = item["key"].strip()
            validate(item, BULK_ENV_RULES)
            if not ENV_KEY.fullmatch(item["key"]):
                raise HTTPError(
                    422, "Validation failed.", extra={"errors": {"key": ["The key field format is invalid."]}}
                )
            updated.append(self._upsert_env(app, item, create_only=False))
            self.touch()
        sensitive = self.can_read_sensitive(request)
        return json_response([self._env_view(e, sensitive) for e in updated], 201)

    def _delete_env(self, request: Request) -> Response:
        app = self.application_or_404(request.params["uuid"])
        env = self.envs.get(request.params["env_uuid"])
        if env is None or env["application_uuid"] != app["uuid"]:
            raise HTTPError(404, "Environment variable not found.")
        del self.envs[env["uuid"]]
        self.touch()
        return json_response({"message": "Environment variable deleted."})

    # deployments: queued → in_progress → finished | failed

    def queue_deployment(self, app: dict[str, Any], force: bool, webhook: bool) -> dict[str, Any]:
        now = now_iso(self.clock())
        dep_uuid = new_uuid()
        env = self.environments.get(app["environment_uuid"], {})
        project = next((p for p in self.projects.values() if p["id"] == env.get("project_id")), {})
        server = self.servers.get(app["server_uuid"], {})
        deployment = {
            "id": self.next_id("deployments"),
            "deployment_uuid": dep_uuid,
            "application_id": str(app["id"]),
            "application_uuid": app["uuid"],
            "application_name": app["name"],
            "server_id": server.get("id"),
            "server_name": server.get("name"),
            "docker_registry_image_tag": app["docker_registry_image_tag"],
            "status": "queued",
            "force_rebuild": force,
            "is_webhook": webhook,
            "is_api": not webhook,
            "restart_only": False,
            "commit": "HEAD",  # Coolify's column default (application_deployment_queues.commit)
            "rollback": False,
            "logs": "[]",
            "deployment_url": f"/project/{project.get('uuid')}/environment/{env.get('uuid')}/application/"
            f"{app['uuid']}/deployment/{dep_uuid}",
            "created_at": now,
            "updated_at": now,
            "polls": 0,
        }
        self.deployments[dep_uuid] = deployment
        self.touch()
        if self.runtime is not None:
            threading.Thread(target=self._run_deployment, args=(dep_uuid,), daemon=True).start()
        return deployment

    def _log_line(self, deployment: dict[str, Any], text: str) -> None:
        lines = json.loads(deployment["logs"] or "[]")
        lines.append({"output": text, "type": "stdout", "timestamp": now_iso(self.clock()), "hidden": False})
        deployment["logs"] = json.dumps(lines)

    def _set_deployment(self, deployment: dict[str, Any], status: str, line: str) -> None:
        with self.lock:
            deployment["status"] = status
            deployment["updated_at"] = now_iso(self.clock())
            self._log_line(deployment, line)
            self.touch()
        self.save()

    def _run_deployment(self, dep_uuid: str) -> None:
        """The runtime's deployment (a thread): pull (mapped), replace the container, wait until healthy."""
        try:
            self._deploy_with_runtime(dep_uuid)
        except Exception as exc:  # never leave a deployment in_progress for ever: it failed, and says why
            self._set_deployment(self.deployments[dep_uuid], "failed", f"Deployment failed: {exc!r}")
            raise

    def _deploy_with_runtime(self, dep_uuid: str) -> None:
        deployment = self.deployments[dep_uuid]
        with self.lock:
            app = copy.deepcopy(self.applications.get(deployment["application_uuid"]) or {})
            envs = (
                {e["key"]: e["value"] or "" for e in self.app_envs(app) if not e["is_preview"]} if app else {}
            )
        if not app:
            self._set_deployment(deployment, "failed", "application deleted")
            return
        self._set_deployment(deployment, "in_progress", f"Starting deployment of {app['name']}.")
        try:
            note = self.runtime.deploy_application(app, envs)
        except Exception as exc:  # the deployment fails; the stand-in keeps serving
            self._set_deployment(deployment, "failed", f"Deployment failed: {exc}")
            return
        with self.lock:
            self.lifecycle(app["uuid"]).status = "running:healthy"
        self._set_deployment(deployment, "finished", f"{note}\nNew container started.")

    def _advance_deployment(self, deployment: dict[str, Any]) -> None:
        """Simulated deployments (no runtime) advance when read: queued → in_progress → finished."""
        if self.runtime is not None or deployment["status"] not in ("queued", "in_progress"):
            return
        deployment["polls"] += 1
        if deployment["status"] == "queued":
            deployment["status"] = "in_progress"
            self._log_line(deployment, "Starting deployment (simulated).")
        elif deployment["polls"] >= self.deploy_after_polls:
            deployment["status"] = "finished"
            self._log_line(deployment, "Rolling update completed (simulated).")
            life = self.lifecycle(deployment["application_uuid"])
            life.start(self.clock())
            life.status = life.healthy
        deployment["updated_at"] = now_iso(self.clock())
        self.touch()

    def _deployment_view(self, deployment: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in deployment.items() if k not in ("polls", "application_uuid")}

    def _deploy(self, request: Request) -> Response:
        uuids = [u for u in (request.arg("uuid") or "").split(",") if u.strip()]
        tags = [t for t in (request.arg("tag") or "").split(",") if t.strip()]
        if not uuids and not tags:
            raise HTTPError(400, "You must provide uuid or tag.")
        force = (request.arg("force") or "false").lower() in ("1", "true")
        out = []
        for app_uuid in uuids:
            app = self.applications.get(app_uuid.strip())
            if app is None:
                out.append({"message": "Resource not found.", "resource_uuid": app_uuid})
                continue
            deployment = self.queue_deployment(app, force=force, webhook=True)
            out.append(
                {
                    "message": "Deployment request queued.",
                    "resource_uuid": app["uuid"],
                    "deployment_uuid": deployment["deployment_uuid"],
                }
            )
        if not any("deployment_uuid" in d for d in out):
            raise HTTPError(404, "No resources found.", extra={"deployments": out})
        return json_response({"deployments": out})

    def _start_application(self, request: Request) -> Response:
        app = self.application_or_404(request.params["uuid"])
        force = (request.arg("force") or "false").lower() in ("1", "true")
        deployment = self.queue_deployment(app, force=force, webhook=False)
        return json_response(
            {"message": "Deployment request queued.", "deployment_uuid": deployment["deployment_uuid"]}
        )

    def _stop_application(self, request: Request) -> Response:
        app = self.application_or_404(request.params["uuid"])
        self.lifecycle(app["uuid"]).stop()
        if self.runtime is not None:
            self.runtime.stop(app["uuid"])
        self.touch()
        return json_response({"message": "Application stopping request queued."})

    def _list_running_deployments(self, request: Request) -> Response:
        items = [d for d in self.deployments.values() if d["status"] in ("queued", "in_progress")]
        return json_response([self._deployment_view(d) for d in sorted(items, key=lambda d: d["id"])])

    def _get_deployment(self, request: Request) -> Response:
        deployment = self.deployments.get(request.params["uuid"])
        if deployment is None:
            raise HTTPError(404, "Deployment not found.")
        self._advance_deployment(deployment)
        return json_response(self._deployment_view(deployment))

    def _app_deployments(self, request: Request) -> Response:
        app = self.application_or_404(request.params["uuid"])
        skip = int(request.arg("skip") or 0)
        take = int(request.arg("take") or 10)
        items = sorted(
            (d for d in self.deployments.values() if d["application_uuid"] == app["uuid"]),
            key=lambda d: -d["id"],
        )
        for d in items:
            self._advance_deployment(d)
        # Coolify answers {"count", "deployments"} (the spec's schema says a list; clients accept both)
        page = [self._deployment_view(d) for d in items[skip : skip + take]]
        return json_response({"count": len(items), "deployments": page})

    def run_database(self, db: Mapping[str, Any]) -> None:
        if self.runtime is None:
            return
        try:
            self.runtime.start_database(db)
        except Exception as exc:  # reported as exited, like a container that did not start
            print(f"coolify stand-in: starting database {db['uuid']} failed: {exc}", flush=True)


# --------------------------------------------------------------------------- the runtime: real containers


STANDIN_IMAGES = {"postgres": "runbook-standin/postgres:15", "redis": "runbook-standin/redis:7"}
RESOURCE_LABEL = "runbook.coolify.resource"  # teardown removes every container carrying it
# helpers.rehearse.droplet.FORWARDS_LABEL (not imported: this module runs on the droplet without helpers.core)
FORWARDS_LABEL = "runbook.droplet.forwards"
SECOND = 1_000_000_000  # Docker's durations are nanoseconds


class Runtime:
    """Real containers for the stand-in's databases and applications, through the Docker socket.

    The droplet container has the host's Docker socket mounted (the droplet "has Docker", as Coolify needs),
    so the containers are the host engine's: named by the resource's uuid (as Coolify names them), on a
    user-defined network ``coolify-<droplet>`` so that applications reach databases by uuid, as Coolify's
    internal URLs say; the droplet container joins it too (SSH tunnels to Redis go through the "server").

    An application is deployed as Coolify deploys a Docker-image application: ``docker pull`` of its image
    (``<name>:<tag>``, or ``<name>@sha256:<hex>`` for a tag ``sha256-<hex>``) from its registry, then the
    container replaced. A pull that fails fails the deployment with the registry's answer; nothing is mapped
    to another image. The database images ``postgres:*`` and ``redis:*`` are not pulled (no registry is
    reachable for them here): an image the engine lacks runs as its local stand-in
    (``runbook-standin/postgres:15``, ``runbook-standin/redis:7``).

    The health check of an HTTP application is the image's own ``HEALTHCHECK`` when it has one (probed every
    second), else Coolify's: ``curl`` or ``wget`` of the health path inside the container. A web
    application's port is published on 127.0.0.1 when the application maps it (``ports_mappings``
    ``3000:3000``: the droplet's port 3000) or has a domain: at the local port the droplet's
    :data:`FORWARDS_LABEL` gives for the droplet's port (the rehearsal chose it and wrote it into
    ``RUNBOOK_ADDRESS_MAP``), else at one Docker picks. Every container carries :data:`RESOURCE_LABEL` = the
    droplet's name.
    """

    def __init__(self, docker: Any, server: str, deploy_timeout: float = 90.0):
        self.docker = docker
        self.server = server
        self.network = f"coolify-{server}"
        self.deploy_timeout = deploy_timeout
        self._network_ready = False

    @classmethod
    def detect(cls, server: str | None = None) -> Runtime | None:
        from helpers.rehearse.dockerapi import Docker

        if not Docker.available():
            return None
        return cls(Docker(), server or socket_hostname())

    def labels(self, resource_uuid: str, kind: str) -> dict[str, str]:
        return {
            RESOURCE_LABEL: self.server,
            "runbook.coolify.uuid": resource_uuid,
            "runbook.coolify.kind": kind,
        }

    def ensure_network(self) -> None:
        if self._network_ready:
            return
        self.docker.ensure_network(self.network, {RESOURCE_LABEL: self.server})
        own = [c for c in self.docker.containers({"runbook.standin": "droplet"}) if self._is_me(c)]
        for container in own:  # the droplet itself joins: the server reaches its containers
            self.docker.connect(self.network, container["Id"])
        self._network_ready = True

    def _is_me(self, container: Mapping[str, Any]) -> bool:
        names = [n.lstrip("/") for n in container.get("Names") or []]
        label = (container.get("Labels") or {}).get("runbook.droplet.name", "")
        return self.server in (label, label.removeprefix("rb-droplet-")) or any(
            n.removeprefix("rb-droplet-") == self.server for n in names
        )

    def forwards(self) -> dict[int, int]:
        """The droplet's ports → the local ports (on 127.0.0.1) they are reached at, from its label."""
        for container in self.docker.containers({"runbook.standin": "droplet"}):
            if self._is_me(container):
                text = (container.get("Labels") or {}).get(FORWARDS_LABEL, "")
                pairs = (entry.partition("=") for entry in text.split(",") if "=" in entry)
                return {int(port): int(local) for port, _, local in pairs}
        return {}

    def database_image(self, image: str) -> str:
        """The image a database runs: ``image`` when the engine has it, else its stand-in."""
        if self.docker.image_exists(image):
            return image
        name = image.rsplit("/", 1)[-1].split(":", 1)[0].split("@", 1)[0]
        if name in STANDIN_IMAGES:
            return STANDIN_IMAGES[name]
        raise RuntimeError(f"no image {image} on this engine, and no stand-in for {name}")

    @staticmethod
    def image_reference(app: Mapping[str, Any]) -> str:
        """What Coolify runs for a dockerimage app: ``name:tag``, or ``name@sha256:<hex>`` for a tag
        ``sha256-<hex>`` (ApplicationDeploymentJob's image-hash deployments)."""
        tag = str(app.get("docker_registry_image_tag") or "latest")
        name = app["docker_registry_image_name"]
        return f"{name}@sha256:{tag[len('sha256-') :]}" if tag.startswith("sha256-") else f"{name}:{tag}"

    def pull(self, image: str) -> str:
        """``docker pull`` from the image's registry; the engine's last status line, or a clear error."""
        from helpers.rehearse.dockerapi import DockerAPIError

        try:
            return self.docker.pull(image)
        except DockerAPIError as exc:
            raise RuntimeError(f"docker pull {image} failed: {exc}") from None

    @staticmethod
    def health_check(app: Mapping[str, Any], image: Mapping[str, Any], port: str) -> dict[str, Any] | None:
        """The container's health check (see the class docstring), or None without one."""
        timing = {"Interval": SECOND, "Timeout": 5 * SECOND, "Retries": 60}
        if not app.get("health_check_enabled"):
            return None
        if app.get("health_check_type") == "cmd":
            return {"Test": ["CMD-SHELL", str(app.get("health_check_command") or "true")], **timing}
        if ((image.get("Config") or {}).get("Healthcheck") or {}).get("Test"):
            return {"Test": [], **timing}  # the image's own test, at Coolify's pace
        url = f"http://localhost:{app.get('health_check_port') or port}{app.get('health_check_path') or '/'}"
        probe = f"curl -s -X GET -f {url} > /dev/null || wget -q -O- {url} > /dev/null || exit 1"
        return {"Test": ["CMD-SHELL", probe], **timing}

    def _replace(self, name: str, config: dict[str, Any]) -> None:
        self.ensure_network()
        self.docker.remove(name)
        config["HostConfig"] = {
            "NetworkMode": self.network,
            "RestartPolicy": {"Name": "unless-stopped"},
            **config.get("HostConfig", {}),
        }
        config["NetworkingConfig"] = {"EndpointsConfig": {self.network: {"Aliases": [name]}}}
        self.docker.create(name, config)
        self.docker.start(name)

    def start_database(self, db: Mapping[str, Any]) -> None:
        info = self.docker.inspect(db["uuid"])
        if info and (info.get("State") or {}).get("Running"):
            return
        if info:
            self.docker.start(db["uuid"])
            return
        image = self.database_image(str(db["image"]))
        if db["kind"] == "postgresql":
            env = [
                f"POSTGRES_USER={db['postgres_user']}",
                f"POSTGRES_PASSWORD={db['postgres_password']}",
                f"POSTGRES_DB={db['postgres_db']}",
            ]
            cmd: list[str] = []
            test = ["CMD-SHELL", f"pg_isready -U {db['postgres_user']} -d {db['postgres_db']}"]
        else:
            env = []
            cmd = ["redis-server", "--requirepass", str(db["redis_password"]), "--appendonly", "yes"]
            test = ["CMD-SHELL", 'redis-cli -a "$REDIS_PASSWORD" --no-auth-warning ping | grep PONG']
            env = [f"REDIS_PASSWORD={db['redis_password']}"]
        config: dict[str, Any] = {
            "Image": image,
            "Env": env,
            "Labels": self.labels(db["uuid"], db["kind"]),
            "Healthcheck": {"Test": test, "Interval": 1_000_000_000, "Timeout": 5_000_000_000, "Retries": 30},
        }
        if cmd:
            config["Cmd"] = cmd
        self._replace(db["uuid"], config)

    def deploy_application(self, app: Mapping[str, Any], envs: Mapping[str, str]) -> str:
        """Pull the app's image, replace its container (rolling update without the overlap), wait until up."""
        image_ref = self.image_reference(app)
        pulled = self.pull(image_ref)
        image = self.docker.image(image_ref) or {}
        port = str(app.get("ports_exposes") or "").split(",")[0].strip()
        config: dict[str, Any] = {
            "Image": image_ref,
            "Env": [f"{k}={v}" for k, v in envs.items()],
            "Labels": self.labels(app["uuid"], "application"),
        }
        host_config: dict[str, Any] = {}
        mapping = str(app.get("ports_mappings") or "").split(",")[0]  # "3000:3000": the droplet's 3000
        if port and (mapping or app.get("domains")):
            public = mapping.split(":")[0].strip()
            local = self.forwards().get(int(public)) if public.isdigit() else None
            config["ExposedPorts"] = {f"{port}/tcp": {}}
            # the droplet's forward of the app's port when it has one, else the port it was published on
            kept = str(local or self._published(app["uuid"], port))
            host_config["PortBindings"] = {f"{port}/tcp": [{"HostIp": "127.0.0.1", "HostPort": kept}]}
        check = self.health_check(app, image, port)
        if check is not None:
            config["Healthcheck"] = check
        if host_config:
            config["HostConfig"] = host_config
        self._replace(app["uuid"], config)
        deadline = time.monotonic() + self.deploy_timeout
        want = "running:healthy" if check is not None else "running:unknown"
        while True:
            status = self.status(app["uuid"])
            if status == want:
                break
            if status in ("exited", "running:unhealthy") or time.monotonic() > deadline:
                logs = self.docker.logs(app["uuid"], tail=15)
                raise RuntimeError(f"container {app['uuid']} is {status}:\n{logs}")
            time.sleep(0.5)
        digests = ", ".join(image.get("RepoDigests") or []) or "no registry digest"
        return f"Pulled {image_ref} ({pulled}; {digests}); started as {app['uuid']}; {want}."

    def _published(self, container: str, port: str) -> str:
        """The host port ``container`` publishes ``port`` on now ("" when none: Docker picks one)."""
        info = self.docker.inspect(container) or {}
        bindings = ((info.get("NetworkSettings") or {}).get("Ports") or {}).get(f"{port}/tcp") or []
        return str(bindings[0].get("HostPort") or "") if bindings else ""

    def status(self, resource_uuid: str) -> str:
        from helpers.rehearse.dockerapi import status_of

        return status_of(self.docker.inspect(resource_uuid))

    def stop(self, resource_uuid: str) -> None:
        self.docker.stop(resource_uuid)

    def restart(self, resource_uuid: str) -> None:
        self.docker.restart(resource_uuid)

    def remove(self, resource_uuid: str) -> None:
        self.docker.remove(resource_uuid)


def socket_hostname() -> str:
    import socket

    return socket.gethostname()


def remove_resources(server: str | None = None) -> int:
    """Remove the runtime's containers (all, or one droplet's) and networks from the host; the count."""
    label = RESOURCE_LABEL if server is None else f"{RESOURCE_LABEL}={server}"
    ids = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label={label}"], capture_output=True, text=True, timeout=60
    ).stdout.split()
    if ids:
        subprocess.run(["docker", "rm", "-f", "-v", *ids], capture_output=True, timeout=120)
    nets = subprocess.run(
        ["docker", "network", "ls", "-q", "--filter", f"label={label}"],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.split()
    for net in nets:
        subprocess.run(["docker", "network", "rm", net], capture_output=True, timeout=60)
    return len(ids)


# --------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> None:
    parser = cli_parser("A local, stateful Coolify v4 API stand-in (rehearsal of tasks 2.5 to 2.8).")
    parser.add_argument(
        "--coolify-version",
        default=os.environ.get("COOLIFY_STANDIN_VERSION") or DEFAULT_VERSION,
        help=f"the version /version reports (default {DEFAULT_VERSION})",
    )
    parser.add_argument(
        "--api",
        choices=("enabled", "disabled"),
        default=os.environ.get("COOLIFY_STANDIN_API") or "disabled",
        help="the API switch after install (Coolify: disabled until Settings → Advanced → API)",
    )
    parser.add_argument(
        "--legacy", action="store_true", help="answer like an older v4 beta (no environments API)"
    )
    parser.add_argument("--healthy-after-polls", type=int, default=2, help="reads before a start is healthy")
    parser.add_argument("--healthy-after-seconds", type=float, default=0.0)
    parser.add_argument("--rate-limit-per-minute", type=int, default=200)
    parser.add_argument("--state-file", type=Path, default=None, help="keep the state across restarts")
    parser.add_argument(
        "--data-dir", type=Path, default=Path("/data/coolify"), help="Coolify's files on the server (backups)"
    )
    parser.add_argument(
        "--runtime",
        choices=("auto", "docker", "simulated"),
        default=os.environ.get("COOLIFY_STANDIN_RUNTIME") or "auto",
        help="docker: real containers through /var/run/docker.sock; auto: docker when the socket answers",
    )
    args = parser.parse_args(argv)
    runtime = None if args.runtime == "simulated" else Runtime.detect()
    if args.runtime == "docker" and runtime is None:
        parser.error("--runtime docker: /var/run/docker.sock does not answer (start the droplet with it)")
    tokens = [t for t in os.environ.get("COOLIFY_API_TOKEN", "").split(",") if t.strip()]
    raw = os.environ.get("COOLIFY_STANDIN_TOKEN_ABILITIES", "")
    abilities = tuple(a.strip() for a in raw.split(",") if a.strip()) or DEFAULT_ABILITIES
    standin = CoolifyStandIn(
        {t.strip(): abilities for t in tokens},
        host=args.host,
        port=args.port,
        version=args.coolify_version,
        api_enabled=args.api == "enabled",
        legacy=args.legacy,
        healthy_after_polls=args.healthy_after_polls,
        healthy_after_seconds=args.healthy_after_seconds,
        rate_limit_per_minute=args.rate_limit_per_minute,
        state_file=args.state_file,
        runtime=runtime,
    )
    standin.data_dir = args.data_dir
    print(f"runtime: {'docker (' + runtime.network + ')' if runtime else 'simulated'}", flush=True)
    if not tokens:
        print("no COOLIFY_API_TOKEN in the environment: every API call will answer 401", flush=True)
    serve(standin, args.ready_file)


if __name__ == "__main__":
    main()
