"""Coolify applications: tasks 2.14 (web), 2.15 (worker), 2.16 (environment variables), 2.17 (deployments).

Built on the Coolify client (:mod:`helpers.clients.coolify`) and task 2.6 to 2.8's
:mod:`helpers.cloud.coolify_setup` (:class:`~helpers.cloud.coolify_setup.Target`, :func:`find_project`).

* **Applications** come from the images the workflow of task 2.9 pushes to GHCR and records in the
  phase-2 state file (``images``: ``ghcr.io/<owner>/<repo>-web`` and ``-worker``, tagged with the deploy
  branch, :func:`helpers.app.workflow.images_record`); 2.14 and 2.15 read that record. They are found by
  name in the project's environment before anything is created, and created *without* deploying
  (``instant_deploy`` false): the environment variables of 2.16 must be there first; 2.17 deploys.
* **Registry credentials**: Coolify pulls with the Docker login of the server. For a private image the
  runbook runs ``docker login ghcr.io --password-stdin`` on the server over SSH with ``GHCR_TOKEN`` on
  stdin (never on a command line, never echoed); for public images (``private_images`` off) the step is
  skipped, explicitly, with the reason.
* **Environment variables** (2.16) are sent in one ``PATCH /applications/{uuid}/envs/bulk`` per app, and
  only those that need it. Coolify hides values from a token without ``read:sensitive``, so the runbook
  keeps, per app and key, an HMAC-SHA256 *fingerprint* of the value it sent (keyed with the local random
  ``RUNBOOK_FINGERPRINT_SECRET`` of :mod:`helpers.cloud.github_secrets`, in the git-ignored secrets file) in
  the state file (``coolify_envs``). A key is sent when it is missing in Coolify, when there is no
  fingerprint for it, or when the wanted value's fingerprint differs; when the token can read values,
  they are compared directly. The verification reads the keys back, never the values.
* **Deployments** (2.17) go through the deploy webhook,
  ``POST <coolify>/api/v1/deploy?uuid=<app>&force=false`` with a token that has the ``deploy``
  permission, exactly as the GitHub workflow calls it; the runbook
  waits for ``queued → in_progress → finished`` (or ``failed``). Idempotence: an app whose latest
  deployment *finished* with the same image tag, whose variables are unchanged since the runbook last
  deployed it, and which is running, is ``ok`` — whether that latest deployment is the runbook's or a
  newer one the workflow started after a push; a new deployment then needs ``redeploy=True``.
  A deployment already ``queued`` or ``in_progress`` (the push's webhook call, or the runbook's own whose
  answer was lost) is *adopted*: the runbook waits for it and never queues a second one beside it. A
  finished deployment the runbook has no record of counts as its own when it was created after every
  environment variable of the app was last changed in Coolify, with the app's image tag: it runs what a
  new deployment would.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from helpers.clients.coolify import Client, dashboard_of
from helpers.cloud import github_secrets, server, ssh
from helpers.cloud.coolify_setup import Target
from helpers.core import poll, secrets, state, steps
from helpers.core.steps import StepResult

STATE = "phase2"
APPS_KEY = "applications"  # read by helpers.cloud.github_secrets.app_uuid (task 2.13/2.17's GitHub secrets)
ENVS_KEY = "coolify_envs"
WEBHOOKS_KEY = "coolify_webhooks"
DEPLOYMENTS_KEY = "coolify_deployments"
APP_SECRET = "APP_SECRET"
REGISTRY = "ghcr.io"  # when task 2.9 recorded no registry
DEFAULT_TAG = "main"
DEFAULT_HEALTH_PATH = "/api/health"
WEB_PORT = 3000
FINAL = ("finished", "failed", "cancelled-by-user", "cancelled")
IN_FLIGHT = ("queued", "in_progress")


# --------------------------------------------------------------------------- what to create


@dataclass(frozen=True)
class AppSpec:
    """One application of the project: the web app (public, health-checked) or the worker (no port)."""

    role: str  # web | worker
    name: str
    image: str  # without tag
    tag: str = DEFAULT_TAG
    port: int | None = WEB_PORT
    domain: str = ""  # host name only, e.g. app.example.com; empty: the server's port
    health_path: str | None = DEFAULT_HEALTH_PATH

    @property
    def public_url_hint(self) -> str:
        return f"https://{self.domain}" if self.domain else f"http://<droplet IP>:{self.port}"

    def body(self, target: Target | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            **(target.body() if target else {}),
            "name": self.name,
            "description": f"{self.role} of the app, image {self.image}:{self.tag} (runbook task "
            f"{'2.14' if self.role == 'web' else '2.15'})",
            "docker_registry_image_name": self.image,
            "docker_registry_image_tag": self.tag,
            "instant_deploy": False,  # the env vars (2.16) first; 2.17 deploys
        }
        if self.role == "web":
            body["ports_exposes"] = str(self.port)
            body["domains"] = f"https://{self.domain}" if self.domain else ""
            if not self.domain:  # reachable on the server's port until a domain is set
                body["ports_mappings"] = f"{self.port}:{self.port}"
            body["health_check_enabled"] = bool(self.health_path)
            if self.health_path:
                body["health_check_path"] = self.health_path
                body["health_check_port"] = str(self.port)
        else:  # no public port, no domain; a process without HTTP: no HTTP health check
            body["ports_exposes"] = str(self.port or WEB_PORT)  # Coolify wants one; nothing maps it
            body["domains"] = ""
            body["health_check_enabled"] = False
        return body


def recorded_images() -> dict[str, Any]:
    """The images task 2.9 recorded (:func:`helpers.app.workflow.images_record`); a clear error without."""
    images = state.require(STATE, "images", "2.9")
    missing = [k for k in ("web", "worker", "deploy_tag") if not images.get(k)]
    if missing:
        raise LookupError(
            f"the images record in {state.path(STATE)} lacks {', '.join(missing)}: run task 2.9 again"
        )
    return dict(images)


def check_domain(domain: str) -> str:
    domain = domain.strip().lower()
    if domain.startswith(("http://", "https://")) or "/" in domain or (domain and "." not in domain):
        raise ValueError(
            f"domain {domain!r}: give the host name only, e.g. app.example.com (or leave it empty)"
        )
    return domain


def web_spec(
    name: str, domain: str = "", health_path: str | None = None, images: Mapping[str, Any] | None = None
) -> AppSpec:
    """The web application from task 2.9's images (``images``: its record; default: the state file's)."""
    images = images or recorded_images()
    recorded = (state.get(STATE, "app_config") or {}).get("health_path")
    path = health_path or recorded or DEFAULT_HEALTH_PATH
    if not path.startswith("/"):
        raise ValueError(f"health_path {path!r} must be a URL path such as /api/health")
    tag = str(images.get("deploy_tag") or DEFAULT_TAG)
    return AppSpec("web", name, str(images["web"]), tag, WEB_PORT, check_domain(domain), path)


def worker_spec(name: str, images: Mapping[str, Any] | None = None) -> AppSpec:
    """The worker application from task 2.9's images (``images``: its record; default: the state file's)."""
    images = images or recorded_images()
    tag = str(images.get("deploy_tag") or DEFAULT_TAG)
    return AppSpec("worker", name, str(images["worker"]), tag, None, "", None)


# --------------------------------------------------------------------------- 2.14 / 2.15: applications


def find_apps(client: Client, project_uuid: str, environment: str, name: str) -> list[dict[str, Any]]:
    details = client.environment(project_uuid, environment)
    return [a for a in details.get("applications") or [] if a.get("name") == name]


def ensure_app(
    client: Client, project_uuid: str | None, environment: str, target: Target | None, spec: AppSpec,
    dry_run: bool = False,
) -> tuple[StepResult, dict[str, Any] | None]:  # fmt: skip
    """Find the application by name in the environment, else create it from the image (not deployed)."""
    step = f"{spec.role} application {spec.name!r}"
    found = find_apps(client, project_uuid, environment, spec.name) if project_uuid else []
    if len(found) > 1:
        uuids = ", ".join(a["uuid"] for a in found)
        return steps.failed(
            step, f"{len(found)} applications are named {spec.name!r} ({uuids}); delete the extras"
        ), None
    if found:
        app = client.application(found[0]["uuid"])
        image = f"{app.get('docker_registry_image_name')}:{app.get('docker_registry_image_tag')}"
        if image != f"{spec.image}:{spec.tag}":
            return steps.failed(
                step,
                f"exists (uuid {app['uuid']}) with image {image}, not {spec.image}:{spec.tag}. Next step:"
                " fix the image in the dashboard (application → General), or delete the app and re-run",
            ), app
        return steps.ok(step, f"exists (uuid {app['uuid']}, {app.get('status', '?')})"), app
    diff = f"POST {client.base_url}/applications/dockerimage\n{json.dumps(spec.body(target), indent=2)}"
    if dry_run or target is None:
        return steps.changed(
            step, "would create it (not deployed yet: task 2.17 deploys)", diff=diff, dry_run=True
        ), None
    created = client.create_dockerimage_app(spec.body(target))
    app = client.application(created["uuid"])
    return steps.changed(step, f"created (uuid {app['uuid']})", diff=diff), app


def app_record(app: Mapping[str, Any], spec: AppSpec) -> dict[str, Any]:
    """What later tasks need (state file, not secret): uuid, name, image, domain, port."""
    return {
        "uuid": app["uuid"],
        "name": app.get("name", spec.name),
        "image": f"{spec.image}:{spec.tag}",
        "domain": spec.domain,
        "port": spec.port if spec.role == "web" else None,
        "health_path": spec.health_path,
    }


def record_app(role: str, record: Mapping[str, Any]) -> dict[str, Any]:
    apps = dict(state.get(STATE, APPS_KEY) or {})
    apps[role] = dict(record)
    state.update(STATE, **{APPS_KEY: apps})
    return apps


def recorded_app(role: str, task: str) -> dict[str, Any]:
    entry = (state.get(STATE, APPS_KEY) or {}).get(role)
    if not entry or not entry.get("uuid"):
        raise LookupError(f"no {role} application recorded in {state.path(STATE)}: run task {task} first")
    return dict(entry)


def registry_login(
    private: bool, admin_user: str, dry_run: bool = False, images: Mapping[str, Any] | None = None
) -> StepResult:
    """Task 2.14's GHCR login on the server, for the owner of task 2.9's images.

    The server is reached over SSH (as ``admin_user``, :func:`helpers.cloud.server.connect_admin`) only when
    the images are private; public images need no login.
    """
    images = images or recorded_images()
    owner = str(images.get("repository") or images["web"].split("/")[1]).split("/")[0]
    registry = str(images.get("registry") or REGISTRY)  # task 2.9's record: where the workflow pushes
    if not private:
        return ensure_registry_login(None, owner, private, dry_run, registry)
    where = ssh.droplet_target()
    remote = server.connect_admin(where.host, where.port, admin_user, where.key_path, where.ssh_dir)
    try:
        return ensure_registry_login(remote, owner, private, dry_run, registry)
    finally:
        remote.close()


def ensure_registry_login(
    remote: Any, owner: str, private: bool, dry_run: bool = False, registry: str = REGISTRY
) -> StepResult:
    """The server's Docker login to the registry (GHCR) Coolify pulls from. Token on stdin, never echoed."""
    step = "GHCR login on the server (private images)"
    if not private:
        return steps.skipped(
            step, "private_images is off (the images are public): Coolify pulls them without a login"
        )
    if not secrets.has("GHCR_TOKEN"):
        return steps.failed(
            step,
            "GHCR_TOKEN is not set. Next step: create a classic GitHub token with read:packages, store it as "
            f"GHCR_TOKEN in {secrets.secrets_file()}, re-run (or set private_image=False for public images)",
        )
    probe = remote.run(f"sudo -n grep -q '\"{registry}\"' /root/.docker/config.json", check=False)
    if probe.ok:
        return steps.ok(step, f"root's Docker config has credentials for {registry}")
    if dry_run:
        return steps.changed(
            step, f"would run `docker login {registry} -u {owner} --password-stdin`", dry_run=True
        )
    result = remote.conn.run(
        f"sudo -n docker login {registry} -u {owner} --password-stdin",
        in_stream=io.StringIO(secrets.get("GHCR_TOKEN") + "\n"),
        hide=True,
        warn=True,
    )
    if not result.ok:
        return steps.failed(
            step,
            f"docker login was refused ({secrets.scrub(result.stderr.strip())[:200]}). Next step: check "
            "that GHCR_TOKEN has read:packages and belongs to an account that can read the package",
        )
    return steps.changed(step, f"logged in to {registry} as {owner} (stored in /root/.docker/config.json)")


