"""helpers.cloud.ssh without a Docker engine: key pairs, the config entry, known hosts, error messages.

The host-key and connection tests talk SSH for real to a small paramiko server on 127.0.0.1 (a real
SSH handshake, host key and public-key authentication; it answers ``exec`` with a canned output). The
integration tests do the same against a real OpenSSH in the droplet stand-in.
"""

from __future__ import annotations

import io
import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest
from testsupport import needs

from helpers.cloud import ssh

# ------------------------------------------------------------------------------------- a test server


class _Handler(paramiko.ServerInterface):
    def __init__(self, allowed: paramiko.PKey | None):
        self.allowed = allowed

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        ok = self.allowed is not None and key.asbytes() == self.allowed.asbytes()
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return (
            paramiko.OPEN_SUCCEEDED if kind == "session" else paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED
        )

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        def answer() -> None:
            time.sleep(0.2)  # after paramiko has sent the exec request's success reply
            channel.sendall(b"root\n" if command == b"id -un" else b"root\ntesthost\n")
            channel.send_exit_status(0)
            channel.close()

        threading.Thread(target=answer, daemon=True).start()
        return True


class SSHTestServer:
    """A real SSH server (paramiko) on 127.0.0.1 with a host key that can be swapped."""

    def __init__(self, allowed: paramiko.PKey | None = None):
        self.host_key: paramiko.PKey = _ed25519()
        self.allowed = allowed
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self._stop = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            transport = paramiko.Transport(client)
            transport.add_server_key(self.host_key)
            try:
                transport.start_server(server=_Handler(self.allowed))
            except (paramiko.SSHException, EOFError, OSError):
                transport.close()

    def close(self) -> None:
        self._stop = True
        self.sock.close()


def _ed25519() -> paramiko.PKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    return paramiko.Ed25519Key.from_private_key(io.StringIO(pem.decode()))


@pytest.fixture
def sshdir(tmp_path: Path) -> Path:
    d = tmp_path / "ssh"
    assert ssh.ensure_keypair(d / "id_ed25519").status == "changed"
    return d


@pytest.fixture
def server(sshdir: Path) -> Iterator[SSHTestServer]:
    key = paramiko.PKey.from_path(sshdir / "id_ed25519")
    srv = SSHTestServer(allowed=key)
    yield srv
    srv.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------------------ key pair


def test_keypair_generated_once_with_private_mode_600(tmp_path: Path) -> None:
    key = tmp_path / "keys" / "id_ed25519"
    first = ssh.ensure_keypair(key, comment="me@test")
    assert first.status == "changed" and "generated ed25519" in first.detail
    assert key.stat().st_mode & 0o777 == 0o600
    pub = key.with_name("id_ed25519.pub").read_text()
    assert pub.startswith("ssh-ed25519 ") and pub.strip().endswith("me@test")
    before = key.read_bytes()
    second = ssh.ensure_keypair(key)
    assert second.status == "ok" and key.read_bytes() == before
    assert ssh.load_keypair(key).fingerprint in second.detail


def test_keypair_dry_run_writes_nothing(tmp_path: Path) -> None:
    result = ssh.ensure_keypair(tmp_path / "id_ed25519", dry_run=True)
    assert result.status == "would change"
    assert list(tmp_path.iterdir()) == []


def test_keypair_missing_public_half_is_derived(tmp_path: Path) -> None:
    key = tmp_path / "id_ed25519"
    ssh.ensure_keypair(key)
    pub = key.with_name("id_ed25519.pub")
    original = pub.read_text().split()[:2]
    pub.unlink()
    result = ssh.ensure_keypair(key)
    assert result.status == "changed" and pub.read_text().split()[:2] == original


