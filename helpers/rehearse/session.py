"""A rehearsal of phase 2 on this machine: private workspace, throwaway tokens, stand-ins, teardown.

:class:`Rehearsal` is a context manager. On entry it

* refuses to start when ``DIGITALOCEAN_API_URL``, ``GITHUB_API_URL``, ``COOLIFY_API_URL`` or ``COOLIFY_URL``
  point anywhere but this machine (a rehearsal must never reach a real vendor);
* creates a private workspace (default ``.work/rehearsal/<id>/``): ``secrets.env`` (mode 600), ``state/``,
  ``ssh/``, ``app/`` (a git working copy of the sample app, :func:`helpers.runner.sampleapp.prepare`) and
  ``runs/`` (the runner's run folders);
* generates throwaway tokens (DigitalOcean, Coolify, GitHub, Coolify's root password) that only the
  stand-ins accept, and keeps them in the workspace's secrets file, never in a real ``.env``;
* starts the DigitalOcean stand-in (each droplet a real systemd + sshd container) and the GitHub stand-in
  as processes on free ports of 127.0.0.1, and, with the GitHub stand-in, a local container registry
  (Debian's ``docker-registry``, :mod:`helpers.rehearse.registry`; storage in ``registry/``) standing in for
  GHCR: the GitHub stand-in's build job pushes the app's images there, the Coolify stand-in pulls them.

:attr:`Rehearsal.env` is the environment a phase-2 run needs (``runbook run phase2`` reads it). A rehearsal
differs from a real run only by that configuration, never by a switch in the runbook's code: the stand-ins'
URLs and throwaway tokens, its own SSH folder (``RUNBOOK_SSH_DIR``), state and secrets files, its installer
(``RUNBOOK_COOLIFY_INSTALLER``), no swap (``RUNBOOK_SWAP_SIZE=0``: the container's overlay root takes none),
the registry (``RUNBOOK_IMAGE_REGISTRY=127.0.0.1:<port>``, the local one), public images
(``RUNBOOK_PRIVATE_IMAGES=0``: the local registry needs no login), and where the droplet's ports 8000
and 3000 are reached (``RUNBOOK_ADDRESS_MAP``: local ports chosen here, which the droplet container and the
Coolify stand-in publish). On exit,
even after Ctrl-C, the stand-in processes stop and every container labelled with the rehearsal's droplet
name or ``runbook.rehearsal=<id>`` is removed.
"""

from __future__ import annotations

import os
import re
import secrets as stdlib_secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any
from urllib.parse import urlparse

from helpers.core.paths import PROJECT_ROOT, WORK_DIR

DEFAULT_ROOT = WORK_DIR / "rehearsal"
# the rehearsal's stand-in for Coolify's installer (task 2.5 runs it as it runs the official one)
COOLIFY_INSTALLER = Path(__file__).with_name("coolify-install.sh")
PREFIX = "rb-rehearse-"
REHEARSAL_LABEL = "runbook.rehearsal"  # stand-ins that start containers may label them with the id
DROPLET_LABEL = "runbook.droplet.name"  # helpers.rehearse.droplet labels each droplet container
STANDIN_LOGS = "standins"  # the stand-ins' output, one file each, in the workspace
# what a stand-in prints when its own machinery fails ("digitalocean stand-in: droplet backend failed ...")
FAILED_LINE = re.compile(r"^\w+ stand-in: .*\bfailed\b")
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
VENDOR_URL_VARS = ("DIGITALOCEAN_API_URL", "GITHUB_API_URL", "COOLIFY_API_URL", "COOLIFY_URL")
GITHUB_REPOSITORY = "team/demo-app"  # each rehearsal's is this plus its id: its image names are its own
# Variables a developer's shell may hold that would steer the notebooks away from the rehearsal's
# records (task 2.2's droplet, task 2.5's dashboard): the rehearsal clears them.
CLEARED = (
    "COOLIFY_URL", "COOLIFY_API_URL", "RUNBOOK_DROPLET_HOST", "RUNBOOK_SSH_PORT", "RUNBOOK_HOST_FINGERPRINT",
    "RUNBOOK_DOMAIN", "RUNBOOK_DRY_RUN", "RUNBOOK_COOLIFY_INSTALLER", "RUNBOOK_COOLIFY_INSTALLER_SHA256",
    "RUNBOOK_COOLIFY_VERSION", "RUNBOOK_ROOT_LOGIN_FROM", "RUNBOOK_REGISTRY",
    "PROD_POSTGRES_PASSWORD", "PROD_REDIS_PASSWORD", "PROD_DATABASE_URL", "PROD_REDIS_URL",
    "GHCR_TOKEN", "APP_SECRET", "RUNBOOK_ADDRESS_MAP", "RUNBOOK_SWAP_SIZE", "RUNBOOK_PRIVATE_IMAGES",
    "RUNBOOK_IMAGE_REGISTRY",
)  # fmt: skip


