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


# --------------------------------------------------------------------------- the stand-in


@dataclass
class RouteMeta:
    ability: str | None  # None: no token needed
    gated: bool  # answers 403 "API is disabled." while the API is off


class CoolifyStandIn(StandIn):
    """See the module docstring. ``tokens`` maps a token to its abilities (``None``: ``root``)."""

    name = "coolify"

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
        }
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

    def _register(self) -> None:
        self.add_route("GET", "/api/health", self._health, auth=False)
        self.meta[("GET", "/api/health")] = RouteMeta(None, False)
        self.add_route("GET", "/", self._dashboard, auth=False)
        self.meta[("GET", "/")] = RouteMeta(None, False)
        self.api("GET", "/health", self._health, ability=None, gated=False)
        for method in ("GET", "POST"):
            self.api(method, "/enable", self._enable, ability="write", gated=False)
            self.api(method, "/disable", self._disable, ability="write", gated=False)
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
        for method in ("GET", "POST"):
            self.api(method, "/databases/{uuid}/start", self._start_database, ability="deploy")
            self.api(method, "/databases/{uuid}/stop", self._stop_database, ability="deploy")

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
        self.touch()
        return json_response({"message": "Database deletion request queued."})

    def _start_database(self, request: Request) -> Response:
        db = self.database_or_404(request.params["uuid"])
        life = self.lifecycle(db["uuid"])
        if "running" in life.status:
            raise HTTPError(400, "Database is already running.")
        if life.status != "starting":
            life.start(self.clock())
        self.touch()
        return json_response({"message": "Database starting request queued.", "uuid": db["uuid"]})

    def _stop_database(self, request: Request) -> Response:
        db = self.database_or_404(request.params["uuid"])
        self.lifecycle(db["uuid"]).stop()
        self.touch()
        return json_response({"message": "Database stopping request queued.", "uuid": db["uuid"]})


# --------------------------------------------------------------------------- the rehearsal's port map


def published_dashboard_url(host: str, ssh_port: int) -> str | None:
    """Where the dashboard of the droplet container that publishes ``host:ssh_port`` is published.

    A rehearsal droplet is a container whose ports are published on 127.0.0.1 (its "public IP"): port 22
    on the SSH port that task 2.2 recorded, port 8000 on another. This reads Docker's port map
    (``docker port``), the rehearsal's equivalent of "the same IP, port 8000". None when no such container
    publishes port 8000.
    """
    if host not in ("127.0.0.1", "localhost"):
        return None
    try:
        names = subprocess.run(
            ["docker", "ps", "--filter", "label=runbook.standin=droplet", "--format", "{{.Names}}"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.split()
    except (OSError, subprocess.TimeoutExpired):
        return None
    for name in names:
        ports = _published(name)
        if ports.get(22) == int(ssh_port) and ports.get(8000):
            return f"http://127.0.0.1:{ports[8000]}"
    return None


def _published(container: str) -> dict[int, int]:
    proc = subprocess.run(["docker", "port", container], capture_output=True, text=True, timeout=30)
    found: dict[int, int] = {}
    for line in proc.stdout.splitlines():
        m = re.match(r"(\d+)/tcp -> 127\.0\.0\.1:(\d+)$", line.strip())
        if m:
            found[int(m.group(1))] = int(m.group(2))
    return found


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
    args = parser.parse_args(argv)
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
    )
    if not tokens:
        print("no COOLIFY_API_TOKEN in the environment: every API call will answer 401", flush=True)
    serve(standin, args.ready_file)


if __name__ == "__main__":
    main()
