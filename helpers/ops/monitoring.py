"""Health monitoring and alerts: Coolify's health checks, an uptime check, resource alert policies.

* **Coolify health checks** on both applications (``PATCH /applications/{uuid}``): the web app by HTTP
  (its health path and port), the worker by a command (it serves no HTTP); interval, timeout, retries and
  start period as given. Read back from the application's settings; a change is deployed (the container's
  health check is made at deployment). The **restart drill** (``restart_drill=True``: it interrupts
  production for a few seconds) makes the web container's main process exit, as a crash would, and
  verifies that it is running again by itself (Docker's restart policy, which Coolify sets) and that
  Coolify reports it healthy.
* A DigitalOcean **uptime check** on the public health URL (from two regions), with an alert to the
  team's email when it is down (and, over HTTPS, when the certificate expires within 14 days).
* DigitalOcean **alert policies** on the droplet: CPU, memory and disk above thresholds for 5 minutes,
  to the same email.

Everything is found by name (checks, alerts) or by type and droplet (policies) before anything is created,
compared field by field, corrected with ``PUT``/``PATCH`` when it differs, and read back from the API: a
second run changes nothing.
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from helpers.clients.coolify import Client
from helpers.clients.digitalocean import Client as DOClient
from helpers.cloud import coolify_apps
from helpers.core import steps
from helpers.core.poll import PollTimeout, poll
from helpers.core.steps import StepResult

REGIONS = ("us_east", "eu_west")
WORKER_COMMAND = "kill -0 1"  # the worker's main process is alive (the image needs nothing more than sh)


# --------------------------------------------------------------------------- Coolify health checks


@dataclass(frozen=True)
class HealthCheck:
    role: str
    kind: str  # http | cmd
    path: str = "/api/health"
    port: str = "3000"
    command: str = ""
    interval: int = 30
    timeout: int = 5
    retries: int = 3
    start_period: int = 10

    def __post_init__(self) -> None:
        if self.kind not in ("http", "cmd"):
            raise ValueError(f"health check type {self.kind!r}: http or cmd")
        if self.kind == "http" and not self.path.startswith("/"):
            raise ValueError(f"health path {self.path!r} must start with /")
        if self.kind == "cmd" and not self.command.strip():
            raise ValueError("a command health check needs its command")
        if min(self.interval, self.timeout, self.retries) < 1 or self.start_period < 0:
            raise ValueError("interval, timeout and retries are 1 or more; start_period 0 or more")

    def fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "health_check_enabled": True,
            "health_check_type": self.kind,
            "health_check_interval": self.interval,
            "health_check_timeout": self.timeout,
            "health_check_retries": self.retries,
            "health_check_start_period": self.start_period,
        }
        if self.kind == "http":
            fields |= {"health_check_path": self.path, "health_check_port": str(self.port)}
        else:
            fields["health_check_command"] = self.command
        return fields

    def describe(self) -> str:
        what = f"GET {self.path} on port {self.port}" if self.kind == "http" else f"`{self.command}`"
        return f"{what} every {self.interval} s, {self.retries} retries, timeout {self.timeout} s"


def health_differences(app: Mapping[str, Any], wanted: HealthCheck) -> dict[str, Any]:
    return {k: v for k, v in wanted.fields().items() if str(app.get(k)) != str(v)}


def ensure_health_check(
    client: Client,
    app_uuid: str,
    wanted: HealthCheck,
    dry_run: bool = False,
    deploy: bool = True,
    **wait: Any,
) -> StepResult:
    """The application's health check as wanted; a change is deployed (``deploy``) so the container has it."""
    step = f"{wanted.role}: Coolify health check"
    patch = health_differences(client.application(app_uuid), wanted)
    if not patch:
        return steps.ok(step, wanted.describe())
    diff = "\n".join(f"+ {k}: {v}" for k, v in patch.items())
    if dry_run:
        return steps.changed(step, f"would set {', '.join(patch)} and redeploy", diff=diff, dry_run=True)
    client.update_application(app_uuid, patch)
    if deploy:
        queued = next((d for d in client.deploy([app_uuid]) if d.get("deployment_uuid")), None)
        if queued is None:
            return steps.failed(step, "set, but the deploy webhook queued nothing: deploy it (task 2.17)")
        done = coolify_apps.wait_deployment(client, str(queued["deployment_uuid"]), **wait)
        if done.get("status") != "finished":
            return steps.failed(
                step, f"set; its deployment {done.get('status')}: {coolify_apps.deployment_logs(done)}"
            )
    return steps.changed(step, f"{wanted.describe()}" + (" (deployed)" if deploy else ""), diff=diff)


