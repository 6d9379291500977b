"""Tasks 2.1 and 2.2 against the stand-in: idempotent, dry-run safe, never a duplicate droplet."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest

from helpers.clients import digitalocean as doapi
from helpers.clients import errors
from helpers.cloud import droplet as do
from helpers.core import state, steps
from helpers.core.checks import Checklist
from helpers.core.dryrun import check_plan
from helpers.rehearse.digitalocean import DigitalOceanStandIn

TOKEN = "dop_v1_" + "5a" * 32
BASE = "https://api.digitalocean.com"
SPEC = do.DropletSpec(
    name="rb-do-coolify", region="fra1", size="s-2vcpu-4gb", image="ubuntu-24-04-x64", tag="rb-do-coolify"
)
FW = do.FirewallSpec("rb-do-coolify-fw", "rb-do-coolify", do.firewall_ports(""))


def no_sleep(_: float) -> None:
    pass


class Clock:
    """A clock that moves only when something sleeps: waits of seconds take none."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def fake() -> DigitalOceanStandIn:
    return DigitalOceanStandIn([TOKEN])


@pytest.fixture
def client(fake: DigitalOceanStandIn) -> doapi.Client:
    return doapi.Client(TOKEN, BASE, transport=fake.transport(), sleep=no_sleep)


@pytest.fixture
def key_path(tmp_path: Path) -> Path:
    return tmp_path / "ssh" / "id_ed25519"


def run_2_2(
    client: doapi.Client,
    key_path: Path,
    spec: do.DropletSpec = SPEC,
    fw_spec: do.FirewallSpec = FW,
    *,
    allow: bool = True,
    dry_run: bool = False,
    progress: list[str] | None = None,
) -> dict[str, Any]:
    """The notebook's sequence of calls (2.02-create-droplet.ipynb)."""
    out = progress if progress is not None else []
    results = [do.ensure_local_keypair(key_path, dry_run=dry_run)]
    key_step, key, fp = do.ensure_ssh_key(client, f"{key_path}.pub", "runbook", dry_run=dry_run)
    results += [key_step, do.ensure_tag(client, spec.tag, dry_run=dry_run)]
    fw_step, fw = do.ensure_firewall(client, fw_spec, dry_run=dry_run)
    clock = Clock()
    droplet_step, droplet = do.ensure_droplet(
        client, spec, fp, allow_create_paid=allow, dry_run=dry_run, sleep=clock.sleep, clock=clock
    )
    results += [fw_step, droplet_step]
    if droplet is not None and not dry_run:
        droplet = do.wait_for_droplet(client, droplet["id"], interval=0, progress=out.append, sleep=no_sleep)
    if fw is not None and not dry_run:
        fw = do.wait_for_firewall(client, fw["id"], interval=0, progress=out.append, sleep=no_sleep)
    return {"results": results, "droplet": droplet, "firewall": fw, "key": key, "fingerprint": fp}


def statuses(run: dict[str, Any]) -> list[str]:
    return [r.status for r in run["results"]]


def test_first_run_creates_everything_and_the_second_changes_nothing(
    fake: DigitalOceanStandIn, client: doapi.Client, key_path: Path
) -> None:
    progress: list[str] = []
    first = run_2_2(client, key_path, progress=progress)
    assert statuses(first) == ["changed"] * 5
    droplet = first["droplet"]
    assert droplet["status"] == "active" and do.public_ipv4(droplet)
    assert first["firewall"]["status"] == "succeeded"
    assert any("status new" in line for line in progress) and any(
        "status active" in line for line in progress
    )
    fake.clear_log()
    second = run_2_2(client, key_path)
    assert statuses(second) == ["ok"] * 5
    assert fake.mutating_requests() == []
    assert second["droplet"]["id"] == droplet["id"]
    assert (len(fake.droplets), len(fake.ssh_keys), len(fake.firewalls)) == (1, 1, 1)
    assert steps.report(second["results"])  # nothing failed


def test_the_droplet_request_carries_the_parameters(
    fake: DigitalOceanStandIn, client: doapi.Client, key_path
) -> None:
    run = run_2_2(client, key_path)
    posted = fake.requests(method="POST", path="/v2/droplets")[0].body
    assert posted == SPEC.request_body(run["fingerprint"])
    assert posted["ssh_keys"] == [run["fingerprint"]]
    assert (posted["monitoring"], posted["backups"], posted["tags"]) == (True, False, ["rb-do-coolify"])