def test_keypair_mismatched_or_broken_files_fail_clearly(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    ssh.ensure_keypair(a)
    ssh.ensure_keypair(b)
    a.with_name("a.pub").write_text(b.with_name("b.pub").read_text())
    result = ssh.ensure_keypair(a)
    assert (
        result.status == "failed" and "does not belong" in result.detail and "ssh-keygen -y" in result.detail
    )
    broken = tmp_path / "broken"
    broken.write_text("not a key\n")
    result = ssh.ensure_keypair(broken)
    assert result.status == "failed" and "not a usable private key" in result.detail


@needs(shutil.which("ssh-keygen") is not None, "ssh-keygen (openssh-client) not installed")
def test_fingerprints_match_ssh_keygen(tmp_path: Path) -> None:
    key = tmp_path / "id_ed25519"
    ssh.ensure_keypair(key)
    pub = key.with_name("id_ed25519.pub")
    sha = subprocess.run(["ssh-keygen", "-lf", str(pub)], capture_output=True, text=True, check=True).stdout
    md5 = subprocess.run(["ssh-keygen", "-E", "md5", "-lf", str(pub)], capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    pair = ssh.load_keypair(key)
    assert sha.split()[1] == pair.fingerprint
    assert md5.split()[1] == "MD5:" + pair.fingerprint_md5


def test_fingerprint_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="not an OpenSSH public key"):
        ssh.fingerprint("ssh-ed25519")
    with pytest.raises(ValueError, match="bad base64"):
        ssh.fingerprint("ssh-ed25519 !!!notbase64")


def test_load_keypair_missing_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ssh.KeyProblem, match=r"run task 2\.3"):
        ssh.load_keypair(tmp_path / "nope")


# ------------------------------------------------------------------------------------ config entry


def test_config_entry_written_once_kept_others_and_updated_in_place(tmp_path: Path) -> None:
    cfg = tmp_path / "config"
    tmp_path.mkdir(exist_ok=True)
    cfg.write_text("Host github.com\n    User git\n")
    key = tmp_path / "id_ed25519"
    first = ssh.ensure_config_entry("droplet", "203.0.113.7", 22, "root", key, tmp_path)
    assert first.status == "changed" and "+Host droplet" in first.diff
    assert cfg.stat().st_mode & 0o777 == 0o600
    assert cfg.read_text().startswith("Host github.com\n    User git\n")
    assert ssh.ensure_config_entry("droplet", "203.0.113.7", 22, "root", key, tmp_path).status == "ok"
    third = ssh.ensure_config_entry("droplet", "203.0.113.7", 22, "deploy", key, tmp_path)
    assert third.status == "changed" and "-    User root" in third.diff and "+    User deploy" in third.diff
    text = cfg.read_text()
    assert text.count("Host droplet") == 1 and text.count("# BEGIN runbook droplet") == 1
    entry = ssh.read_config_entry("droplet", tmp_path)
    assert entry["hostname"] == "203.0.113.7" and entry["user"] == "deploy" and entry["port"] == "22"
    assert entry["stricthostkeychecking"] == "yes" and entry["identityfile"] == [str(key)]
    assert entry["userknownhostsfile"] == str(tmp_path / "known_hosts")
    assert ssh.read_config_entry("github.com", tmp_path)["user"] == "git"


def test_config_entry_dry_run_and_bad_alias(tmp_path: Path) -> None:
    result = ssh.ensure_config_entry("droplet", "203.0.113.7", 2222, "root", tmp_path / "k", tmp_path, True)
    assert result.status == "would change" and "Port 2222" in result.diff
    assert not (tmp_path / "config").exists()
    bad = ssh.ensure_config_entry("my droplet", "203.0.113.7", 22, "root", tmp_path / "k", tmp_path)
    assert bad.status == "failed" and "alias" in bad.detail


# --------------------------------------------------------------------------------------- host keys


def test_host_key_names() -> None:
    assert ssh.host_key_name("203.0.113.7", 22) == "203.0.113.7"
    assert ssh.host_key_name("127.0.0.1", 2222) == "[127.0.0.1]:2222"


def test_trust_on_first_use_then_unchanged(server: SSHTestServer, sshdir: Path) -> None:
    fp = ssh.key_fingerprint(server.host_key)
    first = ssh.ensure_host_key("127.0.0.1", server.port, sshdir)
    assert first.status == "changed" and fp in first.detail and "trusted on first use" in first.detail
    known = ssh.known_host_keys("127.0.0.1", server.port, sshdir)
    assert known["ssh-ed25519"].asbytes() == server.host_key.asbytes()
    second = ssh.ensure_host_key("127.0.0.1", server.port, sshdir)
    assert second.status == "ok" and fp in second.detail
    assert (sshdir / "known_hosts").read_text().count(f"[127.0.0.1]:{server.port}") == 1


