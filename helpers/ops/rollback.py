"""Rollback: web and worker back to the image they ran before, by digest, and forward again.

Coolify deploys a Docker-image application as ``<image name>:<tag>`` (``main``, the tag the workflow of task
2.9 moves at every push), or, when the tag reads ``sha256-<hex>``, exactly ``<image name>@sha256:<hex>``
(its image-hash deployments). A rollback therefore:

1. reads on the server which image each application runs, and which images of its repository the server
   holds (:mod:`helpers.cloud.images`: Coolify keeps the last ones for rollbacks);
2. picks the **previous** one: the newest image built before the running one (``target="previous"``), or
   the one named by tag, digest or id; refuses when there is none;
3. pins it (``PATCH /applications/{uuid}`` with ``docker_registry_image_tag=sha256-<hex>``), deploys it
   through the deploy webhook and waits for the deployment;
4. waits until Coolify reports the application running (healthy, for the web app) and reads the running
   image on the server again: it must be the pinned one.

While pinned, a push does not change what runs (the webhook deploys the pinned image again): that is the
point of a rollback. **Roll forward** (``target="forward"``) sets the tag the application had before the
rollback (recorded in the state file ``operations``, key ``rollback``) and deploys: the newest image of
that tag runs again. A dry run shows the exact digest that would run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from helpers.clients.coolify import Client
from helpers.cloud import coolify_apps, images
from helpers.cloud.images import Image
from helpers.core import steps
from helpers.core.poll import PollTimeout, poll
from helpers.core.steps import StepResult
from helpers.ops import common

PREVIOUS, FORWARD = "previous", "forward"
KEY = "rollback"
FORWARD_COMMAND = "runbook run operations --only rollback -p target forward"


class NoEarlierImage(RuntimeError):
    """There is nothing to roll back to; the message says what the server holds and what to do."""


@dataclass(frozen=True)
class Plan:
    role: str
    app_uuid: str
    repository: str
    current: Image
    current_tag: str
    target: Image
    tag: str  # the Coolify image tag to set
    why: str

    @property
    def needed(self) -> bool:
        return not (self.target.same(self.current) and self.current_tag == self.tag)

    def rows(self) -> list[tuple[str, str, str]]:
        return [
            (
                self.role,
                "runs now",
                f"{self.current.reference} (tag {self.current_tag}; {self.current.short})",
            ),
            (
                self.role,
                "would run" if self.needed else "keeps",
                f"{self.target.reference} ({self.target.short})",
            ),
            (self.role, "Coolify tag", self.tag),
        ]


def _expected_status(role: str) -> str:
    return "running:healthy" if role == "web" else "running"


def plan(client: Client, remote: Any, role: str, target: str = PREVIOUS) -> Plan:
    """What a rollback (or roll forward) of ``role`` would run; :class:`NoEarlierImage` when nothing can."""
    uuid = common.application(role)["uuid"]
    app = client.application(uuid)
    repository = str(app.get("docker_registry_image_name") or "")
    current_tag = str(app.get("docker_registry_image_tag") or "latest")
    current = images.running(remote, uuid, repository)
    available = images.on_server(remote, repository)
    record = common.ops_record(KEY).get(role) or {}
    if target == FORWARD:
        if not record:
            return Plan(
                role, uuid, repository, current, current_tag, current, current_tag, "no rollback in effect"
            )
        tag = str(record["from_tag"])
        newest = images.find(available, tag) or next(
            (i for i in available if i.id == record.get("from_image")), None
        )
        if newest is None:
            raise NoEarlierImage(
                f"{role}: the server holds no image tagged {tag!r} any more; roll forward by deploying "
                f"{repository}:{tag} (set the tag in the dashboard, or `PATCH` it, then deploy: task 2.17)"
            )
        return Plan(role, uuid, repository, current, current_tag, newest, tag, f"back to tag {tag}")
    if target == PREVIOUS:
        if record and record.get("to_image") == current.id and current_tag == current.pin:
            return Plan(
                role, uuid, repository, current, current_tag, current, current_tag, "already rolled back"
            )
        earlier = images.previous(current, available)
        if earlier is None:
            held = ", ".join(i.short for i in available) or "none"
            raise NoEarlierImage(
                f"{role}: no earlier image of {repository} on the server to roll back to (it holds: {held}). "
                "Coolify keeps the images of earlier deployments (docker_images_to_keep); a server that only "
                "ever ran one release has nothing to go back to"
            )
        return Plan(
            role, uuid, repository, current, current_tag, earlier, earlier.pin, "the previous release"
        )
    chosen = images.find(available, target)
    if chosen is None:
        raise NoEarlierImage(
            f"{role}: no image {target!r} of {repository} on the server; name one by tag, digest or image id "
            f"(the server holds: {', '.join(i.short for i in available) or 'none'})"
        )
    return Plan(role, uuid, repository, current, current_tag, chosen, chosen.pin, f"image {target}")


def wait_running(
    client: Client, role: str, app_uuid: str, timeout: float = 300.0, interval: float = 3.0
) -> str:
    """Coolify's status of the application once it is running (healthy, for web); raises on time-out."""
    want = _expected_status(role)
    try:
        app = poll(
            lambda: client.application(app_uuid),
            until=lambda a: str(a.get("status", "")).startswith(want),
            timeout=timeout,
            interval=interval,
            what=f"{role} to be {want}",
        )
    except PollTimeout as exc:
        raise TimeoutError(f"{exc}. Next step: `runbook run operations --only logs` shows why") from None
    return str(app.get("status"))