def check_app(check: Any, client: Client, project_uuid: str, environment: str, spec: AppSpec) -> dict | None:
    """Tasks 2.14/2.15's verification, read back from the API."""
    found = find_apps(client, project_uuid, environment, spec.name)
    check(
        f"exactly one application named {spec.name!r} in {environment}",
        len(found) == 1,
        ", ".join(a["uuid"] for a in found) or "none",
        hint="none: run the cells above without dry_run; several: delete the extras in the dashboard",
    )
    if len(found) != 1:
        return None
    app = client.application(found[0]["uuid"])
    image = f"{app.get('docker_registry_image_name')}:{app.get('docker_registry_image_tag')}"
    check(f"{spec.name}: image {spec.image}:{spec.tag}", image == f"{spec.image}:{spec.tag}", image)
    domains = str(app.get("fqdn") or "")
    if spec.role == "web":
        check(
            f"{spec.name}: exposes port {spec.port}",
            str(app.get("ports_exposes")) == str(spec.port),
            app.get("ports_exposes"),
            hint="dashboard → the app → General → Ports Exposes",
        )
        want = f"https://{spec.domain}" if spec.domain else ""
        check(
            f"{spec.name}: domain {want or '(none: the server port)'}",
            domains == want,
            domains or "none",
            hint="dashboard → the app → General → Domains",
        )
        if not spec.domain:
            check(
                f"{spec.name}: port {spec.port} mapped on the server",
                app.get("ports_mappings") == f"{spec.port}:{spec.port}",
                app.get("ports_mappings"),
                hint="without a domain the app is reachable on the server's port only",
            )
        check(
            f"{spec.name}: health check on {spec.health_path}",
            app.get("health_check_enabled") is True and app.get("health_check_path") == spec.health_path,
            f"{app.get('health_check_enabled')} {app.get('health_check_path')}",
            hint="dashboard → the app → Healthcheck",
        )
    else:
        check(f"{spec.name}: no domain", not domains, domains or "none")
        check(
            f"{spec.name}: no port published on the server",
            not app.get("ports_mappings"),
            app.get("ports_mappings") or "none",
        )
        check(
            f"{spec.name}: no HTTP health check (a worker serves no HTTP)",
            app.get("health_check_enabled") is False,
            app.get("health_check_enabled"),
        )
    return app


