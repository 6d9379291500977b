"""Tasks 2.1 and 2.2 rehearsed end to end: papermill runs the notebooks against the stand-in process.

Configuration only: ``DIGITALOCEAN_API_URL`` points at ``python -m helpers.rehearse.digitalocean``, the
token is in the environment; the notebooks are the committed ones, unchanged.
"""

from __future__ import annotations

import json
import os
import secrets as stdlib_secrets
import socket
from pathlib import Path
from typing import Any

import httpx
import nbformat
import papermill
import pytest
from testsupport import unavailable

from helpers.core.paths import PROJECT_ROOT
from helpers.core.tasks import get
from helpers.rehearse.base import StandInProcess

STEPS_MIME = "application/vnd.runbook.steps+json"
CHECKS_MIME = "application/vnd.runbook.checks+json"
NB_21 = PROJECT_ROOT / get("2.1").notebook
NB_22 = PROJECT_ROOT / get("2.2").notebook


def outputs(path: Path, mime: str) -> list[dict[str, Any]]:
    nb = nbformat.read(path, as_version=4)
    return [o["data"][mime] for c in nb.cells for o in c.get("outputs", []) if mime in o.get("data", {})]


def step_statuses(path: Path) -> list[str]:
    return [s["status"] for table in outputs(path, STEPS_MIME) for s in table["steps"]]


def failed_checks(path: Path) -> list[str]:
    return [c["name"] for table in outputs(path, CHECKS_MIME) for c in table["checks"] if not c["ok"]]


