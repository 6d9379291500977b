"""Coolify's setup: the steps and checks of tasks 2.6 (API token), 2.7 (project) and 2.8 (databases).

Built on the Coolify client (:mod:`helpers.clients.coolify`). Everything is found by name before anything is
created (Coolify allows duplicate names: the steps refuse to guess between them); a dry run shows the exact
requests. :class:`Target` (server, project, environment) is where databases (2.8) and applications (2.14,
2.15: :mod:`helpers.cloud.coolify_apps`) go.
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from helpers.clients.coolify import (
    DASHBOARD_PORT,
    TOKEN_NAME,
    VENDOR,
    ApiDisabled,
    Client,
    UnsupportedVersion,
    parse_version,
    token_help,
    token_source,
)
from helpers.clients.errors import ApiError, Conflict
from helpers.core import poll, secrets, steps
from helpers.core.steps import StepResult


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
    except ApiError as exc:
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
        except ApiError as exc:
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
        check.note(
            "⚠️ the token travels over plain http (until a domain and HTTPS front Coolify)",
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

    def read() -> dict[str, Any]:
        database = client.database(database_uuid)
        status = str(database.get("status", ""))
        elapsed = clock() - start
        if status.startswith("exited") and elapsed > exited_grace:
            raise ApiError(
                f"{database.get('name')} is still {status} {elapsed:.0f}s after its start",
                vendor=VENDOR,
                hint="open it in the dashboard and read its logs (or `docker logs <uuid>` on the server); "
                "fix, then re-run task 2.8 (it starts what is stopped)",
            )
        return database

    def describe(database: Mapping[str, Any]) -> str:
        return f"{database.get('name')} ({database_uuid}): {database.get('status', '') or '?'}"

    def explain(database: Any) -> str:
        return (
            f"{database.get('name')} is still {database.get('status') or 'unknown'} after {timeout:.0f}s; "
            "the image may still be pulling: re-run task 2.8 (it waits again, creates nothing twice)"
        )

    return poll.poll(
        read,
        until=lambda database: database.get("status") == "running:healthy",
        timeout=timeout,
        interval=interval,
        what=f"database {database_uuid} to be healthy",
        on_attempt=poll.report_changes(progress, describe, clock),
        explain=explain,
        sleep=sleep,
        clock=clock,
    )


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