def check_created(
    check: Any, client: Client, project_uuid: str, environment: str, spec: AppSpec
) -> dict[str, Any] | None:
    """Tasks 2.14/2.15's whole verification: :func:`check_app`, and the state file records that app."""
    found = check_app(check, client, project_uuid, environment, spec)
    recorded = (state.get(STATE, APPS_KEY) or {}).get(spec.role) or {}
    check(
        "state file records it",
        bool(found) and recorded.get("uuid") == (found or {}).get("uuid"),
        recorded.get("uuid"),
        hint="re-run the cell above",
    )
    return found


# --------------------------------------------------------------------------- 2.16: environment variables


def ensure_app_secret(dry_run: bool = False) -> StepResult:
    """``APP_SECRET`` (the app's SESSION_SECRET): generated once (32 random bytes), in the secrets file."""
    step = f"{APP_SECRET} in the secrets file"
    if secrets.has(APP_SECRET):
        return steps.ok(step, f"set ({len(secrets.get(APP_SECRET))} characters)")
    if dry_run:
        return steps.changed(step, "would generate 32 random bytes and store them", dry_run=True)
    path = secrets.put(APP_SECRET, secrets.generate(32))
    return steps.changed(step, f"generated and stored in {path}")


FIXED_VALUES = {
    "NODE_ENV": "production",
    "PORT": str(WEB_PORT),
    "WORKER_CONCURRENCY": "5",
    "LOG_LEVEL": "info",
}


