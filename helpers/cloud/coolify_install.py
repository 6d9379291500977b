"""Task 2.5: install Coolify on the droplet with the official installer, over SSH.

The official way is ``curl -fsSL https://cdn.coollabs.io/coolify/install.sh | sudo bash`` (an optional first
argument pins the version). The runbook does the same in steps that can be checked and rehearsed:

1. **pre-flight** (:func:`read_facts`, :func:`preflight_rows`): the installer's own requirements, read from
   the server: a supported OS id, 2 CPUs, 2 GB RAM, disk (the installer warns under 30 GB total or 20 GB
   free and refuses under 5 GB free), ports 8000 (dashboard), 80 and 443 (Coolify's proxy) free, or held by
   Coolify itself when it is installed already;
2. **detect an existing installation** (``/data/coolify/source/.env``) and its version (the ``coolify``
   container's image tag): then nothing is installed again;
3. **fetch the installer** (:func:`fetch_installer`): download it (or read a local file), show its size and
   SHA-256 (and compare it with ``expected_sha256`` when given);
4. **upload and run it** (:func:`run_installer`): SFTP into a private temporary folder on the server, then
   ``sudo bash install.sh [version]``, its output streamed (secrets scrubbed). ``ROOT_USERNAME``,
   ``ROOT_USER_EMAIL``, ``ROOT_USER_PASSWORD`` (pre-created admin, all three or none) are read from
   :mod:`helpers.core.secrets` and handed over in a file readable by the login user only, never on a
   command line;
5. **wait** (:func:`wait_for_dashboard`) until ``http://<droplet>:8000/api/health`` answers ``OK``.

The installer and the dashboard's address are configuration (``RUNBOOK_COOLIFY_INSTALLER``: a URL or a local
script, with the files a ``.files`` manifest beside it lists; ``COOLIFY_URL``, else the droplet's port 8000 as
``RUNBOOK_ADDRESS_MAP`` reaches it). A rehearsal sets them to its own installer and its published port; the
code is the same.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import shlex
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from helpers.core import addresses, poll, secrets, steps
from helpers.core.settings import env
from helpers.core.steps import StepResult

OFFICIAL_INSTALLER = "https://cdn.coollabs.io/coolify/install.sh"
ENV_FILE = "/data/coolify/source/.env"
DASHBOARD_PORT = 8000
PROXY_PORTS = (80, 443)
REALTIME_PORTS = (6001, 6002)
INSTALLER_SECRETS: tuple[str, ...] = ("ROOT_USERNAME", "ROOT_USER_EMAIL", "ROOT_USER_PASSWORD")
TMP_PREFIX = "/tmp/runbook-coolify-install."

# The installer's `case "$OS_TYPE"` list, and the ids it maps onto them first.
SUPPORTED_OS: tuple[str, ...] = (
    "ubuntu", "debian", "raspbian", "centos", "fedora", "rhel", "ol", "rocky", "sles", "opensuse-leap",
    "opensuse-tumbleweed", "almalinux", "amzn", "alpine", "postmarketos", "tencentos", "arch", "archarm",
)  # fmt: skip
OS_ALIASES = {
    "manjaro": "arch",
    "manjaro-arm": "arch",
    "endeavouros": "arch",
    "cachyos": "arch",
    "fedora-asahi-remix": "fedora",
    "pop": "ubuntu",
    "linuxmint": "ubuntu",
    "zorin": "ubuntu",
}
MIN_CPUS = 2
# "2 GB RAM": a 2 GB droplet reports about 1.9 GiB in /proc/meminfo (the kernel keeps some), so 1.8 GiB.
MIN_MEMORY_BYTES = int(1.8 * 1024**3)
DISK_TOTAL_WARN_GB = 30
DISK_FREE_WARN_GB = 20
DISK_FREE_MIN_GB = 5
VERSION_PROBES: tuple[tuple[str, str], ...] = (
    # (what, command): the first that prints something wins
    ("the coolify container's image tag", "docker inspect --format '{{.Config.Image}}' coolify 2>/dev/null"),
    # written by the rehearsal installer only (the official one keeps no version in .env)
    ("COOLIFY_STANDIN_VERSION in .env", f"sed -n 's/^COOLIFY_STANDIN_VERSION=//p' {ENV_FILE} 2>/dev/null"),
)
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def default_installer() -> str:
    """``RUNBOOK_COOLIFY_INSTALLER``, else the official installer's URL."""
    return env.coolify_installer or OFFICIAL_INSTALLER