class RehearsalError(RuntimeError):
    """The rehearsal cannot start or run; the message says what to do."""


def refuse_real_vendors(environ: Mapping[str, str]) -> None:
    """Raise when a vendor URL in ``environ`` points at anything but this machine."""
    for name in VENDOR_URL_VARS:
        value = environ.get(name, "")
        if not value:
            continue
        host = urlparse(value).hostname or ""
        if host not in LOCAL_HOSTS:
            raise RehearsalError(
                f"{name}={value} points at {host or 'an unparsable URL'}, not at this machine: a rehearsal "
                f"only talks to local stand-ins. Unset it (`unset {name}`) and run the rehearsal again; to "
                "run phase 2 for real, use `runbook run phase2` (README: Phase 2 for real)."
            )


def throwaway_tokens() -> dict[str, str]:
    """Fresh random credentials shaped like the vendors' (accepted only by this rehearsal's stand-ins)."""
    return {
        "DIGITALOCEAN_TOKEN": "dop_v1_" + stdlib_secrets.token_hex(32),
        "COOLIFY_API_TOKEN": "1|" + stdlib_secrets.token_urlsafe(32),
        "GITHUB_TOKEN": "ghp_" + stdlib_secrets.token_hex(18),
        "ROOT_USER_PASSWORD": "Root-" + stdlib_secrets.token_urlsafe(18),
    }


def _docker(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)


def labelled_containers(label: str, value: str) -> list[str]:
    """Ids of the containers (running or not) labelled ``label=value``."""
    proc = _docker("ps", "-aq", "--filter", f"label={label}={value}")
    return proc.stdout.split() if proc.returncode == 0 else []