def wanted_env(
    role: str,
    public_url: str,
    queue_name: str = "jobs",
    overrides: Mapping[str, str] | None = None,
    require_values: bool = True,
) -> dict[str, str | None]:
    """Key → value for one app, from :data:`helpers.app.prodenv.PRODUCTION_ENV`.

    None: a secret not set yet."""
    from helpers.app.prodenv import PRODUCTION_ENV

    out: dict[str, str | None] = {}
    for var in PRODUCTION_ENV:
        if role not in var.apps:
            continue
        if var.secret:
            name = var.secret_name or var.name
            if secrets.has(name):
                out[var.name] = secrets.get(name)
            elif require_values:
                task = "2.8" if name.startswith("PROD_") else "2.16's secret cell"
                raise LookupError(f"the secret {name} (for {var.name}) is not set: run task {task} first")
            else:
                out[var.name] = None
        elif var.name == "NEXT_PUBLIC_APP_URL":
            out[var.name] = public_url
        elif var.name == "QUEUE_NAME":
            out[var.name] = queue_name
        elif var.name in FIXED_VALUES:
            out[var.name] = FIXED_VALUES[var.name]
        else:
            raise LookupError(
                f"production variable {var.name} has no value rule in helpers/cloud/coolify_apps.py"
            )
    out.update(overrides or {})
    return out


