"""Coolify's API v4: the client (plain httpx), its configuration and its error translation.

The client is plain httpx against Coolify's REST API (``/api/v1``, OpenAPI spec in the coollabsio/coolify
repository). The base URL comes from configuration, in this order: ``COOLIFY_API_URL``; what task 2.5
recorded in the phase-2 state file (``coolify.api_url``); ``http://<droplet IPv4>:8000/api/v1`` from task
2.2's record. The transport can be swapped (tests use the stand-in's in-process transport), so a rehearsal
against :mod:`helpers.rehearse.coolify` is configuration, not a code path.

What the client does for every call:

* sends ``Authorization: Bearer <COOLIFY_API_TOKEN>`` (from :mod:`helpers.core.secrets`, never printed) and
  ``Accept: application/json`` (without it some Coolify versions answer HTML);
* retries a 429 after its ``Retry-After`` (any method: a 429 was not processed), and 5xx / network errors
  only for GET (a failed POST may have been processed: the steps look before they create again);
* turns Coolify's error bodies (``{"message": ..., "errors": {field: [..]}}``) into the
  :mod:`helpers.clients.errors` family, whose message says what happened and what to do next (401 wrong
  token, 403 API disabled (:class:`ApiDisabled`) or a missing permission, 404, 409, 422 with each field's
  complaint);
* makes version differences a clear :class:`UnsupportedVersion` error (older v4 betas had no
  ``/projects/{uuid}/environments``; see ``shared/refs/coolify/NOTES.md``).

Coolify's list endpoints are not paginated (``GET /projects``, ``/servers``, ``/databases`` return arrays);
finding by name happens in the steps, client-side: :mod:`helpers.cloud.coolify_setup` (tasks 2.6 to 2.8)
and :mod:`helpers.cloud.coolify_apps` (2.14 to 2.17).
"""

from __future__ import annotations

import contextlib
import os
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import httpx

from helpers.clients.errors import (
    ApiError,
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    RateLimited,
    ServerError,
    Unauthorized,
    Unreachable,
)
from helpers.clients.http import JsonApiClient, error_body, is_http_url, token_in_clear
from helpers.core import secrets, state
from helpers.core.settings import env

VENDOR = "Coolify"

TOKEN_NAME = "COOLIFY_API_TOKEN"
DASHBOARD_PORT = 8000
API_PATH = "/api/v1"
# What the runbook's token needs: read (everything), write (projects, databases; 2.14-2.16 apps and env
# vars), deploy (start databases; 2.17 deploy webhooks), read:sensitive (read back the databases' internal
# URLs when the secrets file lost them). Coolify's "root" permission covers all of them.
TOKEN_ABILITIES: tuple[str, ...] = ("read", "write", "deploy", "read:sensitive")
STATE = "phase2"


def token_help() -> str:
    return (
        "in the Coolify dashboard open Keys & Tokens → API tokens, create a token with the permissions "
        f"{', '.join(TOKEN_ABILITIES)} (or root), copy it (it is shown once) and store it as "
        f"{TOKEN_NAME}=... in {secrets.secrets_file()} (git-ignored) or export it; task 2.6 shows how"
    )


# --------------------------------------------------------------------------- configuration


def api_url() -> str:
    """``COOLIFY_API_URL``, else task 2.5's record, else ``http://<droplet IPv4>:8000/api/v1``."""
    explicit = env.coolify_api_url
    if explicit:
        return explicit.rstrip("/")
    recorded = state.get(STATE, "coolify") or {}
    if recorded.get("api_url"):
        return str(recorded["api_url"]).rstrip("/")
    droplet = state.get(STATE, "droplet") or {}
    if droplet.get("ipv4"):
        return f"http://{droplet['ipv4']}:{DASHBOARD_PORT}{API_PATH}"
    raise LookupError(
        "no Coolify API URL: set COOLIFY_API_URL (e.g. http://203.0.113.7:8000/api/v1), or run task 2.5 "
        f"(it records the dashboard's address in {state.path(STATE)})"
    )


def dashboard_of(api: str) -> str:
    """``http://host:8000/api/v1`` → ``http://host:8000``."""
    api = api.rstrip("/")
    return api[: -len(API_PATH)] if api.endswith(API_PATH) else api


# --------------------------------------------------------------------------- errors of its own


class ApiDisabled(Forbidden):
    """403 "API is disabled.": Settings → Advanced → API Access is off."""