def default_dashboard_url(host: str) -> str:
    """``COOLIFY_URL``, else ``http://<host>:8000`` (through its ``RUNBOOK_ADDRESS_MAP`` forward, if any)."""
    explicit = env.coolify_url
    if explicit:
        return explicit.rstrip("/")
    return addresses.http_url(host, DASHBOARD_PORT)


# --------------------------------------------------------------------------- facts about the server


@dataclass(frozen=True)
class Listener:
    address: str
    port: int
    process: str  # "docker-proxy", "nginx", "" when unknown


@dataclass(frozen=True)
class ServerFacts:
    os_id: str
    os_like: str
    os_version: str
    os_name: str
    cpus: int
    memory_bytes: int
    disk_total_gb: int
    disk_free_gb: int
    listeners: tuple[Listener, ...]
    installed: bool
    version: str | None
    version_source: str = ""

    def holders(self, port: int) -> list[str]:
        return sorted({listener.process or "?" for listener in self.listeners if listener.port == port})

    def rows(self) -> list[tuple[str, str]]:
        return [
            ("operating system", f"{self.os_name} (id {self.os_id} {self.os_version})"),
            ("CPUs", str(self.cpus)),
            ("memory", f"{self.memory_bytes / 1024**3:.1f} GiB"),
            ("disk /", f"{self.disk_total_gb} GB total, {self.disk_free_gb} GB free"),
            (
                "listening",
                ", ".join(
                    f"{p} ({', '.join(self.holders(p))})" for p in sorted({x.port for x in self.listeners})
                )
                or "nothing",
            ),
            (
                "Coolify",
                f"installed, version {self.version or 'unknown'}" if self.installed else "not installed",
            ),
        ]