def public_url(spec_domain: str, server_ip: str, port: int = WEB_PORT) -> str:
    return f"https://{spec_domain}" if spec_domain else f"http://{server_ip}:{port}"


def _fingerprint(key: bytes, app_uuid: str, name: str, value: str) -> str:
    return hmac.new(key, f"{app_uuid}\0{name}\0{value}".encode(), hashlib.sha256).hexdigest()


def fingerprint_key(create: bool) -> bytes | None:
    return github_secrets.fingerprint_key(create)


def plan_envs(
    remote: Sequence[Mapping[str, Any]], wanted: Mapping[str, str | None], app_uuid: str, key: bytes | None
) -> list[tuple[str, str]]:
    """(key, why) for each key that must be sent; values compared directly when the API shows them."""
    recorded = recorded_fingerprints(app_uuid)
    by_key = {e.get("key"): e for e in remote if not e.get("is_preview")}
    out = []
    for name, value in wanted.items():
        if value is None:
            continue
        there = by_key.get(name)
        if there is None:
            out.append((name, "missing in Coolify"))
        elif "value" in there or "real_value" in there:
            if str(there.get("value", there.get("real_value"))) != value:
                out.append((name, "value differs"))
        elif key is None or not recorded.get(name):
            out.append((name, "set, but the runbook has no fingerprint of its value"))
        elif not hmac.compare_digest(recorded[name], _fingerprint(key, app_uuid, name, value)):
            out.append((name, "value changed since the runbook set it"))
    return out


