"""Initial server setup and hardening over SSH (task 2.4), one idempotent step per function.

Every ``ensure_*`` step reads the server's state first and reports ``ok`` when it already holds,
``changed`` after changing it, ``would change`` in dry-run, ``skipped`` when it does not apply (always with
the reason), ``failed`` with the next step. :func:`read_state` re-reads the server's real state (``sshd -T``,
``ufw status verbose``, ``swapon --show``, ``id``, ``systemctl``, ``timedatectl``); each step's section ends
with the rows that verify it (``sshd_rows``, ``ufw_rows``, ...), and :func:`checks` puts them together.

Never lock yourself out: :func:`harden_sshd` refuses to turn root login off until a *new* connection as
the admin user, with passwordless sudo, works; it validates the configuration with ``sshd -t`` before
reloading, checks a new admin connection again after the reload, and rolls back if that fails. ufw allows
sshd's own port before it is enabled.

Supported servers: Ubuntu LTS (22.04, 24.04: DigitalOcean's droplets) and Debian 12 (the rehearsal's
stand-in), both apt-based with systemd.
"""

from __future__ import annotations

import base64
import difflib
import ipaddress
import math
import re
import shlex
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers.cloud import ssh
from helpers.core import poll
from helpers.core.steps import StepResult, changed, failed, ok, skipped

SSHD_DROPIN = "/etc/ssh/sshd_config.d/01-runbook-hardening.conf"
SUDOERS_FILE = "/etc/sudoers.d/90-runbook-{user}"
FAIL2BAN_JAIL = "/etc/fail2ban/jail.d/runbook.local"
AUTO_UPGRADES = "/etc/apt/apt.conf.d/20auto-upgrades"
SWAP_SYSCTL = "/etc/sysctl.d/99-runbook-swap.conf"
PACKAGES: tuple[str, ...] = ("sudo", "ufw", "fail2ban", "python3-systemd", "unattended-upgrades")
DEFAULT_PORTS: tuple[int, ...] = (22, 80, 443, 8000)
# Coolify's own "localhost" server logs in as root from its containers (Docker networks); see harden_sshd.
DOCKER_NETWORKS: tuple[str, ...] = ("10.0.0.0/8", "172.16.0.0/12")
OUTSIDE_ADDRESS = "203.0.113.10"  # TEST-NET-3: "somebody on the internet", for sshd -T -C
GIB = 1024**3
APT_OPTS = (
    "-y -q -o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold"
)


Row = tuple[str, bool, str, str]  # a verification row: (check, ok, detail, hint)


class RemoteCommandFailed(RuntimeError):
    def __init__(self, command: str, exited: int, stdout: str, stderr: str):
        self.command, self.exited, self.stdout, self.stderr = command, exited, stdout, stderr
        tail = (stderr or stdout).strip().splitlines()[-8:]
        super().__init__(f"`{command}` exited {exited}: " + " | ".join(tail))


@dataclass
class Output:
    stdout: str
    stderr: str
    exited: int

    @property
    def ok(self) -> bool:
        return self.exited == 0


@dataclass
class Remote:
    """An SSH session on the server that runs commands as root (directly, or through ``sudo -n``)."""

    conn: Any  # fabric.Connection
    user: str
    host: str
    port: int

    @property
    def is_root(self) -> bool:
        return self.user == "root"

    def run(self, command: str, check: bool = True, timeout: float = 300) -> Output:
        wrapped = command if self.is_root else f"sudo -n sh -c {shlex.quote(command)}"
        result = self.conn.run(wrapped, hide=True, warn=True, in_stream=False, timeout=timeout)
        if result.exited == -1:  # no exit status came back: not the command's answer, the connection's end
            self.conn.close()  # the next command opens a new connection
            raise ssh.SSHConnectionLost(
                f"the SSH connection to {self.host}:{self.port} ended while `{command[:80]}` ran, before it "
                "said how it exited. Next step: run the task again (every step looks before it changes); if "
                "connections keep dropping, check the network path and the server's sshd (journalctl -u ssh)"
            )
        out = Output(result.stdout, result.stderr, result.exited)
        if check and not out.ok:
            raise RemoteCommandFailed(command, out.exited, out.stdout, out.stderr)
        return out

    def read_file(self, path: str) -> str | None:
        out = self.run(f"cat {shlex.quote(path)}", check=False)
        return out.stdout if out.ok else None

    def write_file(
        self,
        path: str,
        content: str,
        mode: str = "644",
        owner: str = "root",
        group: str | None = None,
        validate: str | None = None,
    ) -> None:
        """Write ``content`` atomically-enough (temp file + ``install``); ``validate`` checks the temp first.

        ``validate`` is a command with ``{}`` for the temp file's path (e.g. ``visudo -cf {}``).
        """
        payload = base64.b64encode(content.encode()).decode()
        check = validate.format('"$t"') + " && " if validate else ""
        self.run(
            f'set -e; t=$(mktemp); trap \'rm -f "$t"\' EXIT; printf %s {payload} | base64 -d > "$t"; '
            f'{check}install -m {mode} -o {owner} -g {group or owner} "$t" {shlex.quote(path)}'
        )

    def client_address(self) -> str:
        """The address this session comes from, as the server sees it (``$SSH_CLIENT``; not through sudo,
        which resets the environment)."""
        out = self.conn.run("echo $SSH_CLIENT", hide=True, warn=True, in_stream=False)
        return out.stdout.split()[0] if out.ok and out.stdout.split() else ""

    def close(self) -> None:
        self.conn.close()


def connect_admin(
    host: str,
    port: int,
    admin_user: str,
    key_path: Path | str | None = None,
    ssh_dir: Path | str | None = None,
    timeout: float = ssh.CONNECT_TIMEOUT,
) -> Remote:
    """Log in as ``admin_user`` (after 2.4) or, while it cannot log in yet, as root (a fresh droplet)."""
    check_username(admin_user)
    user = ssh.first_login_user(host, port, [admin_user, "root"], key_path, ssh_dir, timeout)
    conn = ssh.connect(host, port, user, key_path, ssh_dir, timeout)
    remote = Remote(conn, user, host, int(port))
    if not remote.is_root:
        probe = conn.run("sudo -n true", hide=True, warn=True, in_stream=False)
        if not probe.ok:
            conn.close()
            raise ssh.SSHError(
                f"{user} logs in to {host}:{port} but cannot run sudo without a password. Next step: as root "
                f"(droplet console), add `{user} ALL=(ALL) NOPASSWD:ALL` to {SUDOERS_FILE.format(user=user)} "
                "with visudo, then run the task again."
            )
    return remote


