"""The contract check itself (helpers/rehearse/contracts.py, outside.py): it can fail, and says where.

Every test that talks to a stand-in is validated by tests/contract_checks.py; these tests prove that the
check catches what it must (a missing field, an undocumented status, an internal key, an invalid request
the stand-in accepted), that the allow-list holds only well-formed entries about real operations, and that
the outside audit (mutations, droplet state) tells a change from none.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import httpx
import pytest
from testsupport import unavailable

from helpers.rehearse import contracts, outside
from helpers.rehearse.base import LoggedRequest
from helpers.rehearse.coolify import CoolifyStandIn
from helpers.rehearse.digitalocean import DigitalOceanStandIn
from helpers.rehearse.github import GitHubStandIn

TOKEN = "contract-token"
DROPLET = {"name": "c1", "region": "fra1", "size": "s-2vcpu-4gb", "image": "debian-12-x64"}


@pytest.fixture
def refs() -> Path:
    """The shared descriptions: skip with the reason without them, fail when RUNBOOK_REQUIRE_REFS=1."""
    problem = contracts.refs_problem()
    if problem is not None:
        unavailable(problem, "refs")
    return contracts.refs_dir()


def do_client() -> tuple[DigitalOceanStandIn, httpx.Client]:
    fake = DigitalOceanStandIn([TOKEN], active_after_polls=0)
    client = httpx.Client(
        transport=fake.transport(), base_url="http://do.test", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    return fake, client


# --------------------------------------------------------------------------- the check can fail


def test_a_valid_exchange_passes_and_a_broken_answer_fails_naming_operation_and_field(refs: Path) -> None:
    fake, client = do_client()
    assert client.post("/v2/droplets", json=DROPLET).status_code == 202
    assert client.get("/v2/account").status_code == 200
    good = contracts.check(fake.log)
    assert good.failures() == [] and good.requests["digitalocean"].validated == 2

    account = copy.deepcopy(fake.log[-1])
    del account.response_body["account"]["email"]
    account.response_body["account"]["droplet_limit"] = "ten"
    [missing, mistyped] = sorted(contracts.check([account], allowlist=[]).failures(), key=lambda v: v.field)
    assert (missing.operation, missing.direction, missing.field) == (
        "GET /v2/account",
        "response",
        "body.account.droplet_limit",
    )
    assert mistyped.field == "body.account.email" and "required" in mistyped.message


def test_an_undocumented_status_and_an_unknown_operation_fail(refs: Path) -> None:
    fake, client = do_client()
    client.get("/v2/account")
    teapot = dataclasses.replace(fake.log[-1], status=418)
    unknown = dataclasses.replace(fake.log[-1], path="/v2/nothing-here", route="")
    report = contracts.check([teapot, unknown], allowlist=[])
    fields = {(v.operation, v.field) for v in report.failures()}
    # DigitalOcean documents a default error answer for every operation: 418 must carry its error body
    assert ("GET /v2/account", "body.id") in fields
    assert ("GET /v2/nothing-here", "operation") in fields


def test_an_internal_key_in_any_answer_fails() -> None:
    assert contracts.internal_keys({"droplet": {"image": {"_kind": "x"}}, "list": [{"_a": 1}]}) == [
        "body.droplet.image._kind",
        "body.list[0]._a",
    ]
    assert contracts.internal_keys({"droplet": {"image": {"slug": "x"}}}) == []


def test_no_stand_in_answers_an_internal_key(refs: Path, tmp_path: Path) -> None:
    """One pass over each stand-in's main resources; every answer is scanned (and the fixture of
    tests/contract_checks.py scans every answer of every other test)."""
    do, client = do_client()
    created = client.post("/v2/droplets", json=DROPLET).json()["droplet"]
    client.get(f"/v2/droplets/{created['id']}")
    client.get("/v2/images", params={"type": "distribution"})
    client.post("/v2/tags", json={"name": "web"})
    coolify = CoolifyStandIn({TOKEN: None})
    c = httpx.Client(
        transport=coolify.transport(),
        base_url="http://c.test/api/v1",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    project = c.post("/projects", json={"name": "p"}).json()["uuid"]
    c.get(f"/projects/{project}/production")
    github = GitHubStandIn([TOKEN], repositories=["team/app"], emulate_deploy=False, run_after_polls=0)
    github.set_workflows(
        "team/app", {".github/workflows/ci.yml": "name: CI\non: {push: {branches: [main]}}\n"}
    )
    github.push("team/app", "main")
    g = httpx.Client(
        transport=github.transport(), base_url="http://gh.test", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    g.get("/repos/team/app/actions/runs")
    g.get("/repos/team/app")
    entries = [*do.log, *coolify.log, *github.log]
    assert len(entries) >= 8
    assert [(e.standin, e.path, k) for e in entries for k in contracts.internal_keys(e.response_body)] == []
    report = contracts.check(entries)
    assert report.failures() == []
    run = [o for o in report.outcomes if o.entry.path == "/repos/team/app/actions/runs"]
    assert run and run[0].allowed == []  # complete workflow runs: nothing of them needs the allow-list


def test_an_invalid_request_is_rejected_by_the_stand_in_or_fails_when_accepted(refs: Path) -> None:
    fake, client = do_client()
    client.post("/v2/droplets", json={**DROPLET, "backups": "yes"})  # refused: 422
    relaxed = contracts.check(fake.log, strict_requests=False, allowlist=[])
    assert relaxed.failures() == [] and relaxed.requests["digitalocean"].rejected == 1
    strict = contracts.check(fake.log, strict_requests=True, allowlist=[])
    assert [v.field for v in strict.failures()] == ["body.backups"]
    accepted = dataclasses.replace(fake.log[-1], status=202)  # a stand-in that let it through
    assert [v.field for v in contracts.check([accepted], strict_requests=False, allowlist=[]).failures()][
        :1
    ] == ["body.backups"]


def test_post_tags_answers_its_documented_400_for_a_body_that_is_not_json(refs: Path) -> None:
    fake, client = do_client()
    answer = client.post("/v2/tags", content=b"{name: web", headers={"Content-Type": "application/json"})
    assert answer.status_code == 400
    assert set(answer.json()) == {"error", "messages", "root_causes"}
    report = contracts.check(fake.log, strict_requests=False, allowlist=[])
    assert report.failures() == [] and report.responses["digitalocean"].failed == 0


# --------------------------------------------------------------------------- the allow-list


def test_every_allowlist_entry_has_a_reason_and_evidence_and_names_a_real_operation(refs: Path) -> None:
    entries = contracts.load_allowlist()
    assert entries
    for entry in entries:
        assert len(entry.reason) > 40 and len(entry.evidence) > 30, entry
        spec = contracts.description(entry.vendor, str(refs))
        for operation in entry.operations:
            if operation == "*" or "operation" in entry.fields:
                continue  # a whole-API status, or an operation the description lacks (the defect itself)
            method, path = operation.split(" ", 1)
            assert method.lower() in spec.document["paths"].get(path, {}), (entry.vendor, operation)


def test_an_allowlist_entry_without_evidence_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "allow.yaml"
    bad.write_text(
        "allowed:\n  - {vendor: coolify, operation: GET /x, direction: response, field: body, reason: r}\n"
    )
    with pytest.raises(ValueError, match="lacks evidence"):
        contracts.load_allowlist(bad)


def test_missing_descriptions_name_the_variable(tmp_path: Path) -> None:
    problem = contracts.refs_problem(environ={contracts.REFS_ENV: str(tmp_path)})
    assert problem and contracts.REFS_ENV in problem and str(tmp_path) in problem
    entry = LoggedRequest(0.0, "GET", "/v2/account", {}, None, 200, "/v2/account", standin="digitalocean")
    with pytest.raises(FileNotFoundError, match=contracts.REFS_ENV):
        contracts.check([entry], folder=tmp_path, allowlist=[])
    assert contracts.refs_required({contracts.REQUIRE_ENV: "1"}) and not contracts.refs_required({})


# --------------------------------------------------------------------------- the outside audit


def entry(standin: str, method: str, route: str) -> LoggedRequest:
    return LoggedRequest(0.0, method, route, {}, None, 200, route, standin=standin)


def test_mutations_are_read_from_methods_and_coolifys_acting_gets() -> None:
    assert outside.is_mutation(entry("digitalocean", "POST", "/v2/droplets"))
    assert outside.is_mutation(entry("github", "PUT", "/repos/{owner}/{repo}/actions/secrets/{secret_name}"))
    assert outside.is_mutation(entry("coolify", "GET", "/api/v1/deploy"))
    assert not outside.is_mutation(entry("coolify", "GET", "/api/v1/deployments/{uuid}"))
    assert not outside.is_mutation(entry("digitalocean", "GET", "/v2/droplets"))


def test_state_changes_show_what_differs_and_nothing_when_equal() -> None:
    before = {"packages": ["ufw 0.36 ii"], "etc": ["/etc/ssh/sshd_config f 644 root root "]}
    assert outside.state_changes(before, copy.deepcopy(before)) == []
    after = {**before, "packages": ["ufw 0.36 ii", "nginx 1.22 ii"]}
    assert outside.state_changes(before, after) == ["packages: + nginx 1.22 ii"]
    assert outside.state_digest(before) != outside.state_digest(after)


class FakeRehearsal:
    """What the rehearsal's audit asks of a :class:`~helpers.rehearse.session.Rehearsal`."""

    def __init__(self, url: str):
        self.url = url

    def standin_urls(self) -> dict[str, str]:
        return {"digitalocean": self.url}

    def droplet_container(self) -> None:
        return None


