"""Task 2.4 for real against the droplet stand-in: helpers and notebooks, twice, half-finished, safeguards.

Every test gets a fresh droplet container (systemd + OpenSSH, like a new droplet) and removes it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nbformat
import papermill
import pytest

from helpers.cloud import server, ssh
from helpers.core.checks import Checklist
from helpers.core.paths import PROJECT_ROOT
from helpers.core.steps import MIME as STEPS_MIME
from helpers.core.tasks import get
from helpers.rehearse import droplet

pytestmark = pytest.mark.engine

SETTINGS = server.Settings(admin_user="deploy", swap_size="0")  # the container's overlay root takes no swap


@dataclass
class Node:
    name: str
    target: ssh.Target
    public_key: str

    def remote(self) -> server.Remote:
        t = self.target
        return server.connect_admin(t.host, t.port, SETTINGS.admin_user, t.key_path, t.ssh_dir)

    def sh(self, command: str, check: bool = True) -> str:
        return droplet.exec_in(self.name, command, check=check)


@pytest.fixture
def node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Node]:
    monkeypatch.setenv("RUNBOOK_STATE_DIR", str(tmp_path / "state"))
    sdir = tmp_path / "ssh"
    ssh.ensure_keypair(sdir / "id_ed25519")
    public_key = (sdir / "id_ed25519.pub").read_text()
    name = f"setup-{os.getpid()}-{os.urandom(3).hex()}"
    host, port = droplet.start_droplet(name, public_key)
    try:
        ssh.ensure_host_key(host, port, sdir, expected_fingerprint=droplet.host_key_fingerprint(name))
        yield Node(name, ssh.droplet_target(host, port, ssh_dir=sdir), public_key)
    finally:
        droplet.stop_droplet(name)


def run_setup(node: Node, dry_run: bool = False) -> list:
    remote = node.remote()
    try:
        return server.setup_steps(remote, node.target, SETTINGS, node.public_key, dry_run=dry_run)
    finally:
        remote.close()


def verification(node: Node) -> Checklist:
    check = Checklist("2.4")
    server.check_server(check, node.target, SETTINGS, node.public_key)
    return check


def statuses(results: list) -> dict[str, str]:
    return {r.name.split(" (")[0]: r.status for r in results}


def test_setup_twice_second_run_changes_nothing(node: Node) -> None:
    first = run_setup(node)
    assert [r for r in first if r.status == "failed"] == []
    st = statuses(first)
    assert st["admin user deploy"] == "changed" and st["sshd hardening"] == "changed"
    assert st["ufw firewall"] == "changed" and st["fail2ban"] == "changed"
    assert st["swap file /swapfile"] == "skipped"
    swap = next(r for r in first if r.name.startswith("swap"))
    assert swap.detail == "swap_size is 0: no swap file wanted"
    check = verification(node)
    assert check.failures == [], check.failures
    assert len(check.results) >= 20
    # the real state, read out of band (the console), agrees
    assert "permitrootlogin no" in node.sh("sshd -T -C user=root,host=203.0.113.10,addr=203.0.113.10")
    assert "Status: active" in node.sh("ufw status")
    assert node.sh("systemctl is-active fail2ban").strip() == "active"
    assert not ssh.login_works(node.target.host, node.target.port, "root", node.target.key_path,
                               node.target.ssh_dir)  # fmt: skip

    second = run_setup(node)
    assert {r.status for r in second} <= {"ok", "skipped"}, [(r.name, r.status, r.detail) for r in second]
    assert [r.name for r in second if r.status == "skipped"] == ["swap file /swapfile"]
    assert verification(node).failures == []


def test_fail2ban_really_bans(node: Node) -> None:
    assert [r for r in run_setup(node) if r.status == "failed"] == []
    # an "attacker": a second container on the Docker network tries user names (fail2ban ignores the
    # droplet's own addresses and, by the runbook's ignoreip, this machine's)
    attacker = f"{node.name}-x"
    droplet.start_droplet(attacker)
    try:
        target_ip = node.sh("hostname -I").split()[0]
        attacker_ip = droplet.exec_in(attacker, "hostname -I").split()[0]
        tries = "for i in 1 2 3 4 5 6 7; do ssh -o BatchMode=yes -o StrictHostKeyChecking=no "
        droplet.exec_in(
            attacker, tries + f"-o ConnectTimeout=3 nosuchuser@{target_ip} true; done", check=False
        )
        deadline = time.monotonic() + 30
        status = ""
        while time.monotonic() < deadline and attacker_ip not in status:
            status = node.sh("fail2ban-client status sshd")
            time.sleep(1)
        assert attacker_ip in status, status
        assert attacker_ip in node.sh("ufw status")  # the ban went through ufw
        retry = f"ssh -o BatchMode=yes -o ConnectTimeout=3 root@{target_ip} true 2>&1"
        again = droplet.exec_in(attacker, retry, check=False)
        assert "refused" in again or "timed out" in again, again
    finally:
        droplet.stop_droplet(attacker)
    # ...and this machine (in ignoreip) still gets in
    remote = node.remote()
    assert remote.user == "deploy"
    remote.close()


def test_half_finished_setup_is_completed(node: Node) -> None:
    remote = node.remote()
    assert remote.user == "root"
    try:
        assert server.ensure_packages(remote).status == "changed"
        assert server.ensure_admin_user(remote, "deploy", node.public_key).status == "changed"
    finally:
        remote.close()
    # interrupted here: the user exists, sshd is not hardened, no firewall
    assert "permitrootlogin yes" in node.sh("sshd -T")
    assert "Status: inactive" in node.sh("ufw status")
    results = run_setup(node)
    st = statuses(results)
    assert st["packages sudo, ufw, fail2ban, python3-systemd, unattended-upgrades"] == "ok"
    assert st["admin user deploy"] == "ok"
    assert st["sshd hardening"] == "changed" and st["ufw firewall"] == "changed"
    assert verification(node).failures == []


def test_never_locked_out(node: Node) -> None:
    remote = node.remote()
    t = node.target
    try:
        refused = server.harden_sshd(remote, "deploy", t.key_path, t.ssh_dir)
        assert refused.status == "failed" and "refusing to turn root login off" in refused.detail
        assert node.sh(f"test -e {server.SSHD_DROPIN} && echo yes || echo no").strip() == "no"
        server.ensure_packages(remote)
        server.ensure_admin_user(remote, "deploy", node.public_key)
        # a configuration sshd rejects (here: someone's broken drop-in) is never reloaded
        node.sh("echo 'NoSuchOption yes' > /etc/ssh/sshd_config.d/99-broken.conf")
        invalid = server.harden_sshd(remote, "deploy", t.key_path, t.ssh_dir)
        assert invalid.status == "failed" and "sshd -t" in invalid.detail and "rolled back" in invalid.detail
        assert "NoSuchOption" in invalid.detail
        assert node.sh(f"test -e {server.SSHD_DROPIN} && echo yes || echo no").strip() == "no"
        node.sh("rm /etc/ssh/sshd_config.d/99-broken.conf")
    finally:
        remote.close()
    assert ssh.login_works(t.host, t.port, "root", t.key_path, t.ssh_dir)  # still in


def test_dry_run_changes_nothing(node: Node) -> None:
    before = node.sh("sshd -T | sort; ufw status; id deploy 2>&1; ls /etc/fail2ban/jail.d 2>&1", check=False)
    results = run_setup(node, dry_run=True)
    assert {r.status for r in results} <= {"ok", "would change", "skipped"}, [
        (r.name, r.status) for r in results
    ]
    assert "would change" in {r.status for r in results}
    after = node.sh("sshd -T | sort; ufw status; id deploy 2>&1; ls /etc/fail2ban/jail.d 2>&1", check=False)
    assert after == before


# ------------------------------------------------------------------------------------- the notebooks


def run_notebook(task_id: str, out: Path, tag: str, node: Node, **parameters: object) -> list[dict]:
    target = out / f"{task_id}{tag}.ipynb"
    t = node.target
    base = {"host": t.host, "ssh_port": t.port, "ssh_dir": str(t.ssh_dir), "key_path": str(t.key_path)}
    papermill.execute_notebook(
        str(PROJECT_ROOT / get(task_id).notebook), str(target), kernel_name="python3", progress_bar=False,
        cwd=str(PROJECT_ROOT), parameters={**base, "dry_run": False, **parameters},
    )  # fmt: skip
    nb = nbformat.read(target, as_version=4)
    return [step for cell in nb.cells for o in cell.get("outputs", [])
            for step in o.get("data", {}).get(STEPS_MIME, {}).get("steps", [])]  # fmt: skip


def test_notebooks_2_3_then_2_4_twice(node: Node, tmp_path: Path) -> None:
    out = tmp_path / "runs"
    out.mkdir()
    # a dry run of 2.4 on the fresh droplet plans and changes nothing
    planned = run_notebook("2.4", out, "-dry", node, dry_run=True, swap_size="0")
    assert "would change" in {s["status"] for s in planned}
    assert "no such user" in node.sh("id deploy 2>&1", check=False)

    first = run_notebook("2.3", out, "-1", node) + run_notebook("2.4", out, "-1", node, swap_size="0")
    assert "changed" in {s["status"] for s in first}
    assert not [s for s in first if s["status"] == "failed"]
    entry = ssh.read_config_entry("implementation3", node.target.ssh_dir)
    assert entry["user"] == "deploy" and entry["port"] == str(node.target.port)

    second = run_notebook("2.3", out, "-2", node) + run_notebook("2.4", out, "-2", node, swap_size="0")
    assert second and {s["status"] for s in second} <= {"ok", "skipped"}, [
        (s["name"], s["status"]) for s in second if s["status"] not in ("ok", "skipped")
    ]
    assert [s["name"] for s in second if s["status"] == "skipped"] == ["swap file /swapfile"]