def test_dry_run_sends_no_mutating_request_and_shows_the_exact_request(
    fake: DigitalOceanStandIn, client: doapi.Client, key_path: Path
) -> None:
    do.ensure_local_keypair(key_path)
    fp = do.fingerprint(Path(f"{key_path}.pub").read_text())
    run = run_2_2(client, key_path, dry_run=True)
    assert fake.mutating_requests() == []
    assert fake.requests()  # it did look
    assert statuses(run) == ["ok", "would change", "would change", "would change", "would change"]
    droplet_step = run["results"][-1]
    method_line, body = droplet_step.diff.split("\n", 1)
    assert method_line == f"POST {BASE}/v2/droplets"
    assert json.loads(body) == SPEC.request_body(fp)
    assert json.loads(run["results"][3].diff.split("\n", 1)[1]) == FW.request_body()
    checks = Checklist("plan")
    check_plan(checks, run["results"])
    assert checks.failures == []


def test_dry_run_on_a_fresh_machine_creates_no_local_file_either(fake, client, key_path: Path) -> None:
    run = run_2_2(client, key_path, dry_run=True)
    assert not key_path.parent.exists()
    assert fake.mutating_requests() == []
    assert run["results"][0].status == "would change"


def test_creating_the_droplet_needs_the_explicit_parameter(fake, client, key_path: Path) -> None:
    choice = do.validate_choice(client, SPEC)
    with pytest.raises(do.PaidResourceRefused, match=r"\$24.00/month.*allow_create_paid=True"):
        do.require_paid_permission([], choice, allow_create_paid=False, dry_run=False)
    assert "would be created" in do.require_paid_permission([], choice, False, dry_run=True)
    assert "nothing will be bought" in do.require_paid_permission([{"id": 1}], choice, False, False)
    step, droplet = do.ensure_droplet(client, SPEC, "aa:bb", allow_create_paid=False)
    assert (step.status, droplet) == ("failed", None)
    assert fake.requests(method="POST", path="/v2/droplets") == []


def test_a_500_after_the_create_does_not_make_a_duplicate(fake, client, key_path: Path) -> None:
    fake.inject("/v2/droplets", 500, method="POST", when="after")  # created, but the answer was lost
    run = run_2_2(client, key_path)
    assert run["results"][-1].status == "changed"
    assert len(fake.droplets) == 1
    assert len(fake.requests(method="POST", path="/v2/droplets")) == 1
    assert run["droplet"]["status"] == "active"


def test_a_500_before_the_create_is_retried_after_looking(fake, client, key_path: Path) -> None:
    fake.inject("/v2/droplets", 500, method="POST")  # nothing was created
    run_2_2(client, key_path)
    assert len(fake.droplets) == 1
    calls = [(e.method, e.status) for e in fake.requests(path="/v2/droplets")]
    first_post, second_post = (i for i, c in enumerate(calls) if c[0] == "POST")
    assert calls[first_post] == ("POST", 500) and calls[second_post] == ("POST", 202)
    assert any(m == "GET" for m, _ in calls[first_post:second_post])  # looked before retrying


def test_a_lost_connection_on_create_does_not_make_a_duplicate(fake, key_path: Path) -> None:
    inner = fake.transport()
    lost = {"done": False}

    def handler(request: httpx.Request) -> httpx.Response:
        response = inner.handle_request(request)
        if request.method == "POST" and request.url.path == "/v2/droplets" and not lost["done"]:
            lost["done"] = True
            raise httpx.ReadTimeout("timed out", request=request)
        return response

    client = doapi.Client(TOKEN, BASE, transport=httpx.MockTransport(handler), sleep=no_sleep)
    run_2_2(client, key_path)
    assert len(fake.droplets) == 1


def test_a_persistent_server_error_creates_nothing_and_says_so(fake, client, key_path: Path) -> None:
    fake.inject("/v2/droplets", 503, method="POST", times=10)
    with pytest.raises(errors.ServerError, match="looks before it creates"):
        run_2_2(client, key_path)
    assert fake.droplets == {}
    assert len(fake.requests(method="POST", path="/v2/droplets")) == 3