class UnsupportedVersion(ApiError):
    """This Coolify answers an endpoint the way an older release did (or not at all)."""


FIELD_HINTS = {
    "name": "a name of at most 255 characters",
    "server_uuid": "the uuid of a server from GET /servers (task 2.6 shows them)",
    "project_uuid": "the project's uuid from task 2.7 (GET /projects)",
    "environment_name": "an environment of the project, e.g. production (task 2.7 creates it)",
    "environment_uuid": "the environment's uuid from GET /projects/{uuid}/environments",
    "is_public": "true or false (the runbook keeps databases private: false)",
    "instant_deploy": "true or false",
    "image": "an image reference such as postgres:15-alpine",
    "docker_registry_image_name": "the image without its tag, e.g. ghcr.io/owner/repo-web",
    "ports_exposes": "the port(s) the container listens on, e.g. 3000",
    "domains": "full URLs, e.g. https://app.example.com (empty: no domain)",
}


def _error_from(response: httpx.Response, method: str, path: str) -> ApiError:
    body = error_body(response)
    message = str(body.get("message") or response.text[:300] or response.reason_phrase).strip()
    detail = body.get("error")
    if detail and str(detail) not in message:
        message += f" ({detail})"
    errors = body.get("errors") if isinstance(body.get("errors"), dict) else None
    status = response.status_code
    common: dict[str, Any] = {"status": status, "method": method, "path": path, "vendor": VENDOR}
    if status == 401 or (status == 400 and "invalid token" in message.lower()):
        return Unauthorized(
            message,
            hint=f"the token in {TOKEN_NAME} was refused (wrong, revoked or mistyped); {token_help()}",
            **common,
        )
    if status == 403:
        lowered = message.lower()
        if "api is disabled" in lowered:
            return ApiDisabled(
                message,
                hint="turn the API on: dashboard → Settings → Advanced → API Access (or run task 2.6 with "
                "enable_api=True, which calls /enable with your token), then re-run",
                **common,
            )
        if "missing required permissions" in lowered:
            wanted = message.rsplit(":", 1)[-1].strip()
            return Forbidden(
                message,
                hint=f"the token lacks the {wanted!r} permission; Coolify cannot add permissions to a token: "
                f"create a new one ({token_help()})",
                **common,
            )
        if "not allowed to access the api" in lowered:
            return Forbidden(
                message,
                hint="this IP is not in Settings → Advanced → Allowed IPs: add it (or empty the list)",
                **common,
            )
        return Forbidden(message, hint="the token's team or role may not do this; see the message", **common)
    if status == 404:
        return NotFound(
            message, hint="the resource does not exist (any more); check the uuid or name", **common
        )
    if status == 405:
        return NotFound(message, hint="this Coolify has no such endpoint; see the version notes", **common)
    if status == 409:
        return Conflict(message, hint="it exists already: look it up instead of creating it", **common)
    if status in (400, 422):
        fields = [f"{name}: {FIELD_HINTS[name]}" for name in (errors or {}) if name in FIELD_HINTS]
        hint = "fix the request: " + "; ".join(fields) if fields else "the message says what was refused"
        return InvalidRequest(message, hint=hint, errors=errors, **common)
    if status == 429:
        return RateLimited(
            message,
            hint=f"Coolify's API rate limit is exhausted; wait {response.headers.get('Retry-After', 'a')} "
            "seconds and re-run (raise API_RATE_LIMIT in /data/coolify/source/.env if it recurs)",
            **common,
        )
    if status >= 500:
        return ServerError(
            message,
            hint="Coolify had a problem (see `docker logs coolify` on the server); re-run the task, it looks "
            "before it creates",
            **common,
        )
    return ApiError(message, hint="unexpected answer; see the message", **common)


# --------------------------------------------------------------------------- the client


