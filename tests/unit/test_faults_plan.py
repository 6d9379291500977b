"""The rehearsal's fault mode: its budget, its figures, and the count from outside that finds duplicates."""

from __future__ import annotations

import time

import pytest

from helpers.clients import digitalocean as doapi
from helpers.clients import errors
from helpers.cloud import droplet as do
from helpers.rehearse import faults
from helpers.rehearse.base import LoggedRequest
from helpers.rehearse.digitalocean import DigitalOceanStandIn

TOKEN = "dop_v1_" + "6b" * 32
BASE = "https://api.digitalocean.com"
BODY = {"name": "rb-faults", "region": "fra1", "size": "s-2vcpu-4gb", "image": "ubuntu-24-04-x64"}


class BlindRetries(doapi.Client):
    """A client that repeats a POST after a lost answer: what the runbook's clients never do."""

    retry_methods = frozenset({*doapi.Client.retry_methods, "POST"})


def count(fake: DigitalOceanStandIn) -> dict:
    return faults.inventory({"digitalocean": BASE}, {"DIGITALOCEAN_TOKEN": TOKEN}, transport=fake.transport())


def test_a_create_whose_answer_is_lost_leaves_one_droplet_and_the_count_shows_a_blind_retry() -> None:
    fake = DigitalOceanStandIn([TOKEN], active_after_polls=0)
    fake.inject("/v2/droplets", 0, method="POST", when="after", action="drop", kind="lost_response")
    client = doapi.Client(TOKEN, BASE, transport=fake.transport(), sleep=lambda s: None)
    made = do.create_droplet_once(
        client, BODY, lambda: client.droplets(name=BODY["name"]), sleep=lambda s: None, clock=time.monotonic
    )
    assert made["name"] == BODY["name"]
    found = count(fake)
    assert dict(found["droplet"]) == {"rb-faults": 1} and faults.duplicates(found) == []
    # the same lost answer, and a client that repeats the POST: two droplets, and the count says so
    blind = DigitalOceanStandIn([TOKEN], active_after_polls=0)
    blind.inject("/v2/droplets", 0, method="POST", when="after", action="drop", kind="lost_response")
    BlindRetries(TOKEN, BASE, transport=blind.transport(), sleep=lambda s: None).create_droplet(BODY)
    doubled = count(blind)
    assert dict(doubled["droplet"]) == {"rb-faults": 2}
    assert faults.duplicates(doubled) == ["droplet 'rb-faults' x2"]
    # a POST the runbook's client sent once and lost: it says so, and does not send it again
    lost = DigitalOceanStandIn([TOKEN], active_after_polls=0)
    lost.inject("/v2/droplets", 0, method="POST", when="after", action="drop", kind="lost_response")
    with pytest.raises(errors.Unreachable, match="may have been processed: look before trying again"):
        doapi.Client(TOKEN, BASE, transport=lost.transport(), sleep=lambda s: None).create_droplet(BODY)
    assert len(lost.requests("POST", "/v2/droplets")) == 1


def test_duplicates_of_a_single_kind_under_other_names() -> None:
    import collections

    found = {
        "firewall": collections.Counter({"a": 1, "b": 1}),
        "database": collections.Counter({"x": 1, "y": 1}),
    }
    assert faults.duplicates(found) == ["firewall: 2 exist (a, b), one expected"]


def entry(
    method: str, path: str, kind: str = "", dropped: bool = False, standin: str = "coolify"
) -> LoggedRequest:
    return LoggedRequest(
        0.0, method, path, {}, None, 200, path, bool(kind), standin=standin, fault_kind=kind, dropped=dropped
    )


def test_figures_count_faults_by_kind_retries_and_lost_answers() -> None:
    log = [
        entry("GET", "/api/v1/projects", "unavailable"),
        entry("GET", "/v2/account", standin="digitalocean"),  # another stand-in between: still a retry
        entry("GET", "/api/v1/projects"),
        entry("POST", "/api/v1/projects", "lost_response", dropped=True),
        entry("GET", "/api/v1/projects"),  # the step looked instead of repeating the POST
        entry("GET", "/api/v1/servers", "slow"),
        entry("GET", "/api/v1/servers"),  # a slow answer is not a failure: no retry counted
        entry("PATCH", "/api/v1/applications/x/envs/bulk", "server_error"),  # last: nothing followed
    ]
    figures = faults.figures(log, ssh_drops=1)
    assert figures.injected == {
        "unavailable": 1,
        "lost_response": 1,
        "slow": 1,
        "server_error": 1,
        "ssh_drop": 1,
    }
    assert figures.retries == 1 and figures.total == 5
    assert figures.lost == ["coolify POST /api/v1/projects -> 200"]
    assert "503 x1" in faults.describe_kinds(figures.injected)


def test_the_plan_gives_a_restarted_standin_only_the_rest_of_its_budget() -> None:
    plan = faults.Plan(7)
    assert (
        plan.budget() == sum(sum(p.values()) for p in (*faults.WRITES.values(), *faults.READS.values())) + 1
    )
    fresh = plan.chaos("coolify")
    assert fresh["seed"] == 7 and fresh["writes"] == faults.WRITES["coolify"]
    rest = plan.chaos("coolify", {"writes": {"lost_response": 2}, "reads": {"slow": 1}})
    assert "lost_response" not in rest["writes"] and "slow" not in rest["reads"]
    assert rest["writes"]["rate_limited"] == faults.WRITES["coolify"]["rate_limited"]
