"""Teardown: remove production in order, and stop paying for it; locally, ``docker compose down``.

What the runbook made is found by its records (the state file ``phase2``) and by its names and tag, never by
guessing: the Coolify applications, databases and project (through Coolify's API, while it still runs on the
droplet), then DigitalOcean's uptime check (named ``<droplet>: ...``) and alert policies (watching the
droplet), the droplet (by its tag), its firewall, the tag, and, only when asked, the SSH key registered by
task 2.2 and the GitHub secrets of the deploy workflow (task 2.13).

It is a **dry run by default**: the inventory lists every resource and what it costs a month (the
droplet's size price, plus 20 % with DigitalOcean backups; the API reports no charge for the others). It
deletes only with ``dry_run=False`` **and** ``confirm`` set to the droplet's name, typed exactly. The
verification reads the APIs again: nothing left with the runbook's tag or names. The records of what was
removed are forgotten (state file, ``known_hosts``), so a second run finds nothing to do.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from helpers.clients.coolify import Client
from helpers.clients.digitalocean import Client as DOClient
from helpers.clients.errors import ApiError, NotFound
from helpers.cloud import ssh
from helpers.core import state, steps
from helpers.core.poll import PollTimeout, poll
from helpers.core.steps import StepResult
from helpers.ops import common

BACKUPS_SURCHARGE = 0.20  # DigitalOcean's droplet backups: 20 % of the droplet's price
FORGOTTEN = (
    "droplet", "coolify", "coolify_api", "coolify_project", "coolify_databases", "applications",
    "coolify_envs", "coolify_webhooks", "coolify_deployments",
)  # fmt: skip
OPS_FORGOTTEN = ("rollback", "restore_drill", "backup_s3")


class TeardownRefused(RuntimeError):
    """The teardown was asked for without the droplet's name typed exactly."""


@dataclass
class Resource:
    order: int
    vendor: str  # Coolify, DigitalOcean, GitHub
    kind: str
    name: str
    id: str
    monthly: float | None = 0.0  # USD; None: unknown
    optional: bool = False  # only with remove_ssh_key / remove_github_secrets
    note: str = ""
    gone_read: bool = False  # read back as gone from its API right after its removal

    def cost(self) -> str:
        if self.monthly is None:
            return "unknown"
        return f"${self.monthly:,.2f}" if self.monthly else "no charge"


@dataclass
class Inventory:
    droplet_name: str
    tag: str
    resources: list[Resource] = field(default_factory=list)
    unreachable: list[str] = field(default_factory=list)  # what could not be asked (Coolify down...)

    @property
    def monthly(self) -> float:
        return sum(r.monthly or 0.0 for r in self.resources)

    def rows(self, include_optional: bool) -> list[tuple[str, str, str, str, str, str]]:
        rows = []
        for r in sorted(self.resources, key=lambda r: r.order):
            will = "remove" if include_optional or not r.optional else "keep (optional)"
            rows.append(
                (
                    str(r.order),
                    r.vendor,
                    r.kind,
                    f"{r.name} ({r.id})",
                    r.cost(),
                    will + (f"; {r.note}" if r.note else ""),
                )
            )
        return rows


def _droplet_cost(droplet: dict[str, Any]) -> float | None:
    size = droplet.get("size") or {}
    price = size.get("price_monthly")
    if price is None:
        return None
    return float(price) * (1 + BACKUPS_SURCHARGE if "backups" in (droplet.get("features") or []) else 1)


def coolify_resources(client: Client | None, inv: Inventory) -> None:
    """The applications, databases and project the runbook recorded, as Coolify still knows them."""
    if client is None:
        inv.unreachable.append("Coolify (no API client)")
        return
    apps = state.get(common.PHASE2, "applications") or {}
    dbs = state.get(common.PHASE2, "coolify_databases") or {}
    project = state.get(common.PHASE2, "coolify_project") or {}
    try:
        for role in common.ROLES:
            uuid = (apps.get(role) or {}).get("uuid")
            if uuid and _exists(lambda u=uuid: client.application(u)):
                inv.resources.append(
                    Resource(
                        1,
                        "Coolify",
                        f"{role} application",
                        apps[role].get("name", role),
                        uuid,
                        note="runs on the droplet",
                    )
                )
        for kind in common.KINDS:
            uuid = (dbs.get(kind) or {}).get("uuid")
            if uuid and _exists(lambda u=uuid: client.database(u)):
                inv.resources.append(
                    Resource(
                        2,
                        "Coolify",
                        f"{kind} database",
                        dbs[kind].get("name", kind),
                        uuid,
                        note="its data and backups go with it",
                    )
                )
        if project.get("uuid") and _exists(lambda: client.project(project["uuid"])):
            inv.resources.append(Resource(3, "Coolify", "project", project.get("name", ""), project["uuid"]))
    except ApiError as exc:
        inv.unreachable.append(f"Coolify ({exc})")


