"""Diagnosis from the bottom up: why does nothing answer, and what is the first cause?

A refused connection has a chain of possible causes, and the useful answer is the lowest one that is
broken: the Docker engine, then the container that should publish the port, then the port itself (taken
by another process, or published elsewhere). :func:`why_refused` walks that chain for one ``host:port``
and returns a :class:`Finding` that names the first cause, the fix, and the section of the troubleshooting
guide (``docs/troubleshooting.md``) that explains it.

Tasks 1.4, 1.5 and 1.15 use it for the hints of their failed checks (engine stopped → "the Docker engine
is not running: start it with ..."), and ``runbook doctor`` (:mod:`helpers.services.doctor`) builds its
whole diagnosis from the same findings. Everything here only reads: no container is started or stopped.

This module imports only the layers below (core, host), so that compose, connectivity and health can
import it for their hints.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from helpers.core.settings import env
from helpers.host import docker_engine, ports

GUIDE = "docs/troubleshooting.md"
LAYERS: tuple[str, ...] = (
    "engine", "compose", "containers", "health", "ports", "env", "app",  # phase 1, bottom up
    "dns", "droplet", "ssh", "coolify", "apps", "deployments", "url",  # phase 2, bottom up
)  # fmt: skip


@dataclass(frozen=True)
class Finding:
    """One read-only check: what was looked at, what was seen and, when broken, its first cause and fix."""

    layer: str
    name: str
    ok: bool
    detail: str = ""
    cause: str = ""  # the first cause, in one sentence (when not ok)
    fix: str = ""  # the next step (when not ok)
    anchor: str = ""  # the troubleshooting guide's section for it
    blocked: bool = False  # not checked: a lower layer is broken (its cause is the one to fix)

    @property
    def icon(self) -> str:
        return "⏸" if self.blocked else "✅" if self.ok else "❌"

    @property
    def status(self) -> str:
        return "blocked" if self.blocked else "ok" if self.ok else "broken"


def guide_link(anchor: str) -> str:
    """Where the guide explains ``anchor``: the published site (``RUNBOOK_DOCS_URL``), else the source."""
    if not anchor:
        return ""
    site = env.docs_url.rstrip("/")
    return f"{site}/troubleshooting/#{anchor}" if site else f"{GUIDE}#{anchor}"


@dataclass
class Diagnosis:
    """The findings of one scope (``phase1``, ``phase2``), in the order they were checked (bottom up)."""

    scope: str
    findings: list[Finding] = field(default_factory=list)

    def add(self, finding: Finding) -> Finding:
        self.findings.append(finding)
        return finding

    def block(self, layer: str, name: str, because: Finding) -> Finding:
        """Record a check that was not made because ``because`` is broken below it."""
        return self.add(Finding(layer, name, False, f"not checked: {because.name} is broken", blocked=True))

    @property
    def broken(self) -> list[Finding]:
        return [f for f in self.findings if not f.ok and not f.blocked]

    @property
    def first_cause(self) -> Finding | None:
        """The lowest broken finding: fix it first, the ones above may follow from it."""
        return self.broken[0] if self.broken else None

    @property
    def ok(self) -> bool:
        return not self.broken and not any(f.blocked for f in self.findings)

    def rows(self) -> list[tuple[str, str, str, str]]:
        """(icon, layer, check, detail) for a table."""
        return [(f.icon, f.layer, f.name, f.detail) for f in self.findings]

    def hint(self) -> str:
        """The first cause and its fix, with the guide's section: what a failed check's hint should say."""
        first = self.first_cause
        return explain(first) if first else ""


def explain(finding: Finding) -> str:
    """``<cause>: <fix> (see <guide link>)`` in one line."""
    text = finding.cause or finding.name
    if finding.fix:
        text += f": {finding.fix}"
    link = guide_link(finding.anchor)
    return f"{text} (see {link})" if link else text


# --------------------------------------------------------------------------- the engine


def engine_finding() -> Finding:
    """Does a Docker engine answer the CLI? The cause, when not, says which: not installed, not running,
    DOCKER_HOST pointing where nothing answers, or no permission on the socket."""
    if docker_engine.docker_cli() is None:
        return Finding(
            "engine",
            "docker CLI installed",
            False,
            "docker is not on PATH",
            cause="Docker is not installed",
            fix=docker_engine.engine_hint("not installed"),
            anchor="engine-not-running",
        )
    versions = docker_engine.cli_versions()
    where = env.docker_host or docker_engine.DEFAULT_SOCKET
    if versions.server:
        return Finding("engine", "Docker engine answers", True, f"Engine {versions.server} at {where}")
    error = versions.error or "no answer"
    anchor = "engine-not-running"
    if "permission denied" in error.lower():
        cause, anchor = "this user may not use the Docker socket", "socket-permission-denied"
    elif where.startswith("unix://"):  # a local socket nobody listens on: the engine is stopped
        cause = f"the Docker engine is not running (nothing answers on {where.removeprefix('unix://')})"
    else:
        cause = f"no Docker engine answers at DOCKER_HOST={where}"
    return Finding(
        "engine",
        "Docker engine answers",
        False,
        f"{where}: {error}",
        cause=cause,
        fix=docker_engine.engine_hint(error),
        anchor=anchor,
    )


# --------------------------------------------------------------------------- containers and ports


@dataclass(frozen=True)
class Container:
    """A container as ``docker ps -a`` lists it (running or not)."""

    name: str
    state: str  # running, exited, created, restarting, paused, dead
    status: str  # "Exited (0) 3 minutes ago", "Up 5 minutes (healthy)"
    project: str = ""
    service: str = ""
    ports: str = ""

    @property
    def running(self) -> bool:
        return self.state == "running"


def containers(filters: Sequence[str] = ()) -> list[Container]:
    """``docker ps -a`` with ``--filter`` arguments (``publish=5432``, ``label=...``); empty on error."""
    args = ["ps", "-a", "--no-trunc", "--format", "{{json .}}"]
    for f in filters:
        args += ["--filter", f]
    res = docker_engine.run_cli(*args)
    if not res.ok:
        return []
    found = []
    for line in res.stdout.splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        labels = dict(part.split("=", 1) for part in str(row.get("Labels", "")).split(",") if "=" in part)
        found.append(
            Container(
                name=str(row.get("Names", "")),
                state=str(row.get("State", "")),
                status=str(row.get("Status", "")),
                project=labels.get(ports.COMPOSE_PROJECT_LABEL, ""),
                service=labels.get(ports.COMPOSE_SERVICE_LABEL, ""),
                ports=str(row.get("Ports", "")),
            )
        )
    return found


def accepts(host: str, port: int, timeout: float = 2.0) -> bool:
    """Something accepts a TCP connection on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def start_command(project: str) -> str:
    return f"`docker compose -p {project} up -d --wait` in the app directory (or `pnpm docker:up`; task 1.4)"