def ensure_envs(
    client: Client, app: Mapping[str, Any] | None, role: str, wanted: Mapping[str, str | None],
    dry_run: bool = False,
) -> list[StepResult]:  # fmt: skip
    """One bulk PATCH with the keys that need it (none: no request); fingerprints recorded."""
    step = f"{role}: environment variables"
    pending = [k for k, v in wanted.items() if v is None]
    if app is None:
        return [steps.changed(step, f"would set {', '.join(wanted)} once the app exists", dry_run=True)]
    key = fingerprint_key(create=not dry_run)
    todo = plan_envs(client.envs(app["uuid"]), wanted, app["uuid"], key)
    results = []
    if pending:
        results.append(
            steps.failed(f"{role}: values missing", f"{', '.join(pending)}: see the hint of each secret")
        )
    if not todo:
        results.append(steps.ok(step, f"{len(wanted) - len(pending)} keys set and unchanged"))
        return results
    lines = "\n".join(
        f"{name}=<{'secret' if secrets.is_secret_name(name) or name.endswith('_URL') else 'value'}>  ({why})"
        for name, why in todo
    )
    diff = f"PATCH {client.base_url}/applications/{app['uuid']}/envs/bulk\n{lines}"
    if dry_run:
        results.append(steps.changed(step, f"would set {len(todo)} keys", diff=diff, dry_run=True))
        return results
    assert key is not None
    data = [{"key": name, "value": str(wanted[name]), "is_preview": False} for name, _ in todo]
    client.bulk_envs(app["uuid"], data)
    mine = recorded_fingerprints(app["uuid"])
    for name, _ in todo:
        mine[name] = _fingerprint(key, app["uuid"], name, str(wanted[name]))
    envs = dict(state.get(STATE, ENVS_KEY) or {})
    # a list of {key, hmac}: the state file refuses secret-looking names as keys (SESSION_SECRET...)
    envs[app["uuid"]] = [{"key": k, "hmac": v} for k, v in sorted(mine.items())]
    state.update(STATE, **{ENVS_KEY: envs})
    results.append(steps.changed(step, f"set {len(todo)} keys: {', '.join(n for n, _ in todo)}", diff=diff))
    return results


def recorded_fingerprints(app_uuid: str) -> dict[str, str]:
    """Key → HMAC of the value the runbook last sent to this app (the state file's ``coolify_envs``)."""
    entries = (state.get(STATE, ENVS_KEY) or {}).get(app_uuid) or []
    return {str(e["key"]): str(e["hmac"]) for e in entries if isinstance(e, dict) and "key" in e}


def env_digest(app_uuid: str) -> str:
    """One digest of the app's recorded env fingerprints: 2.17 redeploys when it moved."""
    recorded = recorded_fingerprints(app_uuid)
    return hashlib.sha256(json.dumps(recorded, sort_keys=True).encode()).hexdigest()[:16]


def check_envs(
    check: Any, client: Client, app_uuid: str, role: str, wanted: Mapping[str, str | None]
) -> None:
    """Keys read back (never values); each key's fingerprint matches the wanted value."""
    remote = client.envs(app_uuid)
    keys = {e.get("key") for e in remote if not e.get("is_preview")}
    missing = [k for k in wanted if k not in keys]
    check(
        f"{role}: every production key is set in Coolify",
        not missing,
        f"missing {', '.join(missing)}" if missing else f"{len(wanted)} keys",
        hint="re-run the cells above",
    )
    key = fingerprint_key(create=False)
    stale = [name for name, _ in plan_envs(remote, wanted, app_uuid, key)]
    check(
        f"{role}: values are the wanted ones (fingerprints; values never read)",
        not stale,
        f"differs: {', '.join(stale)}" if stale else "all match",
        hint="re-run the cells above without dry_run",
    )
    leaked = [
        e.get("key")
        for e in remote
        if ("value" in e or "real_value" in e) and secrets.is_secret_name(str(e.get("key")))
    ]
    if leaked:  # fine for a root token; say so
        check.note(
            "this token may read secret values (read:sensitive)",
            "the verification still compares fingerprints",
        )


# --------------------------------------------------------------------------- 2.17: deployments


def webhook_url(client: Client, app_uuid: str, force: bool = False) -> str:
    return (
        f"{dashboard_of(client.base_url)}/api/v1/deploy?uuid={app_uuid}&force={'true' if force else 'false'}"
    )


def latest_deployment(client: Client, app_uuid: str) -> dict[str, Any] | None:
    found = client.app_deployments(app_uuid, take=1)
    return found[0] if found else None