def check_health_settings(check: Any, client: Client, app_uuid: str, wanted: HealthCheck) -> None:
    app = client.application(app_uuid)
    patch = health_differences(app, wanted)
    check(
        f"{wanted.role}: health check in Coolify's settings",
        not patch,
        wanted.describe() if not patch else f"differs: {', '.join(f'{k}={app.get(k)!r}' for k in patch)}",
        hint="run the task again (it corrects them); the dashboard → the application → Health Checks",
    )
    status = str(app.get("status", ""))
    check(
        f"{wanted.role}: reported healthy",
        status == "running:healthy",
        status,
        hint="the health check fails in the container: `runbook run operations --only logs`, and check the "
        "path/command",
    )


# --------------------------------------------------------------------------- the restart drill


@dataclass(frozen=True)
class ContainerState:
    running: bool
    started_at: str
    restarts: int
    status: str


def container_state(remote: Any, container: str) -> ContainerState:
    fmt = "{{json .State}} {{.RestartCount}}"
    out = remote.run(f"docker inspect --format '{fmt}' {shlex.quote(container)}", check=False)
    if not out.ok:
        raise LookupError(f"no container {container} on the server: {out.stderr.strip()[:200]}")
    raw, _, count = out.stdout.strip().rpartition(" ")
    state = json.loads(raw)
    return ContainerState(
        bool(state.get("Running")), str(state.get("StartedAt")), int(count), str(state.get("Status"))
    )


@dataclass
class DrillOutcome:
    before: ContainerState
    after: ContainerState
    status: str  # Coolify's, once it is back
    seconds: float

    @property
    def restarted(self) -> bool:
        return self.after.running and (
            self.after.restarts > self.before.restarts or self.after.started_at != self.before.started_at
        )


def restart_drill(
    client: Client,
    remote: Any,
    app_uuid: str,
    timeout: float = 120.0,
    interval: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
) -> DrillOutcome:
    """Make the container's main process exit (SIGINT, then SIGTERM); wait until it runs again by itself."""
    before = container_state(remote, app_uuid)
    if not before.running:
        raise RuntimeError(
            f"the container {app_uuid} is not running ({before.status}): deploy it first (task 2.17)"
        )
    began = clock()
    changed = lambda s: s.started_at != before.started_at or s.restarts > before.restarts  # noqa: E731
    for signal in ("INT", "TERM"):
        remote.run(f"docker exec {shlex.quote(app_uuid)} kill -s {signal} 1", check=False)
        try:
            poll(
                lambda: container_state(remote, app_uuid),
                until=changed,
                timeout=10,
                interval=0.5,
                what="an exit",
            )
            break
        except PollTimeout:
            continue
    try:
        after = poll(
            lambda: container_state(remote, app_uuid),
            until=lambda s: changed(s) and s.running,
            timeout=timeout,
            interval=interval,
            what=f"{app_uuid} to run again",
        )
        app = poll(
            lambda: client.application(app_uuid),
            until=lambda a: str(a.get("status")) == "running:healthy",
            timeout=timeout,
            interval=interval,
            what="Coolify to report it healthy",
        )
        status = str(app.get("status"))
    except PollTimeout as exc:
        after = container_state(remote, app_uuid)
        status = f"not back: {exc}"
    return DrillOutcome(before, after, status, clock() - began)


