"""Tasks 2.5 to 2.8 rehearsed end to end: papermill runs the committed notebooks against a droplet container.

Configuration only: the droplet is the stand-in container (real systemd + sshd, ``helpers.rehearse.droplet``)
recorded in the phase-2 state file as task 2.2 would; task 2.5 uploads and runs the rehearsal installer over
SSH, which installs the Coolify stand-in inside the container as ``coolify.service`` on port 8000; tasks 2.6
to 2.8 talk to it through the container's published port. Every run twice: the second changes nothing.
"""

from __future__ import annotations

import json
import secrets as stdlib_secrets
import subprocess
from pathlib import Path
from typing import Any

import httpx
import nbformat
import papermill
import pytest
from testsupport import unavailable

from helpers.core.paths import PROJECT_ROOT
from helpers.core.tasks import get

pytestmark = pytest.mark.engine

STEPS_MIME = "application/vnd.runbook.steps+json"
CHECKS_MIME = "application/vnd.runbook.checks+json"
TASKS = ("2.5", "2.6", "2.7", "2.8")
PREFIX = "rb-coolify-it-"


def outputs(path: Path, mime: str) -> list[dict[str, Any]]:
    nb = nbformat.read(path, as_version=4)
    return [o["data"][mime] for c in nb.cells for o in c.get("outputs", []) if mime in o.get("data", {})]


def step_statuses(path: Path) -> list[str]:
    return [s["status"] for table in outputs(path, STEPS_MIME) for s in table["steps"]]


def checks(path: Path) -> list[dict[str, Any]]:
    return [c for table in outputs(path, CHECKS_MIME) for c in table["checks"]]


def run(task: str, out: Path, **parameters: Any) -> Path:
    papermill.execute_notebook(
        str(PROJECT_ROOT / get(task).notebook), str(out), parameters=parameters, kernel_name="python3",
        cwd=str(PROJECT_ROOT), progress_bar=False, log_output=False,
    )  # fmt: skip
    return out