def parse_os_release(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip().strip('"').strip("'")
    return out


def parse_meminfo(text: str) -> int:
    m = re.search(r"^MemTotal:\s+(\d+)\s*kB", text, re.MULTILINE)
    return int(m.group(1)) * 1024 if m else 0


def parse_df_gb(text: str) -> tuple[int, int]:
    """``df -BG /`` → (total, available) in GB, as the installer reads them (row 2, columns 2 and 4)."""
    lines = [line.split() for line in text.strip().splitlines() if line.strip()]
    if len(lines) < 2 or len(lines[1]) < 4:
        return 0, 0
    row = lines[1]
    return int(row[1].rstrip("G") or 0), int(row[3].rstrip("G") or 0)


def parse_ss(text: str) -> tuple[Listener, ...]:
    """``ss -Hltnp``: one listener per line, with the process names when ss may show them (root)."""
    found: list[Listener] = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 4:
            continue
        local = parts[3] if parts[0] == "LISTEN" else parts[2]
        address, _, port = local.rpartition(":")
        if not port.isdigit():
            continue
        names = re.findall(r'\("([^"]+)"', line)
        found.append(Listener(address.strip("[]"), int(port), ",".join(sorted(set(names)))))
    return tuple(found)


def installed_version(remote: Any) -> tuple[str | None, str]:
    """The installed Coolify version and where it was read (``(None, "")`` when no probe answers)."""
    for what, command in VERSION_PROBES:
        out = remote.run(command, check=False).stdout.strip()
        if out:
            version = out.rsplit(":", 1)[-1] if "/" in out or ":" in out else out
            return version.strip().removeprefix("v"), what
    return None, ""


def read_facts(remote: Any) -> ServerFacts:
    """What the pre-flight needs, read from the server (as root, through sudo when needed)."""
    osr = parse_os_release(remote.run("cat /etc/os-release").stdout)
    cpus = int(remote.run("nproc").stdout.strip() or 0)
    memory = parse_meminfo(remote.run("cat /proc/meminfo").stdout)
    total, free = parse_df_gb(remote.run("df -BG /").stdout)
    listeners = parse_ss(remote.run("ss -Hltnp", check=False).stdout)
    installed = remote.run(f"test -f {ENV_FILE}", check=False).ok
    version, source = installed_version(remote) if installed else (None, "")
    return ServerFacts(
        os_id=osr.get("ID", ""),
        os_like=osr.get("ID_LIKE", ""),
        os_version=osr.get("VERSION_ID", ""),
        os_name=osr.get("PRETTY_NAME", osr.get("NAME", "?")),
        cpus=cpus,
        memory_bytes=memory,
        disk_total_gb=total,
        disk_free_gb=free,
        listeners=listeners,
        installed=installed,
        version=version,
        version_source=source,
    )


# --------------------------------------------------------------------------- pre-flight


@dataclass(frozen=True)
class Row:
    name: str
    ok: bool
    detail: str
    hint: str = ""
    warning: bool = False  # shown, never blocking (as the installer only warns)
    note: bool = False  # information, not a check (e.g. a port that Coolify itself holds)


def preflight_rows(facts: ServerFacts) -> list[Row]:
    os_id = OS_ALIASES.get(facts.os_id, facts.os_id)
    rows = [
        Row(
            "OS supported by the installer",
            os_id in SUPPORTED_OS,
            f"{facts.os_name} (id {facts.os_id})",
            "the installer supports Ubuntu/Debian, RHEL-likes, SLES, Alpine, Arch: use Ubuntu 24.04 LTS",
        ),
        Row(
            f"at least {MIN_CPUS} CPUs",
            facts.cpus >= MIN_CPUS,
            str(facts.cpus),
            "resize the droplet (task 2.2's size) to 2 vCPUs or more",
        ),
        Row(
            "at least 2 GB RAM",
            facts.memory_bytes >= MIN_MEMORY_BYTES,
            f"{facts.memory_bytes / 1024**3:.1f} GiB",
            "resize the droplet to 2 GB RAM or more (4 GB recommended for builds)",
        ),
        Row(
            f"at least {DISK_FREE_MIN_GB} GB free (the installer refuses below)",
            facts.disk_free_gb >= DISK_FREE_MIN_GB,
            f"{facts.disk_free_gb} GB free",
            "free disk space (apt-get clean, docker system prune) or resize the disk",
        ),
    ]
    if facts.disk_total_gb < DISK_TOTAL_WARN_GB or facts.disk_free_gb < DISK_FREE_WARN_GB:
        rows.append(
            Row(
                f"disk: {DISK_TOTAL_WARN_GB} GB total / {DISK_FREE_WARN_GB} GB free recommended",
                True,
                f"{facts.disk_total_gb} GB total, {facts.disk_free_gb} GB free (the installer warns "
                "and goes on; images and builds fill it up)",
                warning=True,
            )
        )
    else:
        rows.append(
            Row(
                f"disk: {DISK_TOTAL_WARN_GB} GB total / {DISK_FREE_WARN_GB} GB free recommended",
                True,
                f"{facts.disk_total_gb} GB total, {facts.disk_free_gb} GB free",
                note=True,
            )
        )
    for port, role in ((DASHBOARD_PORT, "dashboard"), *((p, "Coolify's proxy") for p in PROXY_PORTS)):
        holders = facts.holders(port)
        if facts.installed:
            rows.append(
                Row(
                    f"port {port} ({role})",
                    True,
                    f"held by {', '.join(holders)}" if holders else "free",
                    note=True,
                )
            )
        else:
            rows.append(
                Row(
                    f"port {port} ({role}) free",
                    not holders,
                    f"held by {', '.join(holders)}" if holders else "free",
                    f"stop and disable what listens on {port} (e.g. `systemctl disable --now nginx`); "
                    "Coolify needs it",
                )
            )
    return rows


def check_preflight(check: Any, facts: ServerFacts) -> None:
    """The pre-flight rows: real checks, and the installer's warnings (and what it found) as notes."""
    for row in preflight_rows(facts):
        if row.warning or row.note:
            check.note(("⚠️ " if row.warning else "") + row.name, row.detail)
        else:
            check(row.name, row.ok, row.detail, hint=row.hint)


# --------------------------------------------------------------------------- the installer


@dataclass(frozen=True)
class InstallerFile:
    path: str  # relative, on the server next to the script
    content: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


@dataclass(frozen=True)
class Installer:
    source: str
    script: InstallerFile
    files: tuple[InstallerFile, ...] = ()

    def rows(self) -> list[tuple[str, str, str]]:
        return [(f.path, f"{len(f.content):,} bytes", f.sha256) for f in (self.script, *self.files)]


def fetch_installer(
    source: str, expected_sha256: str = "", transport: httpx.BaseTransport | None = None
) -> Installer:
    """Download (``https://...``) or read (a local path) the installer, and the files its manifest lists.

    A local ``install.sh`` may come with ``install.sh.files``: lines ``<path beside the manifest> <path on the
    server>`` (``#`` comments): the rehearsal's installer ships the Coolify stand-in that way.
    """
    split = urllib.parse.urlsplit(source)
    if split.scheme in ("http", "https"):
        if split.scheme == "http" and split.hostname not in ("127.0.0.1", "localhost"):
            raise ValueError(f"refusing to download an installer over plain http ({source}); use https")
        try:
            with httpx.Client(transport=transport, timeout=60, follow_redirects=True) as http:
                response = http.get(source)
        except httpx.HTTPError as exc:
            raise ConnectionError(
                f"cannot download {source}: {exc}. Next step: check this machine's internet access, or "
                "download the script yourself and set installer to its local path"
            ) from exc
        if response.status_code != 200:
            raise ConnectionError(f"downloading {source} answered {response.status_code}; try again later")
        content, files = response.content, ()
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"installer {source!r} is neither an http(s) URL nor a file; the official one is "
                f"{OFFICIAL_INSTALLER}"
            )
        content, files = path.read_bytes(), tuple(_manifest_files(path))
    if not content.startswith(b"#!"):
        raise ValueError(f"{source} is not a shell script (no #! line): refusing to run it as root")
    script = InstallerFile("install.sh", content)
    if expected_sha256 and script.sha256 != expected_sha256.strip().lower():
        raise ValueError(
            f"{source} has SHA-256 {script.sha256}, not the expected {expected_sha256}: the script changed. "
            "Read it, then set expected_sha256 to the new value (or empty) and re-run"
        )
    return Installer(source, script, files)