def check_username(user: str) -> str:
    if user == "root":
        raise ValueError(
            "admin_user must not be root: the point is a non-root user (root login is turned off)"
        )
    if not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", user):
        raise ValueError(
            f"admin_user {user!r} is not a valid Linux user name: lower-case letters, digits, "
            "'_' and '-', starting with a letter or '_', at most 32 characters"
        )
    return user


# ----------------------------------------------------------------------------------------- OS, apt


def os_release(remote: Remote) -> dict[str, str]:
    text = remote.read_file("/etc/os-release") or ""
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line)
    return {k: v.strip().strip('"') for k, v in pairs}


def check_os(remote: Remote) -> StepResult:
    info = os_release(remote)
    name = "operating system"
    family = {info.get("ID", "")} | set(info.get("ID_LIKE", "").split())
    if family & {"ubuntu", "debian"}:
        return ok(name, info.get("PRETTY_NAME", info.get("ID", "?")))
    return failed(
        name,
        f"{info.get('PRETTY_NAME', 'unknown')} is not supported: these steps need an apt-based "
        "system with systemd (create the droplet from an Ubuntu LTS image)",
    )


def installed_packages(remote: Remote, packages: Iterable[str]) -> set[str]:
    names = " ".join(shlex.quote(p) for p in packages)
    out = remote.run(f"dpkg-query -W -f='${{Package}} ${{Status}}\\n' {names} 2>/dev/null", check=False)
    return {line.split()[0] for line in out.stdout.splitlines() if line.endswith("install ok installed")}


def apt_install(remote: Remote, packages: list[str]) -> None:
    """``apt-get install`` (waiting for the dpkg lock); refresh the lists and retry when they are stale."""
    env = "DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=a"
    names = " ".join(shlex.quote(p) for p in packages)
    lists = remote.run("ls /var/lib/apt/lists/ | grep -c '_Packages$' || true", check=False).stdout.strip()
    if lists in ("", "0"):
        remote.run(f"{env} apt-get update -q -o DPkg::Lock::Timeout=300", timeout=600)
    out = remote.run(f"{env} apt-get install {APT_OPTS} {names}", check=False, timeout=900)
    if out.ok:
        return
    stale = re.search(
        r"Unable to locate package|no installation candidate|Failed to fetch|404\s+Not Found",
        out.stdout + out.stderr,
    )
    if not stale:
        raise RemoteCommandFailed(f"apt-get install {names}", out.exited, out.stdout, out.stderr)
    remote.run(f"{env} apt-get update -q -o DPkg::Lock::Timeout=300", timeout=600)
    remote.run(f"{env} apt-get install {APT_OPTS} {names}", timeout=900)


def has_command(remote: Remote, command: str) -> bool:
    return remote.run(f"command -v {shlex.quote(command)}", check=False).ok


def not_installed(name: str, package: str, plan: str, dry_run: bool) -> StepResult:
    """A step whose tool is missing: in a dry run the package step would install it first."""
    if dry_run:
        return changed(name, f"would {plan} (once {package} is installed)", dry_run=True)
    return failed(name, f"{package} is not installed; the packages step installs it: run the task again")


def ensure_packages(remote: Remote, packages: Iterable[str] = PACKAGES, dry_run: bool = False) -> StepResult:
    wanted = list(packages)
    name = "packages " + ", ".join(wanted)
    missing = [p for p in wanted if p not in installed_packages(remote, wanted)]
    if not missing:
        return ok(name, "all installed")
    if dry_run:
        return changed(name, "would install " + ", ".join(missing), dry_run=True)
    try:
        apt_install(remote, missing)
    except RemoteCommandFailed as exc:
        return failed(
            name, f"{exc}. Next step: run `sudo apt-get update` on the server and check its network"
        )
    still = [p for p in missing if p not in installed_packages(remote, missing)]
    if still:
        return failed(name, f"apt-get finished but {', '.join(still)} is not installed")
    return changed(name, "installed " + ", ".join(missing))


# ------------------------------------------------------------------------------------- admin user


def _key_blobs(text: str) -> set[str]:
    blobs = set()
    for line in text.splitlines():
        parts = line.split()
        for i, part in enumerate(parts[:-1]):
            if part.startswith(("ssh-", "ecdsa-", "sk-")):
                blobs.add(parts[i + 1])
                break
    return blobs


def user_exists(remote: Remote, user: str) -> bool:
    return remote.run(f"id -u {shlex.quote(user)}", check=False).ok


def home_of(remote: Remote, user: str) -> str:
    entry = remote.run(f"getent passwd {shlex.quote(user)}").stdout.strip()
    return entry.split(":")[5]


def sudoers_line(user: str) -> str:
    return (
        f"# Managed by the runbook (task 2.4): {user} administers the server with its SSH key;\n"
        f"# it has no password, so sudo must not ask for one.\n{user} ALL=(ALL) NOPASSWD:ALL\n"
    )


def ensure_admin_user(remote: Remote, user: str, public_key: str, dry_run: bool = False) -> StepResult:
    """A non-root user in the ``sudo`` group, passwordless sudo, and ``public_key`` in its authorized_keys."""
    check_username(user)
    name = f"admin user {user}"
    done: list[str] = []
    q = shlex.quote(user)
    exists = user_exists(remote, user)
    if not exists:
        done.append("create the user (home, bash, no password)")
        if not dry_run:
            remote.run(f"useradd --create-home --shell /bin/bash --user-group {q} && usermod -p '*' {q}")
    groups = remote.run(f"id -nG {q}", check=False).stdout.split() if exists else []
    if "sudo" not in groups:
        done.append("add to the sudo group")
        if not dry_run:
            remote.run(f"usermod -aG sudo {q}")
    sudoers = SUDOERS_FILE.format(user=user)
    if remote.read_file(sudoers) != sudoers_line(user):
        done.append(f"passwordless sudo in {sudoers}")
        if not dry_run:
            remote.write_file(sudoers, sudoers_line(user), mode="440", validate="visudo -cf {}")
    blob = public_key.split()[1] if len(public_key.split()) > 1 else ""
    if not blob:
        return failed(name, "the public key is empty or malformed; run task 2.3 (it creates the key pair)")
    home = home_of(remote, user) if exists or not dry_run else f"/home/{user}"
    authorized = f"{home}/.ssh/authorized_keys"
    current = (remote.read_file(authorized) or "") if exists or not dry_run else ""
    perms = (
        remote.run(
            f"stat -c '%a %U' {shlex.quote(home)}/.ssh {shlex.quote(authorized)}", check=False
        ).stdout.split()
        if exists
        else []
    )
    if blob not in _key_blobs(current) or perms != ["700", user, "600", user]:
        done.append(f"install the key in {authorized}")
        if not dry_run:
            remote.run(f"install -d -m 700 -o {q} -g {q} {shlex.quote(home)}/.ssh")
            content = (
                current
                if blob in _key_blobs(current)
                else (
                    current
                    + ("\n" if current and not current.endswith("\n") else "")
                    + public_key.strip()
                    + "\n"
                )
            )
            remote.write_file(authorized, content, mode="600", owner=user)
    if not done:
        return ok(name, "exists, in sudo, passwordless sudo, key installed")
    return changed(name, "; ".join(done), dry_run=dry_run)


