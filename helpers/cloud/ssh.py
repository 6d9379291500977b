"""SSH access to the droplet (task 2.3): key pair, ``~/.ssh/config`` entry, known host keys, connections.

Host keys are trusted on first use, explicitly: :func:`ensure_host_key` shows the server's key fingerprint
and records it in ``known_hosts`` (optionally only when it equals a fingerprint read out of band, such as
the droplet's console); every later connection (:func:`connect`) refuses a host that is not recorded, and
refuses a host whose key changed, with :class:`HostKeyChanged`. Nothing here ever trusts a key silently.

Every failure to connect becomes one of the :class:`SSHError` subclasses, whose message says what
happened and what to do next (refused, timed out, authentication failed, host key changed or unknown).

The SSH folder (keys, ``config``, ``known_hosts``) is a parameter everywhere; :func:`default_ssh_dir`
picks ``RUNBOOK_SSH_DIR``, else ``~/.ssh`` (a rehearsal sets ``RUNBOOK_SSH_DIR`` to its own folder).
"""

from __future__ import annotations

import base64
import difflib
import hashlib
import os
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import paramiko

from helpers.core import poll
from helpers.core.settings import env
from helpers.core.steps import StepResult, changed, failed, ok

DEFAULT_KEY_NAME = "id_ed25519"
CONNECT_TIMEOUT = 10.0


def default_ssh_dir() -> Path:
    """``RUNBOOK_SSH_DIR``, else ``~/.ssh``."""
    if env.ssh_dir:
        return Path(env.ssh_dir).expanduser()
    return Path("~/.ssh").expanduser()


def default_key_path(ssh_dir: Path | None = None) -> Path:
    return (ssh_dir or default_ssh_dir()) / DEFAULT_KEY_NAME


# --------------------------------------------------------------------------------------------- errors


class SSHError(RuntimeError):
    """A connection problem; the message says what happened and the next step."""


class SSHRefused(SSHError):
    pass


class SSHTimeout(SSHError):
    pass


class SSHAuthFailed(SSHError):
    pass


class SSHNoServer(SSHError):
    """Something accepted the TCP connection but no SSH server answered."""


class SSHConnectionLost(SSHError):
    """The connection ended while a command ran: how the command ended is unknown."""


class HostKeyChanged(SSHError):
    pass


class HostKeyUnknown(SSHError):
    pass


class HostKeyMismatch(SSHError):
    """The server's key is not the one the operator expected (read out of band)."""


class KeyProblem(SSHError):
    """The private key cannot be used (missing, unreadable, passphrase-protected)."""


def _where(host: str, port: int) -> str:
    return f"{host}:{port}"


def refused_message(host: str, port: int) -> str:
    return (
        f"SSH to {_where(host, port)} was refused: nothing listens on that port. Next step: check that the "
        "droplet is running (DigitalOcean control panel, or task 2.2), that host and ssh_port are right, "
        "and that the cloud firewall allows port 22."
    )


def timeout_message(host: str, port: int, seconds: float) -> str:
    return (
        f"SSH to {_where(host, port)} got no answer within {seconds:g} s. Next step: check the IP address, "
        "that the droplet is powered on, and that no firewall (DigitalOcean cloud firewall, ufw) drops port "
        f"{port}; then run the cell again."
    )


# ------------------------------------------------------------------------------------------- key pair


@dataclass(frozen=True)
class KeyPair:
    private: Path
    public: Path

    @property
    def public_key(self) -> str:
        """The public key line (``ssh-ed25519 AAAA... comment``)."""
        return self.public.read_text(encoding="utf-8").strip()

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_key)

    @property
    def fingerprint_md5(self) -> str:
        return fingerprint_md5(self.public_key)


def _key_blob(public_key: str) -> bytes:
    parts = public_key.split()
    if len(parts) < 2:
        raise ValueError(f"not an OpenSSH public key line: {public_key[:40]!r}")
    try:
        return base64.b64decode(parts[1], validate=True)
    except ValueError as exc:
        raise ValueError(f"not an OpenSSH public key line (bad base64): {public_key[:40]!r}") from exc


