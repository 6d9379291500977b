"""``runbook doctor phase2`` against the stand-ins: the order of the layers, what a broken one blocks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from testsupport import free_port

from helpers.clients import coolify
from helpers.clients import digitalocean as do_client
from helpers.cloud.droplet import public_ipv4
from helpers.core import state
from helpers.ops import doctor
from helpers.rehearse.coolify import CoolifyStandIn
from helpers.rehearse.digitalocean import DigitalOceanStandIn

TOKEN = "6|" + "dr" * 20
DO_TOKEN = "dop_v1_" + "cd" * 32


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("RUNBOOK_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("RUNBOOK_SECRETS_FILE", str(tmp_path / "secrets.env"))
    do_fake = DigitalOceanStandIn([DO_TOKEN], active_after_polls=0).start()
    cool = CoolifyStandIn({TOKEN: None}).start()
    monkeypatch.setenv("DIGITALOCEAN_TOKEN", DO_TOKEN)
    monkeypatch.setenv("DIGITALOCEAN_API_URL", do_fake.url)
    monkeypatch.setenv("COOLIFY_API_TOKEN", TOKEN)
    monkeypatch.setenv("COOLIFY_API_URL", cool.url + "/api/v1")
    monkeypatch.setenv("RUNBOOK_DROPLET_HOST", "127.0.0.1")
    monkeypatch.setenv("RUNBOOK_SSH_PORT", str(free_port()))  # nothing listens: SSH is refused
    monkeypatch.setenv("RUNBOOK_SSH_DIR", str(tmp_path / "ssh"))
    do = do_client.connect()
    droplet = do.create_droplet(
        {"name": "d1", "region": "fra1", "size": "s-2vcpu-4gb", "image": "ubuntu-24-04-x64"}
    )
    do.droplet(droplet["id"])  # reads make it active
    ipv4 = public_ipv4(do.droplet(droplet["id"]))
    client = coolify.connect()
    project = client.create_project("demo")
    (env,) = client.environments(project["uuid"])
    body = {
        "project_uuid": project["uuid"],
        "server_uuid": client.servers()[0]["uuid"],
        "environment_uuid": env["uuid"],
    }
    web = client.create_dockerimage_app(
        {
            **body,
            "environment_name": "production",
            "docker_registry_image_name": "ghcr.io/t/a-web",
            "ports_exposes": "3000",
        }
    )
    state.update(
        "phase2",
        droplet={"id": droplet["id"], "name": "d1", "ipv4": ipv4},
        applications={"web": {"uuid": web["uuid"]}},
    )
    yield do, droplet
    cool.stop()
    do_fake.stop()


def test_layers_run_bottom_up_and_a_refused_ssh_does_not_hide_coolify(world: Any) -> None:
    d = doctor.diagnose_production("deploy")
    layers = [f.layer for f in d.findings]
    assert layers[:4] == ["dns", "droplet", "ssh", "coolify"]
    status = {f.layer: f.status for f in d.findings}
    assert (status["dns"], status["droplet"], status["ssh"], status["coolify"]) == (
        "ok",
        "ok",
        "broken",
        "ok",
    )
    assert d.first_cause.layer == "ssh" and d.first_cause.anchor == "ssh-refused"
    web = next(f for f in d.findings if f.name.startswith("web application"))
    assert web.status == "broken" and "exited" in web.cause and web.anchor == "app-stopped"  # never deployed
    assert next(f for f in d.findings if f.layer == "url").blocked  # the app below is broken


def test_a_deleted_droplet_is_the_first_cause_and_blocks_everything_above(world: Any) -> None:
    do, droplet = world
    do.delete_droplet(droplet["id"])
    d = doctor.diagnose_production("deploy")
    assert d.first_cause.layer == "droplet" and "does not exist any more" in d.first_cause.cause
    assert all(f.blocked for f in d.findings if f.layer in ("ssh", "coolify", "apps", "deployments", "url"))


def test_all_skips_phase2_where_it_never_ran(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNBOOK_STATE_DIR", str(tmp_path / "state"))
    assert not doctor.started()
    assert [d.scope for d in doctor.diagnose("all", app_dir=str(tmp_path))] == ["phase1"]
    with pytest.raises(ValueError, match="scope"):
        doctor.diagnose("phase3")