def check_admin_login(
    host: str, port: int, user: str, key_path: Path | str | None = None, ssh_dir: Path | str | None = None
) -> tuple[bool, str]:
    """A *new* connection as ``user`` works and ``sudo -n true`` succeeds there."""
    try:
        conn = ssh.connect(host, port, user, key_path, ssh_dir)
    except ssh.SSHError as exc:
        return False, str(exc)
    try:
        probe = conn.run("sudo -n true", hide=True, warn=True, in_stream=False)
        return (
            (True, "new login and sudo work") if probe.ok else (False, f"sudo failed: {probe.stderr.strip()}")
        )
    finally:
        conn.close()


def verify_admin_login(
    host: str,
    port: int,
    user: str,
    key_path: Path | str | None = None,
    ssh_dir: Path | str | None = None,
    dry_run: bool = False,
    remote: Remote | None = None,
) -> StepResult:
    name = f"new SSH login as {user} with sudo"
    if dry_run and remote is not None and not user_exists(remote, user):
        return skipped(name, "dry run: the user does not exist yet")
    good, detail = check_admin_login(host, port, user, key_path, ssh_dir)
    return ok(name, detail) if good else failed(name, detail)


def admin_rows(state: ServerState, admin_user: str) -> list[Row]:
    """The verification rows of :func:`ensure_admin_user`."""
    return [
        (f"id {admin_user}", state.admin_id.startswith("uid="), state.admin_id, "run the admin user step"),
        (
            f"{admin_user} is in group sudo",
            "sudo" in state.admin_groups,
            " ".join(state.admin_groups),
            f"usermod -aG sudo {admin_user}",
        ),
        (
            f"{admin_user} has passwordless sudo",
            "NOPASSWD: ALL" in state.admin_sudo,
            "NOPASSWD: ALL" if "NOPASSWD: ALL" in state.admin_sudo else state.admin_sudo.strip()[-80:],
            f"check {SUDOERS_FILE.format(user=admin_user)}",
        ),
        (
            f"{admin_user}'s authorized_keys holds the runbook key",
            state.admin_has_key,
            "",
            "run the admin user step",
        ),
    ]


# ------------------------------------------------------------------------------------------- sshd


def sshd_dropin(root_login_from: Iterable[str] = ()) -> str:
    lines = [
        "# Managed by the runbook (task 2.4): SSH hardening.",
        "# sshd keeps the first value it reads for a setting; sshd_config includes sshd_config.d/*.conf",
        "# at its top, in name order, so this 01- file wins over cloud-init's 50-cloud-init.conf and the",
        "# main file.",
        "PermitRootLogin no",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitEmptyPasswords no",
        "PubkeyAuthentication yes",
        "X11Forwarding no",
    ]
    cidrs = [c.strip() for c in root_login_from if c.strip()]
    if cidrs:
        lines += [
            "",
            '# Coolify\'s own "localhost" server logs in as root, with its key, from its Docker networks;',
            "# root stays refused from everywhere else.",
            f"Match Address {','.join(cidrs)}",
            "    PermitRootLogin prohibit-password",
            "Match all",
        ]
    return "\n".join(lines) + "\n"


def sshd_effective(remote: Remote, user: str = "root", addr: str = OUTSIDE_ADDRESS) -> dict[str, str]:
    """``sshd -T`` for a connection by ``user`` from ``addr`` (Match blocks evaluated): keyword → value."""
    spec = f"user={user},host={addr},addr={addr}"
    out = remote.run(f"sshd -T -C {shlex.quote(spec)}")
    values: dict[str, str] = {}
    for line in out.stdout.splitlines():
        key, _, value = line.partition(" ")
        values.setdefault(key.lower(), value.strip())
    return values


def _reload_sshd(remote: Remote) -> None:
    remote.run(
        "systemctl reload-or-restart ssh.service 2>/dev/null || systemctl reload-or-restart sshd.service"
    )


def harden_sshd(
    remote: Remote,
    admin_user: str,
    key_path: Path | str | None = None,
    ssh_dir: Path | str | None = None,
    root_login_from: Iterable[str] = (),
    dry_run: bool = False,
    settle: float = 1.0,
) -> StepResult:
    """No root login, no passwords: a drop-in in ``/etc/ssh/sshd_config.d/``, validated, then reloaded."""
    name = f"sshd hardening ({SSHD_DROPIN})"
    content = sshd_dropin(root_login_from)
    current = remote.read_file(SSHD_DROPIN)
    if current == content:
        return ok(name, "in place")
    diff = "".join(
        difflib.unified_diff(
            (current or "").splitlines(True), content.splitlines(True), SSHD_DROPIN, SSHD_DROPIN
        )
    )
    included = remote.run(
        r"grep -Eiq '^\s*Include\s+/etc/ssh/sshd_config\.d/\*\.conf' /etc/ssh/sshd_config", check=False
    )
    if not included.ok:
        return failed(
            name,
            "/etc/ssh/sshd_config does not include /etc/ssh/sshd_config.d/*.conf (OpenSSH "
            "older than 8.2?). Next step: add `Include /etc/ssh/sshd_config.d/*.conf` at its top",
        )
    if dry_run:
        return changed(name, "would turn off root and password logins", diff, dry_run=True)
    good, detail = check_admin_login(remote.host, remote.port, admin_user, key_path, ssh_dir)
    if not good:
        return failed(
            name,
            f"refusing to turn root login off: a new login as {admin_user} with sudo does not "
            f"work yet ({detail}). Next step: fix the admin user step above first",
        )
    remote.write_file(SSHD_DROPIN, content)

    def rollback() -> None:
        if current is None:
            remote.run(f"rm -f {SSHD_DROPIN}")
        else:
            remote.write_file(SSHD_DROPIN, current)

    test = remote.run("sshd -t", check=False)
    if not test.ok:
        rollback()
        return failed(
            name,
            f"`sshd -t` rejected the configuration, nothing was reloaded (rolled back): "
            f"{(test.stderr or test.stdout).strip()}",
        )
    _reload_sshd(remote)
    time.sleep(settle)
    good, detail = check_admin_login(remote.host, remote.port, admin_user, key_path, ssh_dir)
    if not good:
        rollback()
        _reload_sshd(remote)
        return failed(
            name,
            f"after the reload a new login as {admin_user} failed ({detail}); the change was "
            "rolled back and sshd reloaded. Next step: read `journalctl -u ssh` on the server",
        )
    return changed(name, "root and password logins off; a new login as " + admin_user + " still works", diff)


