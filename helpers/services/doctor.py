"""``runbook doctor phase1``: what is wrong with the local setup, from the bottom up.

Read-only checks in the order things depend on each other: the Docker engine, the Compose plugin and the
app's compose file, the service containers, their health, their published ports, the URLs in the app's
``.env``, and the app's health URL. A broken layer blocks the checks that need it (they show as "not
checked"), so the first broken row is the first cause: fix it first. Each broken row names its cause, the
fix and the troubleshooting guide's section (:mod:`helpers.services.diagnose`).

Nothing is started, stopped or written: the PostgreSQL check runs ``select 1`` and the Redis one PING.
Tasks 1.4, 1.5 and 1.15 give the same causes in the hints of their failed checks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from helpers.core.settings import env
from helpers.host import docker_engine
from helpers.services import compose, connectivity, diagnose, health
from helpers.services.diagnose import Diagnosis, Finding

VM_WORDS = (
    "multipass",
    "coolify-vm",
    ".local",
    "192.168.64.",
    "10.211.",
)  # Multipass hosts seen in .env files


def find_app_dir(app_dir: str | Path = "") -> str:
    """``app_dir``, else ``RUNBOOK_APP_DIR``, else the current folder when it has a compose file."""
    if str(app_dir).strip():
        return str(app_dir)
    if env.app_dir:
        return env.app_dir
    here = Path.cwd()
    return str(here) if any((here / n).is_file() for n in compose.COMPOSE_FILES) else ""


def _block_all(d: Diagnosis, because: Finding, names: list[tuple[str, str]]) -> Diagnosis:
    for layer, name in names:
        d.block(layer, name, because)
    return d


ABOVE_ENGINE = [
    ("compose", "docker compose v2 and the app's compose file"),
    ("containers", "service containers running"),
    ("health", "services healthy"),
    ("ports", "services answer on their ports"),
    ("env", "the app's .env points at them"),
    ("app", "the app's health URL"),
]


def diagnose_local(
    app_dir: str | Path = "", env_file: str = "", health_url: str = "", start_commands: Sequence[str] = ()
) -> Diagnosis:
    """The phase-1 diagnosis (see the module docstring); never raises for what it finds.

    ``start_commands``: the commands that start the app's web process and worker, as the app's own
    scripts say (read by the caller from its ``package.json``); the fix for a silent app names them."""
    d = Diagnosis("phase1")
    engine = d.add(diagnose.engine_finding())
    if not engine.ok:
        return _block_all(d, engine, ABOVE_ENGINE)
    text, parsed, error = docker_engine.compose_version()
    plugin = d.add(
        Finding(
            "compose",
            "docker compose v2 plugin",
            parsed is not None and parsed[0] >= 2,
            f"Compose {text}" if text else error,
            cause="the Docker Compose v2 plugin is missing",
            fix="install it (package docker-compose-plugin, or Docker Desktop)",
            anchor="compose-missing",
        )
    )
    if not plugin.ok:
        return _block_all(d, plugin, ABOVE_ENGINE[1:])
    folder = find_app_dir(app_dir)
    try:
        project = compose.load(folder)
    except compose.ComposeError as exc:
        broken = d.add(
            Finding(
                "compose",
                "the app's compose file",
                False,
                exc.problem,
                cause=exc.problem,
                fix=exc.next_step + " (or `runbook doctor phase1 --app-dir PATH`)",
                anchor="app-dir-wrong",
            )
        )
        return _block_all(d, broken, ABOVE_ENGINE[1:])
    d.add(Finding("compose", "the app's compose file", True, f"{project.file} (project {project.name})"))
    states = compose.states(project)
    containers_ok = _containers(d, project, states)
    _env(d, folder, env_file, project, containers_ok)
    _app(d, health_url or env.health_url, d.broken, start_commands)
    return d


def _containers(d: Diagnosis, project: compose.Project, states: dict[str, compose.ServiceState]) -> bool:
    """Containers, then health, then ports, service by service; False when one of them is broken."""
    healthy = True
    for name, svc in project.services.items():
        state = states.get(name)
        if state is None or state.state != "running":
            healthy = False
            cause = _port_cause(project, svc) or diagnose.stopped_finding(
                diagnose.Container(
                    name=state.container if state else f"{project.name}-{name}-1",
                    state=state.state if state else "not created",
                    status=state.state if state else "not created",
                    project=project.name,
                    service=name,
                )
            )
            d.add(cause)
            continue
        d.add(Finding("containers", f"{name} container running", True, state.container))
        if svc.healthcheck:
            good = state.health == "healthy"
            healthy &= good
            d.add(
                Finding(
                    "health",
                    f"{name} healthy",
                    good,
                    state.health or "no health status yet",
                    cause=f"{name} is {state.health or 'not healthy yet'}",
                    fix=f"`docker compose -p {project.name} logs {name}` says why",
                    anchor="services-unhealthy",
                )
            )
        for port in svc.ports:
            if diagnose.accepts("127.0.0.1", port.published):
                d.add(
                    Finding("ports", f"{name} answers on 127.0.0.1:{port.published}", True, state.container)
                )
                continue
            healthy = False
            d.add(diagnose.why_refused("127.0.0.1", port.published, project.name, name))
    return healthy


def _port_cause(project: compose.Project, svc: compose.ServiceSpec) -> Finding | None:
    """A stopped service whose port another process holds: the port is the first cause."""
    for port in svc.ports:
        holders = diagnose.foreign_holders(port.published, project.name)
        if holders:
            finding = diagnose.port_taken_finding(port.published, holders, port.variable, svc.url_key)
            return dataclasses.replace(
                finding, name=f"{svc.name}: port {port.published} free for its container"
            )
    return None


def _vm_like(host: str) -> bool:
    low = host.lower()
    return any(w in low for w in VM_WORDS)


def _env(d: Diagnosis, app_dir: str, env_file: str, project: compose.Project, services_ok: bool) -> None:
    try:
        urls = connectivity.read_urls(app_dir, env_file)
    except connectivity.EnvFileError as exc:
        d.add(
            Finding(
                "env",
                "the app's env file has DATABASE_URL and REDIS_URL",
                False,
                exc.problem,
                cause=exc.problem,
                fix=exc.next_step,
                anchor="app-uses-vm-address",
            )
        )
        return
    shape_ok = True
    for key, url in (("DATABASE_URL", urls.database_url), ("REDIS_URL", urls.redis_url)):
        parts = urlsplit(url)
        host = parts.hostname or ""
        svc = next((s for s in project.services.values() if s.url_key == key), None)
        published = svc.ports[0].published if svc and svc.ports else None
        port = parts.port or (5432 if key == "DATABASE_URL" else 6379)
        where = f"{connectivity.redact(url)} (from {urls.env_file.name})"
        if host not in connectivity.LOCAL_HOSTS:
            shape_ok = False
            vm = _vm_like(host) or host.replace(".", "").isdigit()
            d.add(
                Finding(
                    "env",
                    f"{key} points at this machine",
                    False,
                    where,
                    cause=f"{urls.env_file.name} points {key} at {host}"
                    + (", the old Multipass VM" if vm else ", not at this machine"),
                    fix=f"set {key} to localhost:{published or port} in {urls.env_file} (task 1.9 writes the "
                    "local URLs; `cp .env.example .env` takes them)",
                    anchor="app-uses-vm-address",
                )
            )
        elif published is not None and port != published:
            shape_ok = False
            d.add(
                Finding(
                    "env",
                    f"{key} uses the published port {published}",
                    False,
                    where,
                    cause=f"{key} uses port {port}, but compose publishes {svc.name if svc else key} "
                    f"on {published}",
                    fix=f"use port {published} in {key}"
                    + (
                        f" (or set {svc.ports[0].variable} to {port})"
                        if svc and svc.ports[0].variable
                        else ""
                    ),
                    anchor="port-taken",
                )
            )
        else:
            d.add(Finding("env", f"{key} points at this machine", True, where))
    if not (shape_ok and services_ok):
        because = d.first_cause or d.findings[-1]
        d.block("env", "the app's URLs connect", because)
        return
    d.add(_postgres(urls.database_url, app_dir))
    d.add(_redis(urls.redis_url, app_dir))


def _postgres(url: str, app_dir: str) -> Finding:
    """``select 1`` with the app's DATABASE_URL (read-only); the hint as task 1.5 gives it."""
    import psycopg

    name = "PostgreSQL accepts the app's DATABASE_URL"
    try:
        with psycopg.connect(url, connect_timeout=connectivity.TIMEOUT, autocommit=True) as conn:
            conn.execute("select 1")
    except Exception as exc:  # the connection problem is the finding
        error = " ".join(str(exc).split())
        refused = diagnose.is_refused(error)
        fix = (
            connectivity.refused_hint(url, "DATABASE_URL", app_dir)
            if refused
            else connectivity.postgres_hint(error)
        )
        auth = "authentication" in error.lower() or "password" in error.lower()
        return Finding(
            "env",
            name,
            False,
            f"{connectivity.redact(url)}: {connectivity.scrub(error)[:200]}",
            cause="PostgreSQL refuses the app's credentials"
            if auth
            else f"PostgreSQL: {connectivity.scrub(error)[:120]}",
            fix=fix,
            anchor="old-volume-password" if auth else "",
        )
    return Finding("env", name, True, connectivity.redact(url))


