"""Task 2.18: the end-to-end production checks.

What it checks, each against the real thing:

* the public URL answers: ``https://<domain>`` when task 2.14 set a domain (a valid certificate: httpx
  verifies it), else ``http://<droplet IPv4>:3000`` (through its forward when ``RUNBOOK_ADDRESS_MAP`` has
  one: :mod:`helpers.core.addresses`);
* its health endpoint reports the database and Redis connected (the same probe as task 1.15);
* a BullMQ job goes through the *production* worker: Redis is not public, so the runbook opens an SSH
  tunnel (fabric ``forward_local``) through the droplet to the Redis container's address on Coolify's
  Docker network, found with ``docker inspect`` on the server;
* the last GitHub Actions run on main succeeded (:func:`helpers.cloud.github_runs.latest_run`);
* no deployment of the apps is still running (a ``git push`` just before 2.18 makes GitHub Actions call the
  deploy webhooks: 2.18 waits for those deployments to finish, then checks the result), and the latest
  deployment of each app finished;
* Coolify reports every service running (web healthy, worker running, PostgreSQL and Redis healthy);
  a summary table shows them all;
* each app container runs the image that was pushed: the digest the registry serves now for the tag
  Coolify deploys (:func:`helpers.clients.registry.manifest_digest`) equals the registry digest of the
  running container's image, read on the server (``docker inspect``, :func:`helpers.cloud.images.running`).
"""

from __future__ import annotations

import contextlib
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from helpers.clients import errors, github, registry
from helpers.clients.coolify import Client
from helpers.cloud import coolify_apps, github_runs, images
from helpers.core import addresses, secrets, state
from helpers.host.ports import free_port

STATE = "phase2"


def public_url(web: Mapping[str, Any]) -> str:
    """Where the web app answers from outside (see the module docstring)."""
    if web.get("domain"):
        return f"https://{web['domain']}"
    port = int(web.get("port") or coolify_apps.WEB_PORT)
    droplet = state.get(STATE, "droplet") or {}
    if not droplet.get("ipv4"):
        raise LookupError("no droplet address recorded: run task 2.2")
    return addresses.http_url(str(droplet["ipv4"]), port)


def container_address(remote: Any, container: str) -> str:
    """The container's IPv4 on its Docker network, read on the server (``docker inspect``)."""
    fmt = "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}"
    out = remote.run(f"sudo -n docker inspect -f '{fmt}' {container}", check=False)
    addresses = [a for a in out.stdout.split() if a.count(".") == 3]
    if not out.ok or not addresses:
        raise LookupError(
            f"the Redis container {container} has no address on the server "
            f"({out.stderr.strip()[:200] or 'none'}). Next step: is Redis running (task 2.8)?"
        )
    return addresses[0]


@contextlib.contextmanager
def redis_tunnel(remote: Any, redis_uuid: str, port: int = 6379) -> Iterator[str]:
    """``redis://default:<password>@127.0.0.1:<port>/0`` while an SSH tunnel to production Redis is up."""
    address = container_address(remote, redis_uuid)
    local = free_port()
    url = urllib.parse.urlsplit(secrets.get("PROD_REDIS_URL"))
    with remote.conn.forward_local(local, remote_port=port, remote_host=address, local_host="127.0.0.1"):
        netloc = (
            f"{url.username or 'default'}:{urllib.parse.quote(url.password or '', safe='')}@127.0.0.1:{local}"
        )
        yield urllib.parse.urlunsplit((url.scheme, netloc, url.path or "/0", "", ""))


def settle_deployments(
    client: Client, apps: Mapping[str, Any], timeout: float = 600.0, interval: float = 3.0
) -> dict[str, dict[str, Any] | None]:
    """The latest deployment of each app, waited for when it is still queued or in progress."""
    latest: dict[str, dict[str, Any] | None] = {}
    for role in ("web", "worker"):
        uuid = (apps.get(role) or {}).get("uuid")
        dep = coolify_apps.latest_deployment(client, uuid) if uuid else None
        if dep and dep.get("status") not in coolify_apps.FINAL:
            dep = coolify_apps.wait_deployment(
                client, str(dep["deployment_uuid"]), timeout=timeout, interval=interval
            )
        latest[role] = dep
    return latest


def check_deployments(check: Any, latest: Mapping[str, Mapping[str, Any] | None]) -> None:
    for role, dep in latest.items():
        status = str((dep or {}).get("status") or "never deployed")
        check(
            f"latest {role} deployment finished",
            status == "finished",
            f"{status} ({(dep or {}).get('deployment_uuid', '-')})",
            hint="dashboard → the application → Deployments (its log says why); fix, then re-run task 2.17",
        )