def test_expected_fingerprint_checked_before_recording(server: SSHTestServer, sshdir: Path) -> None:
    with pytest.raises(ssh.HostKeyMismatch, match="Nothing was recorded"):
        ssh.ensure_host_key("127.0.0.1", server.port, sshdir, expected_fingerprint="SHA256:" + "A" * 43)
    assert ssh.known_host_keys("127.0.0.1", server.port, sshdir) == {}
    good = ssh.ensure_host_key(
        "127.0.0.1",
        server.port,
        sshdir,
        expected_fingerprint=ssh.key_fingerprint(server.host_key).removeprefix("SHA256:"),
    )
    assert good.status == "changed" and "matches the expected fingerprint" in good.detail


def test_host_key_dry_run_records_nothing(server: SSHTestServer, sshdir: Path) -> None:
    result = ssh.ensure_host_key("127.0.0.1", server.port, sshdir, dry_run=True)
    assert result.status == "would change" and not (sshdir / "known_hosts").exists()


def test_changed_host_key_is_rejected_everywhere(server: SSHTestServer, sshdir: Path) -> None:
    ssh.ensure_host_key("127.0.0.1", server.port, sshdir)
    recorded = (sshdir / "known_hosts").read_text()
    server.host_key = _ed25519()  # the "droplet" now presents another key
    with pytest.raises(ssh.HostKeyChanged) as err:
        ssh.ensure_host_key("127.0.0.1", server.port, sshdir)
    message = str(err.value)
    assert "CHANGED" in message and ssh.key_fingerprint(server.host_key) in message
    assert f"ssh-keygen -f {sshdir / 'known_hosts'} -R '[127.0.0.1]:{server.port}'" in message
    assert (sshdir / "known_hosts").read_text() == recorded
    with pytest.raises(ssh.HostKeyChanged, match="refuses to connect"):
        ssh.connect("127.0.0.1", server.port, "root", ssh_dir=sshdir)
    # after forgetting the old key (the operator's explicit decision), the new one is recorded
    assert ssh.forget_host("127.0.0.1", server.port, sshdir).status == "changed"
    assert ssh.ensure_host_key("127.0.0.1", server.port, sshdir).status == "changed"


def test_forget_host_keeps_other_hosts(tmp_path: Path) -> None:
    kh = tmp_path / "known_hosts"
    key = _ed25519()
    line = f"{key.get_name()} {key.get_base64()}"
    kh.write_text(f"# comment\n[127.0.0.1]:2222 {line}\n203.0.113.7 {line}\n")
    assert ssh.forget_host("127.0.0.1", 2222, tmp_path).status == "changed"
    assert kh.read_text() == f"# comment\n203.0.113.7 {line}\n"
    assert ssh.forget_host("127.0.0.1", 2222, tmp_path).status == "ok"


# ------------------------------------------------------------------------------------- connections


def test_connect_runs_a_command_with_strict_host_keys(server: SSHTestServer, sshdir: Path) -> None:
    ssh.ensure_host_key("127.0.0.1", server.port, sshdir)
    conn = ssh.connect("127.0.0.1", server.port, "root", ssh_dir=sshdir, timeout=5)
    try:
        assert conn.run("id -un", hide=True, in_stream=False).stdout.split()[0] == "root"
    finally:
        conn.close()
    assert ssh.login_works("127.0.0.1", server.port, "root", ssh_dir=sshdir)


def test_unknown_host_is_refused_before_login(server: SSHTestServer, sshdir: Path) -> None:
    with pytest.raises(ssh.HostKeyUnknown, match=r"run task 2\.3"):
        ssh.connect("127.0.0.1", server.port, "root", ssh_dir=sshdir)


def test_auth_failure_names_the_key_and_next_step(
    server: SSHTestServer, sshdir: Path, tmp_path: Path
) -> None:
    ssh.ensure_host_key("127.0.0.1", server.port, sshdir)
    other = tmp_path / "other"
    ssh.ensure_keypair(other)
    with pytest.raises(ssh.SSHAuthFailed) as err:
        ssh.connect("127.0.0.1", server.port, "root", key_path=other, ssh_dir=sshdir)
    assert str(other) in str(err.value) and "task 2.2" in str(err.value)
    assert ssh.login_works("127.0.0.1", server.port, "root", key_path=other, ssh_dir=sshdir) is False
    with pytest.raises(ssh.SSHAuthFailed, match="none of deploy, root"):
        ssh.first_login_user("127.0.0.1", server.port, ["deploy", "root"], other, sshdir)