def sshd_rows(state: ServerState, root_login_refused: bool | None = None) -> list[Row]:
    """The verification rows of :func:`harden_sshd`: what ``sshd -T`` and a real login say."""
    root = state.sshd_outside_root
    rows: list[Row] = [
        (
            "sshd -T: PermitRootLogin no (from the internet)",
            root.get("permitrootlogin") == "no",
            root.get("permitrootlogin", "?"),
            f"another file in sshd_config.d wins over {SSHD_DROPIN}?",
        )
    ]
    for key in ("passwordauthentication", "kbdinteractiveauthentication"):
        rows.append(
            (
                f"sshd -T: {key} no",
                state.sshd_outside_admin.get(key) == "no",
                state.sshd_outside_admin.get(key, "?"),
                "run the sshd hardening step again",
            )
        )
    rows.append(
        (
            "the server offers only publickey authentication",
            state.auth_methods == ["publickey"],
            ", ".join(state.auth_methods) or "?",
            "PasswordAuthentication/KbdInteractive still on",
        )
    )
    if root_login_refused is not None:
        rows.append(
            (
                "a real root login is refused",
                root_login_refused,
                "refused" if root_login_refused else "root logged in",
                "sshd was not reloaded?",
            )
        )
    return rows


# -------------------------------------------------------------------------------------------- ufw


@dataclass
class UfwStatus:
    active: bool
    incoming: str = ""
    outgoing: str = ""
    rules: list[tuple[str, str, str]] = field(default_factory=list)  # (to, action, from)

    def allows(self, port: int, proto: str = "tcp") -> bool:
        """An IPv4 ``ALLOW IN`` rule from anywhere for ``port`` (ufw adds the v6 twin with it)."""
        return any(
            to in (f"{port}/{proto}", str(port)) and action in ("ALLOW", "ALLOW IN") and frm == "Anywhere"
            for to, action, frm in self.rules
        )


_RULE = re.compile(
    r"^(?P<to>\S+(?: \(v6\))?)\s{2,}(?P<action>(?:ALLOW|DENY|REJECT|LIMIT)(?: (?:IN|OUT|FWD))?)"
    r"\s{2,}(?P<frm>.+?)\s*$"
)


def parse_ufw_status(text: str) -> UfwStatus:
    """Parse ``ufw status verbose``."""
    active = bool(re.search(r"^Status:\s+active\b", text, re.M))
    status = UfwStatus(active=active)
    m = re.search(r"^Default:\s*(.+)$", text, re.M)
    if m:
        for part in m.group(1).split(","):
            pm = re.match(r"\s*(\w+)\s+\((\w+)\)", part)
            if pm and pm.group(2) == "incoming":
                status.incoming = pm.group(1)
            elif pm and pm.group(2) == "outgoing":
                status.outgoing = pm.group(1)
    seen_header = False
    for line in text.splitlines():
        if re.match(r"^--\s+", line):
            seen_header = True
            continue
        if seen_header and line.strip():
            rm = _RULE.match(line)
            if rm:
                status.rules.append((rm.group("to"), rm.group("action"), rm.group("frm")))
    return status


def sshd_ports(remote: Remote) -> list[int]:
    out = remote.run("sshd -T", check=False).stdout
    return sorted(
        {
            int(v)
            for k, v in (ln.split(" ", 1) for ln in out.splitlines() if " " in ln)
            if k == "port" and v.strip().isdigit()
        }
    ) or [22]


def ensure_ufw(remote: Remote, ports: Iterable[int] = DEFAULT_PORTS, dry_run: bool = False) -> StepResult:
    """Deny incoming, allow outgoing, allow ``ports`` (and always sshd's own port), enabled."""
    wanted = sorted({int(p) for p in ports} | set(sshd_ports(remote)))
    name = "ufw firewall"
    if not has_command(remote, "ufw"):
        return not_installed(name, "ufw", f"deny incoming, allow {', '.join(map(str, wanted))}/tcp", dry_run)
    status = parse_ufw_status(remote.run("ufw status verbose").stdout)
    todo: list[tuple[str, str]] = []  # (description, command); the SSH port is allowed before enabling
    for port in wanted:
        if not status.allows(port):
            todo.append((f"allow {port}/tcp", f"ufw allow {port}/tcp"))
    if status.incoming != "deny":
        todo.append(("default deny incoming", "ufw default deny incoming"))
    if status.outgoing != "allow":
        todo.append(("default allow outgoing", "ufw default allow outgoing"))
    if not status.active:
        todo.append(("enable", "ufw --force enable"))
    if not todo:
        return ok(name, f"active; deny incoming; allows {', '.join(map(str, wanted))}/tcp")
    detail = "; ".join(d for d, _ in todo)
    if dry_run:
        return changed(name, "would " + detail, dry_run=True)
    for _, command in todo:
        remote.run(command)
    remote.run("systemctl enable ufw.service", check=False)
    return changed(name, detail)