def check_restart(check: Any, outcome: DrillOutcome) -> None:
    check(
        "a crashed web container is running again by itself",
        outcome.restarted,
        f"restarts {outcome.before.restarts} → {outcome.after.restarts}, "
        f"started {outcome.after.started_at[:19]} ({outcome.seconds:.0f} s)",
        hint="the main process did not exit on SIGINT/SIGTERM (a PID 1 without signal handlers), or the "
        "container has no restart policy: `docker inspect -f '{{.HostConfig.RestartPolicy}}'` on the server",
    )
    check(
        "Coolify reports it healthy again",
        outcome.status == "running:healthy",
        outcome.status,
        hint="the health check fails after the restart: `runbook run operations --only logs`",
    )


# --------------------------------------------------------------------------- DigitalOcean: uptime check


def check_type(url: str) -> str:
    scheme = urlsplit(url).scheme
    if scheme not in ("http", "https"):
        raise ValueError(f"{url!r} is not an http(s) URL")
    return scheme


def ensure_uptime_check(
    do: DOClient, name: str, url: str, regions: Sequence[str] = REGIONS, dry_run: bool = False
) -> tuple[StepResult, dict[str, Any] | None]:
    step = f"uptime check {name!r}"
    wanted = {"name": name, "type": check_type(url), "target": url, "regions": list(regions), "enabled": True}
    found = [c for c in do.uptime_checks() if c.get("name") == name]
    if not found:
        if dry_run:
            return steps.changed(
                step, f"would create it: {url} from {', '.join(regions)}", dry_run=True
            ), None
        return steps.changed(step, f"created: {url} from {', '.join(regions)}"), do.create_uptime_check(
            wanted
        )
    current = found[0]
    differs = [k for k, v in wanted.items() if current.get(k) != v]
    if not differs:
        return steps.ok(step, f"{url} from {', '.join(regions)}"), current
    if dry_run:
        return steps.changed(step, f"would update {', '.join(differs)}", dry_run=True), current
    return steps.changed(step, f"updated {', '.join(differs)}"), do.update_uptime_check(current["id"], wanted)


def alert_bodies(name: str, email: str, https: bool) -> list[dict[str, Any]]:
    notify = {"email": [email], "slack": []}
    bodies = [{"name": f"{name}: down", "type": "down", "period": "2m", "notifications": notify}]
    if https:
        bodies.append(
            {
                "name": f"{name}: certificate expires",
                "type": "ssl_expiry",
                "threshold": 14,
                "comparison": "less_than",
                "period": "2m",
                "notifications": notify,
            }
        )
    return bodies


def ensure_uptime_alerts(
    do: DOClient, check: Mapping[str, Any] | None, name: str, email: str, https: bool, dry_run: bool = False
) -> list[StepResult]:
    results = []
    current = {a.get("name"): a for a in do.uptime_alerts(check["id"])} if check else {}
    for body in alert_bodies(name, email, https):
        step = f"uptime alert {body['name']!r}"
        found = current.get(body["name"])
        if found is None:
            if dry_run or check is None:
                results.append(
                    steps.changed(step, f"would create it: {body['type']} → {email}", dry_run=True)
                )
                continue
            do.create_uptime_alert(check["id"], body)
            results.append(steps.changed(step, f"created: {body['type']} → {email}"))
            continue
        differs = [k for k, v in body.items() if found.get(k) != v]
        if not differs:
            results.append(steps.ok(step, f"{body['type']} → {email}"))
        elif dry_run:
            results.append(steps.changed(step, f"would update {', '.join(differs)}", dry_run=True))
        else:
            do.update_uptime_alert(check["id"], found["id"], body)
            results.append(steps.changed(step, f"updated {', '.join(differs)}"))
    return results


# --------------------------------------------------------------------------- DigitalOcean: alert policies


@dataclass(frozen=True)
class Thresholds:
    cpu: float = 80.0
    memory: float = 90.0
    disk: float = 85.0
    window: str = "5m"


POLICY_TYPES = {
    "cpu": ("v1/insights/droplet/cpu", "CPU above {v:g} %"),
    "memory": ("v1/insights/droplet/memory_utilization_percent", "memory above {v:g} %"),
    "disk": ("v1/insights/droplet/disk_utilization_percent", "disk above {v:g} %"),
}