@pytest.fixture
def droplet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A droplet container reachable by key, recorded in a private state file as task 2.2 records it."""
    from helpers.cloud import ssh
    from helpers.core import state
    from helpers.host.ports import free_port
    from helpers.rehearse import droplet as droplets
    from helpers.rehearse.session import COOLIFY_INSTALLER

    try:
        droplets.ensure_image(build=False)
    except droplets.DropletError as exc:
        unavailable(f"droplet stand-in image not available: {exc}")
    name = f"{PREFIX}{stdlib_secrets.token_hex(3)}"
    token = "7|" + stdlib_secrets.token_urlsafe(32)
    env = {  # what a rehearsal configures (helpers.rehearse.session), no more
        "RUNBOOK_COOLIFY_INSTALLER": str(COOLIFY_INSTALLER),
        # the droplet's ports 8000 (the container publishes it) and 3000 (the web app): where they are reached
        "RUNBOOK_ADDRESS_MAP": ",".join(f"127.0.0.1:{p}=127.0.0.1:{free_port()}" for p in (8000, 3000)),
        "RUNBOOK_PRIVATE_IMAGES": "0",  # no registry to log in to
        "RUNBOOK_STATE_DIR": str(tmp_path / "state"),
        "RUNBOOK_SECRETS_FILE": str(tmp_path / "secrets.env"),
        "RUNBOOK_SSH_DIR": str(tmp_path / "ssh"),
        "RUNBOOK_ALLOW_COOLIFY_INSTALL": "1",
        "RUNBOOK_INSTALLER_ENV": "ROOT_USERNAME,ROOT_USER_EMAIL,ROOT_USER_PASSWORD,COOLIFY_API_TOKEN",
        "RUNBOOK_COOLIFY_ENABLE_API": "1",
        "RUNBOOK_COOLIFY_POLL_SECONDS": "0.2",
        "RUNBOOK_COOLIFY_PROJECT": "implementation3-it",
        "COOLIFY_API_TOKEN": token,
        "ROOT_USERNAME": "admin",
        "ROOT_USER_EMAIL": "admin@example.invalid",
        "ROOT_USER_PASSWORD": "Root-" + stdlib_secrets.token_urlsafe(18),
        "RUNBOOK_EXTRA_SECRET_NAMES": "ROOT_USER_PASSWORD",
        "RUNBOOK_DRY_RUN": "",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for key in ("COOLIFY_URL", "COOLIFY_API_URL", "RUNBOOK_DROPLET_HOST", "RUNBOOK_SSH_PORT"):
        monkeypatch.delenv(key, raising=False)
    for key in ("PROD_POSTGRES_PASSWORD", "PROD_REDIS_PASSWORD", "PROD_DATABASE_URL", "PROD_REDIS_URL"):
        monkeypatch.delenv(key, raising=False)
    key = tmp_path / "ssh" / "id_ed25519"
    monkeypatch.setenv("RUNBOOK_SSH_KEY", str(key))
    ssh.ensure_keypair(key)
    try:
        host, port = droplets.start_droplet(name, ssh.load_keypair(key).public_key)
        ssh.ensure_host_key(host, port, tmp_path / "ssh")
        state.update("phase2", droplet={"name": name, "ipv4": host, "ssh_port": port})
        yield {"name": name, "host": host, "port": port, "token": token, "tmp": tmp_path, "key": key}
    finally:
        droplets.stop_droplet(name)


def add_sudo_user(droplet: dict[str, Any], user: str = "deploy") -> None:
    """What task 2.4 leaves behind: a sudo user with the key (root may still log in here)."""
    from helpers.cloud import ssh
    from helpers.rehearse import droplet as droplets

    public = ssh.load_keypair(droplet["key"]).public_key.strip()
    keys = f"/home/{user}/.ssh/authorized_keys"
    droplets.exec_in(
        droplet["name"],
        f"useradd -m -s /bin/bash {user} && install -d -m 700 -o {user} -g {user} /home/{user}/.ssh && "
        f"echo '{public}' > {keys} && chown {user}: {keys} && chmod 600 {keys} && "
        f"echo '{user} ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/90-{user}",
    )


def standin_log(url: str) -> list[dict[str, Any]]:
    return httpx.get(f"{url}/_standin/requests", timeout=10).json()["requests"]


def test_2_5_to_2_8_twice_then_a_dry_run_changes_nothing(droplet: dict[str, Any]) -> None:
    from helpers.core import secrets
    from helpers.rehearse import droplet as droplets

    tmp = droplet["tmp"]
    add_sudo_user(droplet)  # as after task 2.4: the installer runs through sudo, uploads go as that user
    # a dry run on the fresh droplet installs nothing
    dry = run("2.5", tmp / "2.5-dry.ipynb", dry_run=True)
    assert set(step_statuses(dry)) == {"would change"}
    assert droplets.exec_in(droplet["name"], "test -e /data/coolify && echo yes || echo no").strip() == "no"

    first = {t: run(t, tmp / f"{t}-first.ipynb") for t in TASKS}
    for task, path in first.items():
        assert [c["name"] for c in checks(path) if not c["ok"]] == [], task
    assert step_statuses(first["2.5"]) == ["changed"]
    assert "login             deploy@127.0.0.1" in first["2.5"].read_text()
    assert step_statuses(first["2.6"]) == ["changed"]  # the API was switched on through /enable
    assert step_statuses(first["2.8"]).count("changed") == 4  # 2 passwords, 2 databases
    record = json.loads((tmp / "state" / "phase2.json").read_text())
    url = record["coolify"]["url"]
    assert url.startswith("http://127.0.0.1:") and record["coolify"]["version"] == "4.0.0-beta.420"
    assert set(record["coolify_databases"]) == {"postgresql", "redis"}

    before = len(standin_log(url))
    second = {t: run(t, tmp / f"{t}-second.ipynb") for t in TASKS}
    for task, path in second.items():
        assert [c["name"] for c in checks(path) if not c["ok"]] == [], task
        assert set(step_statuses(path)) <= {"ok", "skipped"}, (task, step_statuses(path))
    log = standin_log(url)[before:]
    assert [e for e in log if e["method"] != "GET"] == []  # the second run changed nothing in Coolify

    dry_runs = {t: run(t, tmp / f"{t}-dry-after.ipynb", dry_run=True) for t in TASKS}
    after_dry = standin_log(url)[before + len(log) :]
    assert [e for e in after_dry if e["method"] != "GET"] == []  # dry runs send no mutating request
    for path in dry_runs.values():
        assert [c["name"] for c in checks(path) if not c["ok"]] == []

    api = httpx.Client(
        base_url=f"{url}/api/v1", headers={"Authorization": f"Bearer {droplet['token']}"}, timeout=10
    )
    assert [p["name"] for p in api.get("/projects").json()] == ["implementation3-it"]
    assert len(api.get("/databases").json()) == 2
    assert secrets.get("PROD_DATABASE_URL").startswith("postgres://app:")

    known = secrets.known_values()
    assert droplet["token"] in known and len(known) >= 6
    for executed in tmp.glob("*.ipynb"):
        text = executed.read_text()
        leaked = [name for name, value in _named_values().items() if value in text]
        assert leaked == [], (executed.name, leaked)
    leftovers = droplets.exec_in(droplet["name"], "ls /tmp | grep runbook-coolify || true").strip()
    assert leftovers == ""
    env_mode = droplets.exec_in(droplet["name"], "stat -c %a /data/coolify/source/.env").strip()
    assert env_mode == "600"


def _named_values() -> dict[str, str]:
    from helpers.core import secrets

    names = [*secrets.SECRETS, "ROOT_USER_PASSWORD"]
    return {n: secrets.get(n) for n in names if secrets.has(n) and len(secrets.get(n)) >= 8}


def test_2_5_refuses_to_install_without_the_parameter(droplet: dict[str, Any], monkeypatch) -> None:
    from helpers.rehearse import droplet as droplets

    monkeypatch.setenv("RUNBOOK_ALLOW_COOLIFY_INSTALL", "")
    with pytest.raises(papermill.PapermillExecutionError, match="allow_install=True"):
        run("2.5", droplet["tmp"] / "2.5-refused.ipynb")
    assert droplets.exec_in(droplet["name"], "test -e /data/coolify && echo yes || echo no").strip() == "no"
    subprocess.run(
        ["docker", "stop", droplets.container_name(droplet["name"])], capture_output=True, check=True
    )
    with pytest.raises(papermill.PapermillExecutionError, match="refused"):  # SSH refused: a clear message
        run("2.5", droplet["tmp"] / "2.5-stopped.ipynb")


def test_2_6_fails_loudly_on_a_wrong_token(droplet: dict[str, Any], monkeypatch) -> None:
    run("2.5", droplet["tmp"] / "2.5.ipynb")
    monkeypatch.setenv("COOLIFY_API_TOKEN", "7|" + "w" * 40)
    with pytest.raises(papermill.PapermillExecutionError, match="Unauthenticated"):
        run("2.6", droplet["tmp"] / "2.6-wrong.ipynb")
    assert "w" * 40 not in (droplet["tmp"] / "2.6-wrong.ipynb").read_text()
