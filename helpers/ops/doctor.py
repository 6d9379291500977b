"""``runbook doctor phase2``: what is wrong with production, from the bottom up.

Read-only checks in the order things depend on each other: the domain's DNS (when one is set), the
droplet (DigitalOcean's API), SSH, Coolify (its API answers, the token works), the applications and
databases (Coolify's statuses), the latest deployments, and at the top the public URL's health. A broken
layer blocks the checks that need it (shown as "not checked"): the first broken row is the first cause.

Each broken row names its cause, the fix and the troubleshooting guide's section, as the phase-1 doctor
does (:mod:`helpers.services.doctor`); :func:`diagnose` runs one or both.
"""

from __future__ import annotations

import socket
from typing import Any

from helpers.app import appscripts
from helpers.clients.errors import ApiError, NotFound, Unauthorized
from helpers.cloud import coolify_apps, production_checks, server, ssh
from helpers.core import secrets, state
from helpers.core.settings import env
from helpers.services import doctor as local_doctor
from helpers.services import health
from helpers.services.diagnose import Diagnosis, Finding

SCOPES = ("phase1", "phase2", "all")
ABOVE_DROPLET = [
    ("ssh", "SSH to the droplet"),
    ("coolify", "Coolify's API"),
    ("apps", "applications and databases running"),
    ("deployments", "latest deployments finished"),
    ("url", "the public URL's health"),
]


def _block(d: Diagnosis, because: Finding, names: list[tuple[str, str]]) -> Diagnosis:
    for layer, name in names:
        d.block(layer, name, because)
    return d


def started() -> bool:
    """Has phase 2 made anything here (a droplet recorded)?"""
    return bool(state.get("phase2", "droplet"))


def _dns(d: Diagnosis, domain: str, ipv4: str) -> None:
    if not domain:
        d.add(Finding("dns", "domain", True, "no domain set: the droplet's address is the public one"))
        return
    try:
        found = sorted({info[4][0] for info in socket.getaddrinfo(domain, 443, proto=socket.IPPROTO_TCP)})
    except OSError as exc:
        d.add(
            Finding(
                "dns",
                f"{domain} resolves",
                False,
                str(exc),
                cause=f"{domain} does not resolve",
                fix=f"create an A record {domain} → {ipv4} at your DNS provider (it takes a while to spread)",
                anchor="https-certificate",
            )
        )
        return
    d.add(
        Finding(
            "dns",
            f"{domain} points at the droplet",
            ipv4 in found,
            ", ".join(found),
            cause=f"{domain} resolves to {', '.join(found)}, not to the droplet {ipv4}",
            fix=f"change the A record of {domain} to {ipv4}",
            anchor="https-certificate",
        )
    )


def _droplet(d: Diagnosis, record: dict[str, Any]) -> bool:
    if not secrets.has("DIGITALOCEAN_TOKEN"):
        d.add(
            Finding(
                "droplet",
                "DigitalOcean's API",
                False,
                "DIGITALOCEAN_TOKEN is not set",
                cause="the DigitalOcean token is not set here, so the droplet cannot be asked about",
                fix="export DIGITALOCEAN_TOKEN or put it in the secrets file (task 2.1)",
                anchor="do-token-rejected",
            )
        )
        return True  # SSH can still tell
    from helpers.clients import digitalocean
    from helpers.cloud.droplet import public_ipv4

    try:
        droplet = digitalocean.connect().droplet(int(record["id"]))
    except NotFound:
        d.add(
            Finding(
                "droplet",
                f"droplet {record.get('name')} exists",
                False,
                f"id {record['id']}: not found",
                cause=f"the droplet {record.get('name')} ({record['id']}) does not exist any more",
                fix="it was deleted (teardown, or the control panel): create it again with task 2.2",
                anchor="droplet-not-active",
            )
        )
        return False
    except ApiError as exc:
        d.add(
            Finding(
                "droplet",
                "DigitalOcean's API",
                False,
                str(exc).splitlines()[0],
                cause="DigitalOcean's API refuses or does not answer",
                fix=getattr(exc, "hint", "") or "see the message",
                anchor="do-token-rejected",
            )
        )
        return True
    public = public_ipv4(droplet)
    active = droplet.get("status") == "active"
    d.add(
        Finding(
            "droplet",
            f"droplet {droplet['name']} active",
            active and public == record.get("ipv4"),
            f"{droplet.get('status')}, {public}",
            cause=f"the droplet is {droplet.get('status')}"
            if not active
            else f"its address is {public}, not the recorded {record.get('ipv4')}",
            fix="power it on in the control panel (Droplets → Power)"
            if not active
            else "run task 2.2 again (it records the new address), then 2.3",
            anchor="droplet-not-active",
        )
    )
    return active