def wait_deployment(
    client: Client, deployment_uuid: str, timeout: float = 600.0, interval: float = 3.0,
    progress: Callable[[str], None] = print, sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:  # fmt: skip
    """Poll ``GET /deployments/{uuid}`` until finished/failed; show each change of status."""

    def describe(dep: Mapping[str, Any]) -> str:
        return f"{dep.get('application_name')} {deployment_uuid}: {dep.get('status', '')}"

    def explain(last: Any) -> str:
        return (
            f"deployment {deployment_uuid} is still {last.get('status', '')} after {timeout:.0f}s; watch "
            "it in the dashboard (Deployments) and re-run task 2.17 (it waits again)"
        )

    return poll.poll(
        lambda: client.deployment(deployment_uuid),
        until=lambda dep: str(dep.get("status", "")) in FINAL,
        timeout=timeout,
        interval=interval,
        what=f"deployment {deployment_uuid} to finish",
        on_attempt=poll.report_changes(progress, describe, clock),
        explain=explain,
        sleep=sleep,
        clock=clock,
    )


def deployment_logs(dep: Mapping[str, Any], lines: int = 12) -> str:
    try:
        entries = json.loads(dep.get("logs") or "[]")
    except ValueError:
        return str(dep.get("logs"))[-2000:]
    text = "\n".join(str(e.get("output", "")) for e in entries if not e.get("hidden"))
    return secrets.scrub("\n".join(text.splitlines()[-lines:]))


def record_deployment(role: str, dep: Mapping[str, Any], digest: str) -> dict[str, Any]:
    """Keep ``dep`` as the role's deployment in the state file, with the env digest it ran."""
    deployments = dict(state.get(STATE, DEPLOYMENTS_KEY) or {})
    deployments[role] = {
        "deployment_uuid": dep["deployment_uuid"],
        "status": dep["status"],
        "env_digest": digest,
    }
    state.update(STATE, **{DEPLOYMENTS_KEY: deployments})
    return deployments[role]


def started_after_envs(client: Client, app_uuid: str, dep: Mapping[str, Any]) -> bool:
    """Whether ``dep`` was created after every environment variable of the app was last changed (both
    times as Coolify keeps them, to the second: a deployment in the same second does not count)."""
    created = str(dep.get("created_at") or "")
    changed = [str(e.get("updated_at") or e.get("created_at") or "") for e in client.envs(app_uuid)]
    return bool(created) and all(c and created > c for c in changed)


def ensure_deployed(
    client: Client, role: str, app: Mapping[str, Any], redeploy: bool = False, dry_run: bool = False,
    progress: Callable[[str], None] = print, **wait: Any,
) -> tuple[StepResult, dict[str, Any] | None]:  # fmt: skip
    """Deploy through the webhook unless the latest deployment is current (see the module docstring)."""
    step = f"{role}: deployment"
    digest = env_digest(app["uuid"])
    done = (state.get(STATE, DEPLOYMENTS_KEY) or {}).get(role) or {}
    latest = latest_deployment(client, app["uuid"])
    adopted = ""
    if latest is not None and latest.get("status") in IN_FLIGHT:
        if dry_run:
            return steps.changed(
                step, f"deployment {latest['deployment_uuid']} is {latest.get('status')}: would wait for it "
                "(no second deployment), then check it", dry_run=True,
            ), None  # fmt: skip
        under_way = f"deployment {latest['deployment_uuid']} is already {latest.get('status')}"
        progress(f"{role}: {under_way}: waiting for it instead of queuing another")
        latest = wait_deployment(client, latest["deployment_uuid"], progress=progress, **wait)
        adopted = f"waited for deployment {latest['deployment_uuid']}, already under way; "
    current = client.application(app["uuid"])
    tag = current.get("docker_registry_image_tag")
    status = str(current.get("status", ""))
    known = bool(done.get("deployment_uuid")) and done.get("env_digest") == digest
    if (
        not known
        and latest is not None
        and latest.get("status") == "finished"
        and latest.get("docker_registry_image_tag") == tag
        and started_after_envs(client, app["uuid"], latest)
    ):  # it runs what a new deployment would (e.g. ours, whose answer was lost): ours
        entry = {"deployment_uuid": latest["deployment_uuid"], "status": "finished", "env_digest": digest}
        done = entry if dry_run else record_deployment(role, latest, digest)
        adopted = adopted or f"deployment {latest['deployment_uuid']} started after the variables were set; "
    up_to_date = (
        latest is not None
        and latest.get("status") == "finished"
        # Ours, or a newer one (the workflow's webhook call after a push): either way it started after
        # the variables we deployed with were in place, so it runs them as long as they are unchanged.
        and bool(done.get("deployment_uuid"))
        and done.get("env_digest") == digest
        and latest.get("docker_registry_image_tag") == tag
        and status.startswith("running")
    )
    if up_to_date and not redeploy:
        return steps.ok(step, f"{adopted}deployment {latest['deployment_uuid']} finished, same image and "
                        f"variables; {status}"), latest  # fmt: skip
    why = (
        "redeploy=True"
        if up_to_date
        else (
            "never deployed"
            if latest is None
            else f"latest deployment {latest.get('status')}"
            if latest.get("status") != "finished"
            else "variables changed"
            if done.get("env_digest") != digest
            else f"application {status or 'not running'}"
            if not status.startswith("running")
            else "image tag changed"
        )
    )
    url = webhook_url(client, app["uuid"])
    if dry_run:
        return steps.changed(
            step, f"would call the deploy webhook ({why})", diff=f"POST {url}", dry_run=True
        ), None
    answered = client.deploy([app["uuid"]])
    queued = next((d for d in answered if d.get("deployment_uuid")), None)
    if queued is None:
        return steps.failed(step, f"the webhook queued nothing: {answered}"), None
    dep = wait_deployment(client, queued["deployment_uuid"], progress=progress, **wait)
    record_deployment(role, dep, digest)
    if dep.get("status") != "finished":
        return steps.failed(step, f"deployment {dep['deployment_uuid']} {dep.get('status')} ({why}):\n"
                            f"{deployment_logs(dep)}"), dep  # fmt: skip
    return steps.changed(
        step, f"deployment {dep['deployment_uuid']} finished ({why})", diff=f"POST {url}"
    ), dep


def check_deployed(check: Any, client: Client, role: str, app_uuid: str) -> None:
    latest = latest_deployment(client, app_uuid)
    check(
        f"{role}: latest deployment finished",
        bool(latest) and latest.get("status") == "finished",
        f"{latest.get('deployment_uuid')} {latest.get('status')}" if latest else "none",
        hint="read the deployment's logs in the dashboard; fix and re-run with redeploy=True",
    )
    status = str(client.application(app_uuid).get("status", ""))
    want = "running:healthy" if role == "web" else "running"
    check(
        f"{role}: application {want}",
        status.startswith(want),
        status,
        hint="dashboard → the app → Logs; a crash loop shows there",
    )


def check_apps_envs(
    check: Any, client: Client, apps: Mapping[str, Mapping[str, Any]], wanted: Mapping[str, Mapping[str, Any]]
) -> None:
    """Task 2.16's verification: :func:`check_envs` for each application."""
    for role, entry in apps.items():
        check_envs(check, client, entry["uuid"], role, wanted[role])


def check_deployments(
    check: Any, client: Client, apps: Mapping[str, Mapping[str, Any]], github_steps: Sequence[StepResult] = ()
) -> None:
    """Task 2.17's verification: each app deployed and running, webhooks recorded, GitHub's secrets set."""
    for role, entry in apps.items():
        check_deployed(check, client, role, entry["uuid"])
    recorded = state.get(STATE, WEBHOOKS_KEY) or {}
    check(
        "webhook URLs recorded",
        set(recorded) == set(apps),
        ", ".join(recorded) or "none",
        hint="re-run the webhook cell",
    )
    for step in github_steps:
        check(f"GitHub: {step.name}", step.status != "failed", f"{step.status}: {step.detail}")


def ensure_webhooks_recorded(client: Client, apps: Mapping[str, str], dry_run: bool = False) -> StepResult:
    """The webhook URLs in the state file (not secret: the token that calls them is)."""
    want = {role: webhook_url(client, uuid) for role, uuid in apps.items()}
    if state.get(STATE, WEBHOOKS_KEY) == want:
        return steps.ok("deploy webhook URLs recorded", ", ".join(want))
    if dry_run:
        return steps.changed("deploy webhook URLs recorded", "would record them", dry_run=True)
    state.update(STATE, **{WEBHOOKS_KEY: want})
    return steps.changed("deploy webhook URLs recorded", f"in {state.path(STATE)}")


__all__ = ["AppSpec"]
