"""Host ports: is one free, and if not, who holds it (a container, or which process)?

Task 1.4 publishes PostgreSQL and Redis on 127.0.0.1; when a port is taken the
message must name the holder and the next step, e.g.

    port 5432 is taken by container `old-postgres` (image postgres:14) → `docker stop old-postgres`,
    or choose another port: POSTGRES_PORT=5433 (and the same port in DATABASE_URL)
"""

from __future__ import annotations

import contextlib
import errno
import socket
from dataclasses import dataclass
from typing import Any, Literal

from helpers.core.secrets import scrub

COMPOSE_PROJECT_LABEL = "com.docker.compose.project"
COMPOSE_SERVICE_LABEL = "com.docker.compose.service"
DOCKER_PROXY_NAMES = ("docker-proxy", "com.docker.backend", "vpnkit", "wslrelay.exe", "rootlesskit")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now (the kernel picks it)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when a TCP listener could bind ``host:port`` right now (what Docker's port publishing needs)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


@dataclass(frozen=True)
class Holder:
    kind: Literal["container", "process", "unknown"]
    name: str
    pid: int | None = None
    cmdline: str = ""
    image: str = ""
    project: str = ""
    service: str = ""

    def describe(self) -> str:
        if self.kind == "container":
            where = f" (compose project `{self.project}`, service `{self.service}`)" if self.project else ""
            return f"container `{self.name}` (image {self.image}){where}"
        if self.kind == "process":
            cmd = f": {self.cmdline}" if self.cmdline else ""
            return f"process {self.name} (pid {self.pid}){cmd}"
        return self.name

    def next_step(self) -> str:
        if self.kind == "container" and self.project:
            return f"stop that project: `docker compose -p {self.project} stop` (or `down`)"
        if self.kind == "container":
            return f"stop it: `docker stop {self.name}`"
        if self.kind == "process":
            lower = f"{self.name} {self.cmdline}".lower()
            if "postgres" in lower:
                return "stop the local PostgreSQL: `sudo systemctl stop postgresql` (and disable it)"
            if "redis" in lower:
                return "stop the local Redis: `sudo systemctl stop redis-server` (and disable it)"
            return f"stop that process (`kill {self.pid}` if it is yours)"
        return "find it with `sudo ss -ltnp` (Linux) or `lsof -nP -iTCP -sTCP:LISTEN` (macOS) and stop it"


def _container_ports(container: Any) -> list[tuple[str, int]]:
    """(host_ip, host_port) pairs a container publishes, from ``NetworkSettings.Ports``."""
    out = []
    ports = (container.attrs.get("NetworkSettings") or {}).get("Ports") or {}
    for bindings in ports.values():
        for binding in bindings or []:
            with contextlib.suppress(TypeError, ValueError):
                out.append((binding.get("HostIp", ""), int(binding.get("HostPort", ""))))
    return out


def container_holders(port: int, docker_client: Any = None) -> list[Holder]:
    """Running containers that publish ``port`` on the host (empty when no engine answers)."""
    if docker_client is None:
        try:
            from helpers.host.docker_engine import EngineUnavailable, client

            docker_client = client(timeout=15)
        except (EngineUnavailable, ImportError):
            return []
    holders = []
    for container in docker_client.containers.list():
        if any(p == port for _, p in _container_ports(container)):
            labels = container.labels or {}
            image = container.attrs.get("Config", {}).get("Image", "") or ""
            holders.append(
                Holder(
                    kind="container",
                    name=container.name,
                    image=image,
                    project=labels.get(COMPOSE_PROJECT_LABEL, ""),
                    service=labels.get(COMPOSE_SERVICE_LABEL, ""),
                )
            )
    return holders


def process_holders(port: int) -> list[Holder]:
    """Processes listening on TCP ``port`` (psutil; needs privileges to see other users' processes)."""
    import psutil

    try:
        conns = psutil.net_connections(kind="tcp")
    except psutil.AccessDenied:
        return [Holder(kind="unknown", name="a process this user may not inspect")]
    holders: dict[int | None, Holder] = {}
    for conn in conns:
        if conn.status != psutil.CONN_LISTEN or not conn.laddr or conn.laddr.port != port:
            continue
        pid = conn.pid
        if pid is None:
            holders.setdefault(None, Holder(kind="unknown", name="a process of another user (pid hidden)"))
            continue
        try:
            proc = psutil.Process(pid)
            name, cmdline = proc.name(), scrub(" ".join(" ".join(proc.cmdline()).split()))
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            name, cmdline = "?", ""
        holders[pid] = Holder(kind="process", name=name, pid=pid, cmdline=cmdline[:200])
    return list(holders.values())


def holders(port: int, docker_client: Any = None) -> list[Holder]:
    """Who holds ``port``: containers first (their docker-proxy is not the culprit), then processes."""
    found = container_holders(port, docker_client)
    procs = process_holders(port)
    if found:
        procs = [p for p in procs if p.kind == "process" and p.name not in DOCKER_PROXY_NAMES]
    return found + procs


def describe_taken(port: int, found: list[Holder], variable: str = "", url_key: str = "") -> tuple[str, str]:
    """(problem, next step): what holds the port, and how to free it or move our port."""
    who = "; ".join(h.describe() for h in found) if found else "an unidentified listener"
    steps = [h.next_step() for h in found] or [Holder(kind="unknown", name="").next_step()]
    if variable:
        also = f" and the same port in {url_key} of the app's .env" if url_key else ""
        steps.append(f"or use another port: export {variable}=<free port>{also}")
    return f"port {port} is taken by {who}", "; ".join(dict.fromkeys(steps))
