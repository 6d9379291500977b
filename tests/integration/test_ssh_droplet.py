"""Task 2.3's SSH access against a real OpenSSH server (the droplet stand-in), and its failure messages."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import papermill
import pytest
from testsupport import free_port

from helpers.cloud import ssh
from helpers.core.paths import PROJECT_ROOT
from helpers.core.tasks import get
from helpers.rehearse import droplet

pytestmark = pytest.mark.engine


@pytest.fixture
def sshdir(tmp_path: Path) -> Path:
    d = tmp_path / "ssh"
    ssh.ensure_keypair(d / "id_ed25519")
    return d


@pytest.fixture
def node(sshdir: Path) -> Iterator[tuple[str, str, int]]:
    name = f"ssh-{os.getpid()}-{os.urandom(3).hex()}"
    host, port = droplet.start_droplet(name, (sshdir / "id_ed25519.pub").read_text())
    yield name, host, port
    droplet.stop_droplet(name)


def run_2_3(out: Path, sshdir: Path, host: str, port: int, **extra: object) -> Path:
    target = out / "2.03.ipynb"
    papermill.execute_notebook(
        str(PROJECT_ROOT / get("2.3").notebook), str(target), kernel_name="python3", progress_bar=False,
        cwd=str(PROJECT_ROOT),
        parameters={"host": host, "ssh_port": port, "ssh_dir": str(sshdir), "dry_run": False, **extra},
    )  # fmt: skip
    return target


def test_access_checks_pass_on_a_real_sshd(node: tuple[str, str, int], sshdir: Path) -> None:
    name, host, port = node
    expected = droplet.host_key_fingerprint(name)
    assert ssh.ensure_host_key(host, port, sshdir, expected_fingerprint=expected).status == "changed"
    target = ssh.droplet_target(host, port, ssh_dir=sshdir)
    user = ssh.login_user(target, "deploy")
    assert user == "root"  # no admin user yet: a fresh droplet
    assert ssh.ensure_config_entry("drop", host, port, user, target.key_path, sshdir).status == "changed"
    rows = ssh.access_checks(target, "drop", user)
    assert len(rows) >= 5
    assert all(ok for _, ok, _, _ in rows), rows


def test_changed_host_key_is_rejected(node: tuple[str, str, int], sshdir: Path, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    name, host, port = node
    monkeypatch.setenv("RUNBOOK_STATE_DIR", str(tmp_path / "state"))
    ssh.ensure_host_key(host, port, sshdir)
    conn = ssh.connect(host, port, "root", ssh_dir=sshdir)
    conn.close()
    # the server gets new host keys (a rebuilt droplet on the same address, or someone in the middle)
    droplet.exec_in(name, "rm -f /etc/ssh/ssh_host_* && ssh-keygen -A && systemctl restart ssh")
    ssh.wait_for_ssh(host, port, timeout=30)
    with pytest.raises(ssh.HostKeyChanged, match="has CHANGED") as err:
        ssh.connect(host, port, "root", ssh_dir=sshdir)
    assert droplet.host_key_fingerprint(name) in str(err.value)
    with pytest.raises(ssh.HostKeyChanged):
        ssh.ensure_host_key(host, port, sshdir)
    # the notebook stops at its host key cell with the same message, and writes no config entry
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(papermill.PapermillExecutionError) as nb_err:
        run_2_3(out, sshdir, host, port)
    assert "HostKeyChanged" in str(nb_err.value) and "ssh-keygen -f" in str(nb_err.value)
    assert not (sshdir / "config").exists()


def test_refused_port_gives_a_clear_message(
    sshdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNBOOK_STATE_DIR", str(tmp_path / "state"))
    port = free_port()
    with pytest.raises(ssh.SSHRefused) as err:
        ssh.ensure_host_key("127.0.0.1", port, sshdir)
    assert "was refused: nothing listens on that port" in str(err.value) and "Next step" in str(err.value)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(papermill.PapermillExecutionError) as nb_err:
        run_2_3(out, sshdir, "127.0.0.1", port)
    assert "SSHRefused" in str(nb_err.value) and "nothing listens" in str(nb_err.value)


def test_wrong_key_is_an_auth_failure(node: tuple[str, str, int], sshdir: Path, tmp_path: Path) -> None:
    _, host, port = node
    ssh.ensure_host_key(host, port, sshdir)
    other = tmp_path / "other"
    ssh.ensure_keypair(other)
    with pytest.raises(ssh.SSHAuthFailed, match="refused the key"):
        ssh.connect(host, port, "root", key_path=other, ssh_dir=sshdir)