def service_rows(
    client: Client, apps: Mapping[str, Any], databases: Mapping[str, Any]
) -> list[tuple[str, str, str, bool]]:
    """(service, Coolify uuid, status, healthy) for the summary; statuses read from Coolify now."""
    rows = []
    for role in ("web", "worker"):
        entry = apps.get(role) or {}
        status = (
            str(client.application(entry["uuid"]).get("status", "")) if entry.get("uuid") else "not created"
        )
        healthy = status == "running:healthy" if role == "web" else status.startswith("running")
        rows.append((f"{role} application", entry.get("uuid", "-"), status, healthy))
    for kind in ("postgresql", "redis"):
        entry = databases.get(kind) or {}
        status = str(client.database(entry["uuid"]).get("status", "")) if entry.get("uuid") else "not created"
        rows.append((kind, entry.get("uuid", "-"), status, status == "running:healthy"))
    return rows


def check_services(check: Any, rows: list[tuple[str, str, str, bool]]) -> None:
    for service, uuid, status, healthy in rows:
        check(
            f"Coolify: {service} healthy",
            healthy,
            f"{status} ({uuid})",
            hint="dashboard → the resource → Logs; re-run task 2.17 (apps) or 2.8 (databases)",
        )


def check_github_run(check: Any, repository: str) -> dict[str, Any] | None:
    """The last GitHub Actions run of the deploy workflow on main succeeded."""
    if not secrets.has(github.TOKEN_NAME) or not repository:
        check(
            "last GitHub Actions run on main succeeded",
            False,
            "GITHUB_TOKEN or repository not set",
            hint=f"{github.token_help()}; or set check_github=False to leave this check out, explicitly",
        )
        return None
    repo = github.get_repo(github.connect(), repository)
    run = github_runs.latest_run(repo)
    check(
        "last GitHub Actions run on main succeeded",
        bool(run) and run["status"] == "completed" and run["conclusion"] == "success",
        f"#{run['id']} {run['status']}/{run['conclusion']} ({run['sha']})"
        if run
        else "the workflow never ran",
        hint="open the run on GitHub (Actions tab), fix the failing step and push again",
    )
    return run


@dataclass(frozen=True)
class Deployed:
    """What an app container runs, against what the registry serves for the image Coolify deploys."""

    role: str
    image: str  # <name>:<tag> (or <name>@sha256:...) as Coolify deploys it
    pushed: str  # the digest the registry serves for it now ("" when it could not be read)
    running: str  # the registry digest of the running container's image ("" when it has none)
    problem: str = ""

    @property
    def same(self) -> bool:
        return bool(self.pushed) and self.pushed == self.running


def deployed_digests(client: Client, remote: Any, apps: Mapping[str, Any]) -> list[Deployed]:
    """For web and worker: the image's digest in the registry and in the running container."""
    found = []
    for role in ("web", "worker"):
        uuid = (apps.get(role) or {}).get("uuid")
        if not uuid:
            found.append(Deployed(role, "-", "", "", "not created (tasks 2.14, 2.15)"))
            continue
        app = client.application(uuid)
        name = str(app.get("docker_registry_image_name") or "")
        tag = str(app.get("docker_registry_image_tag") or "latest")
        ref = f"{name}@sha256:{tag.removeprefix('sha256-')}" if tag.startswith("sha256-") else f"{name}:{tag}"
        pushed = running = problem = ""
        try:
            owner = name.split("/")[1] if name.count("/") >= 2 else ""
            token = secrets.get("GHCR_TOKEN") if secrets.has("GHCR_TOKEN") else ""
            pushed = registry.manifest_digest(ref, username=owner, password=token)
        except errors.ApiError as exc:
            problem = str(exc).splitlines()[0]
        try:
            running = images.running(remote, uuid, name).digest
        except images.ImageError as exc:
            problem = problem or str(exc)
        found.append(Deployed(role, ref, pushed, running, problem))
    return found


def digest_rows(deployed: list[Deployed]) -> list[tuple[str, str, str, str]]:
    return [(d.role, d.image, d.pushed or d.problem or "-", d.running or "none") for d in deployed]


def check_digests(check: Any, deployed: list[Deployed]) -> None:
    for d in deployed:
        check(
            f"{d.role}: the container runs the image pushed as {d.image.rsplit('/', 1)[-1]}",
            d.same,
            f"registry {d.pushed[:19] or '?'}…, container {d.running[:19] or 'no registry digest'}…"
            + (f" ({d.problem})" if d.problem else ""),
            hint="a push after the last deployment: wait for the workflow's deploy job, or re-run task 2.17; "
            "an image the registry does not have: open the build job's log on GitHub",
        )