def test_two_matching_droplets_stop_the_task(fake, client, key_path: Path) -> None:
    body = {"name": SPEC.name, "size": SPEC.size, "image": SPEC.image, "region": "fra1"}
    client.create_droplet(body)
    client.create_droplet({**body, "name": "renamed", "tags": [SPEC.tag]})
    step, droplet = do.ensure_droplet(client, SPEC, "", allow_create_paid=True)
    assert step.status == "failed" and droplet is None
    assert "2 droplets" in step.detail and "delete the extra" in step.detail
    with pytest.raises(steps.StepFailed):
        steps.report(step)
    assert len(fake.droplets) == 2


def test_an_existing_droplet_is_kept_and_differences_are_noted(client) -> None:
    client.create_droplet({"name": SPEC.name, "size": "s-1vcpu-1gb", "image": SPEC.image, "region": "fra1"})
    step, droplet = do.ensure_droplet(client, SPEC, "", allow_create_paid=True)
    assert step.status == "ok" and droplet is not None
    assert "size is s-1vcpu-1gb (parameter says s-2vcpu-4gb)" in step.detail


def test_the_firewall_follows_the_domain_parameter(fake, client, key_path: Path) -> None:
    run_2_2(client, key_path)
    with_domain = do.FirewallSpec(FW.name, FW.tag, do.firewall_ports("coolify.example.com"))
    step, fw = do.ensure_firewall(client, with_domain)
    assert step.status == "changed"
    assert "-inbound tcp 8000" in step.diff
    assert do.open_inbound_ports(client.firewall(fw["id"])) == ["22", "80", "443"]
    assert do.ensure_firewall(client, with_domain)[0].status == "ok"
    assert len(fake.firewalls) == 1


def test_a_hand_made_rule_is_removed_and_other_attachments_are_kept(fake, client, key_path: Path) -> None:
    run = run_2_2(client, key_path)
    fw = run["firewall"]
    extra = {"protocol": "tcp", "ports": "5432", "sources": {"addresses": ["0.0.0.0/0"]}}
    client.update_firewall(fw["id"], {**FW.request_body(), "inbound_rules": [*fw["inbound_rules"], extra],
                                      "droplet_ids": [run["droplet"]["id"]]})  # fmt: skip
    step, updated = do.ensure_firewall(client, FW)
    assert step.status == "changed" and "-inbound tcp 5432" in step.diff
    assert "5432" not in do.open_inbound_ports(updated)
    assert updated["droplet_ids"] == [run["droplet"]["id"]]


def test_firewall_rule_comparison_ignores_order_and_spelling() -> None:
    want = FW.request_body()
    answered = json.loads(json.dumps(want))
    answered["inbound_rules"].reverse()
    for rule in answered["outbound_rules"]:
        rule["ports"] = "0"  # DigitalOcean answers "0" for "all"
        rule["destinations"]["addresses"].reverse()
    assert do.normalized_rules(answered) == do.normalized_rules(want)
    assert do.open_inbound_ports(want) == ["22", "80", "443", "8000"]


def test_validate_choice_accepts_a_good_choice(client) -> None:
    choice = do.validate_choice(client, SPEC)
    assert choice.problems == []
    assert choice.monthly_price == 24.0
    assert [r[0] for r in choice.rows()] == ["region", "size", "image"]
    assert "2 vCPU, 4 GB RAM, 80 GB disk, $24.00/month" in choice.rows()[1][2]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"region": "mars1"}, "not a DigitalOcean region; available: nyc1, nyc3"),
        ({"region": "nyc2"}, "takes no new droplets"),
        (
            {"size": "s-64vcpu"},
            "not a size DigitalOcean offers; sizes in fra1 big enough for Coolify: s-2vcpu-2gb",
        ),
        ({"size": "s-1vcpu-3gb"}, "no longer available"),
        ({"size": "gd-2vcpu-8gb"}, "not offered in region fra1"),
        ({"image": "windows-11"}, "not listed by GET /v2/images; e.g. ubuntu-24-04-x64"),
    ],
)
def test_validate_choice_says_what_is_offered(client, change: dict[str, str], message: str) -> None:
    spec = do.DropletSpec(**{**SPEC.__dict__, **change})
    with pytest.raises(do.InvalidChoice, match=message.replace("$", r"\$")):
        do.validate_choice(client, spec)