def _exists(read: Callable[[], Any]) -> bool:
    try:
        read()
    except NotFound:
        return False
    return True


def digitalocean_resources(
    do: DOClient, inv: Inventory, ssh_key_id: Any = None, firewall_id: str = ""
) -> None:
    droplets = {d["id"]: d for d in do.droplets(tag_name=inv.tag)} if inv.tag else {}
    droplets.update({d["id"]: d for d in do.droplets(name=inv.droplet_name)})
    ids = {str(i) for i in droplets}
    for check in do.uptime_checks():
        if str(check.get("name", "")).startswith(f"{inv.droplet_name}:"):
            inv.resources.append(
                Resource(4, "DigitalOcean", "uptime check (and its alerts)", check["name"], check["id"])
            )
    for policy in do.alert_policies():
        if ids & set(policy.get("entities") or []) or str(policy.get("description", "")).startswith(
            f"{inv.droplet_name}:"
        ):
            inv.resources.append(
                Resource(5, "DigitalOcean", "alert policy", policy.get("description", ""), policy["uuid"])
            )
    for droplet in droplets.values():
        inv.resources.append(
            Resource(
                6,
                "DigitalOcean",
                "droplet",
                droplet["name"],
                str(droplet["id"]),
                _droplet_cost(droplet),
                note=droplet.get("size_slug", ""),
            )
        )
    for fw in do.firewalls():
        if (
            fw["id"] == firewall_id
            or (inv.tag and inv.tag in (fw.get("tags") or []))
            or ids & {str(i) for i in fw.get("droplet_ids") or []}
        ):
            inv.resources.append(Resource(7, "DigitalOcean", "firewall", fw["name"], fw["id"]))
    if inv.tag and do.tag(inv.tag) is not None:
        inv.resources.append(Resource(8, "DigitalOcean", "tag", inv.tag, inv.tag))
    if ssh_key_id:
        key = do.ssh_key(ssh_key_id)
        if key is not None:
            inv.resources.append(
                Resource(9, "DigitalOcean", "SSH key", key.get("name", ""), str(key["id"]), optional=True)
            )


def github_resources(repo: Any, inv: Inventory, names: Sequence[str]) -> None:
    present = {s.name for s in repo.get_secrets()}
    for name in names:
        if name in present:
            inv.resources.append(
                Resource(10, "GitHub", "Actions secret", name, f"{repo.full_name}", optional=True)
            )


def inventory(
    coolify_client: Client | None,
    do: DOClient,
    droplet_name: str,
    tag: str,
    repo: Any = None,
    github_secrets: Sequence[str] = (),
) -> Inventory:
    record = state.get(common.PHASE2, "droplet") or {}
    inv = Inventory(droplet_name, tag)
    coolify_resources(coolify_client, inv)
    digitalocean_resources(do, inv, record.get("ssh_key_id"), str(record.get("firewall_id") or ""))
    if repo is not None:
        github_resources(repo, inv, github_secrets)
    inv.resources.sort(key=lambda r: r.order)
    return inv


def require_confirmation(droplet_name: str, confirm: str, dry_run: bool) -> None:
    if dry_run:
        return
    if confirm != droplet_name:
        raise TeardownRefused(
            f"teardown refused: confirm is {confirm!r}, not the droplet's name. Type it exactly, "
            f"`-p confirm {droplet_name}` (and dry_run False), to delete production for good"
        )


def remove(
    inv: Inventory,
    coolify_client: Client | None,
    do: DOClient,
    confirm: str,
    dry_run: bool = True,
    remove_ssh_key: bool = False,
    remove_github_secrets: bool = False,
    repo: Any = None,
    timeout: float = 300.0,
    interval: float = 3.0,
) -> tuple[list[StepResult], list[Resource]]:
    """Delete the inventory in order (see the module docstring): (one step per resource, what was removed)."""
    require_confirmation(inv.droplet_name, confirm, dry_run)
    results, removed = [], []
    for r in sorted(inv.resources, key=lambda r: r.order):
        step = f"{r.vendor} {r.kind} {r.name}"
        wanted = (r.kind == "SSH key" and remove_ssh_key) or (r.vendor == "GitHub" and remove_github_secrets)
        if r.optional and not wanted:
            results.append(steps.skipped(step, "kept (optional: remove_ssh_key / remove_github_secrets)"))
            continue
        if dry_run:
            results.append(steps.changed(step, f"would remove it ({r.cost()} a month)", dry_run=True))
            continue
        _delete(r, coolify_client, do, repo, timeout, interval)
        removed.append(r)
        results.append(steps.changed(step, f"removed ({r.cost()} a month less)"))
    if not inv.resources:
        results.append(steps.ok("production resources", "nothing left to remove"))
    return results, removed


