"""The droplet stand-in: a systemd + OpenSSH container published on 127.0.0.1 (helpers.rehearse.droplet)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.cloud import ssh
from helpers.rehearse import droplet

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ssh") / "id_ed25519"
    ssh.ensure_keypair(path)
    return path


@pytest.fixture(scope="module")
def names() -> Iterator[list[str]]:
    started: list[str] = []
    yield started
    for name in started:
        droplet.stop_droplet(name)


def test_image_is_built_or_cached() -> None:
    assert droplet.ensure_image() == droplet.IMAGE


def test_start_is_a_booted_server_with_our_key(key: Path, names: list[str]) -> None:
    name = f"standin-{os.getpid()}-a"
    names.append(name)
    host, port = droplet.start_droplet(name, key.with_name("id_ed25519.pub").read_text())
    assert host == "127.0.0.1"
    with socket.create_connection((host, port), timeout=5) as sock:
        assert sock.recv(8).startswith(b"SSH-2.0")
    status = droplet.droplet_status(name)
    assert status.exists and status.running and status.ssh_port == port
    assert status.container == f"rb-droplet-{name}"
    assert status.system_state in ("running", "degraded")
    assert droplet.exec_in(name, "stat -c '%a %U' /root/.ssh/authorized_keys").split() == ["600", "root"]
    assert droplet.exec_in(name, "systemctl is-active ssh").strip() == "active"
    # root logs in with the key, checked against the fingerprint read "on the console"
    fingerprint = droplet.host_key_fingerprint(name)
    sdir = key.parent
    assert ssh.ensure_host_key(host, port, sdir, expected_fingerprint=fingerprint).status == "changed"
    assert ssh.login_works(host, port, "root", key, sdir)
    # idempotent: the running droplet is returned as it is
    assert droplet.start_droplet(name, "ignored") == (host, port)


def test_every_droplet_has_its_own_host_keys(key: Path, names: list[str]) -> None:
    a, b = f"standin-{os.getpid()}-a", f"standin-{os.getpid()}-b"
    names.append(b)
    droplet.start_droplet(a, key.with_name("id_ed25519.pub").read_text())
    droplet.start_droplet(b, [])
    assert droplet.host_key_fingerprint(a) != droplet.host_key_fingerprint(b)


def test_a_droplet_without_keys_lets_nobody_in(key: Path) -> None:
    name = f"standin-{os.getpid()}-b"
    host, port = droplet.start_droplet(name)
    sdir = key.parent
    ssh.ensure_host_key(host, port, sdir)
    assert not ssh.login_works(host, port, "root", key, sdir)


def test_stop_removes_it_and_its_port_refuses(key: Path) -> None:
    name = f"standin-{os.getpid()}-b"
    port = droplet.droplet_status(name).ssh_port
    assert droplet.stop_droplet(name) is True
    assert droplet.droplet_status(name).exists is False
    assert droplet.stop_droplet(name) is False
    with pytest.raises(ssh.SSHRefused, match="nothing listens"):
        ssh.fetch_host_key("127.0.0.1", port, timeout=5)


def test_bad_name_is_refused() -> None:
    with pytest.raises(ValueError, match="droplet name"):
        droplet.start_droplet("bad name!")