def stopped_finding(container: Container, layer: str = "containers") -> Finding:
    """A container that should run does not: the cause is the container (its own log says why)."""
    project = container.project or "<project>"
    return Finding(
        layer,
        f"{container.service or container.name} container running",
        False,
        f"{container.name}: {container.status or container.state}",
        cause=f"the {container.service or container.name} container is not running ({container.state})",
        fix=f"start it: {start_command(project)}; `docker logs {container.name}` shows why it stopped",
        anchor="container-stopped",
    )


def port_taken_finding(
    port: int, holders: Sequence[ports.Holder], variable: str = "", url_key: str = ""
) -> Finding:
    problem, next_step = ports.describe_taken(port, list(holders), variable, url_key)
    return Finding(
        "ports",
        f"port {port} free for the service",
        False,
        problem,
        cause=problem,
        fix=next_step,
        anchor="port-taken",
    )


def foreign_holders(port: int, project: str = "") -> list[ports.Holder]:
    """Who holds ``port`` other than the compose project's own containers (and their docker-proxy)."""
    found = ports.holders(port)
    return [h for h in found if not (h.kind == "container" and project and h.project == project)]


def why_refused(host: str, port: int, project: str = "", service: str = "") -> Finding:
    """Nothing answers on ``host:port``: the first cause, bottom up (engine, container, port).

    ``project``/``service``: the compose project and service expected to publish the port (without them
    the containers that publish the port are asked). Returns a broken :class:`Finding`, or an ok one when
    the port answers now. A container that is not running because another process holds its port has the
    port as its first cause, not itself.
    """
    local = host in ("localhost", "127.0.0.1", "::1")
    if local and accepts("127.0.0.1", port):
        return Finding("ports", f"{host}:{port} accepts connections", True, "it answers now")
    engine = engine_finding()
    if not engine.ok:
        return engine
    if not local:
        return Finding(
            "env",
            f"{host}:{port} is this machine's service",
            False,
            f"{host} is not this machine",
            cause=f"the URL points at {host}, not at this machine's services",
            fix="point it at localhost and the port compose publishes (task 1.9 writes the local URLs)",
            anchor="app-uses-vm-address",
        )
    if project:
        expected = containers([f"label={ports.COMPOSE_PROJECT_LABEL}={project}"])
        if service:
            expected = [c for c in expected if c.service == service]
    else:
        expected = containers([f"publish={port}"])
    holders = foreign_holders(port, project)
    if holders:  # another process or container holds the port: ours cannot listen there
        return port_taken_finding(port, holders)
    stopped = [c for c in expected if not c.running]
    if stopped:
        return stopped_finding(stopped[0])
    if expected:  # running, yet nothing answers on the port
        c = expected[0]
        return Finding(
            "ports",
            f"{c.service or c.name} published on 127.0.0.1:{port}",
            False,
            f"{c.name} runs but publishes {c.ports or 'no port'}",
            cause=f"{c.name} does not publish port {port}",
            fix="the port in the URL and the one compose publishes differ: align POSTGRES_PORT/REDIS_PORT "
            "and the app's .env, then `docker compose up -d --wait`",
            anchor="port-taken",
        )
    where = f"compose project {project} has no such container" if project else "no container publishes it"
    return Finding(
        "containers",
        f"a service answers on {host}:{port}",
        False,
        f"nothing listens on {host}:{port}; {where}",
        cause=f"nothing listens on {host}:{port}: the services are not started (or run on other ports)",
        fix=f"start them: {start_command(project or '<project>')}; `docker compose ps` shows what runs where",
        anchor="container-stopped",
    )