def fingerprint(public_key: str) -> str:
    """OpenSSH's SHA256 fingerprint (``SHA256:...``) of a public key line, as ``ssh-keygen -lf`` shows."""
    digest = hashlib.sha256(_key_blob(public_key)).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def fingerprint_md5(public_key: str) -> str:
    """The MD5 fingerprint (``aa:bb:...``); DigitalOcean names SSH keys by it."""
    digest = hashlib.md5(_key_blob(public_key)).hexdigest()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def key_fingerprint(key: paramiko.PKey) -> str:
    return fingerprint(f"{key.get_name()} {key.get_base64()}")


def ensure_keypair(
    key_path: Path | str | None = None, comment: str | None = None, dry_run: bool = False
) -> StepResult:
    """Use the key pair at ``key_path`` (default ``<ssh dir>/id_ed25519``); generate an ed25519 pair if none.

    An existing key (any type) is kept as it is; only a missing public half is derived from the private key.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Path(key_path).expanduser() if key_path else default_key_path()
    public = private.with_name(private.name + ".pub")
    name = f"SSH key pair {private}"
    if private.exists():
        try:
            key = paramiko.PKey.from_path(private)
        except paramiko.PasswordRequiredException:
            if public.exists():
                return ok(name, f"exists (passphrase-protected) {fingerprint(public.read_text())}")
            return failed(
                name,
                f"{private} is passphrase-protected and {public} is missing: create it with "
                f"`ssh-keygen -y -f {private} > {public}`",
            )
        except (paramiko.SSHException, ValueError, OSError) as exc:
            return failed(
                name,
                f"{private} exists but is not a usable private key ({exc}); move it away or "
                "pass another key_path",
            )
        line = f"{key.get_name()} {key.get_base64()}"
        if public.exists():
            if _key_blob(public.read_text()) != _key_blob(line):
                return failed(
                    name,
                    f"{public} does not belong to {private}; regenerate it with "
                    f"`ssh-keygen -y -f {private} > {public}`",
                )
            return ok(name, f"exists: {key.get_name()} {fingerprint(line)}")
        if dry_run:
            return changed(name, f"would write the missing {public.name}", dry_run=True)
        public.write_text(f"{line} {comment or _default_comment()}\n", encoding="utf-8")
        return changed(name, f"wrote the missing {public.name}: {fingerprint(line)}")
    if dry_run:
        return changed(name, "would generate a new ed25519 key pair", dry_run=True)
    private.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    pub = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    line = pub.decode()
    public.write_text(f"{line} {comment or _default_comment()}\n", encoding="utf-8")
    return changed(name, f"generated ed25519 {fingerprint(line)}")


def _default_comment() -> str:
    return f"runbook@{socket.gethostname()}"


def load_keypair(key_path: Path | str | None = None) -> KeyPair:
    private = Path(key_path).expanduser() if key_path else default_key_path()
    public = private.with_name(private.name + ".pub")
    if not private.exists() or not public.exists():
        raise KeyProblem(
            f"no key pair at {private} (+ .pub). Next step: run task 2.3 (it generates one), or "
            "pass the key_path of an existing pair."
        )
    return KeyPair(private, public)


# ------------------------------------------------------------------------------------- ~/.ssh/config


def _block_markers(alias: str) -> tuple[str, str]:
    return (
        f"# BEGIN runbook {alias} (managed by the runbook, task 2.3; edits inside are replaced)",
        f"# END runbook {alias}",
    )


def config_entry(
    alias: str, host: str, port: int, user: str, key_path: Path | str, known_hosts: Path | str
) -> str:
    """The ``Host`` block for ``alias``: strict host key checking against our ``known_hosts``."""
    begin, end = _block_markers(alias)
    return (
        "\n".join(
            [
                begin,
                f"Host {alias}",
                f"    HostName {host}",
                f"    Port {port}",
                f"    User {user}",
                f"    IdentityFile {key_path}",
                "    IdentitiesOnly yes",
                "    StrictHostKeyChecking yes",
                f"    UserKnownHostsFile {known_hosts}",
                "    ConnectTimeout 10",
                "    ServerAliveInterval 30",
                end,
            ]
        )
        + "\n"
    )


def _replace_block(text: str, alias: str, block: str) -> str:
    begin, end = _block_markers(alias)
    pattern = re.compile(rf"^{re.escape(begin)}\n.*?^{re.escape(end)}\n?", re.M | re.S)
    if pattern.search(text):
        return pattern.sub(lambda _: block, text, count=1)
    if not text.strip():
        return block
    return text.rstrip("\n") + "\n\n" + block


def ensure_config_entry(
    alias: str,
    host: str,
    port: int,
    user: str,
    key_path: Path | str | None = None,
    ssh_dir: Path | str | None = None,
    dry_run: bool = False,
) -> StepResult:
    """Write (or update) the managed ``Host alias`` block in ``<ssh_dir>/config``; other content is kept."""
    if not re.fullmatch(r"[A-Za-z0-9._-]+", alias):
        return failed(
            f"~/.ssh/config entry {alias!r}", "the alias may hold letters, digits, '.', '_', '-' only"
        )
    sdir = Path(ssh_dir).expanduser() if ssh_dir else default_ssh_dir()
    key = Path(key_path).expanduser() if key_path else default_key_path(sdir)
    path = sdir / "config"
    name = f"{path} entry Host {alias}"
    before = path.read_text(encoding="utf-8") if path.exists() else ""
    block = config_entry(alias, host, port, user, key, sdir / "known_hosts")
    after = _replace_block(before, alias, block)
    if after == before:
        return ok(name, f"{user}@{host}:{port}")
    diff = "".join(
        difflib.unified_diff(before.splitlines(True), after.splitlines(True), str(path), str(path))
    )
    if dry_run:
        return changed(name, f"would point {alias} at {user}@{host}:{port}", diff, dry_run=True)
    sdir.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(".config.runbook-tmp")
    tmp.write_text(after, encoding="utf-8")
    tmp.chmod(0o600)
    tmp.replace(path)
    return changed(name, f"{alias} → {user}@{host}:{port}", diff)


def read_config_entry(alias: str, ssh_dir: Path | str | None = None) -> dict[str, str]:
    """What OpenSSH would use for ``alias`` (parsed by paramiko's SSHConfig): hostname, port, user..."""
    sdir = Path(ssh_dir).expanduser() if ssh_dir else default_ssh_dir()
    cfg = paramiko.SSHConfig.from_path(str(sdir / "config"))
    return dict(cfg.lookup(alias))


# ----------------------------------------------------------------------------------------- host keys


def known_hosts_path(ssh_dir: Path | str | None = None) -> Path:
    return (Path(ssh_dir).expanduser() if ssh_dir else default_ssh_dir()) / "known_hosts"


def host_key_name(host: str, port: int) -> str:
    """How ``known_hosts`` names the host: ``host`` on port 22, ``[host]:port`` otherwise."""
    return host if int(port) == 22 else f"[{host}]:{port}"


def _load_known(path: Path) -> paramiko.HostKeys:
    keys = paramiko.HostKeys()
    if path.exists():
        keys.load(str(path))
    return keys


def known_host_keys(host: str, port: int, ssh_dir: Path | str | None = None) -> dict[str, paramiko.PKey]:
    """The recorded keys of ``host:port`` by key type (empty when unknown)."""
    entry = _load_known(known_hosts_path(ssh_dir)).lookup(host_key_name(host, port))
    return dict(entry) if entry else {}


def _open_socket(host: str, port: int, timeout: float) -> socket.socket:
    try:
        return socket.create_connection((host, int(port)), timeout=timeout)
    except ConnectionRefusedError:
        raise SSHRefused(refused_message(host, port)) from None
    except TimeoutError:
        raise SSHTimeout(timeout_message(host, port, timeout)) from None
    except socket.gaierror as exc:
        raise SSHError(
            f"cannot resolve {host!r} ({exc}). Next step: check the host parameter "
            "(the droplet's public IPv4 from task 2.2)."
        ) from None
    except OSError as exc:
        raise SSHError(
            f"cannot reach {_where(host, port)}: {exc}. Next step: check the network and the "
            "host/ssh_port parameters."
        ) from None


def fetch_host_key(
    host: str, port: int, key_types: list[str] | None = None, timeout: float = CONNECT_TIMEOUT
) -> paramiko.PKey:
    """The key the server presents (no authentication); ``key_types`` first when given."""
    sock = _open_socket(host, port, timeout)
    transport = paramiko.Transport(sock)
    transport.banner_timeout = timeout
    transport.handshake_timeout = timeout
    try:
        if key_types:
            opts = transport.get_security_options()
            supported = list(opts.key_types)
            opts.key_types = [t for t in key_types if t in supported] + [
                t for t in supported if t not in key_types
            ]
        try:
            # start_client returns quietly when its timeout passes first: the key lookup then raises
            transport.start_client(timeout=timeout)
            return transport.get_remote_server_key()
        except (paramiko.SSHException, EOFError) as exc:
            raise SSHNoServer(
                f"{_where(host, port)} accepted the connection but no SSH server answered ({exc}). Next "
                "step: the droplet may still be booting; wait a minute and run the cell again, and check "
                "the port is sshd's."
            ) from None
    finally:
        transport.close()


def offered_auth_methods(
    host: str, port: int, user: str = "root", timeout: float = CONNECT_TIMEOUT
) -> list[str]:
    """The authentication methods the server offers ``user`` (asked with ``none``; nothing secret is sent)."""
    sock = _open_socket(host, port, timeout)
    transport = paramiko.Transport(sock)
    transport.banner_timeout = timeout
    try:
        transport.start_client(timeout=timeout)
        if not transport.is_active():
            raise SSHNoServer(f"{_where(host, port)}: no SSH handshake within {timeout:g} s")
        try:
            transport.auth_none(user)
        except paramiko.BadAuthenticationType as exc:
            return sorted(exc.allowed_types)
        return ["none"]
    finally:
        transport.close()


def changed_message(host: str, port: int, known: str, offered: str, ssh_dir: Path | str | None) -> str:
    kh = known_hosts_path(ssh_dir)
    return (
        f"the SSH host key of {_where(host, port)} has CHANGED: recorded {known}, now offered {offered}. "
        "Someone may be intercepting the connection, or the droplet was rebuilt and got this address again. "
        "The runbook refuses to connect. Next step: if (and only if) you recreated the droplet, remove the "
        f"old key with `ssh-keygen -f {kh} -R '{host_key_name(host, port)}'` and run task 2.3 again; "
        "otherwise stop and investigate."
    )


def ensure_host_key(
    host: str,
    port: int = 22,
    ssh_dir: Path | str | None = None,
    expected_fingerprint: str | None = None,
    timeout: float = CONNECT_TIMEOUT,
    dry_run: bool = False,
) -> StepResult:
    """Record the server's host key on first use; later, check it is unchanged.

    * unknown host: the key's fingerprint is shown and recorded (trust on first use); with
      ``expected_fingerprint`` (``SHA256:...`` from the droplet's console), only if it matches;
    * known host, same key: ``ok``;
    * known host, another key: raises :class:`HostKeyChanged` (nothing is written).
    """
    kh = known_hosts_path(ssh_dir)
    hname = host_key_name(host, port)
    known = known_host_keys(host, port, ssh_dir)
    offered = fetch_host_key(host, port, key_types=list(known) or None, timeout=timeout)
    offered_fp = key_fingerprint(offered)
    name = f"host key of {hname}"
    if known:
        same = known.get(offered.get_name())
        if same is not None and same.asbytes() == offered.asbytes():
            return ok(name, f"known and unchanged: {offered.get_name()} {offered_fp}")
        recorded = ", ".join(f"{t} {key_fingerprint(k)}" for t, k in known.items())
        raise HostKeyChanged(
            changed_message(host, port, recorded, f"{offered.get_name()} {offered_fp}", ssh_dir)
        )
    if expected_fingerprint:
        want = expected_fingerprint.strip()
        if not want.startswith("SHA256:"):
            want = "SHA256:" + want
        if want.rstrip("=") != offered_fp:
            raise HostKeyMismatch(
                f"{hname} offers {offered.get_name()} {offered_fp}, but you expected {want}. Nothing was "
                "recorded. Next step: read the fingerprint again on the droplet's console (`ssh-keygen -lf "
                "/etc/ssh/ssh_host_ed25519_key.pub`); if it differs, do not connect."
            )
    detail = f"{offered.get_name()} {offered_fp}; " + (
        "matches the expected fingerprint"
        if expected_fingerprint
        else "trusted on first use: compare it with the droplet console's `ssh-keygen -lf "
        "/etc/ssh/ssh_host_ed25519_key.pub`"
    )
    if dry_run:
        return changed(name, f"would record {detail}", dry_run=True)
    kh.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    line = f"{hname} {offered.get_name()} {offered.get_base64()}\n"
    existing = kh.read_text(encoding="utf-8") if kh.exists() else ""
    if existing and not existing.endswith("\n"):
        line = "\n" + line
    with kh.open("a", encoding="utf-8") as fh:
        fh.write(line)
    kh.chmod(0o600)
    return changed(name, f"recorded {detail}", diff=f"+ {line.strip()}")


def forget_host(host: str, port: int, ssh_dir: Path | str | None = None, dry_run: bool = False) -> StepResult:
    """Remove every recorded key of ``host:port`` (what ``ssh-keygen -R`` does)."""
    kh = known_hosts_path(ssh_dir)
    hname = host_key_name(host, port)
    if not kh.exists():
        return ok(f"forget {hname}", "no known_hosts file")
    lines = kh.read_text(encoding="utf-8").splitlines(True)
    kept = [line for line in lines if not _line_names(line, hname)]
    if kept == lines:
        return ok(f"forget {hname}", "not recorded")
    if dry_run:
        return changed(f"forget {hname}", "would remove its keys", dry_run=True)
    kh.write_text("".join(kept), encoding="utf-8")
    return changed(f"forget {hname}", f"removed {len(lines) - len(kept)} line(s) from {kh}")


def _line_names(line: str, hname: str) -> bool:
    if not line.strip() or line.lstrip().startswith("#"):
        return False
    entry = paramiko.hostkeys.HostKeyEntry.from_line(line)
    return bool(entry) and any(_host_matches(h, hname) for h in entry.hostnames)


def _host_matches(pattern: str, hname: str) -> bool:
    if pattern.startswith("|1|"):
        return paramiko.HostKeys.hash_host(hname, pattern) == pattern
    return pattern == hname


# --------------------------------------------------------------------------------------- connections


def connect(
    host: str,
    port: int = 22,
    user: str = "root",
    key_path: Path | str | None = None,
    ssh_dir: Path | str | None = None,
    timeout: float = CONNECT_TIMEOUT,
):
    """An open fabric ``Connection`` that checks the host key strictly against our ``known_hosts``.

    No SSH config file, agent or other key is consulted: what connects is exactly host, port, user, key.
    Failures raise an :class:`SSHError` subclass with a clear message.
    """
    import fabric

    pair = load_keypair(key_path or default_key_path(Path(ssh_dir).expanduser() if ssh_dir else None))
    kh = known_hosts_path(ssh_dir)
    if not known_host_keys(host, port, ssh_dir):
        _open_socket(host, port, timeout).close()  # refused / timed out says more than "unknown"
        raise HostKeyUnknown(
            f"{host_key_name(host, port)} is not in {kh}: the runbook does not connect to a host whose key "
            "it has not recorded. Next step: run task 2.3 (it records the key after showing its fingerprint)."
        )
    config = fabric.Config(ssh_config=paramiko.SSHConfig())
    conn = fabric.Connection(
        host=host,
        port=int(port),
        user=user,
        config=config,
        connect_timeout=int(timeout),
        connect_kwargs={
            "key_filename": str(pair.private),
            "look_for_keys": False,
            "allow_agent": False,
            "banner_timeout": timeout,
            "auth_timeout": timeout,
            "channel_timeout": timeout,
        },
    )
    client = paramiko.SSHClient()
    client.load_host_keys(str(kh))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    conn.client = client
    try:
        conn.open()
    except paramiko.BadHostKeyException as exc:
        conn.close()
        raise HostKeyChanged(
            changed_message(host, port, key_fingerprint(exc.expected_key), key_fingerprint(exc.key), ssh_dir)
        ) from None
    except paramiko.AuthenticationException:
        conn.close()
        raise SSHAuthFailed(
            f"{_where(host, port)} refused the key {pair.private} ({pair.fingerprint}) for user {user!r}. "
            "Next step: for root, check that this key is the one registered with the droplet (task 2.2); "
            f"for {user!r}, run task 2.4 (it creates the user with this key); check the user name."
        ) from None
    except paramiko.PasswordRequiredException:
        conn.close()
        raise KeyProblem(
            f"{pair.private} is passphrase-protected; the runbook uses keys without a "
            "passphrase. Next step: pass key_path of a dedicated key (task 2.3 generates one "
            "when the file does not exist)."
        ) from None
    except paramiko.ssh_exception.NoValidConnectionsError:
        conn.close()
        raise SSHRefused(refused_message(host, port)) from None
    except TimeoutError:
        conn.close()
        raise SSHTimeout(timeout_message(host, port, timeout)) from None
    except (paramiko.SSHException, EOFError) as exc:
        conn.close()
        if "not found in known_hosts" in str(exc):
            raise HostKeyUnknown(
                f"{host_key_name(host, port)}: no recorded key of the type the server "
                f"offers ({exc}). Next step: run task 2.3."
            ) from None
        raise SSHNoServer(
            f"{_where(host, port)}: the SSH handshake failed ({exc}). Next step: the droplet "
            "may still be booting; wait and run the cell again."
        ) from None
    except OSError as exc:
        conn.close()
        raise SSHError(
            f"cannot reach {_where(host, port)}: {exc}. Next step: check host and ssh_port."
        ) from None
    return conn


def login_works(
    host: str,
    port: int,
    user: str,
    key_path: Path | str | None = None,
    ssh_dir: Path | str | None = None,
    timeout: float = CONNECT_TIMEOUT,
) -> bool:
    """True when ``user`` can log in with the key (a fresh connection); False on authentication failure.

    Any other problem (refused, timeout, host key) raises, as it is not an answer about the user.
    """
    try:
        conn = connect(host, port, user, key_path, ssh_dir, timeout)
    except SSHAuthFailed:
        return False
    try:
        result = conn.run("id -un", hide=True, warn=True, in_stream=False)
        return result.ok and result.stdout.strip() == user
    finally:
        conn.close()


def first_login_user(
    host: str,
    port: int,
    candidates: list[str],
    key_path: Path | str | None = None,
    ssh_dir: Path | str | None = None,
    timeout: float = CONNECT_TIMEOUT,
) -> str:
    """The first of ``candidates`` that can log in (e.g. the admin user after 2.4, else root)."""
    for user in candidates:
        if login_works(host, port, user, key_path, ssh_dir, timeout):
            return user
    raise SSHAuthFailed(
        f"none of {', '.join(candidates)} can log in to {_where(host, port)} with "
        f"{key_path or default_key_path()}. Next step: check that this key is the one registered with the "
        "droplet in task 2.2 (its fingerprint is shown above)."
    )


def ssh_banner(host: str, port: int, timeout: float = CONNECT_TIMEOUT) -> bool:
    """True when an SSH server greets on host:port (``SSH-...``); False when nothing (or no SSH) answers."""
    try:
        with _open_socket(host, port, timeout=timeout) as sock:
            sock.settimeout(5)
            return sock.recv(4).startswith(b"SSH-")
    except (SSHError, OSError):
        return False


def wait_for_ssh(
    host: str,
    port: int,
    timeout: float = 120.0,
    interval: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> float:
    """Wait until an SSH server answers on host:port (a freshly created droplet boots); seconds waited."""
    start = clock()
    try:
        poll.poll(
            lambda: ssh_banner(host, port, timeout=min(interval * 2, 10)),
            timeout=timeout,
            interval=interval,
            what=f"an SSH server on {_where(host, port)}",
            sleep=sleep,
            clock=clock,
        )
    except poll.PollTimeout:
        raise SSHTimeout(
            f"no SSH server answered on {_where(host, port)} within {timeout:g} s. "
            "Next step: check the droplet's status (task 2.2) and its console."
        ) from None
    return clock() - start


# ------------------------------------------------------------------------------ the droplet to reach


@dataclass(frozen=True)
class Target:
    """Where the droplet is and how to reach it: what tasks 2.3 and 2.4 start from."""

    host: str
    port: int
    key_path: Path
    ssh_dir: Path
    source: str  # where host/port came from

    def rows(self) -> list[tuple[str, str]]:
        return [
            ("host", self.host),
            ("ssh port", str(self.port)),
            ("key", str(self.key_path)),
            ("ssh folder", str(self.ssh_dir)),
            ("from", self.source),
        ]


def droplet_target(
    host: str = "", ssh_port: int | str | None = None, key_path: str | Path = "", ssh_dir: str | Path = ""
) -> Target:
    """Resolve the droplet's address: parameters, else ``RUNBOOK_DROPLET_HOST`` / ``RUNBOOK_SSH_PORT`` /
    ``RUNBOOK_SSH_KEY``, else what task 2.2 recorded in the phase-2 state file, else port 22 and
    ``<ssh_dir>/id_ed25519``."""
    from helpers.core import state

    record = state.get("phase2", "droplet") or {}
    sdir = Path(ssh_dir).expanduser() if ssh_dir else default_ssh_dir()
    if host:
        source = "parameter host"
    elif env.droplet_host:
        host, source = env.droplet_host, "RUNBOOK_DROPLET_HOST"
    elif record.get("ipv4"):
        host, source = str(record["ipv4"]), f"task 2.2's record in {state.path('phase2')}"
    else:
        raise LookupError(
            "no droplet address: pass the host parameter (the droplet's public IPv4), set "
            f"RUNBOOK_DROPLET_HOST, or run task 2.2 (it records the address in {state.path('phase2')})"
        )
    from_record = record.get("ipv4") == host
    port_value = ssh_port or env.ssh_port or (record.get("ssh_port") if from_record else 0)
    try:
        port = int(port_value or 22)
    except ValueError:
        raise ValueError(f"ssh_port {port_value!r} is not a port number") from None
    if not 0 < port < 65536:
        raise ValueError(f"ssh_port {port} is not a TCP port (1-65535)")
    key = key_path or env.ssh_key or (record.get("ssh_private_key") if from_record else "")
    return Target(host, port, Path(key).expanduser() if key else default_key_path(sdir), sdir, source)


def login_user(target: Target, admin_user: str, dry_run: bool = False) -> str:
    """Who logs in now: ``admin_user`` once task 2.4 made it, else root (a fresh droplet).

    In a dry run against a host whose key is not recorded yet nobody can log in safely: root is assumed.
    """
    if dry_run and not known_host_keys(target.host, target.port, target.ssh_dir):
        return "root"
    return first_login_user(target.host, target.port, [admin_user, "root"], target.key_path, target.ssh_dir)


def file_digests(*paths: Path) -> dict[str, str | None]:
    """SHA-256 of each file (None when absent): to prove a dry run wrote nothing."""
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else None for p in paths}


def access_files(target: Target) -> list[Path]:
    return [
        target.key_path,
        target.key_path.with_name(target.key_path.name + ".pub"),
        target.ssh_dir / "config",
        known_hosts_path(target.ssh_dir),
    ]


def access_checks(target: Target, alias: str, user: str) -> list[tuple[str, bool, str, str]]:
    """Task 2.3's verification rows ``(check, ok, detail, hint)``, each read from the real state."""
    import shutil
    import subprocess

    rows: list[tuple[str, bool, str, str]] = []
    pair = load_keypair(target.key_path)
    mode = pair.private.stat().st_mode & 0o777
    rows.append(
        (
            f"private key {pair.private} is readable by you only",
            mode & 0o077 == 0,
            f"{mode:o}",
            f"chmod 600 {pair.private}",
        )
    )
    known = known_host_keys(target.host, target.port, target.ssh_dir)
    offered = fetch_host_key(target.host, target.port, key_types=list(known) or None)
    same = known.get(offered.get_name())
    rows.append(
        (
            "known_hosts holds the key the server presents now",
            same is not None and same.asbytes() == offered.asbytes(),
            f"{offered.get_name()} {key_fingerprint(offered)}",
            "run the host key cell again",
        )
    )
    entry = read_config_entry(alias, target.ssh_dir)
    wanted = {"hostname": target.host, "port": str(target.port), "user": user}
    got = {k: entry.get(k) for k in wanted}
    rows.append(
        (
            f"~/.ssh/config: Host {alias} → {user}@{target.host}:{target.port}",
            got == wanted,
            " ".join(f"{k}={v}" for k, v in got.items()),
            "run the config entry cell again",
        )
    )
    rows.append(
        (
            f"~/.ssh/config: {alias} uses the key {pair.private.name}",
            str(pair.private) in entry.get("identityfile", []),
            ", ".join(entry.get("identityfile", [])),
            "run the config entry cell again",
        )
    )
    conn = connect(target.host, target.port, user, target.key_path, target.ssh_dir)
    try:
        out = conn.run("id -un; hostname", hide=True, warn=True, in_stream=False)
    finally:
        conn.close()
    lines = out.stdout.split()
    rows.append(
        (
            f"fabric: a new connection logs in as {user}",
            out.ok and lines[:1] == [user],
            " on ".join(lines[:2]),
            "see the error above",
        )
    )
    if shutil.which("ssh"):
        cmd = ["ssh", "-F", str(target.ssh_dir / "config"), "-o", "BatchMode=yes", alias, "true"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        rows.append(
            (
                f"OpenSSH: `ssh {alias}` works with strict host key checking",
                proc.returncode == 0,
                proc.stderr.strip()[-200:],
                f"try `{' '.join(cmd)}` in a terminal",
            )
        )
    return rows


def check_access(check, target: Target, alias: str, user: str) -> None:
    """Record :func:`access_checks` on a :func:`helpers.core.checks.verify` checklist."""
    for name, good, detail, hint in access_checks(target, alias, user):
        check(name, good, detail, hint=hint)


def check_nothing_written(check, target: Target, before: dict[str, str | None]) -> None:
    """A dry run's checks besides its plan: the SSH server answers, and none of the local files changed."""
    check.call(
        f"an SSH server answers on {target.host}:{target.port}",
        lambda: f"after {wait_for_ssh(target.host, target.port, timeout=15):.1f} s",
        hint="check host and ssh_port",
    )
    after = file_digests(*access_files(target))
    for path, digest in before.items():
        check(
            f"dry run left {path} unchanged",
            after.get(path) == digest,
            "absent" if digest is None else "",
            hint="a dry run must not write; report this as a bug",
        )
