"""What every operation starts from: phase 2's records, the API clients, the server's SSH session.

Phase 2 records non-secret facts in the state file ``phase2`` (the droplet, Coolify's project, databases and
applications); the operations read them here, with the task that records each named in the error when it is
missing. The operations keep their own facts (a rollback's way back, the last restore drill) in the state
file ``operations``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from helpers.clients import coolify, digitalocean
from helpers.cloud import server, ssh
from helpers.core import state
from helpers.core.times import now, parse_time  # noqa: F401  (the operations' clock and times)

PHASE2 = "phase2"
STATE = "operations"
ROLES = ("web", "worker")
KINDS = ("postgresql", "redis")
RECORDED_BY = {
    "droplet": "2.2",
    "coolify": "2.5",
    "coolify_project": "2.7",
    "coolify_databases": "2.8",
    "applications": "2.14 and 2.15",
}


def recorded(key: str) -> dict[str, Any]:
    """Phase 2's record ``key`` (a dict), or a LookupError that names the task that records it."""
    value = state.get(PHASE2, key)
    if not value:
        task = RECORDED_BY.get(key, "of phase 2")
        raise LookupError(
            f"{key!r} is not recorded in {state.path(PHASE2)}: run task {task} first (it records it)"
        )
    return dict(value)


def database(kind: str) -> dict[str, Any]:
    """The production database of ``kind`` (postgresql, redis) as task 2.8 recorded it (uuid, name...)."""
    found = recorded("coolify_databases").get(kind)
    if not found or not found.get("uuid"):
        raise LookupError(f"no {kind} database recorded in {state.path(PHASE2)}: run task 2.8 first")
    return dict(found)


def application(role: str) -> dict[str, Any]:
    """The production application ``role`` (web, worker) as tasks 2.14/2.15 recorded it."""
    found = recorded("applications").get(role)
    if not found or not found.get("uuid"):
        task = "2.14" if role == "web" else "2.15"
        raise LookupError(f"no {role} application recorded in {state.path(PHASE2)}: run task {task} first")
    return dict(found)


def coolify_client(api_url: str = "") -> coolify.Client:
    return coolify.connect(api_url or None)


def digitalocean_client() -> digitalocean.Client:
    return digitalocean.connect()


def connect_server(admin_user: str) -> server.Remote:
    """An SSH session on the droplet (as ``admin_user`` with sudo, as tasks 2.4 to 2.18 use it)."""
    target = ssh.droplet_target()
    return server.connect_admin(target.host, target.port, admin_user, target.key_path, target.ssh_dir)


def age_text(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def ops_record(key: str) -> dict[str, Any]:
    return dict(state.get(STATE, key) or {})


def update_ops(key: str, value: Mapping[str, Any] | None) -> None:
    if value is None:
        state.forget(STATE, key)
    else:
        state.update(STATE, **{key: dict(value)})