def apply(
    client: Client,
    remote: Any,
    chosen: Plan,
    target: str,
    dry_run: bool = False,
    timeout: float = 600.0,
    interval: float = 3.0,
    progress: Callable[[str], None] = print,
) -> StepResult:
    """Pin ``chosen.tag``, deploy, wait until running, verify the running image; record the way back."""
    step = f"{chosen.role}: {'roll forward' if target == FORWARD else 'rollback'}"
    if not chosen.needed:
        return steps.ok(step, f"runs {chosen.current.reference} ({chosen.why})")
    detail = f"{chosen.target.reference} ({chosen.target.short}) instead of {chosen.current.identity[:19]}…"
    diff = f"- docker_registry_image_tag: {chosen.current_tag}\n+ docker_registry_image_tag: {chosen.tag}"
    if dry_run:
        return steps.changed(step, f"would run {detail}", diff=diff, dry_run=True)
    client.update_application(chosen.app_uuid, {"docker_registry_image_tag": chosen.tag})
    queued = next((d for d in client.deploy([chosen.app_uuid]) if d.get("deployment_uuid")), None)
    if queued is None:
        return steps.failed(step, "the deploy webhook queued nothing")
    deployment = coolify_apps.wait_deployment(
        client, str(queued["deployment_uuid"]), timeout=timeout, interval=interval, progress=progress
    )
    if deployment.get("status") != "finished":
        logs = coolify_apps.deployment_logs(deployment)
        return steps.failed(
            step, f"deployment {deployment.get('deployment_uuid')} {deployment.get('status')}:\n{logs}"
        )
    wait_running(client, chosen.role, chosen.app_uuid, timeout=timeout, interval=interval)
    after = images.running(remote, chosen.app_uuid, chosen.repository)
    if not after.same(chosen.target):
        return steps.failed(
            step, f"deployed, but the container runs {after.reference}, not {chosen.target.reference}"
        )
    _record(chosen, target)
    return steps.changed(step, f"runs {detail}", diff=diff)


def _record(chosen: Plan, target: str) -> None:
    record = common.ops_record(KEY)
    if target == FORWARD:
        record.pop(chosen.role, None)
    else:
        earlier = record.get(chosen.role) or {}
        record[chosen.role] = {
            "from_tag": earlier.get("from_tag") or chosen.current_tag,  # the tag before the first rollback
            "from_image": earlier.get("from_image") or chosen.current.id,
            "to_image": chosen.target.id,
            "to_reference": chosen.target.reference,
            "at": common.now().isoformat(timespec="seconds"),
        }
    common.update_ops(KEY, record or None)


def check(check: Any, client: Client, remote: Any, chosen: Plan) -> Image:
    """The verification, from outside: the running image, Coolify's tag and status."""
    after = images.running(remote, chosen.app_uuid, chosen.repository)
    check(
        f"{chosen.role} runs the chosen image",
        after.same(chosen.target),
        f"{after.reference} ({after.short})",
        hint=f"wanted {chosen.target.reference}; read the deployment's log (dashboard → Deployments) and "
        "run the task again",
    )
    app = client.application(chosen.app_uuid)
    check(
        f"{chosen.role}: Coolify deploys tag {chosen.tag}",
        app.get("docker_registry_image_tag") == chosen.tag,
        str(app.get("docker_registry_image_tag")),
        hint="the tag was changed meanwhile (dashboard or API); run the task again",
    )
    want = _expected_status(chosen.role)
    check(
        f"{chosen.role} is {want}",
        str(app.get("status", "")).startswith(want),
        str(app.get("status")),
        hint="`runbook run operations --only logs` shows why it does not start",
    )
    return after