def ufw_rows(state: ServerState, ports: Iterable[int] = DEFAULT_PORTS) -> list[Row]:
    """The verification rows of :func:`ensure_ufw`."""
    ufw = state.ufw
    rows: list[Row] = [
        ("ufw status: active", ufw.active, "active" if ufw.active else "inactive", "ufw --force enable"),
        (
            "ufw default: deny (incoming)",
            ufw.incoming == "deny",
            ufw.incoming or "?",
            "ufw default deny incoming",
        ),
    ]
    for port in ports:
        rows.append((f"ufw allows {port}/tcp", ufw.allows(int(port)), "", f"ufw allow {port}/tcp"))
    return rows


# --------------------------------------------------------------------------------------- fail2ban


# sshd's unit is ssh.service on Debian/Ubuntu; OpenSSH 9.8+ logs from "sshd-session" processes.
JOURNAL_MATCH = "_SYSTEMD_UNIT=ssh.service + _SYSTEMD_UNIT=sshd.service + _COMM=sshd + _COMM=sshd-session"


def fail2ban_jail(ignore_ip: Iterable[str] = ()) -> str:
    ignore = " ".join(["127.0.0.1/8", "::1", *[i for i in ignore_ip if i]])
    return (
        "\n".join(
            [
                "# Managed by the runbook (task 2.4): fail2ban's SSH jail.",
                "# backend = systemd reads sshd's failures from the journal, so the jail works with or",
                "# without a syslog daemon (Ubuntu droplets have rsyslog and /var/log/auth.log; Debian 12",
                "# minimal has neither); it needs python3-systemd. Bans go through ufw, configured here.",
                "[DEFAULT]",
                "backend = systemd",
                "banaction = ufw",
                "banaction_allports = ufw",
                f"ignoreip = {ignore}",
                "",
                "[sshd]",
                "enabled = true",
                "journalmatch = " + JOURNAL_MATCH,
                "maxretry = 5",
                "findtime = 10m",
                "bantime = 1h",
            ]
        )
        + "\n"
    )


def fail2ban_jails(remote: Remote) -> list[str]:
    out = remote.run("fail2ban-client status", check=False)
    m = re.search(r"Jail list:\s*(.*)$", out.stdout, re.M)
    return [j.strip() for j in m.group(1).split(",") if j.strip()] if (out.ok and m) else []


def ensure_fail2ban(
    remote: Remote,
    ignore_ip: Iterable[str] = (),
    ignore_self: bool = True,
    dry_run: bool = False,
    wait: float = 30,
) -> StepResult:
    """fail2ban running with an ``sshd`` jail on the systemd journal.

    ``ignore_self``: never ban the address this session comes from. The runbook's own checks make failed
    logins on purpose (a root login must be refused; the admin user is tried before it exists), and five
    of them within ten minutes would lock the operator out for an hour. If your address changes (a
    dynamic IP), run the task again from the new one.
    """
    name = "fail2ban (sshd jail)"
    if not has_command(remote, "fail2ban-client"):
        return not_installed(name, "fail2ban", f"write {FAIL2BAN_JAIL} and start fail2ban", dry_run)
    ignore = [*ignore_ip]
    me = remote.client_address() if ignore_self else ""
    if me and me not in ignore:
        ignore.append(me)
    content = fail2ban_jail(ignore)
    current = remote.read_file(FAIL2BAN_JAIL)
    active = remote.run("systemctl is-active fail2ban", check=False).stdout.strip() == "active"
    enabled = remote.run("systemctl is-enabled fail2ban", check=False).stdout.strip() == "enabled"
    jails = fail2ban_jails(remote) if active else []
    todo = []
    if current != content:
        todo.append(f"write {FAIL2BAN_JAIL}")
    if not enabled:
        todo.append("enable the service")
    if current != content or not active or "sshd" not in jails:
        todo.append("restart" if active else "start")
    if not todo:
        return ok(name, "running; jails: " + ", ".join(jails))
    diff = (
        "".join(
            difflib.unified_diff(
                (current or "").splitlines(True), content.splitlines(True), FAIL2BAN_JAIL, FAIL2BAN_JAIL
            )
        )
        if current != content
        else ""
    )
    if dry_run:
        return changed(name, "would " + "; ".join(todo), diff, dry_run=True)
    if current != content:
        remote.write_file(FAIL2BAN_JAIL, content)
        test = remote.run("fail2ban-client -t", check=False)
        if not test.ok:
            if current is None:
                remote.run(f"rm -f {FAIL2BAN_JAIL}")
            else:
                remote.write_file(FAIL2BAN_JAIL, current)
            return failed(
                name,
                f"`fail2ban-client -t` rejected the jail (rolled back): "
                f"{(test.stderr or test.stdout).strip()[-500:]}",
            )
    remote.run("systemctl enable fail2ban.service")
    remote.run("systemctl restart fail2ban.service", check=False)
    try:
        poll.poll(
            lambda: fail2ban_jails(remote),
            until=lambda jails: "sshd" in jails,
            timeout=wait,
            interval=1,
            what="fail2ban's sshd jail",
        )
    except poll.PollTimeout:
        log = remote.run("journalctl -u fail2ban -n 15 --no-pager", check=False).stdout.strip()
        return failed(name, f"fail2ban did not come up with its sshd jail within {wait:g} s: {log[-800:]}")
    return changed(name, "; ".join(todo), diff)


def fail2ban_rows(state: ServerState) -> list[Row]:
    """The verification rows of :func:`ensure_fail2ban`."""
    return [
        (
            "fail2ban is active",
            state.fail2ban_active == "active",
            state.fail2ban_active,
            "journalctl -u fail2ban",
        ),
        (
            "fail2ban has the sshd jail",
            "sshd" in state.fail2ban_jails,
            ", ".join(state.fail2ban_jails) or "no jails",
            f"check {FAIL2BAN_JAIL}",
        ),
    ]


# -------------------------------------------------------------------------------- unattended-upgrades

AUTO_UPGRADES_CONTENT = (
    "// Managed by the runbook (task 2.4): refresh the package lists and install security updates daily.\n"
    'APT::Periodic::Update-Package-Lists "1";\n'
    'APT::Periodic::Unattended-Upgrade "1";\n'
)
UPGRADE_TIMERS = ("apt-daily.timer", "apt-daily-upgrade.timer")


def apt_periodic(remote: Remote) -> dict[str, str]:
    out = remote.run("apt-config dump APT::Periodic", check=False).stdout
    values = {}
    for m in re.finditer(r'^APT::Periodic::([\w-]+)\s+"([^"]*)";', out, re.M):
        values[m.group(1)] = m.group(2)
    return values