def _ssh(d: Diagnosis, admin_user: str) -> Any:
    try:
        target = ssh.droplet_target()
        remote = server.connect_admin(target.host, target.port, admin_user, target.key_path, target.ssh_dir)
    except (ssh.SSHError, LookupError, OSError) as exc:
        anchor = (
            "ssh-host-key-changed"
            if isinstance(exc, ssh.HostKeyChanged)
            else "ssh-permission-denied"
            if isinstance(exc, ssh.SSHAuthFailed)
            else "ssh-refused"
        )
        text = str(exc)
        d.add(
            Finding(
                "ssh",
                "SSH to the droplet",
                False,
                text.split(". Next step")[0][:240],
                cause=text.split(". Next step")[0][:160],
                fix=text.split("Next step: ", 1)[-1] if "Next step: " in text else "see the message",
                anchor=anchor,
            )
        )
        return None
    d.add(Finding("ssh", "SSH to the droplet", True, f"{remote.user}@{remote.host}:{remote.port}"))
    return remote


def _coolify(d: Diagnosis, api_url: str) -> Any:
    from helpers.clients import coolify

    try:
        client = coolify.connect(api_url or None)
        client.health()
        version = client.version()
    except (ApiError, LookupError, ValueError) as exc:
        unauthorized = isinstance(exc, Unauthorized)
        d.add(
            Finding(
                "coolify",
                "Coolify's API answers",
                False,
                str(exc).splitlines()[0][:240],
                cause="Coolify refuses the API token" if unauthorized else "Coolify's API does not answer",
                fix=getattr(exc, "hint", "") or str(exc),
                anchor="coolify-down",
            )
        )
        return None
    d.add(Finding("coolify", "Coolify's API answers", True, f"Coolify {version} at {client.base_url}"))
    return client


def _apps(d: Diagnosis, client: Any) -> bool:
    apps = state.get("phase2", "applications") or {}
    dbs = state.get("phase2", "coolify_databases") or {}
    healthy = True
    for kind in ("postgresql", "redis"):
        uuid = (dbs.get(kind) or {}).get("uuid")
        if not uuid:
            continue
        status = str(client.database(uuid).get("status", ""))
        good = status == "running:healthy"
        healthy &= good
        d.add(
            Finding(
                "apps",
                f"{kind} running and healthy",
                good,
                f"{status} ({uuid})",
                cause=f"the production {kind} is {status or 'unknown'}",
                fix="start it in the dashboard (the database → Start), read its logs "
                "(`runbook run operations --only logs`); task 2.8 starts it too",
                anchor="coolify-db-unhealthy",
            )
        )
    for role in ("web", "worker"):
        uuid = (apps.get(role) or {}).get("uuid")
        if not uuid:
            continue
        status = str(client.application(uuid).get("status", ""))
        want = "running:healthy" if role == "web" else "running"
        good = status.startswith(want)
        healthy &= good
        d.add(
            Finding(
                "apps",
                f"{role} application {want}",
                good,
                f"{status} ({uuid})",
                cause=f"the {role} application is {status or 'unknown'}"
                + (" (stopped)" if status.startswith("exited") else ""),
                fix="start it: redeploy with `runbook run phase2 --only 2.17 -p redeploy true` (or the "
                "dashboard's Deploy); `runbook run operations --only logs` shows why it stopped",
                anchor="app-stopped",
            )
        )
    return healthy