def refused_hint(host: str, port: int, project: str = "", service: str = "") -> str:
    """The hint of a check that met a refused connection: the first cause and its fix."""
    finding = why_refused(host, port, project, service)
    if finding.ok:
        return f"{host}:{port} answers now: run the check again"
    return explain(finding)


def is_refused(error: str) -> bool:
    """Nothing answered: the connection itself failed (not a server that answered with an error).

    psycopg words a server's refusal as "connection failed: ... FATAL: password authentication failed":
    the server answered, so that is the credentials' problem, not a missing engine or container.
    """
    low = error.lower()
    if "fatal:" in low or "authentication" in low or "does not exist" in low or "wrongpass" in low:
        return False
    return any(w in low for w in ("refused", "could not connect", "connection failed", "connect call failed"))


__all__ = [
    "LAYERS",
    "Container",
    "Diagnosis",
    "Finding",
    "accepts",
    "check_diagnosis",
    "containers",
    "engine_finding",
    "explain",
    "guide_link",
    "refused_hint",
    "why_refused",
]


def check_diagnosis(check: Any, diagnosis: Diagnosis) -> None:
    """A verification table of the diagnosis: each finding a check (its hint the first cause and fix);
    a blocked one a note (it was not checked: the broken layer below it is the one to fix)."""
    for f in diagnosis.findings:
        if f.blocked:
            check.note(f"{diagnosis.scope} {f.layer}: {f.name}", f.detail)
        else:
            check(f"{diagnosis.scope} {f.layer}: {f.name}", f.ok, f.detail, hint=explain(f))