def ensure_unattended_upgrades(remote: Remote, dry_run: bool = False) -> StepResult:
    name = "unattended-upgrades (daily security updates)"
    periodic = apt_periodic(remote)
    todo = []
    if periodic.get("Update-Package-Lists") != "1" or periodic.get("Unattended-Upgrade") != "1":
        todo.append(f"write {AUTO_UPGRADES}")
    timers = remote.run(f"systemctl is-enabled {' '.join(UPGRADE_TIMERS)}", check=False).stdout.split()
    if timers != ["enabled"] * len(UPGRADE_TIMERS):
        todo.append("enable the apt timers")
    if not todo:
        return ok(name, "APT::Periodic on, apt-daily(-upgrade) timers enabled")
    if dry_run:
        return changed(name, "would " + "; ".join(todo), dry_run=True)
    if todo[0].startswith("write"):
        remote.write_file(AUTO_UPGRADES, AUTO_UPGRADES_CONTENT)
    remote.run(f"systemctl enable --now {' '.join(UPGRADE_TIMERS)}")
    return changed(name, "; ".join(todo))


def upgrade_rows(state: ServerState) -> list[Row]:
    """The verification rows of :func:`ensure_unattended_upgrades`."""
    p = state.apt_periodic
    return [
        (
            "unattended upgrades on (APT::Periodic)",
            p.get("Update-Package-Lists") == "1" and p.get("Unattended-Upgrade") == "1",
            f"lists {p.get('Update-Package-Lists', '?')}, upgrade {p.get('Unattended-Upgrade', '?')}",
            f"check {AUTO_UPGRADES}",
        ),
        (
            "apt timers enabled",
            state.timers == ["enabled"] * len(UPGRADE_TIMERS),
            " ".join(state.timers),
            "systemctl enable --now apt-daily-upgrade.timer",
        ),
    ]


# ------------------------------------------------------------------------------------------- swap