class Client(JsonApiClient):
    """A small Coolify v4 API client. ``transport`` swaps the network (tests, stand-ins).

    The retry rules and the token/URL checks are :class:`helpers.clients.http.JsonApiClient`'s; here: the
    URL checks (an ``/api/v1`` base), ``Accept: application/json``, retries of GET only, the error
    translation.
    """

    token_name = TOKEN_NAME
    retry_methods = frozenset({"GET"})
    extra_headers: ClassVar[Mapping[str, str]] = {"Accept": "application/json"}

    def token_help(self) -> str:
        return token_help()

    def default_base_url(self) -> str:
        return api_url()

    def check_base_url(self, split: urllib.parse.SplitResult) -> None:
        if not is_http_url(split):
            raise ValueError(
                f"Coolify API URL {self.base_url!r} is not an http(s) URL such as http://IP:8000/api/v1"
            )
        if not split.path.rstrip("/").endswith(API_PATH):
            raise ValueError(
                f"Coolify API URL {self.base_url!r} must end in {API_PATH} (e.g. http://203.0.113.7:8000/api/v1)"
            )

    def _target(self, path: str) -> tuple[str, str]:
        path = path if path.startswith("/") else "/" + path
        return self.base_url + path, path

    def _error(self, response: httpx.Response, method: str, path: str, sent: Any) -> ApiError:
        return _error_from(response, method, path)

    def _network_error(self, message: str, *, method: str, path: str, hint: str) -> Unreachable:
        return Unreachable(message, vendor=VENDOR, method=method, path=path, hint=hint)

    def _unreachable_hint(self) -> str:
        return (
            f"is Coolify running (task 2.5) and is port {DASHBOARD_PORT} open (ufw in task 2.4, the "
            f"cloud firewall in task 2.2)? Check COOLIFY_API_URL ({self.base_url})"
        )

    @property
    def dashboard_url(self) -> str:
        return dashboard_of(self.base_url)

    @property
    def plain_http_remote(self) -> bool:
        """True when the token travels in clear text to a non-loopback host (Coolify before a domain)."""
        return token_in_clear(urllib.parse.urlsplit(self.base_url))

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self.request("GET", path, params=params).json()

    def post(self, path: str, body: Any = None) -> Any:
        return self._json("POST", path, json=body)

    def patch(self, path: str, body: Any) -> Any:
        return self._json("PATCH", path, json=body)

    def delete(self, path: str) -> Any:
        return self._json("DELETE", path)

    # ---------------------------------------------------------------- instance

    def version(self) -> str:
        """``GET /version``: the version as text (``4.0.0-beta.420``)."""
        return self.request("GET", "/version").text.strip().strip('"')

    def health(self) -> str:
        """``GET /health``: ``OK`` (no token needed)."""
        return self.request("GET", "/health").text.strip()

    def enable_api(self) -> str:
        """``/enable`` (root team, write permission) turns the API on (POST in the spec, GET lately)."""
        try:
            body = self.post("/enable")
        except NotFound:
            body = self.get("/enable")
        return str(body.get("message", "")) if isinstance(body, dict) else str(body)

    def servers(self) -> list[dict[str, Any]]:
        return _array(self.get("/servers"), "GET /servers")

    # ---------------------------------------------------------------- projects and environments

    def projects(self) -> list[dict[str, Any]]:
        return _array(self.get("/projects"), "GET /projects")

    def project(self, project_uuid: str) -> dict[str, Any]:
        return self.get(f"/projects/{_seg(project_uuid)}")

    def create_project(self, name: str, description: str | None = None) -> dict[str, Any]:
        body = {"name": name} | ({"description": description} if description else {})
        return self.post("/projects", body)

    def environments(self, project_uuid: str) -> list[dict[str, Any]]:
        """``GET /projects/{uuid}/environments``; older Coolify versions raise :class:`UnsupportedVersion`."""
        path = f"/projects/{_seg(project_uuid)}/environments"
        try:
            return _array(self.get(path), f"GET {path}")
        except NotFound as exc:
            if "environment not found" in exc.api_message.lower():  # fell through to /{environment_name}
                raise self._too_old(path, "list environments") from exc
            raise

    def environment(self, project_uuid: str, name_or_uuid: str) -> dict[str, Any]:
        """``GET /projects/{uuid}/{environment_name_or_uuid}`` with the resources in it."""
        return self.get(f"/projects/{_seg(project_uuid)}/{_seg(name_or_uuid)}")

    def create_environment(self, project_uuid: str, name: str) -> dict[str, Any]:
        path = f"/projects/{_seg(project_uuid)}/environments"
        try:
            return self.post(path, {"name": name})
        except NotFound as exc:
            if exc.status == 405 or "environment not found" in exc.api_message.lower():
                raise self._too_old(path, f"create the environment {name!r}") from exc
            raise

    def _too_old(self, path: str, what: str) -> UnsupportedVersion:
        with contextlib.suppress(ApiError):
            version = self.version()
            return UnsupportedVersion(
                f"Coolify {version} has no {path} endpoint, so the runbook cannot {what} through the API",
                vendor=VENDOR,
                path=path,
                hint="update Coolify (dashboard → Settings → Update; the API gained environments in 2025 "
                "v4 betas), or do it in the dashboard (Projects → your project → + Add environment), "
                "then re-run the task",
            )
        return UnsupportedVersion(
            f"this Coolify has no {path} endpoint", vendor=VENDOR, path=path, hint="update Coolify"
        )

    # ---------------------------------------------------------------- databases

    def databases(self) -> list[dict[str, Any]]:
        return _array(self.get("/databases"), "GET /databases")

    def database(self, database_uuid: str) -> dict[str, Any]:
        return self.get(f"/databases/{_seg(database_uuid)}")

    def create_database(self, kind: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /databases/{kind}`` (postgresql, redis...): answers ``{uuid, internal_db_url}``."""
        return self.post(f"/databases/{_seg(kind)}", dict(body))

    def start_database(self, database_uuid: str) -> dict[str, Any]:
        return self.post(f"/databases/{_seg(database_uuid)}/start")

    # ---------------------------------------------------------------- applications (2.14 to 2.17)

    def applications(self) -> list[dict[str, Any]]:
        return _array(self.get("/applications"), "GET /applications")

    def application(self, app_uuid: str) -> dict[str, Any]:
        return self.get(f"/applications/{_seg(app_uuid)}")

    def create_dockerimage_app(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /applications/dockerimage``: answers ``{uuid}`` (201)."""
        return self.post("/applications/dockerimage", dict(body))

    def envs(self, app_uuid: str) -> list[dict[str, Any]]:
        """``GET /applications/{uuid}/envs``; values only with ``read:sensitive``."""
        return _array(self.get(f"/applications/{_seg(app_uuid)}/envs"), "GET /applications/{uuid}/envs")

    def bulk_envs(self, app_uuid: str, data: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """``PATCH /applications/{uuid}/envs/bulk`` with ``{"data": [...]}`` (creates or updates by key)."""
        return _array(
            self.patch(f"/applications/{_seg(app_uuid)}/envs/bulk", {"data": [dict(d) for d in data]}),
            "PATCH /applications/{uuid}/envs/bulk",
        )

    def delete_env(self, app_uuid: str, env_uuid: str) -> dict[str, Any]:
        return self.delete(f"/applications/{_seg(app_uuid)}/envs/{_seg(env_uuid)}")

    def deploy(self, app_uuids: Sequence[str], force: bool = False) -> list[dict[str, Any]]:
        """The deploy webhook: ``POST /deploy?uuid=a,b&force=false`` (token with ``deploy``).

        Answers one entry per resource: ``{message, resource_uuid, deployment_uuid}``. Coolify answers
        a GET here with 405 since v4.2.0 ("This endpoint has changed to a POST request.").
        """
        params = {"uuid": ",".join(app_uuids), "force": "true" if force else "false"}
        body = self.request("POST", "/deploy", params=params).json()
        return list(body.get("deployments") or []) if isinstance(body, dict) else []

    def deployment(self, deployment_uuid: str) -> dict[str, Any]:
        return self.get(f"/deployments/{_seg(deployment_uuid)}")

    def app_deployments(self, app_uuid: str, take: int = 10) -> list[dict[str, Any]]:
        """Newest first. Coolify answers ``{count, deployments}`` (the spec says a list: both accepted)."""
        body = self.get(f"/deployments/applications/{_seg(app_uuid)}", params={"skip": 0, "take": take})
        if isinstance(body, dict):
            body = body.get("deployments") or []
        return _array(body, "GET /deployments/applications/{uuid}")

    # ---------------------------------------------------------------- operations (backups, logs, rollback)

    def update_application(self, app_uuid: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """``PATCH /applications/{uuid}`` (health checks, the image tag of a rollback): answers ``{uuid}``."""
        return self.patch(f"/applications/{_seg(app_uuid)}", dict(body))

    def start_application(self, app_uuid: str) -> dict[str, Any]:
        """``POST /applications/{uuid}/start``: queues a deployment (``{message, deployment_uuid}``)."""
        return self.post(f"/applications/{_seg(app_uuid)}/start")

    def stop_application(self, app_uuid: str) -> dict[str, Any]:
        return self.post(f"/applications/{_seg(app_uuid)}/stop")

    def restart_application(self, app_uuid: str) -> dict[str, Any]:
        return self.post(f"/applications/{_seg(app_uuid)}/restart")

    def delete_application(self, app_uuid: str) -> dict[str, Any]:
        return self.delete(f"/applications/{_seg(app_uuid)}")

    def application_logs(self, app_uuid: str, lines: int = 100, timestamps: bool = True) -> str:
        """``GET /applications/{uuid}/logs?lines=N&show_timestamps=...``: the container's last lines."""
        params = {"lines": int(lines), "show_timestamps": "true" if timestamps else "false"}
        body = self.get(f"/applications/{_seg(app_uuid)}/logs", params=params)
        return str(body.get("logs") or "") if isinstance(body, dict) else str(body or "")

    def database_logs(self, database_uuid: str, lines: int = 100, timestamps: bool = True) -> str:
        params = {"lines": int(lines), "show_timestamps": "true" if timestamps else "false"}
        body = self.get(f"/databases/{_seg(database_uuid)}/logs", params=params)
        return str(body.get("logs") or "") if isinstance(body, dict) else str(body or "")

    def stop_database(self, database_uuid: str) -> dict[str, Any]:
        return self.post(f"/databases/{_seg(database_uuid)}/stop")

    def delete_database(self, database_uuid: str) -> dict[str, Any]:
        return self.delete(f"/databases/{_seg(database_uuid)}")

    def delete_project(self, project_uuid: str) -> dict[str, Any]:
        return self.delete(f"/projects/{_seg(project_uuid)}")

    def database_backups(self, database_uuid: str) -> list[dict[str, Any]]:
        """``GET /databases/{uuid}/backups``: the scheduled backups, each with its ``executions``."""
        return _array(self.get(f"/databases/{_seg(database_uuid)}/backups"), "GET /databases/{uuid}/backups")

    def create_backup(self, database_uuid: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /databases/{uuid}/backups``: answers ``{uuid, message}`` (201)."""
        return self.post(f"/databases/{_seg(database_uuid)}/backups", dict(body))

    def update_backup(self, database_uuid: str, backup_uuid: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.patch(f"/databases/{_seg(database_uuid)}/backups/{_seg(backup_uuid)}", dict(body))

    def backup_executions(self, database_uuid: str, backup_uuid: str) -> list[dict[str, Any]]:
        """Newest first: ``{uuid, filename, size, created_at, message, status}`` (status ``success``...)."""
        path = f"/databases/{_seg(database_uuid)}/backups/{_seg(backup_uuid)}/executions"
        body = self.get(path)
        return _array(body.get("executions") if isinstance(body, dict) else body, f"GET {path}")

    def s3_storages(self) -> list[dict[str, Any]]:
        return _array(self.get("/s3-storages"), "GET /s3-storages")

    def create_s3_storage(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.post("/s3-storages", dict(body))

    def update_s3_storage(self, storage_uuid: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.patch(f"/s3-storages/{_seg(storage_uuid)}", dict(body))


def _seg(value: str) -> str:
    return urllib.parse.quote(str(value), safe="")


def _array(value: Any, what: str) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise UnsupportedVersion(
            f"{what} answered {type(value).__name__}, not a list",
            vendor=VENDOR,
            hint="this Coolify answers differently from the v4 API the runbook knows; update it",
        )
    return value


def connect(
    base_url: str | None = None, *, transport: httpx.BaseTransport | None = None, **kwargs: Any
) -> Client:
    """A client with the token from :mod:`helpers.core.secrets` and the configured base URL."""
    return Client(secrets.get(TOKEN_NAME), base_url, transport=transport, **kwargs)


# --------------------------------------------------------------------------- versions


def parse_version(text: str) -> tuple[int, ...]:
    """``v4.0.0-beta.420`` → ``(4, 0, 0, 420)``; numbers only, for comparisons."""
    return tuple(int(n) for n in re.findall(r"\d+", text))


def token_source() -> str:
    """Where the token comes from, never its value."""
    if os.environ.get(TOKEN_NAME):
        return "environment"
    if secrets.has(TOKEN_NAME):
        return f"secrets file {secrets.secrets_file()}"
    return "not set"