def github_repo(repository: str) -> Any:
    """The app's repository on GitHub (its deploy secrets), with the runbook's GitHub token."""
    from helpers.clients import github

    return github.get_repo(github.connect(), repository)


def deploy_secret_names() -> tuple[str, ...]:
    """The GitHub secrets the deploy workflow of task 2.9 reads (task 2.13 sets them)."""
    from helpers.app.workflow import DEPLOY_SECRETS

    return DEPLOY_SECRETS


def _delete(
    r: Resource, coolify_client: Client | None, do: DOClient, repo: Any, timeout: float, interval: float
) -> None:
    if r.vendor == "Coolify":
        if coolify_client is None:
            raise RuntimeError(f"{r.kind} {r.name}: Coolify's API is needed to remove it")
        if r.kind.endswith("application"):
            coolify_client.delete_application(r.id)
        elif r.kind.endswith("database"):
            coolify_client.delete_database(r.id)
        else:
            coolify_client.delete_project(r.id)
        _gone(_reader(coolify_client, r), timeout, interval, r)
        r.gone_read = True
    elif r.kind.startswith("uptime check"):
        do.delete_uptime_check(r.id)
    elif r.kind == "alert policy":
        do.delete_alert_policy(r.id)
    elif r.kind == "droplet":
        do.delete_droplet(int(r.id))
        try:
            poll(
                lambda: do.droplets(name=r.name),
                until=lambda found: not any(str(d["id"]) == r.id for d in found),
                timeout=timeout,
                interval=interval,
                what=f"droplet {r.name} to be gone",
            )
        except PollTimeout as exc:
            raise TimeoutError(
                f"{exc}. Next step: the control panel shows it; run the teardown again"
            ) from None
    elif r.kind == "firewall":
        do.delete_firewall(r.id)
    elif r.kind == "tag":
        do.delete_tag(r.id)
    elif r.kind == "SSH key":
        do.delete_ssh_key(r.id)
    elif r.vendor == "GitHub":
        from helpers.clients import github

        with github.calling(f"deleting the secret {r.name}", repo.full_name):
            repo.delete_secret(r.name)


def _gone(read: Callable[[], Any], timeout: float, interval: float, r: Resource) -> None:
    try:
        poll(
            lambda: not _exists(read),
            timeout=timeout,
            interval=interval,
            what=f"{r.kind} {r.name} to be gone",
        )
    except PollTimeout as exc:
        raise TimeoutError(
            f"{exc}. Next step: the Coolify dashboard shows it; run the teardown again"
        ) from None


def forget(host: str = "", port: int = 22) -> list[StepResult]:
    """Drop the records of what is gone (state files, the droplet's host key), so a new run starts clean."""
    before = state.load(common.PHASE2)
    gone = [k for k in FORGOTTEN if k in before]
    state.forget(common.PHASE2, *FORGOTTEN)
    state.forget(common.STATE, *OPS_FORGOTTEN)
    results = [
        steps.changed("records forgotten", ", ".join(gone)) if gone else steps.ok("records", "none left")
    ]
    if host:
        results.append(ssh.forget_host(host, port))
    return results


def check_nothing_left(
    check: Any, do: DOClient, inv: Inventory, coolify_client: Client | None, removed: Sequence[Resource]
) -> None:
    """Read DigitalOcean again (and Coolify, while it answers): nothing with the runbook's tag or names."""
    after = Inventory(inv.droplet_name, inv.tag)
    digitalocean_resources(do, after)
    billable = [r for r in after.resources if r.kind in ("droplet",) or r.monthly]
    check(
        f"no droplet left with tag {inv.tag!r} or name {inv.droplet_name!r}",
        not billable,
        ", ".join(f"{r.name} ({r.cost()})" for r in billable) or "none",
        hint="delete it in the control panel (Droplets), or run the teardown again",
    )
    left = [r for r in after.resources if r.kind != "droplet" and not r.optional]
    check(
        "no firewall, uptime check, alert policy or tag of the runbook left",
        not left,
        ", ".join(f"{r.kind} {r.name}" for r in left) or "none",
        hint="run the teardown again; the control panel → Networking / Monitoring shows them",
    )
    droplet_gone = any(r.kind == "droplet" for r in removed)
    for r in removed:
        if r.vendor != "Coolify" or coolify_client is None:
            continue
        if droplet_gone:  # Coolify left with the droplet: its API was read right after each removal
            check(f"Coolify {r.kind} {r.name} removed", r.gone_read, f"{r.id}: 404 before the droplet went")
            continue
        check(f"Coolify {r.kind} {r.name} removed", not _exists(_reader(coolify_client, r)), r.id,
              hint="delete it in the Coolify dashboard")  # fmt: skip


def _reader(client: Client, r: Resource) -> Callable[[], Any]:
    if r.kind == "project":
        return lambda: client.project(r.id)
    if r.kind.endswith("application"):
        return lambda: client.application(r.id)
    return lambda: client.database(r.id)
