"""The droplet stand-in: a container that behaves like a fresh DigitalOcean droplet, for rehearsals.

A real systemd (PID 1) and OpenSSH server run in a container from ``runbook-standin/droplet:bookworm``
(built by ``scripts/standins/build.sh droplet``; see ``scripts/standins/droplet/``). Port 22 is published
on ``127.0.0.1:<free port>``; root's ``authorized_keys`` holds the public keys given to
:func:`start_droplet` (cloud-init's job on a real droplet); the host keys are made on the container's
first boot, so every droplet has its own. Tasks 2.3 and 2.4 run their real commands there.

What works in the container on the project's machines (Debian 12 VM, cgroup v1, dockerd 20.10), found by
trying: systemd as PID 1 and journald, sshd (reload, ``sshd -T``), useradd/sudo, apt/dpkg (from the image's
apt cache, no network needed), ufw (the container's own netfilter tables), fail2ban with the systemd
backend, timedatectl. What does not: ``swapon`` on the overlay root filesystem ("Invalid argument") and
``sysctl vm.swappiness`` (read-only ``/proc/sys``); task 2.4 skips the swap step in rehearsal, explicitly.

``--privileged`` does not work on these machines; the flags in :data:`RUN_FLAGS` do.

Interface (kept stable for the DigitalOcean stand-in, which backs a created droplet with one of these):
:func:`start_droplet` ``(name, public_keys) -> (host, ssh_port)``, :func:`stop_droplet`,
:func:`droplet_status`.
"""

from __future__ import annotations

import io
import re
import socket
import subprocess
import tarfile
import time
from collections.abc import Iterable
from dataclasses import dataclass

from helpers.core import addresses
from helpers.core.paths import PROJECT_ROOT
from helpers.core.settings import env

IMAGE = "runbook-standin/droplet:bookworm"
PREFIX = "rb-droplet-"
LABEL = "runbook.standin"
BUILD_SCRIPT = PROJECT_ROOT / "scripts" / "standins" / "build.sh"
HOST = "127.0.0.1"
DOCKER_SOCKET = "/var/run/docker.sock"
DASHBOARD_PORT = 8000  # Coolify's, published by the droplet container itself
FORWARDS_LABEL = "runbook.droplet.forwards"  # "3000=41234,8000=41233": where the droplet's ports are reached

RUN_FLAGS: tuple[str, ...] = (
    "--cap-add", "SYS_ADMIN", "--cap-add", "NET_ADMIN",
    "--security-opt", "seccomp=unconfined", "--cgroupns=host",
    "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
    "--tmpfs", "/run", "--tmpfs", "/run/lock",
)  # fmt: skip


class DropletError(RuntimeError):
    """The stand-in droplet could not be started or reached; the message says what to do."""


@dataclass(frozen=True)
class DropletStatus:
    name: str
    container: str
    exists: bool
    running: bool = False
    host: str = HOST
    ssh_port: int | None = None
    system_state: str = ""  # systemctl is-system-running: running, degraded, starting...