def test_a_size_too_small_for_coolify_is_reported(client) -> None:
    choice = do.validate_choice(client, do.DropletSpec(**{**SPEC.__dict__, "size": "s-1vcpu-1gb"}))
    assert any("below Coolify's minimum" in p for p in choice.problems)


def test_local_key_pair_is_made_once_and_never_overwritten(key_path: Path) -> None:
    assert do.ensure_local_keypair(key_path).status == "changed"
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    before = key_path.read_bytes()
    public = Path(f"{key_path}.pub").read_text()
    assert public.startswith("ssh-ed25519 ")
    assert do.ensure_local_keypair(key_path).status == "ok"
    assert key_path.read_bytes() == before
    Path(f"{key_path}.pub").unlink()
    assert do.ensure_local_keypair(key_path, dry_run=True).status == "would change"
    assert do.ensure_local_keypair(key_path).status == "changed"  # re-derived from the private key
    assert Path(f"{key_path}.pub").read_text().split()[:2] == public.split()[:2]


def test_public_key_mistakes_get_clear_messages(key_path: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="ssh-keygen -t ed25519"):
        do.read_public_key(tmp_path / "missing.pub")
    do.ensure_local_keypair(key_path)
    with pytest.raises(ValueError, match="is a private key"):
        do.read_public_key(key_path)
    junk = tmp_path / "junk.pub"
    junk.write_text("hello world\n")
    with pytest.raises(ValueError, match="not an OpenSSH public key"):
        do.read_public_key(junk)


def test_the_ssh_key_is_found_by_fingerprint_whatever_its_name(fake, client, key_path: Path) -> None:
    do.ensure_local_keypair(key_path)
    public = Path(f"{key_path}.pub").read_text().strip()
    client.create_ssh_key("added by hand", public)
    step, key, fp = do.ensure_ssh_key(client, f"{key_path}.pub", "runbook")
    assert step.status == "ok" and "added by hand" in step.detail
    assert key is not None and key["fingerprint"] == fp
    assert fake.requests(method="GET", path="/v2/account/keys") == []  # no listing: its limit is 10/minute


def test_waiting_times_out_with_a_resumable_message(client) -> None:
    slow = DigitalOceanStandIn([TOKEN], active_after_polls=1000)
    c = doapi.Client(TOKEN, BASE, transport=slow.transport(), sleep=no_sleep)
    droplet = c.create_droplet({"name": "x", "size": "s-1vcpu-1gb", "image": SPEC.image, "region": "fra1"})
    ticks = iter(range(0, 10_000, 10))
    with pytest.raises(TimeoutError, match="resumes waiting"):
        do.wait_for_droplet(c, droplet["id"], timeout=60, interval=1, progress=lambda _: None, sleep=no_sleep,
                            clock=lambda: next(ticks))  # fmt: skip


def test_waiting_notices_a_failed_create() -> None:
    def broken(name: str) -> tuple[str, int]:
        raise RuntimeError("no image")

    fake = DigitalOceanStandIn([TOKEN], droplet_backend=broken, active_after_polls=0)
    c = doapi.Client(TOKEN, BASE, transport=fake.transport(), sleep=no_sleep)
    droplet = c.create_droplet({"name": "x", "size": "s-1vcpu-1gb", "image": SPEC.image, "region": "fra1"})
    fake.wait_for_backends()
    with pytest.raises(errors.ApiError, match="errored"):
        do.wait_for_droplet(c, droplet["id"], interval=0, progress=lambda _: None, sleep=no_sleep)


