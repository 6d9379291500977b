"""Coolify: the API client and the idempotent steps of tasks 2.6 (token), 2.7 (project) and 2.8 (databases).

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
* turns Coolify's error bodies (``{"message": ..., "errors": {field: [..]}}``) into :class:`CoolifyError`
  subclasses whose message says what happened and what to do next (401 wrong token, 403 API disabled or a
  missing permission, 404, 409, 422 with each field's complaint);
* makes version differences a clear :class:`UnsupportedVersion` error (older v4 betas had no
  ``/projects/{uuid}/environments``; see ``shared/refs/coolify/NOTES.md``).

Coolify's list endpoints are not paginated (``GET /projects``, ``/servers``, ``/databases`` return arrays);
finding by name happens here, client-side.

Later tasks (2.14 to 2.17: applications, their environment variables, deployments) add methods to
:class:`Client` along the same lines and reuse :func:`find_project`, :class:`Target` and the wait helpers.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import httpx

from helpers.clients.http import LOOPBACK as LOOPBACK  # re-exported: this module's public names
from helpers.clients.http import JsonApiClient, error_body, is_http_url, token_in_clear
from helpers.clients.http import retry_delay as retry_delay
from helpers.core import secrets, state, steps
from helpers.core.settings import env
from helpers.core.steps import StepResult

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


# --------------------------------------------------------------------------- errors


class CoolifyError(RuntimeError):
    """The API answered an error (or could not be reached). ``hint`` is the next step."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        method: str = "",
        path: str = "",
        hint: str = "",
        errors: Mapping[str, Sequence[str]] | None = None,
    ):
        self.status = status
        self.api_message = message
        self.method = method
        self.path = path
        self.hint = hint
        self.errors = {
            k: list(v) if isinstance(v, list | tuple) else [str(v)] for k, v in (errors or {}).items()
        }
        head = f"Coolify {method} {path}".strip()
        if status:
            head += f" answered {status}"
        text = f"{head}: {message}"
        for name, complaints in self.errors.items():
            text += f"\n  {name}: {'; '.join(complaints)}"
        if hint:
            text += f"\nnext step: {hint}"
        super().__init__(text)


class Unauthorized(CoolifyError):
    """401 (or 400 "Invalid token."): the token is wrong, revoked, or of a deleted team."""


class Forbidden(CoolifyError):
    """403: the API is disabled, the token lacks a permission, or this IP is not allowed."""


class ApiDisabled(Forbidden):
    """403 "API is disabled.": Settings → Advanced → API Access is off."""


class NotFound(CoolifyError):
    """404."""


class Conflict(CoolifyError):
    """409: e.g. an environment of that name exists already."""


class ValidationFailed(CoolifyError):
    """422 (or 400 "Invalid request."): ``errors`` maps each refused field to its complaints."""


class RateLimited(CoolifyError):
    """429 that outlasted the retries."""


class ServerError(CoolifyError):
    """5xx: Coolify's side; a POST may or may not have been processed."""


class Unreachable(CoolifyError):
    """No HTTP answer at all (DNS, refused connection, timeout)."""


class UnsupportedVersion(CoolifyError):
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


def _error_from(response: httpx.Response, method: str, path: str) -> CoolifyError:
    body = error_body(response)
    message = str(body.get("message") or response.text[:300] or response.reason_phrase).strip()
    detail = body.get("error")
    if detail and str(detail) not in message:
        message += f" ({detail})"
    errors = body.get("errors") if isinstance(body.get("errors"), dict) else None
    status = response.status_code
    common: dict[str, Any] = {"status": status, "method": method, "path": path}
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
        return ValidationFailed(message, hint=hint, errors=errors, **common)
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
    return CoolifyError(message, hint="unexpected answer; see the message", **common)


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

    def _error(self, response: httpx.Response, method: str, path: str, sent: Any) -> CoolifyError:
        return _error_from(response, method, path)

    def _network_error(self, message: str, *, method: str, path: str, hint: str) -> Unreachable:
        return Unreachable(message, method=method, path=path, hint=hint)

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

    def _json_params(self, method: str, path: str, params: Mapping[str, Any]) -> Any:
        return self.request(method, path, params=params).json()

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
        with contextlib.suppress(CoolifyError):
            version = self.version()
            return UnsupportedVersion(
                f"Coolify {version} has no {path} endpoint, so the runbook cannot {what} through the API",
                path=path,
                hint="update Coolify (dashboard → Settings → Update; the API gained environments in 2025 "
                "v4 betas), or do it in the dashboard (Projects → your project → + Add environment), "
                "then re-run the task",
            )
        return UnsupportedVersion(f"this Coolify has no {path} endpoint", path=path, hint="update Coolify")

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
        body = self._json_params("POST", "/deploy", params)
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