def container_name(name: str) -> str:
    """``rb-droplet-<name>``; names are what DigitalOcean accepts (letters, digits, '.', '-')."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.-]{0,62}", name):
        raise ValueError(f"droplet name {name!r}: use letters, digits, '.' and '-' (at most 63 characters)")
    return name if name.startswith(PREFIX) else PREFIX + name


def _docker(*args: str, check: bool = True, timeout: float = 120, input: bytes | None = None):
    try:
        proc = subprocess.run(["docker", *args], capture_output=True, timeout=timeout, input=input)
    except FileNotFoundError:
        raise DropletError(
            "the docker CLI is not installed; the droplet stand-in needs a Docker engine "
            "(scripts/provision.sh engine)"
        ) from None
    if check and proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip()
        raise DropletError(f"docker {' '.join(args[:2])} failed: {err}")
    return proc


def ensure_image(build: bool = True) -> str:
    """The stand-in image; built with ``scripts/standins/build.sh droplet`` when missing (about a minute)."""
    if _docker("image", "inspect", IMAGE, check=False).returncode == 0:
        return IMAGE
    if not build:
        raise DropletError(f"image {IMAGE} is missing. Next step: scripts/standins/build.sh droplet")
    proc = subprocess.run(
        ["bash", str(BUILD_SCRIPT), "droplet"], capture_output=True, text=True, timeout=900, env=None
    )
    if proc.returncode != 0:
        raise DropletError(f"building {IMAGE} failed:\n{proc.stderr[-3000:]}")
    return IMAGE


def _free_port() -> int:
    """A free port whose address the rehearsal's ``known_hosts`` does not know yet.

    A new droplet on a port an earlier (removed) droplet had would present another host key, and task
    2.3 would rightly refuse it as a changed key; on DigitalOcean that happens when a new droplet gets a
    released IP, here it would only be an accident of port numbers.
    """
    from helpers.cloud import ssh

    for _ in range(50):
        with socket.socket() as s:
            s.bind((HOST, 0))
            port = s.getsockname()[1]
        if not ssh.known_host_keys(HOST, port, ssh.default_ssh_dir()):
            return port
    return port


def forwards() -> dict[int, int]:
    """The droplet's "public" ports and where ``RUNBOOK_ADDRESS_MAP`` says they are reached on 127.0.0.1.

    The droplet's public IP is 127.0.0.1; a rehearsal picks the local ports for 8000 (Coolify's dashboard)
    and 3000 (the web app) in advance and writes them into ``RUNBOOK_ADDRESS_MAP``, which the runbook reads
    like any forward. The droplet container publishes 8000 there itself; the Coolify stand-in's runtime
    publishes an application's mapped port where :data:`FORWARDS_LABEL` says.
    """
    return {
        port: local
        for (host, port), (local_host, local) in addresses.parse(env.address_map).items()
        if host == HOST and local_host == HOST
    }


def _keys_tar(public_keys: Iterable[str]) -> bytes:
    """A tar holding ``.ssh/authorized_keys`` owned by root, mode 600 (extracted into /root)."""
    body = "".join(k.strip() + "\n" for k in public_keys if k.strip()).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(".ssh")
        info.type, info.mode, info.uid, info.gid, info.mtime = tarfile.DIRTYPE, 0o700, 0, 0, time.time()
        tar.addfile(info)
        info = tarfile.TarInfo(".ssh/authorized_keys")
        info.size, info.mode, info.uid, info.gid, info.mtime = len(body), 0o600, 0, 0, time.time()
        tar.addfile(info, io.BytesIO(body))
    return buf.getvalue()


def _published_port(container: str) -> int | None:
    proc = _docker("port", container, "22/tcp", check=False)
    for line in proc.stdout.decode().splitlines():
        m = re.search(r":(\d+)$", line.strip())
        if m:
            return int(m.group(1))
    return None


def droplet_status(name: str) -> DropletStatus:
    """Whether the droplet's container exists and runs, and where its SSH server is published."""
    container = container_name(name)
    proc = _docker("inspect", "--format", "{{.State.Running}}", container, check=False)
    if proc.returncode != 0:
        return DropletStatus(name, container, exists=False)
    running = proc.stdout.decode().strip() == "true"
    state = ""
    if running:
        state = (
            _docker("exec", container, "systemctl", "is-system-running", check=False, timeout=30)
            .stdout.decode()
            .strip()
        )
    return DropletStatus(
        name,
        container,
        exists=True,
        running=running,
        ssh_port=_published_port(container) if running else None,
        system_state=state,
    )