def test_the_rehearsals_audit_fails_a_repeated_run_that_sends_a_change(refs: Path) -> None:
    from helpers.rehearse.__main__ import Audit

    with DigitalOceanStandIn([TOKEN], active_after_polls=0) as fake:
        api = httpx.Client(base_url=fake.url, headers={"Authorization": f"Bearer {TOKEN}"})
        audit = Audit()
        api.post("/v2/tags", json={"name": "web"})
        assert audit.after_run(FakeRehearsal(fake.url), 1) == []  # a first run may create things
        api.get("/v2/tags/web")
        assert audit.after_run(FakeRehearsal(fake.url), 2) == []  # reads only
        api.post("/v2/tags", json={"name": "web"})
        problems = audit.after_run(FakeRehearsal(fake.url), 3)
        assert problems == ["changed a vendor's state on a repeated run: digitalocean POST /v2/tags -> 201"]
        assert audit.mutating == {1: 1, 2: 0, 3: 1}
        api.post(
            "/v2/droplets", json={**DROPLET, "backups": "yes"}
        )  # invalid, refused: strict in a rehearsal
        problems = audit.after_run(FakeRehearsal(fake.url), 4)
        assert any(
            p.startswith("contract: digitalocean POST /v2/droplets request body.backups") for p in problems
        )
        assert "digitalocean: requests 4 validated" in "\n".join(audit.summary(None))
