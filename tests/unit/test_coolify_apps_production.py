"""Task 2.18's deployment checks against the Coolify stand-in (simulated runtime): a deployment a push
started is waited for; a failed or missing one fails the check, with the dashboard as next step."""

from __future__ import annotations

from typing import Any

import pytest

from helpers.cloud import production_checks as production
from helpers.core.checks import VerificationFailed, verify
from tests.unit.test_coolify_apps import apps, isolated, world  # noqa: F401  (the fixtures)


def test_settle_waits_for_a_running_deployment_then_checks_pass(world: dict[str, Any]) -> None:  # noqa: F811
    made = apps(world)
    client, fake = world["client"], world["fake"]
    recorded = {role: {"uuid": made[role][1]["uuid"]} for role in ("web", "worker")}
    never = production.settle_deployments(client, recorded, interval=0)
    assert never == {"web": None, "worker": None}
    with pytest.raises(VerificationFailed, match="never deployed"), verify("deployments") as check:
        production.check_deployments(check, never)

    queued = client.deploy([recorded["web"]["uuid"], recorded["worker"]["uuid"]])  # as the webhook calls
    dep_uuid = queued[0]["deployment_uuid"]
    assert fake.deployments[dep_uuid]["status"] == "queued"
    latest = production.settle_deployments(client, recorded, interval=0)
    assert [(d or {}).get("status") for d in latest.values()] == ["finished", "finished"]
    assert fake.deployments[dep_uuid]["polls"] >= 2  # it was polled until finished
    with verify("deployments") as check:
        production.check_deployments(check, latest)

    fake.deployments[dep_uuid]["status"] = "failed"
    failed = production.settle_deployments(client, recorded, interval=0)
    with pytest.raises(VerificationFailed, match="latest web deployment"), verify("deployments") as check:
        production.check_deployments(check, failed)
