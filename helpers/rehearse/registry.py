"""A local container registry standing in for GHCR: Debian's ``docker-registry`` (the CNCF distribution
registry, a real OCI registry) on 127.0.0.1.

:class:`LocalRegistry` writes a configuration of its own (listen address ``127.0.0.1:<free port>``, storage
in a folder of the rehearsal's workspace, deletes allowed, no authentication), starts
``docker-registry serve`` as a child process, waits until ``GET /v2/`` answers and stops it on
:meth:`LocalRegistry.stop` (SIGTERM, then SIGKILL). Docker pushes to and pulls from it over plain HTTP:
the engine treats registries on 127.0.0.0/8 as insecure by default. The rehearsal points the runbook at
it with ``RUNBOOK_IMAGE_REGISTRY=127.0.0.1:<port>`` (configuration, as every difference of a rehearsal).

``scripts/provision.sh registry`` installs the package; its own service (port 5000) is not used.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from types import TracebackType

import httpx

from helpers.rehearse.base import end_process

BINARY = "docker-registry"


class RegistryError(RuntimeError):
    """The registry cannot start; the message says what to do."""


def config_text(storage: Path, port: int) -> str:
    return "\n".join(
        [
            "# The rehearsal's stand-in for GHCR (helpers/rehearse/registry.py): written for this run.",
            "version: 0.1",
            "log:",
            "  level: warn",
            "  accesslog:",
            "    disabled: true",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {storage}",
            "  delete:",
            "    enabled: true",
            "http:",
            f"  addr: 127.0.0.1:{port}",
            "",
        ]
    )


class LocalRegistry:
    """``with LocalRegistry(folder) as registry: registry.host`` → ``127.0.0.1:<port>``."""

    def __init__(self, folder: str | os.PathLike[str], port: int | None = None, timeout: float = 30.0):
        self.folder = Path(folder)
        self.port = port
        self.timeout = timeout
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def log(self) -> Path:
        return self.folder / "registry.log"

    def start(self) -> LocalRegistry:
        from helpers.host.ports import free_port

        binary = shutil.which(BINARY)
        if binary is None:
            raise RegistryError(
                f"{BINARY} is not installed (the rehearsal's stand-in for GHCR): run "
                "`scripts/provision.sh registry` (Debian's docker-registry package), then the rehearsal again"
            )
        self.port = self.port or free_port()
        (self.folder / "storage").mkdir(parents=True, exist_ok=True)
        config = self.folder / "config.yml"
        config.write_text(config_text(self.folder / "storage", self.port), encoding="utf-8")
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + self.timeout
        while True:
            if self.process.poll() is not None:
                tail = self.log.read_text(encoding="utf-8", errors="replace")[-1500:]
                raise RegistryError(f"{BINARY} exited with {self.process.returncode} at start:\n{tail}")
            try:
                if httpx.get(f"{self.url}/v2/", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RegistryError(f"{BINARY} did not answer {self.url}/v2/ within {self.timeout:g} s")
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop the registry process (idempotent); its storage stays in :attr:`folder`."""
        proc, self.process = self.process, None
        if proc is not None:
            end_process(proc, timeout=10)

    def tags(self, name: str) -> list[str]:
        """The tags of repository ``name`` (``team/demo-app-web``) the registry holds, read from its API."""
        answer = httpx.get(f"{self.url}/v2/{name}/tags/list", timeout=10)
        if answer.status_code == 404:
            return []
        answer.raise_for_status()
        return sorted(answer.json().get("tags") or [])

    def __enter__(self) -> LocalRegistry:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