class Rehearsal:
    """The rehearsal's workspace, stand-ins and environment (a context manager; see the module doc).

    ``workdir``: where the workspace goes (default ``.work/rehearsal/<id>``); ``github``: also start the
    GitHub stand-in (tasks 2.9 to 2.18); ``docker_socket``: the droplet container gets this engine's Docker
    socket, so that the Coolify stand-in runs the databases and apps as real containers (tasks 2.14 to
    2.18 check them); ``keep``: leave the workspace on disk after exit (the stand-ins
    and containers are always removed).
    """

    def __init__(
        self,
        workdir: str | os.PathLike[str] | None = None,
        *,
        github: bool = True,
        docker_socket: bool = False,
        keep: bool = True,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.id = stdlib_secrets.token_hex(3)
        self.name = PREFIX + self.id
        self.workdir = Path(workdir).resolve() if workdir else DEFAULT_ROOT / self.id
        self.github = github
        self.docker_socket = docker_socket
        self.keep = keep
        self.base_environ = dict(os.environ if environ is None else environ)
        self.repository = f"{GITHUB_REPOSITORY}-{self.id}"
        self.tokens: dict[str, str] = {}
        self.address_map = ""  # RUNBOOK_ADDRESS_MAP: chosen on entry
        self.env: dict[str, str] = {}
        self.processes: list = []  # helpers.rehearse.base.StandInProcess
        self.standin_failures: list[str] = []  # FAILED_LINE lines of their output, read when they stop
        self.registry: Any = None  # helpers.rehearse.registry.LocalRegistry, with the GitHub stand-in
        self._previous_sigterm: object = None

    # ---------------------------------------------------------------- paths

    @property
    def secrets_file(self) -> Path:
        return self.workdir / "secrets.env"

    @property
    def state_dir(self) -> Path:
        return self.workdir / "state"

    @property
    def ssh_dir(self) -> Path:
        return self.workdir / "ssh"

    @property
    def app_dir(self) -> Path:
        return self.workdir / "app"

    @property
    def runs_dir(self) -> Path:
        return self.workdir / "runs"

    @property
    def registry_dir(self) -> Path:
        return self.workdir / "registry"

    # ---------------------------------------------------------------- life cycle

    def __enter__(self) -> Rehearsal:
        refuse_real_vendors(self.base_environ)
        if shutil.which("docker") is None or _docker("info", "--format", "{{.ServerVersion}}").returncode:
            raise RehearsalError(
                "no Docker engine answers: the rehearsal's droplet is a container. Start the engine "
                "(scripts/provision.sh engine) and run the rehearsal again."
            )
        self._trap_sigterm()
        try:
            self._prepare_workspace()
            self.address_map = self._choose_forwards()
            self._start_standins()
            self.env = self._environment()
            refuse_real_vendors(self.env)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _trap_sigterm(self) -> None:
        """SIGTERM (CI cancelling the job) tears down like Ctrl-C does."""

        def interrupt(signum: int, frame: FrameType | None) -> None:
            raise KeyboardInterrupt(f"signal {signum}")

        try:
            self._previous_sigterm = signal.signal(signal.SIGTERM, interrupt)
        except ValueError:  # not the main thread: leave signals alone
            self._previous_sigterm = None

    def _prepare_workspace(self) -> None:
        from helpers.runner import sampleapp

        for folder in (self.workdir, self.state_dir, self.runs_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.tokens = throwaway_tokens()
        self.secrets_file.touch(mode=0o600)
        self.secrets_file.chmod(0o600)
        lines = [
            "# Throwaway credentials of a local rehearsal: only its stand-ins accept them.",
            *(f"{name}={value}" for name, value in self.tokens.items()),
        ]
        self.secrets_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
        sampleapp.prepare(self.app_dir)

    def _choose_forwards(self) -> str:
        """Local ports for the droplet's 8000 (dashboard) and 3000 (web app): ``RUNBOOK_ADDRESS_MAP``."""
        from helpers.host.ports import free_port
        from helpers.rehearse.droplet import HOST

        return ",".join(f"{HOST}:{port}={HOST}:{free_port()}" for port in (8000, 3000))

    def _start_standins(self) -> None:
        from helpers.rehearse.base import StandInProcess

        standin_env = {
            **self.base_environ,
            "RUNBOOK_REHEARSAL_ID": self.id,
            "DIGITALOCEAN_TOKEN": self.tokens["DIGITALOCEAN_TOKEN"],
            "GITHUB_TOKEN": self.tokens["GITHUB_TOKEN"],
            "GITHUB_REPOSITORY": self.repository,
            "RUNBOOK_APP_DIR": str(self.app_dir),
            # the droplet "has Docker": the Coolify stand-in in it runs the databases and apps as real
            # containers on this engine (helpers.rehearse.droplet removes them with the droplet)
            "RUNBOOK_DROPLET_DOCKER_SOCKET": "1" if self.docker_socket else "",
            # the droplet container publishes its port 8000 (and tells the Coolify stand-in where 3000 goes)
            "RUNBOOK_ADDRESS_MAP": self.address_map,
        }
        do = StandInProcess(
            "helpers.rehearse.digitalocean", args=["--droplet-backend", "container"], env=standin_env,
            cwd=PROJECT_ROOT, timeout=30,
        )  # fmt: skip
        self.processes.append(do)
        do.start()
        self.digitalocean_url = do.url
        self.github_url = ""
        if self.github:
            from helpers.rehearse.registry import LocalRegistry, RegistryError
            from helpers.runner import sampleapp

            try:
                self.registry = LocalRegistry(self.registry_dir).start()
                base = sampleapp.node_image()  # what the Dockerfiles' NODE_IMAGE argument is for
            except (RegistryError, sampleapp.SampleAppError) as exc:
                raise RehearsalError(str(exc)) from None
            build = [
                "--build",
                "--build-arg",
                f"NODE_IMAGE={base}",
                "--label",
                f"{REHEARSAL_LABEL}={self.id}",
            ]
            gh = StandInProcess(
                "helpers.rehearse.github",
                args=[
                    *("--repository", self.repository, "--state-file", str(self.workdir / "github.json")),
                    *build,
                ],
                env=standin_env,
                cwd=PROJECT_ROOT,
                timeout=30,
            )
            self.processes.append(gh)
            gh.start()
            self.github_url = gh.url

    def _environment(self) -> dict[str, str]:
        env = {k: v for k, v in self.base_environ.items() if k not in CLEARED}
        env.update(self.tokens)
        env.update(
            {
                "RUNBOOK_REHEARSAL_ID": self.id,
                "RUNBOOK_SECRETS_FILE": str(self.secrets_file),
                "RUNBOOK_STATE_DIR": str(self.state_dir),
                "RUNBOOK_SSH_DIR": str(self.ssh_dir),
                "RUNBOOK_SSH_KEY": str(self.ssh_dir / "id_ed25519"),
                "RUNBOOK_APP_DIR": str(self.app_dir),
                "RUNBOOK_RUNS_DIR": str(self.runs_dir),
                "RUNBOOK_DROPLET_NAME": self.name,
                "RUNBOOK_DROPLET_TAG": self.name,
                "RUNBOOK_DO_POLL_SECONDS": "0.2",
                "RUNBOOK_COOLIFY_POLL_SECONDS": "0.2",
                "RUNBOOK_ALLOW_PAID": "1",  # the "paid" droplet is a local container
                "RUNBOOK_ALLOW_COOLIFY_INSTALL": "1",  # the Coolify stand-in, installed in that container
                "RUNBOOK_COOLIFY_ENABLE_API": "1",  # 2.6's manual switch, done through the API
                "RUNBOOK_INSTALLER_ENV": "ROOT_USERNAME,ROOT_USER_EMAIL,ROOT_USER_PASSWORD,COOLIFY_API_TOKEN",
                "RUNBOOK_COOLIFY_INSTALLER": str(COOLIFY_INSTALLER),  # installs the Coolify stand-in
                "RUNBOOK_SWAP_SIZE": "0",  # the droplet container's overlay root takes no swap file
                "RUNBOOK_PRIVATE_IMAGES": "0",  # the local registry standing in for GHCR takes no login
                "RUNBOOK_ADDRESS_MAP": self.address_map,
                "ROOT_USERNAME": "admin",
                "ROOT_USER_EMAIL": "admin@example.invalid",
                "DIGITALOCEAN_API_URL": self.digitalocean_url,
                "GITHUB_REPOSITORY": self.repository,
            }
        )
        if self.github_url:
            env["GITHUB_API_URL"] = self.github_url
        else:
            env.pop("GITHUB_API_URL", None)
        if self.registry is not None:
            env["RUNBOOK_IMAGE_REGISTRY"] = self.registry.host  # the images' registry: the local one
        return env

    def commit(self, message: str = "Deploy to production (files of tasks 2.9 to 2.12)") -> str:
        """The operator's ``git add -A && git commit`` in the app copy (when anything changed); HEAD."""
        git = ["git", "-C", str(self.app_dir)]
        status = subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True, check=True)
        if status.stdout.strip():
            subprocess.run([*git, "add", "-A"], capture_output=True, check=True)
            subprocess.run([*git, "commit", "-q", "-m", message], capture_output=True, check=True)
        head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
        return head.stdout.strip()

    def push(self, branch: str = "main", timeout: float = 1800, message: str = "") -> list[dict[str, Any]]:
        """The developer's commit and ``git push`` of the app repository to GitHub, simulated; the finished
        runs.

        No notebook pushes: between tasks 2.17 and 2.18 the operator commits what 2.9 to 2.12 wrote and
        pushes, and GitHub Actions builds and deploys. The GitHub stand-in reads the workflow files from
        the rehearsal's app copy, starts the runs a push of the commit starts (its build job builds the
        images from that commit and pushes them to the local registry; its deploy job then calls the
        Coolify stand-in's webhooks with the sealed secrets) and moves them on as they are read; this waits
        until they finish (the first build of the images takes minutes).
        """
        import httpx

        from helpers.rehearse.base import STANDIN_AGENT

        if not self.github_url:
            raise RehearsalError("the GitHub stand-in is not running (Rehearsal(github=True))")
        sha = self.commit(*([message] if message else []))
        control = httpx.post(
            f"{self.github_url}/_standin/push",
            json={"repository": self.repository, "branch": branch, "sha": sha},
            timeout=30,
        )
        control.raise_for_status()
        headers = {
            "Authorization": f"Bearer {self.tokens['GITHUB_TOKEN']}",
            "Accept": "application/vnd.github+json",
            "User-Agent": f"{STANDIN_AGENT} (rehearsal)",  # the rehearsal's own reads: no fault injected
        }
        finished: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.github_url, headers=headers, timeout=30) as api:
            for run_id in control.json().get("runs", []):
                while True:
                    run = api.get(f"/repos/{self.repository}/actions/runs/{run_id}").json()
                    if run.get("status") == "completed":
                        finished.append(run)
                        break
                    if time.monotonic() > deadline:
                        raise RehearsalError(
                            f"workflow run {run_id} is still {run.get('status')} after {timeout:g} s"
                        )
                    time.sleep(1.0)
        return finished

    def remove_images(self) -> list[str]:
        """The images of this rehearsal: those of its repository in its registry (what the Coolify stand-in
        pulled) and the images it built (label ``runbook.rehearsal=<id>``); ``--no-prune``: the layers
        under them stay, the next rehearsal's build cache."""
        removed = []
        pulled: list[str] = []
        if self.registry is not None:
            pulled = _docker(
                "images",
                "-q",
                "--no-trunc",
                "--filter",
                f"reference={self.registry.host}/{self.repository}-*",
            ).stdout.split()
        built = _docker("images", "-q", "--no-trunc", "--filter", f"label={REHEARSAL_LABEL}={self.id}").stdout
        for ref in dict.fromkeys([*pulled, *built.split()]):
            if _docker("rmi", "-f", "--no-prune", ref).returncode == 0:
                removed.append(ref)
        return removed

    def coolify_url(self) -> str:
        """The Coolify dashboard task 2.5 recorded (the stand-in in the droplet), or "" before 2.5 ran."""
        import json

        path = self.state_dir / "phase2.json"
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return ""
        return str((record.get("coolify") or {}).get("url") or "").rstrip("/")

    def standin_urls(self) -> dict[str, str]:
        """The base URLs of the stand-ins running now, by vendor (Coolify once task 2.5 installed it)."""
        urls = {"digitalocean": self.digitalocean_url}
        if self.github_url:
            urls["github"] = self.github_url
        if self.coolify_url():
            urls["coolify"] = self.coolify_url()
        return urls

    def droplet_container(self) -> str | None:
        """The droplet container task 2.2 created, or None when there is none (yet)."""
        from helpers.rehearse import droplet

        name = droplet.container_name(self.name)
        return name if _docker("inspect", "-f", "{{.Id}}", name).returncode == 0 else None

    def secret_values(self) -> dict[str, str]:
        """Every secret the rehearsal knows: its tokens and what the notebooks stored in its secrets file."""
        values = dict(self.tokens)
        if self.secrets_file.is_file():
            for line in self.secrets_file.read_text(encoding="utf-8").splitlines():
                name, sep, value = line.partition("=")
                if sep and not name.startswith("#") and value.strip():
                    values[name.strip()] = value.strip().strip("'\"")
        return values

    def close(self) -> list[str]:
        """Stop the stand-ins and remove the rehearsal's containers (safe to call twice); what was removed."""
        removed: list[str] = []
        while self.processes:
            proc = self.processes.pop()
            try:
                output = proc.stop()
            except Exception as exc:  # teardown goes on
                print(f"rehearsal: stopping {proc.module} failed: {exc}", file=sys.stderr)
                continue
            if self.workdir.exists():  # what the stand-in printed (a droplet backend's failure, say)
                logs = self.workdir / STANDIN_LOGS
                logs.mkdir(exist_ok=True)
                (logs / f"{proc.module.rsplit('.', 1)[-1]}.log").write_text(output, encoding="utf-8")
            self.standin_failures += [line for line in output.splitlines() if FAILED_LINE.search(line)]
        from helpers.rehearse import droplet

        try:  # the stand-in removes its droplets on SIGTERM; this catches what a killed one left
            if droplet.stop_droplet(self.name):
                removed.append(droplet.container_name(self.name))
        except Exception as exc:  # teardown goes on
            print(f"rehearsal: removing droplet {self.name} failed: {exc}", file=sys.stderr)
        for label, value in ((DROPLET_LABEL, self.name), (REHEARSAL_LABEL, self.id)):
            for container in labelled_containers(label, value):
                if _docker("rm", "-f", "-v", container).returncode == 0:
                    removed.append(container)
        removed += self.remove_images()
        if self.registry is not None:
            self.registry.stop()  # its storage stays in the workspace (removed with it)
        if not self.keep and self.workdir.exists():
            shutil.rmtree(self.workdir, ignore_errors=True)
        if self._previous_sigterm is not None:
            signal.signal(signal.SIGTERM, self._previous_sigterm)  # type: ignore[arg-type]
            self._previous_sigterm = None
        return removed