def policy_bodies(droplet_id: int, droplet_name: str, email: str, limits: Thresholds) -> list[dict[str, Any]]:
    bodies = []
    for what, (kind, words) in POLICY_TYPES.items():
        value = getattr(limits, what)
        bodies.append(
            {
                "type": kind,
                "description": f"{droplet_name}: {words.format(v=value)}",
                "compare": "GreaterThan",
                "value": value,
                "window": limits.window,
                "entities": [str(droplet_id)],
                "tags": [],
                "alerts": {"email": [email], "slack": []},
                "enabled": True,
            }
        )
    return bodies


def ours(policy: Mapping[str, Any], body: Mapping[str, Any]) -> bool:
    """The policy of this type watching this droplet."""
    return policy.get("type") == body["type"] and body["entities"][0] in (policy.get("entities") or [])


def ensure_alert_policies(
    do: DOClient, droplet_id: int, droplet_name: str, email: str, limits: Thresholds, dry_run: bool = False
) -> list[StepResult]:
    results = []
    existing = do.alert_policies()
    for body in policy_bodies(droplet_id, droplet_name, email, limits):
        step = f"alert policy {body['description']!r}"
        found = [p for p in existing if ours(p, body)]
        if not found:
            if dry_run:
                results.append(steps.changed(step, "would create it", dry_run=True))
            else:
                do.create_alert_policy(body)
                results.append(steps.changed(step, f"created → {email}"))
            continue
        differs = [k for k, v in body.items() if found[0].get(k) != v]
        if not differs:
            results.append(steps.ok(step, f"→ {email}"))
        elif dry_run:
            results.append(steps.changed(step, f"would update {', '.join(differs)}", dry_run=True))
        else:
            do.update_alert_policy(found[0]["uuid"], body)
            results.append(steps.changed(step, f"updated {', '.join(differs)}"))
    return results


def check_alerting(
    check: Any,
    do: DOClient,
    name: str,
    url: str,
    email: str,
    droplet_id: int,
    droplet_name: str,
    limits: Thresholds,
) -> None:
    """Read back from DigitalOcean: the check, its alerts and the policies, as wanted; the check's state."""
    found = [c for c in do.uptime_checks() if c.get("name") == name]
    check(
        "uptime check on the public URL",
        len(found) == 1 and found[0].get("target") == url and found[0].get("enabled"),
        f"{found[0].get('target')} ({found[0].get('id')})" if found else "none",
        hint="run the task again; DigitalOcean control panel → Monitoring → Uptime",
    )
    if found:
        alerts = {a.get("name"): a for a in do.uptime_alerts(found[0]["id"])}
        for body in alert_bodies(name, email, url.startswith("https://")):
            alert = alerts.get(body["name"])
            check(
                f"uptime alert {body['type']} to {email}",
                alert is not None and email in ((alert.get("notifications") or {}).get("email") or []),
                "set" if alert else "missing",
                hint="run the task again; the email must be verified on the DigitalOcean account",
            )
        state = do.uptime_check_state(found[0]["id"])
        regions = state.get("regions") or {}
        statuses = {r: (s or {}).get("status") for r, s in regions.items()}
        check(
            "the uptime check sees the site up",
            bool(statuses) and all(s in ("UP", "CHECKING") for s in statuses.values()),
            ", ".join(f"{r} {s}" for r, s in statuses.items()) or "no state yet",
            hint="DigitalOcean cannot reach the public URL: `runbook doctor phase2`",
        )
    policies = do.alert_policies()
    for body in policy_bodies(droplet_id, droplet_name, email, limits):
        mine = [p for p in policies if ours(p, body)]
        check(
            f"alert policy: {body['description']}",
            len(mine) == 1 and all(mine[0].get(k) == v for k, v in body.items()),
            f"{len(mine)} found" if len(mine) != 1 else f"{mine[0].get('uuid')} → {email}",
            hint="run the task again (it creates or corrects it); control panel → Monitoring → Alerts",
        )