def _manifest_files(script: Path) -> Iterable[InstallerFile]:
    manifest = script.with_name(script.name + ".files")
    if not manifest.is_file():
        return
    for number, line in enumerate(manifest.read_text(encoding="utf-8").splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2 or parts[1].startswith("/") or ".." in Path(parts[1]).parts:
            raise ValueError(f"{manifest}:{number}: want '<local path> <relative server path>', got {line!r}")
        local = (manifest.parent / parts[0]).resolve()
        yield InstallerFile(parts[1], local.read_bytes())


def installer_env(names: Sequence[str]) -> dict[str, str]:
    """The secrets handed to the installer: those of ``names`` that are set (never shown)."""
    return {name: secrets.get(name) for name in names if name and secrets.has(name)}


def env_file_text(env: Mapping[str, str]) -> str:
    for name in env:
        if not re.fullmatch(r"[A-Z_][A-Z0-9_]*", name):
            raise ValueError(f"{name!r} is not an environment variable name")
    return "".join(f"{name}={shlex.quote(value)}\n" for name, value in env.items())


def install_plan(installer: Installer, host: str, version: str, env: Mapping[str, str]) -> str:
    """What :func:`run_installer` will do, for the dry run and the step's diff (no secret values)."""
    lines = [
        f"fetch {installer.source} (sha256 {installer.script.sha256})",
        f"upload install.sh{' and ' + str(len(installer.files)) + ' files' if installer.files else ''} "
        f"to {host}:{TMP_PREFIX}XXXXXX (SFTP, folder mode 700)",
        f"run: sudo bash install.sh {version}".rstrip(),
    ]
    if env:
        lines.append(f"with {', '.join(env)} in its environment (from the secrets file; values not shown)")
    lines.append("then remove the temporary folder")
    return "\n".join(lines)


class _Lines:
    """A stream for invoke's ``out_stream``: whole lines, ANSI codes stripped, secrets scrubbed."""

    def __init__(self, emit: Callable[[str], None], secret_values: Sequence[str]):
        self.emit = emit
        self.values = list(secret_values)
        self.pending = ""
        self.tail: list[str] = []

    def isatty(self) -> bool:
        return False

    def flush(self) -> None:
        pass

    def write(self, text: str) -> int:
        self.pending += text
        while "\n" in self.pending:
            line, self.pending = self.pending.split("\n", 1)
            self._line(line)
        return len(text)

    def _line(self, line: str) -> None:
        line = secrets.scrub(ANSI.sub("", line).rstrip("\r"), self.values)
        self.tail = [*self.tail, line][-30:]
        self.emit(line)

    def finish(self) -> None:
        if self.pending:
            self._line(self.pending)
            self.pending = ""


@dataclass
class InstallResult:
    exited: int
    tail: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.exited == 0


def run_installer(
    remote: Any,
    installer: Installer,
    version: str = "",
    env: Mapping[str, str] | None = None,
    progress: Callable[[str], None] = print,
    timeout: float = 1800,
) -> InstallResult:
    """Upload the installer into a private temporary folder (SFTP) and run it with ``sudo bash``."""
    conn = remote.conn
    env = dict(env or {})
    tmp = conn.run(f"mktemp -d {TMP_PREFIX}XXXXXX", hide=True, in_stream=False).stdout.strip()
    if not tmp.startswith(TMP_PREFIX):
        raise RuntimeError(f"mktemp answered {tmp!r}")
    sink = _Lines(progress, [*secrets.known_values(), *env.values()])
    try:
        sftp = conn.sftp()
        for item in (installer.script, *installer.files):
            target = f"{tmp}/{item.path}"
            parent = target.rsplit("/", 1)[0]
            if parent != tmp:
                conn.run(f"mkdir -p {shlex.quote(parent)}", hide=True, in_stream=False)
            with sftp.open(target, "wb") as handle:
                handle.write(item.content)
        with sftp.open(f"{tmp}/installer.env", "wb") as handle:
            sftp.chmod(f"{tmp}/installer.env", 0o600)
            handle.write(env_file_text(env).encode())
        args = f" {shlex.quote(version)}" if version else ""
        command = (
            f"cd {tmp} && set -a && . ./installer.env && set +a && rm -f ./installer.env "
            f"&& bash ./install.sh{args}"
        )
        wrapped = command if remote.is_root else f"sudo -n sh -c {shlex.quote(command)}"
        result = conn.run(
            wrapped, hide=False, warn=True, in_stream=False, out_stream=sink, err_stream=sink, timeout=timeout
        )
        sink.finish()
        return InstallResult(result.exited, sink.tail)
    finally:
        remote.run(f"rm -rf {shlex.quote(tmp)}", check=False)


def ensure_installed(
    remote: Any,
    facts: ServerFacts,
    installer: Installer | None,
    version: str = "",
    env: Mapping[str, str] | None = None,
    allow_install: bool = False,
    dry_run: bool = False,
    progress: Callable[[str], None] = print,
) -> StepResult:
    """Nothing when Coolify is installed (ok); else, with ``allow_install``, run the installer (changed)."""
    name = "Coolify installed"
    if facts.installed:
        detail = f"already installed: version {facts.version or 'unknown'} ({ENV_FILE} exists)"
        if version and facts.version and version.removeprefix("v") != facts.version:
            detail += f"; the pinned {version} is not installed: Coolify updates itself (Settings → Update)"
        return steps.ok(name, detail)
    blocking = [r for r in preflight_rows(facts) if not r.ok]
    if blocking:
        return steps.failed(
            name, "pre-flight failed: " + "; ".join(f"{r.name}: {r.detail}" for r in blocking)
        )
    if installer is None:
        return steps.failed(name, "no installer fetched (run the fetch cell)")
    plan = install_plan(installer, remote.host, version, env or {})
    if dry_run:
        return steps.changed(name, "would install Coolify", diff=plan, dry_run=True)
    if not allow_install:
        return steps.failed(
            name,
            "installing Coolify changes the server (Docker, /data/coolify, ports 80/443/8000): set "
            "allow_install=True (or RUNBOOK_ALLOW_COOLIFY_INSTALL=1) and run again",
        )
    result = run_installer(remote, installer, version, env, progress)
    if not result.ok:
        tail = " | ".join(result.tail[-6:])
        return steps.failed(
            name,
            f"the installer exited {result.exited}: {tail}. Next step: read its log on the server "
            "(/data/coolify/source/installation-*.log), fix, re-run this task",
        )
    after, source = installed_version(remote)
    return steps.changed(
        name, f"installed version {after or 'unknown'} ({source or 'version not found'})", diff=plan
    )


# --------------------------------------------------------------------------- the dashboard


def health(url: str, transport: httpx.BaseTransport | None = None, timeout: float = 10.0) -> tuple[int, str]:
    """``GET <dashboard>/api/health`` → (status, body); (0, error) when nothing answers."""
    try:
        with httpx.Client(transport=transport, timeout=timeout) as http:
            response = http.get(f"{url.rstrip('/')}/api/health", headers={"Accept": "application/json"})
        return response.status_code, response.text.strip()[:80]
    except httpx.HTTPError as exc:
        return 0, f"{type(exc).__name__}: {exc}"


def wait_for_dashboard(
    url: str,
    timeout: float = 600.0,
    interval: float = 5.0,
    progress: Callable[[str], None] = print,
    transport: httpx.BaseTransport | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> float:
    """Poll ``/api/health`` until it answers ``OK``; seconds waited. Shows each change."""

    def shown(answer: tuple[int, str]) -> str:
        status, body = answer
        return f"{status} {body}" if status else body

    start = clock()

    def explain(last: Any) -> str:
        return (
            f"{url} did not answer within {timeout:.0f}s (last: {shown(last)}). Next step: on the "
            "server, `docker ps -a --filter name=coolify` and `docker logs coolify` (or `systemctl status "
            f"coolify` where Coolify runs as a service); from here, port {DASHBOARD_PORT} must be open (ufw: "
            "task 2.4, cloud firewall: task 2.2)"
        )

    poll.poll(
        lambda: health(url, transport),
        until=lambda answer: answer == (200, "OK"),
        timeout=timeout,
        interval=interval,
        what=f"{url}/api/health to answer OK",
        on_attempt=poll.report_changes(progress, lambda a: f"{url}/api/health: {shown(a)}", clock),
        explain=explain,
        sleep=sleep,
        clock=clock,
    )
    return clock() - start


def record(url: str, facts_after: ServerFacts, host: str) -> dict[str, Any]:
    """What later tasks need (non-secret): the dashboard's and the API's URLs, the version."""
    return {
        "url": url,
        "api_url": f"{url}/api/v1",
        "version": facts_after.version,
        "version_source": facts_after.version_source,
        "server": host,
    }


def check_install(
    check: Any,
    remote: Any,
    url: str,
    recorded: Mapping[str, Any] | None = None,
    transport: httpx.BaseTransport | None = None,
) -> ServerFacts:
    """Task 2.5's verification: the server's and the dashboard's real state."""
    facts = read_facts(remote)
    check(
        f"{ENV_FILE} exists (Coolify is installed)",
        facts.installed,
        "yes" if facts.installed else "no",
        hint="run the install cell with allow_install=True",
    )
    check(
        "installed version is known",
        bool(facts.version),
        f"{facts.version} ({facts.version_source})" if facts.version else "not found",
        hint="the coolify container is missing: `docker ps -a` on the server; re-run the installer",
    )
    check(
        f"something listens on port {DASHBOARD_PORT} on the server",
        bool(facts.holders(DASHBOARD_PORT)),
        ", ".join(facts.holders(DASHBOARD_PORT)) or "nothing",
        hint="Coolify is not running: `docker ps -a --filter name=coolify` (or `systemctl status coolify` "
        "where Coolify runs as a service)",
    )
    local = remote.run(f"curl -fsS -m 10 http://127.0.0.1:{DASHBOARD_PORT}/api/health", check=False)
    check(
        "the dashboard answers on the server itself (/api/health)",
        local.ok and local.stdout.strip() == "OK",
        local.stdout.strip()[:60] or local.stderr.strip()[:80],
        hint="Coolify is still starting, or failed: `docker logs coolify` on the server",
    )
    status, body = health(url, transport)
    check(
        f"the dashboard answers from here: {url}/api/health",
        status == 200 and body == "OK",
        f"{status} {body}" if status else body,
        hint=f"the server answers but not from here: open port {DASHBOARD_PORT} (ufw: task 2.4; DigitalOcean "
        "cloud firewall: task 2.2's port list)",
    )
    try:
        with httpx.Client(transport=transport, timeout=10) as http:
            api = http.get(f"{url}/api/v1/version", headers={"Accept": "application/json"})
        api_status = api.status_code
    except httpx.HTTPError as exc:
        api_status, api = 0, None
        check("the API refuses calls without a token (401)", False, f"{type(exc).__name__}: {exc}")
    if api is not None:
        check(
            "the API refuses calls without a token (401)",
            api_status == 401,
            api_status,
            hint="something else answers on this port, or Coolify is misconfigured",
        )
    leftovers = remote.run(f"ls -d {TMP_PREFIX}* 2>/dev/null", check=False).stdout.split()
    check(
        "no installer files (or its secrets) left in /tmp",
        not leftovers,
        ", ".join(leftovers) or "none",
        hint=f"remove them: sudo rm -rf {TMP_PREFIX}*",
    )
    if recorded is not None:
        check(
            "state file records the dashboard and the version",
            recorded.get("url") == url and recorded.get("version") == facts.version,
            f"{recorded.get('url')} {recorded.get('version')}",
            hint="re-run the 'record' cell",
        )
    return facts


def close_quietly(remote: Any) -> None:
    with contextlib.suppress(Exception):
        remote.close()