def _redis(url: str, app_dir: str) -> Finding:
    """PING with the app's REDIS_URL (read-only)."""
    import redis

    name = "Redis answers the app's REDIS_URL"
    conn = redis.Redis.from_url(
        url, socket_connect_timeout=connectivity.TIMEOUT, socket_timeout=connectivity.TIMEOUT
    )
    try:
        conn.ping()
    except Exception as exc:
        error = " ".join(str(exc).split())
        refused = diagnose.is_refused(error) or "connecting to" in error.lower()
        fix = (
            connectivity.refused_hint(url, "REDIS_URL", app_dir)
            if refused
            else connectivity.redis_hint(error)
        )
        return Finding(
            "env",
            name,
            False,
            f"{connectivity.redact(url)}: {connectivity.scrub(error)[:200]}",
            cause=f"Redis: {connectivity.scrub(error)[:120]}",
            fix=fix,
        )
    finally:
        conn.close()
    return Finding("env", name, True, connectivity.redact(url))


def start_hint(start_commands: Sequence[str]) -> str:
    """How to start the app: its own commands when known, else where to find them."""
    if start_commands:
        return "start it in the app directory (" + ", then ".join(f"`{c}`" for c in start_commands) + ")"
    return "start its web process and its worker with the app's own scripts (task 1.6 shows them)"


def _app(d: Diagnosis, url: str, broken_below: list[Finding], start_commands: Sequence[str] = ()) -> None:
    if broken_below:
        d.block("app", f"the app answers on {url}", broken_below[0])
        return
    result = health.probe(url, timeout=3)
    if result.ok:
        d.add(Finding("app", "the app's health URL", True, result.summary()))
        return
    if not result.answered:
        d.add(
            Finding(
                "app",
                "the app's health URL",
                False,
                result.summary(),
                cause=f"the web app is not running: nothing answers on {url}",
                fix=f"{start_hint(start_commands)}, or run task 1.15 with its app_commands; "
                "RUNBOOK_HEALTH_URL says where it answers",
                anchor="health-url-down",
            )
        )
        return
    parts = [p for p in ("database", "redis") if not result.connected(p)]
    d.add(
        Finding(
            "app",
            "the app's health URL",
            False,
            result.summary(),
            cause=f"the app answers but reports {', '.join(parts) or 'a problem'}: "
            f"{result.body or result.error}",
            fix="the app reads its own .env: compare its DATABASE_URL / REDIS_URL with the ones checked "
            "above, and restart it after changing them",
            anchor="health-url-down",
        )
    )
