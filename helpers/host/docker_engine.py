"""The Docker engine: does one answer, from the CLI and from Python, and can it run a container?

Tasks 1.2 and 1.3 verify the engine with :func:`check_engine` and :func:`check_ready`;
task 1.14 re-runs the same functions. Every failure carries the next step, worded
for this machine (:mod:`helpers.host.hostinfo`). Nothing here pulls an image: the probe
container runs an image that must already be present locally.

>>> parse_compose_version("Docker Compose version v2.40.3")
(2, 40, 3)
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helpers.core.checks import Checklist
from helpers.core.settings import env
from helpers.host.hostinfo import PERMISSION_HINT, Host, detect, start_engine_hint

DEFAULT_REDIS_IMAGE = "redis:7-alpine"
PROBE_MARKER = "runbook-probe-ok"
PROBE_LABEL = "io.runbook.probe"
DEFAULT_SOCKET = "unix:///var/run/docker.sock"
CLI_TIMEOUT = 30


class EngineUnavailable(RuntimeError):
    """No Docker engine answers; the message says where we looked and what to do next."""

    def __init__(self, message: str, hint: str):
        self.hint = hint
        super().__init__(f"{message}\nnext step: {hint}")


@dataclass(frozen=True)
class CliResult:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def error(self) -> str:
        """The last meaningful line of stderr (or stdout), for a one-line message."""
        lines = [ln.strip() for ln in (self.stderr or self.stdout).splitlines() if ln.strip()]
        return lines[-1] if lines else f"exit code {self.returncode}"


def docker_cli() -> str | None:
    return shutil.which("docker")


def run_cli(*args: str, timeout: float = CLI_TIMEOUT, cwd: str | Path | None = None) -> CliResult:
    """Run ``docker ARGS...`` (the CLI honours DOCKER_HOST and contexts); never raises for exit codes."""
    exe = docker_cli()
    if exe is None:
        return CliResult(("docker", *args), 127, "", "the docker CLI is not on PATH")
    try:
        proc = subprocess.run([exe, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd)
    except subprocess.TimeoutExpired:
        return CliResult(
            ("docker", *args), 124, "", f"`docker {' '.join(args)}` timed out after {timeout:.0f} s"
        )
    return CliResult(("docker", *args), proc.returncode, proc.stdout, proc.stderr)


def engine_address() -> str:
    """Where the SDK looks for the engine: DOCKER_HOST, else the default socket."""
    return env.docker_host or DEFAULT_SOCKET


def engine_hint(error: str, host: Host | None = None) -> str:
    """The next step for an engine connection error, from its text."""
    host = host or detect()
    low = error.lower()
    if "permission denied" in low:
        return PERMISSION_HINT
    if "could not be found in this wsl" in low:
        return start_engine_hint(Host(kind="wsl", system="Linux", wsl_distro=host.wsl_distro))
    if "not on path" in low or "not installed" in low:
        return "install Docker first (task 1.2 shows how for this machine)"
    docker_host = env.docker_host
    if docker_host and docker_host != DEFAULT_SOCKET:
        return (
            f"DOCKER_HOST={docker_host} points at an engine that does not answer: fix it or "
            f"`unset DOCKER_HOST` to use the default socket; otherwise {start_engine_hint(host)}"
        )
    return start_engine_hint(host)


def parse_compose_version(text: str) -> tuple[int, ...] | None:
    """``(2, 40, 3)`` from ``docker compose version`` output (``v2.40.3`` or ``2.40.3``), else None."""
    match = re.search(r"v?(\d+)\.(\d+)(?:\.(\d+))?", text)
    if not match:
        return None
    return tuple(int(g) for g in match.groups() if g is not None)


@dataclass(frozen=True)
class CliVersions:
    client: str
    server: str | None
    server_api: str | None
    error: str = ""


def cli_versions() -> CliVersions:
    """Client and server versions as the docker CLI sees them (``server`` is None without an engine)."""
    res = run_cli("version", "--format", "{{json .}}")
    try:
        data = json.loads(res.stdout) if res.stdout.strip() else {}
    except json.JSONDecodeError:
        data = {}
    client = (data.get("Client") or {}).get("Version", "")
    server = data.get("Server") or {}
    if res.ok and server:
        return CliVersions(client, server.get("Version"), server.get("ApiVersion"))
    return CliVersions(client, None, None, res.error)


def compose_version() -> tuple[str, tuple[int, ...] | None, str]:
    """(text, parsed version, error) of the Compose v2 plugin."""
    res = run_cli("compose", "version", "--short")
    if not res.ok:
        return "", None, res.error
    return res.stdout.strip(), parse_compose_version(res.stdout), ""


def client(timeout: int = 60) -> Any:
    """A docker SDK client (``docker.from_env``: honours DOCKER_HOST), checked with a ping.

    Raises :class:`EngineUnavailable` with the next step when no engine answers.
    """
    import docker
    from docker.errors import DockerException

    where = engine_address()
    try:
        cli = docker.from_env(timeout=timeout)
        cli.ping()
    except DockerException as exc:
        text = str(exc)
        raise EngineUnavailable(
            f"no Docker engine answers at {where} (Python docker SDK: {_short(text)})", engine_hint(text)
        ) from None
    except Exception as exc:  # requests/urllib3 errors escaping the SDK
        text = f"{type(exc).__name__}: {exc}"
        raise EngineUnavailable(
            f"no Docker engine answers at {where} ({_short(text)})", engine_hint(text)
        ) from None
    return cli


def _short(text: str, limit: int = 240) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def default_probe_image() -> str:
    """RUNBOOK_PROBE_IMAGE, else the Redis image of the services (REDIS_IMAGE), else redis:7-alpine."""
    return env.probe_image or env.redis_image


def image_present(cli: Any, image: str) -> bool:
    from docker.errors import ImageNotFound

    try:
        cli.images.get(image)
    except ImageNotFound:
        return False
    return True


def missing_image_hint(image: str, variable: str = "RUNBOOK_PROBE_IMAGE") -> str:
    return (
        f"image {image} is not present locally and the runbook never pulls it for a probe: list what you "
        f"have with `docker image ls`, then pull it (`docker pull {image}`, needs a registry) or set "
        f"{variable} to an image from that list"
    )


@dataclass(frozen=True)
class ProbeRun:
    image: str
    output: str
    df_free_bytes: int | None


def parse_df(output: str) -> int | None:
    """Free bytes from the last ``df -Pk`` data line (``fs blocks used avail cap% mount``)."""
    for line in reversed(output.splitlines()):
        parts = line.split()
        if len(parts) >= 6 and parts[3].isdigit():
            return int(parts[3]) * 1024
    return None


def run_probe(cli: Any, image: str, name_prefix: str = "runbook-probe-") -> ProbeRun:
    """Run a throw-away container from a local image (no network, removed afterwards).

    Its output also carries ``df`` of the container's root, which lives on Docker's data root.
    """
    from docker.errors import ContainerError, ImageNotFound

    if not image_present(cli, image):
        raise ImageNotFound(missing_image_hint(image))
    name = f"{name_prefix}{uuid.uuid4().hex[:10]}"
    command = [f"echo {PROBE_MARKER}; df -Pk / 2>/dev/null | tail -n 1"]
    # create/start/remove(v=True) rather than run(remove=True): the SDK removes without `v`, which
    # leaves the image's anonymous volumes (the Redis and PostgreSQL images declare one) behind.
    container = cli.containers.create(
        image,
        entrypoint=["sh", "-c"],
        command=command,
        name=name,
        network_disabled=True,
        labels={PROBE_LABEL: "1"},
    )
    try:
        container.start()
        status = container.wait(timeout=120).get("StatusCode", 1)
        out = container.logs(stdout=True, stderr=True)
        if status != 0:
            raise ContainerError(container, status, command, image, out)
    finally:
        container.remove(v=True, force=True)
    text = out.decode("utf-8", "replace") if isinstance(out, bytes) else str(out)
    return ProbeRun(image=image, output=text, df_free_bytes=parse_df(text))


def data_root_free_bytes(info: dict[str, Any], probe: ProbeRun | None) -> tuple[int | None, str]:
    """Free space where Docker keeps images and volumes, and how it was measured.

    A local engine's data root (``DockerRootDir``) is measured on the host; Docker Desktop's
    (inside its VM) or a remote engine's is measured from inside the probe container.
    """
    root = info.get("DockerRootDir") or ""
    local = not env.docker_host.startswith(("tcp://", "ssh://"))
    desktop = "docker desktop" in str(info.get("OperatingSystem", "")).lower()
    if root and local and not desktop and Path(root).exists():
        return shutil.disk_usage(root).free, f"host filesystem of {root}"
    if probe is not None and probe.df_free_bytes is not None:
        return probe.df_free_bytes, f"{root or 'data root'} seen from the probe container"
    return None, f"could not measure {root or 'the data root'}"


def check_engine(check: Checklist, host: Host | None = None) -> Any:
    """Task 1.2's verification: the CLI exists and an engine answers to the CLI and to the SDK.

    Returns the SDK client when it answers (for further checks), else None.
    """
    host = host or detect()
    exe = docker_cli()
    if not check("docker CLI on PATH", exe, exe or "not found", hint=engine_hint("not installed", host)):
        return None
    versions = cli_versions()
    check(
        "engine answers the docker CLI",
        versions.server,
        f"Engine {versions.server} (API {versions.server_api}), client {versions.client}"
        if versions.server
        else f"{versions.error} (DOCKER_HOST={env.docker_host or 'unset'})",
        hint=engine_hint(versions.error, host),
    )
    try:
        sdk = client()
    except EngineUnavailable as exc:
        hint = exc.hint
        if versions.server:
            hint = (
                "the CLI reaches an engine but Python does not: the SDK reads DOCKER_HOST, not docker "
                "contexts; export DOCKER_HOST=$(docker context inspect --format '{{.Endpoints.docker.Host}}')"
            )
        check("engine answers the Python docker SDK", False, str(exc).splitlines()[0], hint=hint)
        return None
    version = sdk.version()
    check(
        "engine answers the Python docker SDK",
        True,
        f"{engine_address()}: Engine {version.get('Version')} (API {version.get('ApiVersion')})",
    )
    return sdk


def check_ready(
    check: Checklist,
    probe_image: str | None = None,
    min_free_gb: float = 4.0,
    name_prefix: str = "runbook-probe-",
    host: Host | None = None,
) -> None:
    """Task 1.3's verification: versions, SDK access, a container runs, enough disk for Docker."""
    host = host or detect()
    sdk = check_engine(check, host)
    text, parsed, error = compose_version()
    check(
        "docker compose v2 plugin",
        parsed is not None and parsed[0] >= 2,
        f"Compose {text}" if text else error,
        hint="install the Compose v2 plugin (package docker-compose-plugin, or Docker Desktop); "
        "the old `docker-compose` v1 is not supported",
    )
    if sdk is None:
        return
    image = probe_image or default_probe_image()
    present = image_present(sdk, image)
    check("probe image present locally", present, image, hint=missing_image_hint(image))
    probe: ProbeRun | None = None
    if present:
        try:
            probe = run_probe(sdk, image, name_prefix=name_prefix)
        except Exception as exc:  # shown as a failed row
            check(
                "a container runs",
                False,
                f"{type(exc).__name__}: {_short(str(exc))}",
                hint="read the error above; `docker run --rm IMAGE sh -c true` reproduces it. The probe "
                "needs an image with `sh` (set probe_image / RUNBOOK_PROBE_IMAGE)",
            )
        else:
            check(
                "a container runs",
                PROBE_MARKER in probe.output,
                f"{image}: {probe.output.splitlines()[0] if probe.output else 'no output'}",
                hint="the probe container ran but printed nothing: check `docker logs` and the engine's log",
            )
    free, how = data_root_free_bytes(sdk.info(), probe)
    check(
        f"at least {min_free_gb:g} GB free for Docker's data",
        free is not None and free >= min_free_gb * 1e9,
        f"{free / 1e9:.1f} GB free ({how})" if free is not None else how,
        hint="free some space: `docker system df`, then `docker image prune` / `docker builder prune` "
        "(never `docker volume prune` without checking what it deletes)",
    )


def facts(host: Host | None = None) -> list[tuple[str, str]]:
    """Rows (what, value) describing the local Docker setup, for a table. Never raises."""
    host = host or detect()
    rows = [("machine", host.label), ("docker CLI", docker_cli() or "not found")]
    versions = cli_versions()
    rows.append(("client version", versions.client or "—"))
    rows.append(("engine version (CLI)", versions.server or f"no answer: {versions.error}"))
    text, _, error = compose_version()
    rows.append(("compose version", text or error))
    rows.append(("DOCKER_HOST", env.docker_host or f"unset ({DEFAULT_SOCKET})"))
    try:
        info = client().info()
    except EngineUnavailable as exc:
        rows.append(("engine (Python SDK)", str(exc).splitlines()[0]))
        return rows
    rows += [
        ("engine (Python SDK)", f"{info.get('OperatingSystem')} / {info.get('Architecture')}"),
        ("storage driver", str(info.get("Driver"))),
        ("data root", str(info.get("DockerRootDir"))),
        ("CPUs / memory", f"{info.get('NCPU')} / {int(info.get('MemTotal', 0)) / 2**30:.1f} GiB"),
    ]
    return rows
