"""A minimal Docker Engine API client over the unix socket, with the standard library only.

The Coolify stand-in runs on the droplet container, whose python3 has no pip packages; when the droplet is
started with the host's Docker socket mounted (``start_droplet(..., docker_socket=True)``: the droplet "has
Docker", as Coolify requires), the stand-in uses this module to start real containers for the databases
(task 2.8) and the applications (tasks 2.14 to 2.17). Only what that needs: images, networks, containers.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import urllib.parse
from typing import Any

SOCKET = "/run/docker.sock" if os.path.exists("/run/docker.sock") else "/var/run/docker.sock"
API_VERSION = "v1.41"  # Docker 20.10


class DockerAPIError(RuntimeError):
    def __init__(self, status: int, message: str):
        self.status = status
        super().__init__(f"Docker API {status}: {message}")


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 60.0):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.unix_path)
        self.sock = sock


class Docker:
    """``Docker().request("GET", "/containers/json")``; None of :func:`available` when no socket."""

    def __init__(self, path: str = SOCKET, timeout: float = 60.0):
        self.path = path
        self.timeout = timeout

    @staticmethod
    def available(path: str = SOCKET) -> bool:
        if not os.path.exists(path):
            return False
        try:
            Docker(path, timeout=5).request("GET", "/_ping", raw=True)
        except (OSError, DockerAPIError):
            return False
        return True

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: dict[str, Any] | None = None,
        raw: bool = False,
        ok: tuple[int, ...] = (),
    ) -> Any:
        query = "?" + urllib.parse.urlencode(params) if params else ""
        conn = _UnixConnection(self.path, self.timeout)
        try:
            payload = json.dumps(body).encode() if body is not None else None
            headers = {"Content-Type": "application/json"} if payload is not None else {}
            conn.request(method, f"/{API_VERSION}{path}{query}", body=payload, headers=headers)
            response = conn.getresponse()
            data = response.read()
        finally:
            conn.close()
        if response.status >= 400 and response.status not in ok:
            try:
                message = json.loads(data).get("message", "")
            except ValueError:
                message = data.decode(errors="replace")[:300]
            raise DockerAPIError(response.status, message)
        if raw or not data:
            return data
        try:
            return json.loads(data)
        except ValueError:
            return data

    # ---------------------------------------------------------------- images

    def image(self, ref: str) -> dict[str, Any] | None:
        """``docker image inspect``: the image, or None when the engine has none of that name."""
        found = self.request("GET", f"/images/{urllib.parse.quote(ref, safe='')}/json", ok=(404,))
        return found if isinstance(found, dict) and found.get("Id") else None  # a 404 answers {"message"}

    def image_exists(self, ref: str) -> bool:
        return self.image(ref) is not None

    def pull(self, ref: str, timeout: float = 600.0) -> str:
        """``docker pull ref`` (``name:tag`` or ``name@sha256:...``) from its registry; the last status line.

        The engine answers 200 with a stream of JSON progress lines; a failed pull says so in an ``error``
        line, raised here as :class:`DockerAPIError`."""
        name, at, digest = ref.partition("@")
        if not at:
            last = name.rsplit("/", 1)[-1]
            name, _, tag = name.rpartition(":") if ":" in last else (name, "", "latest")
        else:
            tag = digest
        data = Docker(self.path, timeout=timeout).request(
            "POST", "/images/create", params={"fromImage": name, "tag": tag}, raw=True
        )
        status = ""
        for line in data.decode(errors="replace").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("error"):
                raise DockerAPIError(500, f"pull {ref}: {event['error']}")
            status = str(event.get("status") or status)
        return status

    # ---------------------------------------------------------------- networks

    def ensure_network(self, name: str, labels: dict[str, str]) -> str:
        found = self.request("GET", "/networks", params={"filters": json.dumps({"name": [name]})})
        for net in found:
            if net.get("Name") == name:
                return str(net["Id"])
        created = self.request(
            "POST",
            "/networks/create",
            {"Name": name, "Driver": "bridge", "Labels": labels, "CheckDuplicate": True},
        )
        return str(created["Id"])

    def connect(self, network: str, container: str, aliases: list[str] | None = None) -> None:
        body: dict[str, Any] = {"Container": container}
        if aliases:
            body["EndpointConfig"] = {"Aliases": aliases}
        try:
            self.request("POST", f"/networks/{network}/connect", body)
        except DockerAPIError as exc:
            if "already exists" not in str(exc):
                raise

    def remove_network(self, name: str) -> None:
        self.request("DELETE", f"/networks/{name}", ok=(404,))

    # ---------------------------------------------------------------- containers

    def containers(self, labels: dict[str, str] | None = None, all: bool = True) -> list[dict[str, Any]]:
        filters = {"label": [f"{k}={v}" for k, v in (labels or {}).items()]}
        return self.request(
            "GET", "/containers/json", params={"all": int(all), "filters": json.dumps(filters)}
        )

    def inspect(self, name: str) -> dict[str, Any] | None:
        found = self.request("GET", f"/containers/{name}/json", ok=(404,))
        return found if isinstance(found, dict) and found.get("Id") else None

    def create(self, name: str, config: dict[str, Any]) -> str:
        created = self.request("POST", "/containers/create", config, params={"name": name})
        return str(created["Id"])

    def start(self, name: str) -> None:
        self.request("POST", f"/containers/{name}/start", ok=(304,))

    def stop(self, name: str, timeout: int = 10) -> None:
        self.request("POST", f"/containers/{name}/stop", params={"t": timeout}, ok=(304, 404))

    def remove(self, name: str) -> None:
        self.request("DELETE", f"/containers/{name}", params={"force": 1, "v": 1}, ok=(404,))

    def logs(self, name: str, tail: int = 30, timestamps: bool = False) -> str:
        data = self.request(
            "GET",
            f"/containers/{name}/logs",
            params={"stdout": 1, "stderr": 1, "tail": tail, "timestamps": int(timestamps)},
            raw=True,
            ok=(404,),
        )
        both = _interleaved(data)  # stdout and stderr in the order written, as `docker logs 2>&1`
        return both.decode(errors="replace") if both else data.decode(errors="replace")

    def restart(self, name: str, timeout: int = 10) -> None:
        self.request("POST", f"/containers/{name}/restart", params={"t": timeout})

    def exec(self, name: str, cmd: list[str], timeout: float = 600.0) -> tuple[int, bytes, bytes]:
        """Run ``cmd`` in the running container ``name`` (``docker exec``): (exit code, stdout, stderr)."""
        created = self.request(
            "POST",
            f"/containers/{name}/exec",
            {"Cmd": cmd, "AttachStdout": True, "AttachStderr": True, "Tty": False},
        )
        runner = Docker(self.path, timeout=timeout)
        data = runner.request(
            "POST", f"/exec/{created['Id']}/start", {"Detach": False, "Tty": False}, raw=True
        )
        out, err = demultiplex(data)
        code = self.request("GET", f"/exec/{created['Id']}/json").get("ExitCode")
        return int(code if code is not None else -1), out, err


def _frames(data: bytes) -> list[tuple[int, bytes]]:
    """The multiplexed stream of a container without a TTY: 8-byte header (stream, size) per frame."""
    frames, i = [], 0
    while i + 8 <= len(data):
        stream, size = data[i], int.from_bytes(data[i + 4 : i + 8], "big")
        frames.append((stream, data[i + 8 : i + 8 + size]))
        i += 8 + size
    return frames


def demultiplex(data: bytes) -> tuple[bytes, bytes]:
    """(stdout, stderr) of a multiplexed stream."""
    out, err = bytearray(), bytearray()
    for stream, chunk in _frames(data):
        (err if stream == 2 else out).extend(chunk)
    return bytes(out), bytes(err)


def _interleaved(data: bytes) -> bytes:
    return b"".join(chunk for _, chunk in _frames(data))


def status_of(info: dict[str, Any] | None) -> str:
    """Coolify's status words for a container: ``running:healthy``, ``starting``, ``exited``..."""
    if not info:
        return "exited"
    state = info.get("State") or {}
    if state.get("Restarting"):
        return "restarting"
    if not state.get("Running"):
        return "exited"
    health = (state.get("Health") or {}).get("Status")
    if health is None:
        return "running:unknown"
    if health == "starting":
        return "starting"
    return f"running:{health}"  # healthy / unhealthy