def test_check_droplet_passes_then_fails_on_drift(fake, client, key_path: Path) -> None:
    run = run_2_2(client, key_path)
    record = do.droplet_record(
        run["droplet"], SPEC, run["key"], run["fingerprint"], run["firewall"], key_path
    )
    good = Checklist("2.2")
    do.check_droplet(good, client, SPEC, FW, recorded=record, key_fingerprint=run["fingerprint"])
    assert good.failures == [] and len(good.results) >= 10
    fw = run["firewall"]
    client.update_firewall(
        fw["id"], {**FW.request_body(), "inbound_rules": FW.request_body()["inbound_rules"][:2]}
    )
    drift = Checklist("2.2")
    do.check_droplet(drift, client, SPEC, FW, recorded=record)
    assert [f.name for f in drift.failures] == ["firewall opens exactly the wanted ports"]
    fake.firewall_after_polls = 100  # DigitalOcean still applying the change
    client.update_firewall(fw["id"], FW.request_body())
    pending = Checklist("2.2")
    do.check_droplet(pending, client, SPEC, FW, recorded=record)
    assert [f.name for f in pending.failures] == ["firewall rules applied (succeeded)"]
    client.delete_droplet(run["droplet"]["id"])
    gone = Checklist("2.2")
    do.check_droplet(gone, client, SPEC, FW, recorded=record)
    assert gone.failures[0].name == "exactly one droplet has this name or tag"


def test_the_record_holds_what_later_tasks_need(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key_path
) -> None:
    monkeypatch.setenv("RUNBOOK_STATE_DIR", str(tmp_path / "state"))

    def backend(name: str, public_keys: list[str]) -> tuple[str, int]:
        return "127.0.0.1", 2222

    fake = DigitalOceanStandIn([TOKEN], droplet_backend=backend)
    client = doapi.Client(TOKEN, BASE, transport=fake.transport(), sleep=no_sleep)
    run = run_2_2(client, key_path)
    record = do.droplet_record(
        run["droplet"], SPEC, run["key"], run["fingerprint"], run["firewall"], key_path
    )
    assert (record["ipv4"], record["ssh_port"]) == ("127.0.0.1", 2222)
    assert record["firewall_ports"] == [22, 80, 443, 8000]
    assert record["ssh_key_path"] == str(key_path)
    state.update("phase2", droplet=record)
    assert state.load("phase2")["droplet"] == record
    assert do.ssh_port({"networks": {}}) == 22  # the real API has no such field: 22


def test_task_2_1_checks(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RUNBOOK_SECRETS_FILE", str(tmp_path / "none.env"))
    monkeypatch.delenv("DIGITALOCEAN_TOKEN", raising=False)
    missing = Checklist("2.1")
    assert do.check_token_and_account(missing) is None
    assert [f.name for f in missing.failures] == ["token is configured"]
    assert "Custom Scopes" in missing.failures[0].hint

    with DigitalOceanStandIn({TOKEN: ["account:read", "droplet:read", "regions:read"]}) as fake:
        monkeypatch.setenv("DIGITALOCEAN_TOKEN", TOKEN)
        monkeypatch.setenv("DIGITALOCEAN_API_URL", fake.url)
        scoped = Checklist("2.1")
        do.check_token_and_account(scoped)
        failed = {f.name for f in scoped.failures}
        assert {"token can ssh_key:read", "token can firewall:read", "token can image:read"} <= failed
        assert "token can regions:read" not in failed and "account status is active" not in failed

    with DigitalOceanStandIn([TOKEN], account_status="locked", email_verified=False, droplet_limit=0) as fake:
        monkeypatch.setenv("DIGITALOCEAN_API_URL", fake.url)
        locked = Checklist("2.1")
        do.check_token_and_account(locked)
        assert {f.name for f in locked.failures} == {"account status is active", "email address verified",
                                                     "droplet limit leaves room for 1 more"}  # fmt: skip

    with DigitalOceanStandIn([TOKEN]) as fake:
        monkeypatch.setenv("DIGITALOCEAN_API_URL", fake.url)
        fine = Checklist("2.1")
        assert do.check_token_and_account(fine) is not None
        assert fine.failures == []
        assert TOKEN not in json.dumps([r.__dict__ for r in fine.results])

    monkeypatch.setenv("DIGITALOCEAN_TOKEN", "dop_v1_" + "00" * 32)
    with DigitalOceanStandIn([TOKEN]) as fake:
        monkeypatch.setenv("DIGITALOCEAN_API_URL", fake.url)
        refused = Checklist("2.1")
        do.check_token_and_account(refused)
        assert [f.name for f in refused.failures] == ["the token is accepted (GET /v2/account)"]