def _deployments(d: Diagnosis, client: Any) -> None:
    apps = state.get("phase2", "applications") or {}
    for role in ("web", "worker"):
        uuid = (apps.get(role) or {}).get("uuid")
        if not uuid:
            continue
        latest = coolify_apps.latest_deployment(client, uuid)
        status = str((latest or {}).get("status") or "never deployed")
        d.add(
            Finding(
                "deployments",
                f"latest {role} deployment finished",
                status in ("finished", "queued", "in_progress"),
                f"{status} ({(latest or {}).get('deployment_uuid', '-')})",
                cause=f"the latest {role} deployment {status}",
                fix="read its log (dashboard → the application → Deployments); fix, then "
                "`runbook run phase2 --only 2.17 -p redeploy true`",
                anchor="deployment-failed",
            )
        )


def _url(d: Diagnosis) -> None:
    web = (state.get("phase2", "applications") or {}).get("web") or {}
    try:
        url = production_checks.public_url(web) + (web.get("health_path") or "/api/health")
    except LookupError as exc:
        d.add(Finding("url", "the public URL", False, str(exc), cause=str(exc), fix="see the message"))
        return
    result = health.probe(url, timeout=5)
    d.add(
        Finding(
            "url",
            "the public URL's health",
            result.ok,
            result.summary(),
            cause="the public URL does not answer"
            if not result.answered
            else f"the app reports {result.body}",
            fix="the web app runs (above) but is not reachable: the cloud firewall and ufw must open its "
            "port (tasks 2.2, 2.4), or the domain's proxy (HTTPS) is not ready"
            if not result.answered
            else "the app reaches its database or Redis badly: check the variables (task 2.16)",
            anchor="prod-env-wrong" if result.answered else "https-certificate",
        )
    )


def diagnose_production(admin_user: str = "", api_url: str = "") -> Diagnosis:
    """The phase-2 diagnosis (see the module docstring); never raises for what it finds."""
    d = Diagnosis("phase2")
    record = state.get("phase2", "droplet") or {}
    if not record:
        first = d.add(
            Finding(
                "droplet",
                "a droplet recorded",
                False,
                f"nothing in {state.path('phase2')}",
                cause="phase 2 has not made a droplet from this machine (no record)",
                fix="run phase 2 (task 2.2 creates and records the droplet), or point RUNBOOK_STATE_DIR at "
                "its records",
                anchor="droplet-not-active",
            )
        )
        return _block(d, first, ABOVE_DROPLET)
    web = (state.get("phase2", "applications") or {}).get("web") or {}
    _dns(d, str(web.get("domain") or env.domain), str(record.get("ipv4") or ""))
    if not _droplet(d, record):
        return _block(d, d.first_cause or d.findings[-1], ABOVE_DROPLET)
    remote = _ssh(d, admin_user or env.admin_user)
    if remote is not None:
        remote.close()
    client = _coolify(d, api_url)
    if client is None:
        return _block(d, d.findings[-1], ABOVE_DROPLET[2:])
    apps_ok = _apps(d, client)
    _deployments(d, client)
    if apps_ok:
        _url(d)
    else:
        d.block("url", "the public URL's health", d.first_cause or d.findings[-1])
    return d


def start_commands(app_dir: str) -> list[str]:
    """The commands that start the app's web process and worker, as its ``package.json`` says (one when a
    script starts both); none when the folder is no app repository (phase 1's checks say so)."""
    try:
        scripts = appscripts.app_scripts(app_dir) if app_dir else None
    except (OSError, ValueError):
        return []
    picks = [scripts.pick(role) for role in ("web", "worker")] if scripts else []
    return list(dict.fromkeys(p.command for p in picks if p and p.command))


def diagnose(scope: str, app_dir: str = "", env_file: str = "", admin_user: str = "") -> list[Diagnosis]:
    """``phase1``, ``phase2`` or ``all`` (phase 2 only when phase 2 has made something here)."""
    if scope not in SCOPES:
        raise ValueError(f"scope {scope!r}: one of {', '.join(SCOPES)}")
    out = []
    if scope in ("phase1", "all"):
        start = start_commands(local_doctor.find_app_dir(app_dir))
        out.append(local_doctor.diagnose_local(app_dir, env_file, start_commands=start))
    if scope == "phase2" or (scope == "all" and started()):
        out.append(diagnose_production(admin_user))
    return out