def parse_size(text: str) -> int:
    """``2G``, ``512M``, ``1.5G``, ``2GiB`` or plain bytes → bytes."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", text, re.I)
    if not m:
        raise ValueError(f"swap size {text!r}: use 'auto' or a size such as 2G or 512M")
    unit = {"": 1, "K": 1024, "M": 1024**2, "G": GIB, "T": 1024**4}[m.group(2).upper()]
    return int(float(m.group(1)) * unit)


def swap_size_for(ram_bytes: int) -> int:
    """Swap sized for the droplet: as much as the RAM, at least 2 GiB, at most 4 GiB (whole GiB).

    1 GiB droplet → 2 GiB; 2 GiB → 2 GiB; 4 GiB → 4 GiB; 8 GiB and more → 4 GiB. Coolify builds images on
    the server, and builds are what run a small droplet out of memory.
    """
    return int(min(max(math.ceil(ram_bytes / GIB), 2), 4)) * GIB


def _human(n: int) -> str:
    return f"{n / GIB:g} GiB" if n % (GIB // 4) == 0 else f"{n / 1024**2:.0f} MiB"


def active_swaps(remote: Remote) -> list[tuple[str, int]]:
    out = remote.run("swapon --show=NAME,SIZE --bytes --noheadings", check=False).stdout
    rows = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1].isdigit():
            rows.append((parts[0], int(parts[1])))
    return rows


UNSWAPPABLE_FS = ("overlay", "tmpfs", "ramfs", "nfs", "nfs4", "cifs", "fuse", "squashfs")


def no_swap_wanted(size: str) -> bool:
    """``RUNBOOK_SWAP_SIZE=0`` (or ``0G``...): the operator wants no swap file."""
    return size.strip().lower() != "auto" and parse_size(size) == 0


def ensure_swap(
    remote: Remote,
    size: str = "auto",
    path: str = "/swapfile",
    swappiness: int = 10,
    dry_run: bool = False,
) -> StepResult:
    """A swap file at ``path`` (``size`` ``auto`` = :func:`swap_size_for` the RAM), in fstab, low swappiness.

    An existing active swap (a device or another file) counts as done. ``size`` 0 means no swap: the step
    is skipped, and says so. A folder whose filesystem takes no swap file (overlayfs, tmpfs, NFS...) is a
    failure that names another ``path`` to choose.
    """
    name = f"swap file {path}"
    if no_swap_wanted(size):
        return skipped(name, f"swap_size is {size}: no swap file wanted")
    swaps = active_swaps(remote)
    mine = [s for s in swaps if s[0] == path]
    if mine:
        return ok(name, f"active, {_human(mine[0][1])}")
    if swaps:
        return ok(name, "swap already active: " + ", ".join(f"{n} {_human(b)}" for n, b in swaps))
    folder = path.rsplit("/", 1)[0] or "/"
    fstype = remote.run(f"findmnt -no FSTYPE -T {shlex.quote(folder)}", check=False).stdout.strip()
    if fstype in UNSWAPPABLE_FS:
        return failed(
            name,
            f"swap cannot be enabled on {fstype}. Next step: pass a swap_path on a disk filesystem (ext4, "
            "xfs), or swap_size 0 for no swap",
        )
    meminfo = remote.run("grep MemTotal /proc/meminfo").stdout.split()
    ram = int(meminfo[1]) * 1024
    want = swap_size_for(ram) if size.strip().lower() == "auto" else parse_size(size)
    free = int(remote.run(f"df --output=avail -B1 {shlex.quote(folder)} | tail -1").stdout.strip())
    exists = remote.run(f"test -f {shlex.quote(path)}", check=False).ok
    have = int(remote.run(f"stat -c %s {shlex.quote(path)}").stdout.strip()) if exists else 0
    if have != want and free + have < want + GIB:
        return failed(
            name,
            f"{_human(want)} of swap needs {_human(want + GIB)} free on {folder}, "
            f"there is {_human(free)}. Next step: pass a smaller swap_size",
        )
    detail = f"{_human(want)} for {_human(ram)} of RAM, swappiness {swappiness}"
    if dry_run:
        return changed(name, "would create " + detail, dry_run=True)
    q = shlex.quote(path)
    if have != want:
        remote.run(
            f"rm -f {q}; fallocate -l {want} {q} || dd if=/dev/zero of={q} bs=1M count={want // 1024**2}",
            timeout=900,
        )
    remote.run(f"chmod 600 {q} && mkswap {q} >/dev/null && swapon {q}")
    remote.run(f"grep -qE '^{re.escape(path)}\\s' /etc/fstab || echo '{path} none swap sw 0 0' >> /etc/fstab")
    remote.write_file(SWAP_SYSCTL, f"# Managed by the runbook (task 2.4)\nvm.swappiness = {swappiness}\n")
    remote.run(f"sysctl -p {SWAP_SYSCTL}", check=False)
    return changed(name, "created " + detail)


def swap_rows(state: ServerState, size: str = "auto", path: str = "/swapfile") -> list[Row]:
    """The verification rows of :func:`ensure_swap`: a swap is active, or (size 0) the file is not."""
    shown = ", ".join(f"{n} {_human(b)}" for n, b in state.swaps) or "no swap"
    if no_swap_wanted(size):
        mine = [n for n, _ in state.swaps if n == path]
        return [(f"no swap file at {path} (swap_size {size})", not mine, shown, f"swapoff {path}")]
    return [("swapon --show: swap active", bool(state.swaps), shown, "run the swap step")]


# --------------------------------------------------------------------------------------- timezone


UTC_NAMES = frozenset({"UTC", "Etc/UTC", "Etc/Universal", "Universal", "Etc/Zulu", "Zulu", "UCT", "Etc/UCT"})


def same_timezone(a: str, b: str) -> bool:
    """Equal names, or two names of UTC (Ubuntu says Etc/UTC, people say UTC)."""
    return a == b or (a in UTC_NAMES and b in UTC_NAMES)


def current_timezone(remote: Remote) -> str:
    out = remote.run("timedatectl show -p Timezone --value", check=False)
    if out.ok and out.stdout.strip():
        return out.stdout.strip()
    link = remote.run("readlink -f /etc/localtime", check=False).stdout.strip()
    return link.split("/zoneinfo/", 1)[1] if "/zoneinfo/" in link else ""


def ensure_timezone(remote: Remote, timezone: str = "Etc/UTC", dry_run: bool = False) -> StepResult:
    name = f"timezone {timezone}"
    if not re.fullmatch(r"[A-Za-z0-9_+-]+(?:/[A-Za-z0-9_+-]+)*", timezone):
        return failed(
            name, "not a timezone name; use one like UTC or Europe/Berlin (`timedatectl list-timezones`)"
        )
    if not remote.run(f"test -f /usr/share/zoneinfo/{timezone}", check=False).ok:
        return failed(name, f"the server knows no timezone {timezone!r}; see `timedatectl list-timezones`")
    now = current_timezone(remote)
    etc_tz = remote.read_file("/etc/timezone")
    stale_file = etc_tz is not None and not same_timezone(etc_tz.strip(), timezone)
    if same_timezone(now, timezone) and not stale_file:
        return ok(name, "set")
    if dry_run:
        return changed(name, f"would change {now or '?'} → {timezone}", dry_run=True)
    if (
        not same_timezone(now, timezone)
        and not remote.run(f"timedatectl set-timezone {timezone}", check=False).ok
    ):
        remote.run(f"ln -sf /usr/share/zoneinfo/{timezone} /etc/localtime")
    if etc_tz is not None:
        remote.write_file("/etc/timezone", timezone + "\n")
    return changed(name, f"{now or '?'} → {timezone}")


def timezone_rows(state: ServerState, timezone: str = "Etc/UTC") -> list[Row]:
    """The verification rows of :func:`ensure_timezone`."""
    tz_ok = same_timezone(state.timezone, timezone) and (
        state.etc_timezone is None or same_timezone(state.etc_timezone, timezone)
    )
    return [
        (
            f"timezone {timezone}",
            tz_ok,
            state.timezone + (f" (/etc/timezone {state.etc_timezone})" if state.etc_timezone else ""),
            f"timedatectl set-timezone {timezone}",
        )
    ]


# ------------------------------------------------------------------------------------ the whole set


@dataclass(frozen=True)
class Settings:
    """What task 2.4 makes of the server (the notebook's parameters, parsed and checked)."""

    admin_user: str = "deploy"
    ports: tuple[int, ...] = DEFAULT_PORTS
    timezone: str = "Etc/UTC"
    swap_size: str = "auto"
    swap_path: str = "/swapfile"
    root_login_from: tuple[str, ...] = ()
    fail2ban_ignore: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_username(self.admin_user)
        for port in self.ports:
            if not 0 < int(port) < 65536:
                raise ValueError(f"port {port} is not a TCP port (1-65535)")
        for cidr in (*self.root_login_from, *self.fail2ban_ignore):
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ValueError(f"{cidr!r} is not an address or network such as 172.16.0.0/12") from None
        if self.swap_size.strip().lower() != "auto":
            parse_size(self.swap_size)  # 0: no swap
        if not self.swap_path.startswith("/"):
            raise ValueError(f"swap_path {self.swap_path!r} must be an absolute path such as /swapfile")

    @classmethod
    def from_params(
        cls,
        *,
        allowed_ports: str = "22,80,443,8000",
        root_login_from: str = "",
        fail2ban_ignore: str = "",
        **kwargs: Any,
    ) -> Settings:
        """From the notebook's strings: ``"22,80,443"``, ``"10.0.0.0/8,172.16.0.0/12"``."""

        def items(text: str) -> tuple[str, ...]:
            return tuple(x.strip() for x in text.split(",") if x.strip())

        try:
            ports = tuple(int(p) for p in items(allowed_ports))
        except ValueError:
            raise ValueError(
                f"allowed_ports {allowed_ports!r}: use port numbers such as 22,80,443,8000"
            ) from None
        return cls(
            ports=ports,
            root_login_from=items(root_login_from),
            fail2ban_ignore=items(fail2ban_ignore),
            **kwargs,
        )

    def rows(self) -> list[tuple[str, str]]:
        return [
            ("admin user", self.admin_user),
            ("ufw ports", ", ".join(map(str, self.ports))),
            ("timezone", self.timezone),
            ("swap", f"{self.swap_size} at {self.swap_path}"),
            ("root login from", ", ".join(self.root_login_from) or "nowhere"),
        ]


def setup_steps(
    remote: Remote, target: ssh.Target, settings: Settings, public_key: str, dry_run: bool = False
) -> list[StepResult]:
    """Every step in a safe order; stops at the first failed one (later steps depend on it)."""
    s, key, sdir = settings, target.key_path, target.ssh_dir
    plan: list[tuple[str, Callable[[], StepResult]]] = [
        ("operating system", lambda: check_os(remote)),
        ("packages", lambda: ensure_packages(remote, PACKAGES, dry_run)),
        (f"admin user {s.admin_user}", lambda: ensure_admin_user(remote, s.admin_user, public_key, dry_run)),
        (
            "admin login",
            lambda: verify_admin_login(remote.host, remote.port, s.admin_user, key, sdir, dry_run, remote),
        ),
        ("sshd hardening", lambda: harden_sshd(remote, s.admin_user, key, sdir, s.root_login_from, dry_run)),
        ("ufw firewall", lambda: ensure_ufw(remote, s.ports, dry_run)),
        ("fail2ban", lambda: ensure_fail2ban(remote, s.fail2ban_ignore, dry_run=dry_run)),
        ("unattended-upgrades", lambda: ensure_unattended_upgrades(remote, dry_run)),
        (
            "swap",
            lambda: ensure_swap(remote, s.swap_size, s.swap_path, dry_run=dry_run),
        ),
        ("timezone", lambda: ensure_timezone(remote, s.timezone, dry_run)),
    ]
    results: list[StepResult] = []
    for name, step in plan:
        try:
            result = step()
        except (RemoteCommandFailed, ValueError) as exc:
            result = failed(name, str(exc))
        results.append(result)
        if result.status == "failed":
            break
    return results


# ----------------------------------------------------------------------------------- verification


@dataclass
class ServerState:
    """The server's real state, re-read for the verification (not the steps' exit codes)."""

    sshd_outside_root: dict[str, str]  # sshd -T for root from an internet address
    sshd_outside_admin: dict[str, str]
    ufw: UfwStatus
    ufw_raw: str
    swaps: list[tuple[str, int]]
    root_fstype: str
    admin_id: str
    admin_groups: list[str]
    admin_sudo: str
    admin_has_key: bool
    fail2ban_active: str
    fail2ban_jails: list[str]
    timezone: str
    etc_timezone: str | None
    apt_periodic: dict[str, str]
    timers: list[str]
    auth_methods: list[str]


def read_state(remote: Remote, admin_user: str, public_key: str) -> ServerState:
    q = shlex.quote(admin_user)
    ufw_raw = remote.run("ufw status verbose", check=False).stdout
    id_out = remote.run(f"id {q}", check=False)
    authorized = ""
    if id_out.ok:
        authorized = remote.read_file(f"{home_of(remote, admin_user)}/.ssh/authorized_keys") or ""
    blob = public_key.split()[1] if len(public_key.split()) > 1 else "-"
    timers = remote.run(f"systemctl is-enabled {' '.join(UPGRADE_TIMERS)}", check=False).stdout.split()
    return ServerState(
        sshd_outside_root=sshd_effective(remote, "root"),
        sshd_outside_admin=sshd_effective(remote, admin_user),
        ufw=parse_ufw_status(ufw_raw),
        ufw_raw=ufw_raw,
        swaps=active_swaps(remote),
        root_fstype=remote.run("findmnt -no FSTYPE /", check=False).stdout.strip(),
        admin_id=id_out.stdout.strip() if id_out.ok else (id_out.stderr.strip() or "no such user"),
        admin_groups=remote.run(f"id -nG {q}", check=False).stdout.split(),
        admin_sudo=remote.run(f"sudo -l -U {q}", check=False).stdout,
        admin_has_key=blob in _key_blobs(authorized),
        fail2ban_active=remote.run("systemctl is-active fail2ban", check=False).stdout.strip(),
        fail2ban_jails=fail2ban_jails(remote),
        timezone=current_timezone(remote),
        etc_timezone=(remote.read_file("/etc/timezone") or "").strip() or None,
        apt_periodic=apt_periodic(remote),
        timers=timers,
        auth_methods=ssh.offered_auth_methods(remote.host, remote.port, admin_user),
    )


def checks(
    state: ServerState,
    *,
    admin_user: str,
    ports: Iterable[int] = DEFAULT_PORTS,
    timezone: str = "Etc/UTC",
    swap_size: str = "auto",
    swap_path: str = "/swapfile",
    root_login_refused: bool | None = None,
) -> list[Row]:
    """The verification rows ``(check, ok, detail, hint)`` for the server's state, step by step."""
    return [
        *sshd_rows(state, root_login_refused),
        *admin_rows(state, admin_user),
        *ufw_rows(state, ports),
        *fail2ban_rows(state),
        *upgrade_rows(state),
        *swap_rows(state, swap_size, swap_path),
        *timezone_rows(state, timezone),
    ]


def check_state(check, state: ServerState, **kwargs: Any) -> None:
    """Record :func:`checks` on a :func:`helpers.core.checks.verify` checklist."""
    for name, good, detail, hint in checks(state, **kwargs):
        check(name, good, detail, hint=hint)


def ensure_ssh_alias(
    alias: str, target: ssh.Target, remote: Remote, admin_user: str, dry_run: bool = False
) -> StepResult:
    """Point the ``~/.ssh/config`` entry at the admin user, who logs in from now on (root no longer can).

    In a dry run the server is unchanged, so the entry keeps pointing at whoever logs in now.
    """
    user = admin_user if not dry_run or remote.user == admin_user else remote.user
    return ssh.ensure_config_entry(
        alias, target.host, target.port, user, target.key_path, target.ssh_dir, dry_run=dry_run
    )


def check_server(check, target: ssh.Target, settings: Settings, public_key: str) -> None:
    """Task 2.4's verification: a new connection as the admin user re-reads the server's real state."""
    remote = connect_admin(target.host, target.port, settings.admin_user, target.key_path, target.ssh_dir)
    try:
        check(
            f"a new login is as {settings.admin_user} (root no longer needed)",
            remote.user == settings.admin_user,
            remote.user,
            hint="the admin user step failed?",
        )
        state = read_state(remote, settings.admin_user, public_key)
    finally:
        remote.close()
    refused = None
    if not settings.root_login_from:
        refused = not ssh.login_works(target.host, target.port, "root", target.key_path, target.ssh_dir)
    check_state(
        check,
        state,
        admin_user=settings.admin_user,
        ports=settings.ports,
        timezone=settings.timezone,
        swap_size=settings.swap_size,
        swap_path=settings.swap_path,
        root_login_refused=refused,
    )