def _wait_ready(container: str, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        state = (
            _docker("exec", container, "systemctl", "is-system-running", check=False, timeout=30)
            .stdout.decode()
            .strip()
        )
        if state in ("running", "degraded"):
            break
        time.sleep(0.5)
    else:
        logs = _docker("logs", "--tail", "30", container, check=False).stdout.decode(errors="replace")
        raise DropletError(
            f"{container}: systemd did not finish booting within {timeout:g} s (state {state!r}).\n{logs}"
        )
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((HOST, port), timeout=3) as sock:
                sock.settimeout(3)
                if sock.recv(4).startswith(b"SSH-"):
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise DropletError(f"{container}: sshd did not answer on {HOST}:{port} within {timeout:g} s")


def start_droplet(
    name: str,
    public_keys: str | Iterable[str] = (),
    *,
    port: int | None = None,
    timeout: float = 90,
    build: bool = True,
    docker_socket: bool | None = None,
) -> tuple[str, int]:
    """Start (or find running) the droplet ``name``; return ``(host, ssh_port)`` on 127.0.0.1.

    ``public_keys``: the OpenSSH public key line(s) root accepts (a droplet created without keys gets
    none, and nobody can log in). Idempotent: a running droplet is returned as it is (its keys are not
    changed); a stopped one is started again.

    ``docker_socket`` (default: ``RUNBOOK_DROPLET_DOCKER_SOCKET=1``) mounts the host's Docker socket (and its
    docker CLI, :func:`docker_cli_mount`), so the droplet "has Docker" as Coolify needs: the Coolify
    stand-in then starts real containers for databases and applications (tasks 2.8, 2.14 to 2.17),
    labelled so that :func:`stop_droplet` removes them.
    """
    if docker_socket is None:
        docker_socket = env.droplet_docker_socket
    # /run is a tmpfs in the droplet (and /var/run links to it): bind the socket below it, after it; the
    # host's docker CLI comes along (Coolify's installer installs Docker: the server has the CLI)
    socket_flags = (("-v", f"{DOCKER_SOCKET}:/run/docker.sock", *docker_cli_mount())) if docker_socket else ()
    container = container_name(name)
    keys = [public_keys] if isinstance(public_keys, str) else list(public_keys)
    status = droplet_status(name)
    if status.running and status.ssh_port:
        _wait_ready(container, status.ssh_port, timeout)
        return HOST, status.ssh_port
    if status.exists:
        _docker("start", container)
        port = _published_port(container)
        if port is None:
            raise DropletError(
                f"{container} has no published SSH port; stop_droplet({name!r}) and start again"
            )
        _wait_ready(container, port, timeout)
        return HOST, port
    ensure_image(build=build)
    mapped = forwards()
    dashboard = mapped.get(DASHBOARD_PORT, "")
    label = ",".join(f"{p}={local}" for p, local in sorted(mapped.items()))
    for attempt in range(5):
        chosen = port or _free_port()
        proc = _docker(
            "create", "--name", container, "--hostname", name.removeprefix(PREFIX),
            "--label", f"{LABEL}=droplet", "--label", f"runbook.droplet.name={name}",
            "--label", f"{FORWARDS_LABEL}={label}",
            *RUN_FLAGS, *socket_flags, "-p", f"{HOST}:{chosen}:22",
            "-p", f"{HOST}:{dashboard}:{DASHBOARD_PORT}", IMAGE, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            raise DropletError(f"docker create {container} failed: {proc.stderr.decode().strip()}")
        _docker("cp", "-", f"{container}:/root/", input=_keys_tar(keys))
        started = _docker("start", container, check=False)
        if started.returncode == 0:
            break
        err = started.stderr.decode().strip()
        _docker("rm", "-f", "-v", container, check=False)
        if port is None and "allocated" in err and attempt < 4:
            continue  # another process took the free port meanwhile: try another
        raise DropletError(f"starting {container} failed: {err}")
    _wait_ready(container, chosen, timeout)
    return HOST, chosen


def docker_cli_mount() -> tuple[str, ...]:
    """``-v <host docker CLI>:/usr/bin/docker:ro`` when the host's CLI is a static binary (it runs in the
    droplet's Debian as it does here); nothing otherwise (the operations that need it then say so)."""
    import shutil
    from pathlib import Path

    found = shutil.which("docker")
    if not found:
        return ()
    binary = Path(found).resolve()
    with binary.open("rb") as f:
        head = f.read(4096 * 4)
    static = head.startswith(b"\x7fELF") and b"/lib64/ld-linux" not in head and b"ld-linux" not in head
    return ("-v", f"{binary}:/usr/bin/docker:ro") if static else ()


def remove_coolify_resources(name: str) -> int:
    """Remove what the Coolify stand-in's Docker runtime started for this droplet (containers, networks)."""
    label = f"runbook.coolify.resource={name.removeprefix(PREFIX)}"
    ids = _docker("ps", "-aq", "--filter", f"label={label}", check=False).stdout.decode().split()
    if ids:
        _docker("rm", "-f", "-v", *ids, check=False)
    for net in (
        _docker("network", "ls", "-q", "--filter", f"label={label}", check=False).stdout.decode().split()
    ):
        _docker("network", "rm", net, check=False)
    return len(ids)


def stop_droplet(name: str) -> bool:
    """Remove the droplet's container (and its anonymous volumes, and the containers its Coolify stand-in
    started); True if there was one."""
    container = container_name(name)
    remove_coolify_resources(name)
    if _docker("inspect", "--format", "{{.Id}}", container, check=False).returncode != 0:
        return False
    _docker("rm", "-f", "-v", container)
    remove_coolify_resources(name)  # its network, now that the droplet left it
    return True


def exec_in(name: str, command: str, check: bool = True, timeout: float = 120) -> str:
    """Run a shell command in the droplet as root, out of band (the DigitalOcean console's equivalent)."""
    proc = _docker("exec", container_name(name), "sh", "-c", command, check=False, timeout=timeout)
    if check and proc.returncode != 0:
        raise DropletError(f"{command!r} failed in {name}: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout.decode(errors="replace")


def host_key_fingerprint(name: str, key_type: str = "ed25519") -> str:
    """The SHA256 fingerprint of the droplet's host key, read out of band (as on the droplet's console)."""
    out = exec_in(name, f"ssh-keygen -lf /etc/ssh/ssh_host_{key_type}_key.pub")
    m = re.search(r"(SHA256:\S+)", out)
    if not m:
        raise DropletError(f"no {key_type} host key fingerprint in {out!r}")
    return m.group(1)