# --------------------------------------------------------------------------- task 2.6: the token


def token_source() -> str:
    """Where the token comes from, never its value."""
    if os.environ.get(TOKEN_NAME):
        return "environment"
    if secrets.has(TOKEN_NAME):
        return f"secrets file {secrets.secrets_file()}"
    return "not set"


def ensure_api_enabled(client: Client, enable: bool, dry_run: bool = False) -> StepResult:
    """The API answers (``GET /version``); when it is disabled, turn it on only with ``enable``."""
    name = "Coolify API enabled"
    try:
        version = client.version()
        return steps.ok(name, f"answers (Coolify {version})")
    except ApiDisabled as exc:
        if dry_run:
            return steps.changed(name, "would call /enable (the API is disabled)", dry_run=True)
        if not enable:
            return steps.failed(name, f"{exc.api_message} Next step: {exc.hint}")
    message = client.enable_api()
    return steps.changed(name, f"{message or 'enabled'} (Coolify {client.version()})")


def check_token(check: Any, client: Client, recorded: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Task 2.6's verification: the token works, against the API's real state; never shows the token."""
    check("COOLIFY_API_TOKEN is set", secrets.has(TOKEN_NAME), token_source(), hint=token_help())
    try:
        health = client.health()
    except CoolifyError as exc:
        health = f"{type(exc).__name__}: {exc.api_message}"
    check(
        f"GET {client.base_url}/health answers OK",
        health == "OK",
        health,
        hint=f"Coolify does not answer on {client.dashboard_url}: task 2.5, firewall port {DASHBOARD_PORT}",
    )
    version = check.call(
        "GET /version with the token (authenticated, API enabled)",
        client.version,
        hint=f"401: {token_help()}; 403 API is disabled: Settings → Advanced → API Access",
    )
    found: dict[str, Any] = {"version": version, "health": health}
    if version:
        check(
            "it is Coolify v4",
            parse_version(version)[:1] == (4,),
            version,
            hint="the runbook follows Coolify v4's API; install v4 (task 2.5)",
        )
        if recorded and recorded.get("version"):
            check(
                "same version as task 2.5 found",
                parse_version(version) == parse_version(str(recorded["version"])),
                f"API {version}, task 2.5 {recorded['version']}",
                hint="Coolify updated itself since 2.5 (fine); re-run 2.5 to record the new version",
            )
        try:
            servers = client.servers()
        except CoolifyError as exc:
            servers, listed = [], f"{type(exc).__name__}: {exc.api_message}"
        else:
            listed = ", ".join(f"{s.get('name')} ({s.get('ip')})" for s in servers) or "none"
        check("GET /servers lists the servers", bool(servers), listed, hint=token_help())
        if servers:
            usable = [s for s in servers if s.get("is_usable", (s.get("settings") or {}).get("is_usable"))]
            check(
                "a usable server (Coolify's own 'localhost')",
                bool(usable),
                ", ".join(str(s.get("name")) for s in usable) or "none usable",
                hint="dashboard → Servers → localhost → Validate; Coolify must reach its host over SSH "
                "(task 2.4 allows root from Docker's networks for that)",
            )
            found["servers"] = servers
        projects = check.call("GET /projects (read permission)", lambda: isinstance(client.projects(), list))
        found["projects_ok"] = projects
    if client.plain_http_remote:
        check(
            "token travels over plain http (until a domain and HTTPS front Coolify)",
            True,
            "acceptable while port 8000 is the only way in; rotate the token after setting the domain",
        )
    return found


# --------------------------------------------------------------------------- task 2.7: the project


def find_project(client: Client, name: str) -> list[dict[str, Any]]:
    """Projects with exactly this name (Coolify allows several: the caller decides)."""
    return [p for p in client.projects() if p.get("name") == name]


def require_project(client: Client, name: str, dry_run: bool = False) -> dict[str, Any] | None:
    """The project task 2.7 made (None in a dry run before it exists); a clear error otherwise."""
    found = find_project(client, name)
    if len(found) == 1:
        return client.project(found[0]["uuid"])
    if not found and dry_run:
        return None
    raise LookupError(
        f"{len(found)} Coolify projects are named {name!r}: "
        + (
            "run task 2.7 first (it creates the project)"
            if not found
            else "delete the extras in the dashboard"
        )
    )


def ensure_project(
    client: Client, name: str, description: str = "", dry_run: bool = False
) -> tuple[StepResult, dict[str, Any] | None]:
    step = f"project {name!r}"
    if not name.strip():
        return steps.failed(
            step, "project_name is empty; give the project a name, e.g. implementation3"
        ), None
    found = find_project(client, name)
    if len(found) > 1:
        uuids = ", ".join(p["uuid"] for p in found)
        return steps.failed(
            step, f"{len(found)} projects are named {name!r} ({uuids}); delete the extras"
        ), None
    if found:
        return steps.ok(step, f"exists (uuid {found[0]['uuid']})"), found[0]
    body = {"name": name} | ({"description": description} if description else {})
    diff = f"POST {client.base_url}/projects\n{json.dumps(body, indent=2)}"
    if dry_run:
        return steps.changed(step, "would create it", diff=diff, dry_run=True), None
    created = client.create_project(name, description or None)
    project = client.project(created["uuid"])
    return steps.changed(step, f"created (uuid {project['uuid']})", diff=diff), project


def ensure_environment(
    client: Client, project: Mapping[str, Any] | None, name: str = "production", dry_run: bool = False
) -> tuple[StepResult, dict[str, Any] | None]:
    """The project's environment ``name`` (Coolify makes ``production`` with every new project)."""
    step = f"environment {name!r}"
    if project is None:  # dry run before the project exists
        return steps.changed(step, "would be created with the project", dry_run=True), None
    envs = list_environments(client, project["uuid"])
    match = next((e for e in envs if e.get("name") == name), None)
    if match:
        return steps.ok(step, f"exists (uuid {match['uuid']})"), match
    path = f"/projects/{project['uuid']}/environments"
    diff = f"POST {client.base_url}{path}\n{json.dumps({'name': name}, indent=2)}"
    if dry_run:
        return steps.changed(step, "would create it", diff=diff, dry_run=True), None
    try:
        created = client.create_environment(project["uuid"], name)
    except Conflict:  # created meanwhile (or a lost response): look again
        created = next(e for e in client.environments(project["uuid"]) if e.get("name") == name)
    env = client.environment(project["uuid"], created["uuid"])
    return steps.changed(step, f"created (uuid {env['uuid']})", diff=diff), env


def list_environments(client: Client, project_uuid: str) -> list[dict[str, Any]]:
    """The project's environments; on an older Coolify without the endpoint, from ``GET /projects/{uuid}``."""
    try:
        return client.environments(project_uuid)
    except UnsupportedVersion:
        embedded = client.project(project_uuid).get("environments")
        if isinstance(embedded, list):
            return embedded
        raise


def project_record(project: Mapping[str, Any], environment: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "uuid": project["uuid"],
        "name": project["name"],
        "environment": environment["name"],
        "environment_uuid": environment["uuid"],
    }


def check_project(
    check: Any, client: Client, name: str, environment: str, recorded: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """Task 2.7's verification, re-read from the API."""
    found = find_project(client, name)
    check(
        f"exactly one project named {name!r}",
        len(found) == 1,
        ", ".join(p["uuid"] for p in found) or "none",
        hint="none: run the cells above without dry_run; several: delete the extras in the dashboard",
    )
    if len(found) != 1:
        return None
    project = client.project(found[0]["uuid"])
    check("GET /projects/{uuid} answers it", project.get("uuid") == found[0]["uuid"], project.get("uuid"))
    envs = list_environments(client, project["uuid"])
    names = [e.get("name") for e in envs]
    check(
        f"environment {environment!r} exists",
        environment in names,
        ", ".join(map(str, names)) or "none",
        hint="re-run the environment cell",
    )
    env = None
    if environment in names:
        env = client.environment(project["uuid"], environment)
        check(
            f"GET /projects/{{uuid}}/{environment} answers it",
            env.get("name") == environment,
            env.get("uuid"),
        )
    if recorded is not None:
        check(
            "state file records this project and environment",
            recorded.get("uuid") == project["uuid"]
            and env is not None
            and recorded.get("environment_uuid") == env.get("uuid"),
            f"{recorded.get('uuid')} / {recorded.get('environment_uuid')}",
            hint="re-run the 'record' cell",
        )
    return project


# --------------------------------------------------------------------------- task 2.8: the databases


@dataclass(frozen=True)
class Target:
    """Where databases and applications go: server, project and environment (names and uuids)."""

    server_uuid: str
    project_uuid: str
    environment_name: str
    environment_uuid: str

    def body(self) -> dict[str, str]:
        """The four fields every create request carries (the spec requires all four)."""
        return {
            "server_uuid": self.server_uuid,
            "project_uuid": self.project_uuid,
            "environment_name": self.environment_name,
            "environment_uuid": self.environment_uuid,
        }


def find_server(client: Client, name: str = "localhost") -> dict[str, Any]:
    servers = client.servers()
    found = [s for s in servers if s.get("name") == name or s.get("uuid") == name]
    if len(found) != 1:
        names = ", ".join(str(s.get("name")) for s in servers) or "none"
        raise LookupError(
            f"{len(found)} servers are named {name!r} in Coolify (servers: {names}); set server_name to one "
            "of them (Coolify's own server is 'localhost')"
        )
    return found[0]


def resolve_target(
    client: Client, server_name: str, project: Mapping[str, Any] | None, env: str
) -> Target | None:
    """The target from the API (None in a dry run before the project exists)."""
    server = find_server(client, server_name)
    if project is None:
        return None
    environment = client.environment(project["uuid"], env)
    return Target(server["uuid"], project["uuid"], environment["name"], environment["uuid"])


@dataclass(frozen=True)
class DatabaseSpec:
    """One database of task 2.8: what to create, and where its password and URL are kept."""

    kind: str  # the API's path: postgresql, redis
    name: str
    image: str
    password_secret: str
    url_secret: str
    password_field: str
    extra: tuple[tuple[str, str], ...] = ()  # e.g. (("postgres_user", "app"), ("postgres_db", "app"))
    description: str = ""

    @property
    def relation(self) -> str:
        """The key under which ``GET /projects/{uuid}/{env}`` lists this kind."""
        return {"postgresql": "postgresqls", "redis": "redis"}.get(self.kind, self.kind)

    def body(self, target: Target | None, password: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            **(target.body() if target else {}),
            "name": self.name,
            "image": self.image,
            "is_public": False,
            "instant_deploy": True,
            self.password_field: password,
            **dict(self.extra),
        }
        if self.description:
            body["description"] = self.description
        return body

    def url(self, database_uuid: str, password: str) -> str:
        """The internal URL as Coolify builds it (host = the container's name = the database's uuid)."""
        extra = dict(self.extra)
        if self.kind == "postgresql":
            user, db = extra.get("postgres_user", "postgres"), extra.get("postgres_db", "postgres")
            return f"postgres://{user}:{password}@{database_uuid}:5432/{db}"
        if self.kind == "redis":
            return f"redis://default:{password}@{database_uuid}:6379/0"
        raise ValueError(f"no URL scheme known for {self.kind}")


def database_specs(
    postgres_name: str,
    redis_name: str,
    postgres_image: str = "postgres:15-alpine",
    redis_image: str = "redis:7-alpine",
    postgres_user: str = "app",
    postgres_db: str = "app",
) -> list[DatabaseSpec]:
    for label, image, major in (("postgres_image", postgres_image, "15"), ("redis_image", redis_image, "7")):
        tag = image.rsplit(":", 1)[-1] if ":" in image else ""
        if not tag.startswith(major):
            raise ValueError(
                f"{label} {image!r}: the app needs major version {major} (e.g. "
                f"{'postgres:15-alpine' if major == '15' else 'redis:7-alpine'}); pin the tag"
            )
    for label, value in (("postgres_user", postgres_user), ("postgres_db", postgres_db)):
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", value):
            raise ValueError(
                f"{label} {value!r}: use lower-case letters, digits and '_' (PostgreSQL identifier)"
            )
    return [
        DatabaseSpec(
            "postgresql",
            postgres_name,
            postgres_image,
            "PROD_POSTGRES_PASSWORD",
            "PROD_DATABASE_URL",
            "postgres_password",
            (("postgres_user", postgres_user), ("postgres_db", postgres_db)),
            "PostgreSQL 15 for the web app and the worker (task 2.8)",
        ),
        DatabaseSpec(
            "redis",
            redis_name,
            redis_image,
            "PROD_REDIS_PASSWORD",
            "PROD_REDIS_URL",
            "redis_password",
            (),
            "Redis 7 for BullMQ (task 2.8)",
        ),
    ]


def find_databases(
    client: Client, project_uuid: str, environment: str, spec: DatabaseSpec
) -> list[dict[str, Any]]:
    """Databases of this kind and name in the project's environment (from the environment's details)."""
    details = client.environment(project_uuid, environment)
    return [d for d in details.get(spec.relation) or [] if d.get("name") == spec.name]


def ensure_password(spec: DatabaseSpec, dry_run: bool = False) -> StepResult:
    """A strong password in the secrets file (generated once; never shown)."""
    step = f"{spec.password_secret} in the secrets file"
    if secrets.has(spec.password_secret):
        return steps.ok(step, f"set ({len(secrets.get(spec.password_secret))} characters)")
    if dry_run:
        return steps.changed(step, "would generate a 32-character password and store it", dry_run=True)
    path = secrets.put(spec.password_secret, secrets.generate(24))
    return steps.changed(step, f"generated (32 characters) and stored in {path}")


def ensure_database(
    client: Client, project_uuid: str | None, environment: str, target: Target | None, spec: DatabaseSpec,
    dry_run: bool = False,
) -> tuple[StepResult, dict[str, Any] | None]:  # fmt: skip
    """Find the database by name in the environment, else create it (private, started at once)."""
    step = f"{spec.kind} {spec.name!r}"
    found = find_databases(client, project_uuid, environment, spec) if project_uuid else []
    if len(found) > 1:
        uuids = ", ".join(d["uuid"] for d in found)
        return steps.failed(
            step, f"{len(found)} databases are named {spec.name!r} ({uuids}); delete the extras"
        ), None
    if found:
        return steps.ok(step, f"exists (uuid {found[0]['uuid']}, {found[0].get('status', '?')})"), found[0]
    shown = spec.body(target, "<" + spec.password_secret + " from the secrets file>")
    diff = f"POST {client.base_url}/databases/{spec.kind}\n{json.dumps(shown, indent=2)}"
    if dry_run or target is None:
        return steps.changed(step, "would create it (private, instant deploy)", diff=diff, dry_run=True), None
    password = secrets.get(spec.password_secret)
    created = client.create_database(spec.kind, spec.body(target, password))
    database = client.database(created["uuid"])
    url = str(created.get("internal_db_url") or "")
    kept = ""
    if url:
        secrets.put(spec.url_secret, url)  # recorded at once: a later step failing must not lose it
        kept = f"; its internal URL is kept as {spec.url_secret}"
    detail = f"created (uuid {created['uuid']}, {database.get('status', '?')}){kept}"
    return steps.changed(step, detail, diff=diff), database


def ensure_started(
    client: Client, database: Mapping[str, Any] | None, spec: DatabaseSpec, dry_run: bool = False
) -> StepResult:
    """Start the database unless it runs or is starting (``instant_deploy`` starts new ones)."""
    step = f"{spec.name} started"
    if database is None:
        return steps.changed(step, "would start it (instant_deploy)", dry_run=True)
    status = str(client.database(database["uuid"]).get("status", ""))
    if status.startswith("running") or status.startswith("starting") or status.startswith("restarting"):
        return steps.ok(step, status)
    if dry_run:
        return steps.changed(step, f"would start it (status {status or 'unknown'})", dry_run=True)
    message = client.start_database(database["uuid"]).get("message", "start requested")
    return steps.changed(step, f"{status or 'unknown'} → {message}")


def wait_healthy(
    client: Client,
    database_uuid: str,
    timeout: float = 300.0,
    interval: float = 3.0,
    progress: Callable[[str], None] = print,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    exited_grace: float = 180.0,
) -> dict[str, Any]:
    """Poll ``GET /databases/{uuid}`` until ``running:healthy``; show each change of status.

    ``exited`` longer than ``exited_grace`` seconds (the image pull included) is a failure, not a wait.
    """
    start = clock()
    last = None
    while True:
        database = client.database(database_uuid)
        status = str(database.get("status", ""))
        elapsed = clock() - start
        if status != last:
            progress(f"[{elapsed:5.0f}s] {database.get('name')} ({database_uuid}): {status or '?'}")
            last = status
        if status == "running:healthy":
            return database
        if status.startswith("exited") and elapsed > exited_grace:
            raise CoolifyError(
                f"{database.get('name')} is still {status} {elapsed:.0f}s after its start",
                hint="open it in the dashboard and read its logs (or `docker logs <uuid>` on the server); "
                "fix, then re-run task 2.8 (it starts what is stopped)",
            )
        if elapsed >= timeout:
            raise TimeoutError(
                f"{database.get('name')} is still {status or 'unknown'} after {timeout:.0f}s; the image may "
                "still be pulling: re-run task 2.8 (it waits again, creates nothing twice)"
            )
        sleep(interval)


def ensure_connection_url(
    client: Client, database: Mapping[str, Any] | None, spec: DatabaseSpec, dry_run: bool = False
) -> StepResult:
    """Keep the database's internal URL as a secret for task 2.16 (``PROD_DATABASE_URL``...); never shown."""
    step = f"{spec.url_secret} in the secrets file"
    if database is None:
        return steps.changed(step, "would record the internal URL once the database exists", dry_run=True)
    password = secrets.get(spec.password_secret, "") if secrets.has(spec.password_secret) else ""
    current = client.database(database["uuid"])
    url = str(current.get("internal_db_url") or "")  # present when the token may read sensitive data
    if not url and password:
        url = spec.url(database["uuid"], password)
    if not url:
        return steps.failed(
            step,
            f"the URL cannot be rebuilt: {spec.password_secret} is not in the secrets file and the token "
            "may not read sensitive data. Next step: give the token read:sensitive (task 2.6), or delete "
            "the database in the dashboard and re-run task 2.8",
        )
    if secrets.has(spec.url_secret) and secrets.get(spec.url_secret) == url:
        return steps.ok(step, f"recorded (host {database['uuid']})")
    if dry_run:
        return steps.changed(step, "would record the internal URL", dry_run=True)
    path = secrets.put(spec.url_secret, url)
    return steps.changed(step, f"recorded in {path} (host {database['uuid']})")


def databases_record(
    client: Client, project_uuid: str, environment: str, specs: Sequence[DatabaseSpec]
) -> dict[str, Any]:
    """Non-secret facts for later tasks (the state file), read back from the API: per kind its uuid,
    name, image, and the name of the secret that holds its URL."""
    out: dict[str, Any] = {}
    for spec in specs:
        found = find_databases(client, project_uuid, environment, spec)
        if len(found) == 1:
            db = found[0]
            out[spec.kind] = {
                "uuid": db["uuid"],
                "name": db.get("name", spec.name),
                "image": db.get("image", spec.image),
                "url_name": spec.url_secret,
            }
    return out


def _url_parts(url: str) -> tuple[str, str, str]:
    """(scheme, host, password) of a connection URL; checked, never shown."""
    split = urllib.parse.urlsplit(url)
    return split.scheme, split.hostname or "", urllib.parse.unquote(split.password or "")


def check_databases(
    check: Any,
    client: Client,
    project_uuid: str,
    environment: str,
    specs: Sequence[DatabaseSpec],
    recorded: Mapping[str, Any] | None,
) -> None:
    """Task 2.8's verification: the API's real state, the secrets file and the state file agree."""
    for spec in specs:
        found = find_databases(client, project_uuid, environment, spec)
        check(
            f"exactly one {spec.kind} named {spec.name!r} in {environment}",
            len(found) == 1,
            ", ".join(d["uuid"] for d in found) or "none",
            hint="none: run the cells above without dry_run; several: delete the extras in the dashboard",
        )
        if len(found) != 1:
            continue
        db = client.database(found[0]["uuid"])
        major = "15" if spec.kind == "postgresql" else "7"
        image = str(db.get("image", ""))
        check(
            f"{spec.name}: image is {spec.kind} {major}",
            image.rsplit(":", 1)[-1].startswith(major)
            and image.split(":")[0].endswith(spec.image.split(":")[0]),
            image,
            hint=f"an existing database was kept; change its image in the dashboard to {spec.image}",
        )
        check(
            f"{spec.name}: not public",
            db.get("is_public") is False,
            f"is_public {db.get('is_public')}",
            hint="dashboard → the database → uncheck 'Make it publicly available'",
        )
        check(
            f"{spec.name}: running:healthy",
            db.get("status") == "running:healthy",
            db.get("status"),
            hint="wait and re-run the verification; if it stays unhealthy read its logs in the dashboard",
        )
        password = secrets.get(spec.password_secret) if secrets.has(spec.password_secret) else ""
        check(
            f"{spec.password_secret}: strong, in the secrets file",
            len(password) >= 24,
            f"{len(password)} characters" if password else "missing",
            hint="re-run the password cell (a database created with another password keeps it: delete it)",
        )
        url = secrets.get(spec.url_secret) if secrets.has(spec.url_secret) else ""
        scheme, host, url_password = _url_parts(url) if url else ("", "", "")
        check(
            f"{spec.url_secret}: internal URL of this database, with that password",
            bool(url)
            and host == db["uuid"]
            and url_password == password
            and scheme in ("postgres", "postgresql", "redis"),
            f"{scheme}://…@{host}" if url else "missing",
            hint="re-run the connection URL cell",
        )
        visible = str(db.get("internal_db_url") or "")
        if visible:
            check(
                f"{spec.name}: Coolify's internal URL equals the recorded one",
                visible == url,
                "same" if visible == url else "differs",
                hint="the password was changed in the dashboard? re-run the connection URL cell",
            )
        if recorded is not None:
            mine = (recorded or {}).get(spec.kind) or {}
            check(
                f"state file records {spec.name}",
                mine.get("uuid") == db["uuid"],
                mine.get("uuid"),
                hint="re-run the 'record' cell",
            )


def check_plan(check: Any, results: Sequence[StepResult]) -> None:
    """A dry run's verification: nothing was changed, nothing failed."""
    for r in results:
        check(
            f"dry run: {r.name}",
            r.status in ("ok", "would change", "skipped"),
            r.status + (f": {r.detail}" if r.detail else ""),
            hint="a dry run must not change anything; report this as a bug"
            if r.status == "changed"
            else r.detail,
        )