def test_refused_port_gives_a_clear_message(sshdir: Path) -> None:
    port = free_port()
    for call in (lambda: ssh.ensure_host_key("127.0.0.1", port, sshdir),
                 lambda: ssh.connect("127.0.0.1", port, "root", ssh_dir=sshdir)):  # fmt: skip
        with pytest.raises(ssh.SSHRefused) as err:
            call()
        assert f"127.0.0.1:{port} was refused: nothing listens" in str(err.value)
        assert "Next step" in str(err.value)


def test_silent_port_is_not_mistaken_for_ssh(sshdir: Path) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    try:
        with pytest.raises(ssh.SSHNoServer, match="no SSH server answered"):
            ssh.fetch_host_key("127.0.0.1", port, timeout=1)
    finally:
        listener.close()


def test_connect_timeout_message(monkeypatch: pytest.MonkeyPatch) -> None:
    def slow(*args, **kwargs):
        raise TimeoutError("timed out")

    monkeypatch.setattr(ssh.socket, "create_connection", slow)
    with pytest.raises(ssh.SSHTimeout, match=r"no answer within 3 s.*firewall"):
        ssh.fetch_host_key("203.0.113.7", 22, timeout=3)


def test_offered_auth_methods(server: SSHTestServer) -> None:
    assert ssh.offered_auth_methods("127.0.0.1", server.port, "root") == ["publickey"]


def test_wait_for_ssh(server: SSHTestServer) -> None:
    assert ssh.wait_for_ssh("127.0.0.1", server.port, timeout=5) < 5
    with pytest.raises(ssh.SSHTimeout, match="no SSH server answered"):
        ssh.wait_for_ssh("127.0.0.1", free_port(), timeout=0.5, interval=0.2)


# ------------------------------------------------------------------------------- target resolution


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "state"
    d.mkdir()
    monkeypatch.setenv("RUNBOOK_STATE_DIR", str(d))
    for name in ("RUNBOOK_DROPLET_HOST", "RUNBOOK_SSH_PORT", "RUNBOOK_SSH_KEY", "RUNBOOK_SSH_DIR"):
        monkeypatch.delenv(name, raising=False)
    return d


def test_target_from_state_file(state_dir: Path, tmp_path: Path) -> None:
    record = {"droplet": {"ipv4": "127.0.0.1", "ssh_port": 40022, "ssh_private_key": str(tmp_path / "k")}}
    (state_dir / "phase2.json").write_text(json.dumps(record))
    target = ssh.droplet_target(ssh_dir=tmp_path / "s")
    assert (target.host, target.port, target.key_path) == ("127.0.0.1", 40022, tmp_path / "k")
    assert "phase2.json" in target.source
    # another host given: the record's port and key are not its own
    other = ssh.droplet_target("203.0.113.9", ssh_dir=tmp_path / "s")
    assert (other.port, other.key_path) == (22, tmp_path / "s" / "id_ed25519")


def test_target_env_and_errors(state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(LookupError, match=r"run task 2\.2"):
        ssh.droplet_target()
    monkeypatch.setenv("RUNBOOK_DROPLET_HOST", "203.0.113.5")
    monkeypatch.setenv("RUNBOOK_SSH_PORT", "2200")
    target = ssh.droplet_target()
    assert (target.host, target.port, target.source) == ("203.0.113.5", 2200, "RUNBOOK_DROPLET_HOST")
    with pytest.raises(ValueError, match="not a TCP port"):
        ssh.droplet_target(ssh_port=70000)


def test_the_ssh_dir_is_configuration(state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNBOOK_SSH_DIR", "/tmp/elsewhere")  # what a rehearsal sets: never the real ~/.ssh
    assert ssh.default_ssh_dir() == Path("/tmp/elsewhere")
    assert ssh.default_key_path() == Path("/tmp/elsewhere/id_ed25519")
    monkeypatch.delenv("RUNBOOK_SSH_DIR")
    assert ssh.default_ssh_dir() == Path("~/.ssh").expanduser()