@pytest.fixture
def rehearsal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Environment of a rehearsal: a token, the stand-in's URL, private state/ssh/secrets locations."""
    token = "dop_v1_" + stdlib_secrets.token_hex(32)
    name = f"rb-do-it-{stdlib_secrets.token_hex(3)}"
    env = {
        "DIGITALOCEAN_TOKEN": token,
        "RUNBOOK_SECRETS_FILE": str(tmp_path / "secrets.env"),
        "RUNBOOK_STATE_DIR": str(tmp_path / "state"),
        "RUNBOOK_SSH_KEY": str(tmp_path / "ssh" / "id_ed25519"),
        "RUNBOOK_DROPLET_NAME": name,
        "RUNBOOK_DROPLET_TAG": name,
        "RUNBOOK_DO_POLL_SECONDS": "0.1",
        "RUNBOOK_DRY_RUN": "",
        "RUNBOOK_ALLOW_PAID": "",
        "RUNBOOK_DOMAIN": "",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    # set, then removed: monkeypatch records the variable either way, so what start_standin sets goes too
    monkeypatch.setenv("DIGITALOCEAN_API_URL", "")
    monkeypatch.delenv("DIGITALOCEAN_API_URL")
    return {"token": token, "name": name, "tmp": tmp_path}


def start_standin(args: list[str] = ()) -> StandInProcess:
    proc = StandInProcess("helpers.rehearse.digitalocean", args=args, cwd=PROJECT_ROOT).start()
    os.environ["DIGITALOCEAN_API_URL"] = proc.url
    return proc


def run(notebook: Path, out: Path, **parameters: Any) -> Path:
    papermill.execute_notebook(
        str(notebook), str(out), parameters=parameters, kernel_name="python3", cwd=str(PROJECT_ROOT),
        progress_bar=False, log_output=False,
    )  # fmt: skip
    return out


def standin_log(proc: StandInProcess) -> list[dict[str, Any]]:
    with proc.control() as control:
        return control.get("/requests").json()["requests"]


def test_2_1_and_2_2_twice_against_the_standin_process(rehearsal: dict[str, Any]) -> None:
    tmp = rehearsal["tmp"]
    proc = start_standin()
    try:
        first21 = run(NB_21, tmp / "2.1-first.ipynb")
        assert failed_checks(first21) == []
        first22 = run(NB_22, tmp / "2.2-first.ipynb", allow_create_paid=True)
        assert step_statuses(first22) == ["changed"] * 5
        assert failed_checks(first22) == []
        record = json.loads((tmp / "state" / "phase2.json").read_text())["droplet"]
        assert record["name"] == rehearsal["name"] and record["ipv4"].startswith("203.0.113.")
        assert (tmp / "ssh" / "id_ed25519.pub").is_file()

        with proc.control() as control:
            control.delete("/requests")
        second21 = run(NB_21, tmp / "2.1-second.ipynb")
        second22 = run(NB_22, tmp / "2.2-second.ipynb", allow_create_paid=True)
        assert failed_checks(second21) == failed_checks(second22) == []
        assert step_statuses(second22) == ["ok"] * 5
        mutating = [(e["method"], e["path"]) for e in standin_log(proc) if e["method"] != "GET"]
        assert mutating == []  # the second run changed nothing
        assert json.loads((tmp / "state" / "phase2.json").read_text())["droplet"] == record

        api = httpx.Client(base_url=proc.url, headers={"Authorization": f"Bearer {rehearsal['token']}"})
        assert len(api.get("/v2/droplets").json()["droplets"]) == 1
        assert len(api.get("/v2/account/keys").json()["ssh_keys"]) == 1
        assert len(api.get("/v2/firewalls").json()["firewalls"]) == 1
        for executed in (first21, first22, second21, second22):
            assert rehearsal["token"] not in executed.read_text()  # never shown, never saved
    finally:
        proc.stop()


def test_2_2_dry_run_changes_nothing_anywhere(rehearsal: dict[str, Any]) -> None:
    tmp = rehearsal["tmp"]
    proc = start_standin()
    try:
        executed = run(NB_22, tmp / "2.2-dry.ipynb", dry_run=True)
        assert failed_checks(executed) == []
        assert set(step_statuses(executed)) == {"would change"}
        assert [e for e in standin_log(proc) if e["method"] != "GET"] == []
        assert not (tmp / "ssh").exists() and not (tmp / "state").exists()
        steps = {s["name"]: s for table in outputs(executed, STEPS_MIME) for s in table["steps"]}
        request_line, body = steps[f"droplet {rehearsal['name']!r}"]["diff"].split("\n", 1)
        assert request_line == f"POST {proc.url}/v2/droplets"  # the exact request is shown
        assert json.loads(body)["name"] == rehearsal["name"]
    finally:
        proc.stop()


def test_2_2_refuses_to_buy_without_the_parameter(rehearsal: dict[str, Any]) -> None:
    proc = start_standin()
    try:
        with pytest.raises(papermill.PapermillExecutionError, match="allow_create_paid"):
            run(NB_22, rehearsal["tmp"] / "2.2-refused.ipynb")
        assert [e for e in standin_log(proc) if e["method"] != "GET"] == []
    finally:
        proc.stop()


def test_2_1_fails_loudly_on_a_wrong_token(
    rehearsal: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    proc = start_standin()
    try:
        monkeypatch.setenv("DIGITALOCEAN_TOKEN", "dop_v1_" + "0" * 64)
        with pytest.raises(papermill.PapermillExecutionError, match="token is accepted"):
            run(NB_21, rehearsal["tmp"] / "2.1-wrong.ipynb")
    finally:
        proc.stop()


@pytest.mark.engine
def test_2_2_with_droplet_containers_gives_a_reachable_ssh_server(rehearsal: dict[str, Any]) -> None:
    """The stand-in backs the droplet with a real sshd container (helpers.rehearse.droplet)."""
    from helpers.rehearse import droplet as droplets

    try:
        droplets.ensure_image(build=False)
    except droplets.DropletError as exc:  # built by scripts/standins/build.sh droplet
        unavailable(f"droplet stand-in image not available: {exc}")
    tmp = rehearsal["tmp"]
    proc = start_standin(["--droplet-backend", "container"])
    try:
        run(NB_22, tmp / "2.2-container.ipynb", allow_create_paid=True)
        assert failed_checks(tmp / "2.2-container.ipynb") == []
        record = json.loads((tmp / "state" / "phase2.json").read_text())["droplet"]
        assert record["ipv4"] == "127.0.0.1" and record["ssh_port"] != 22
        with socket.create_connection(("127.0.0.1", record["ssh_port"]), timeout=10) as sock:
            assert sock.recv(64).startswith(b"SSH-2.0-")
        assert droplets.droplet_status(rehearsal["name"]).running
    finally:
        proc.stop()
    assert not droplets.droplet_status(rehearsal["name"]).exists  # the stand-in removed its container
