"""What kind of machine the runbook runs on: WSL, a Linux distribution, or macOS.

Task 1.2 shows the Docker install instructions that match this machine, and the
engine checks word their "next step" for it (start Docker Desktop on WSL/macOS,
``systemctl`` on Linux). Detection reads files only, so it is cheap and testable:

>>> host = detect(proc_version="Linux version 5.15.90.1-microsoft-standard-WSL2",
...               os_release='ID=ubuntu\\nVERSION_CODENAME=jammy\\nPRETTY_NAME="Ubuntu 22.04.3 LTS"',
...               environ={"WSL_DISTRO_NAME": "Ubuntu"}, system="Linux")
>>> host.kind, host.distro_id, host.wsl_distro
('wsl', 'ubuntu', 'Ubuntu')
"""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

HostKind = Literal["wsl", "linux", "macos", "windows", "other"]

# Docker's own apt/dnf repositories exist for these distribution ids (docs.docker.com/engine/install/).
DOCKER_REPO_DISTROS = {
    "debian": "debian",
    "ubuntu": "ubuntu",
    "raspbian": "raspbian",
    "fedora": "fedora",
    "centos": "centos",
    "rhel": "rhel",
}


@dataclass(frozen=True)
class Host:
    kind: HostKind
    system: str
    distro_id: str = ""
    distro_like: tuple[str, ...] = ()
    distro_name: str = ""
    codename: str = ""
    wsl_distro: str = ""

    @property
    def label(self) -> str:
        if self.kind == "wsl":
            return f"WSL 2 ({self.distro_name or self.wsl_distro or 'Linux'}) on Windows"
        if self.kind == "linux":
            return self.distro_name or "Linux"
        if self.kind == "macos":
            return "macOS"
        return self.system or "unknown"

    @property
    def family(self) -> str:
        """The package family of the distribution: ``debian``, ``fedora`` or ``""``."""
        ids = (self.distro_id, *self.distro_like)
        if any(i in ("debian", "ubuntu", "raspbian") for i in ids):
            return "debian"
        if any(i in ("fedora", "rhel", "centos") for i in ids):
            return "fedora"
        return ""


def parse_os_release(text: str) -> dict[str, str]:
    """``/etc/os-release`` as a dict (shell-style ``KEY=value`` lines, quotes removed)."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def detect(
    proc_version: str | None = None,
    os_release: str | None = None,
    environ: Mapping[str, str] | None = None,
    system: str | None = None,
) -> Host:
    """Detect this machine (arguments override the real files, for tests)."""
    system = platform.system() if system is None else system
    environ = os.environ if environ is None else environ
    if system == "Darwin":
        return Host(kind="macos", system=system)
    if system == "Windows":
        return Host(kind="windows", system=system)
    if system != "Linux":
        return Host(kind="other", system=system)
    proc_version = _read("/proc/version") if proc_version is None else proc_version
    if os_release is None:
        os_release = _read("/etc/os-release") or _read("/usr/lib/os-release")
    info = parse_os_release(os_release)
    wsl = "microsoft" in proc_version.lower() or bool(environ.get("WSL_DISTRO_NAME"))
    return Host(
        kind="wsl" if wsl else "linux",
        system=system,
        distro_id=info.get("ID", "").lower(),
        distro_like=tuple(info.get("ID_LIKE", "").lower().split()),
        distro_name=info.get("PRETTY_NAME", info.get("NAME", "")),
        codename=info.get("VERSION_CODENAME", ""),
        wsl_distro=environ.get("WSL_DISTRO_NAME", ""),
    )


def start_engine_hint(host: Host) -> str:
    """The next step when no Docker engine answers, worded for this machine."""
    if host.kind == "wsl":
        return (
            "start Docker Desktop on Windows and enable Settings → Resources → WSL integration for "
            f"{host.wsl_distro or 'this distro'}, then open a new WSL terminal (see task 1.2)"
        )
    if host.kind in ("macos", "windows"):
        return "start Docker Desktop and wait until it says 'Engine running' (see task 1.2)"
    return (
        "start the engine: `sudo systemctl enable --now docker` (or `sudo service docker start` without "
        "systemd); install it first if missing (see task 1.2)"
    )


PERMISSION_HINT = (
    "your user may not use the Docker socket: `sudo usermod -aG docker $USER`, then log out and back in "
    "(or run `newgrp docker`); the docker group is root-equivalent, see docs.docker.com/engine/security"
)


def _docker_repo_id(host: Host) -> str:
    if host.distro_id in DOCKER_REPO_DISTROS:
        return DOCKER_REPO_DISTROS[host.distro_id]
    for like in host.distro_like:
        if like in DOCKER_REPO_DISTROS:
            return DOCKER_REPO_DISTROS[like]
    return ""


def install_instructions(host: Host) -> str:
    """Markdown: how to install Docker (engine + compose v2) on this machine."""
    if host.kind == "wsl":
        return f"""### Docker Desktop with WSL 2 integration ({host.label})

1. On **Windows**, install Docker Desktop: <https://docs.docker.com/desktop/setup/install/windows-install/>
   (choose *Use WSL 2 instead of Hyper-V*). Start it once and accept the licence.
2. Docker Desktop → **Settings → Resources → WSL integration**: switch on
   **{host.wsl_distro or "your distro"}**, then *Apply & restart*.
3. Close and reopen this WSL terminal (and JupyterLab), then check:
   ```bash
   docker version          # shows Client and Server
   docker compose version  # v2.x
   ```
4. Keep the app repository inside the WSL file system (`~/code/...`), not under `/mnt/c`: bind mounts from
   Windows drives are slow.

Do **not** also install `docker.io` / `docker-ce` inside the distro: two engines fight over the socket.
"""
    if host.kind == "macos":
        return """### Docker Desktop for Mac

1. Install Docker Desktop (Apple silicon or Intel build): <https://docs.docker.com/desktop/setup/install/mac-install/>
   or `brew install --cask docker`.
2. Start Docker Desktop and wait for *Engine running*.
3. Check: `docker version` (Client and Server) and `docker compose version` (v2.x).
"""
    if host.kind == "windows":
        return """### Windows

Run the runbook inside WSL 2 (Ubuntu): `wsl --install -d Ubuntu`, then follow the WSL instructions there
(Docker Desktop with WSL integration).
"""
    repo = _docker_repo_id(host)
    head = f"### Docker Engine on {host.label}\n\n"
    tail = """
Then let your user use the engine without sudo, and start it:

```bash
sudo usermod -aG docker $USER      # log out and back in (or: newgrp docker)
sudo systemctl enable --now docker
docker version && docker compose version
```
"""
    codename = host.codename or "$(. /etc/os-release && echo $VERSION_CODENAME)"
    if host.family == "debian" and repo:
        return (
            head
            + f"""Install Docker Engine and the Compose v2 plugin from Docker's apt repository
(<https://docs.docker.com/engine/install/{repo}/>):

```bash
sudo apt-get update && sudo apt-get install -y ca-certificates curl
sudo install -m 0755 -d /etc/apt/keyrings
sudo curl -fsSL https://download.docker.com/linux/{repo}/gpg -o /etc/apt/keyrings/docker.asc
echo "deb [arch=$(dpkg --print-architecture) signed-by=/etc/apt/keyrings/docker.asc] \\
  https://download.docker.com/linux/{repo} {codename} stable" \\
  | sudo tee /etc/apt/sources.list.d/docker.list
sudo apt-get update
sudo apt-get install -y docker-ce docker-ce-cli containerd.io docker-buildx-plugin docker-compose-plugin
```

(The distribution's own `docker.io` package also works; add the Compose v2 plugin then.)
"""
            + tail
        )
    if host.family == "fedora" and repo:
        return (
            head
            + f"""Install Docker Engine and the Compose v2 plugin from Docker's repository
(<https://docs.docker.com/engine/install/{repo}/>):

```bash
sudo dnf -y install dnf-plugins-core
sudo dnf config-manager --add-repo https://download.docker.com/linux/{repo}/docker-ce.repo
sudo dnf install -y docker-ce docker-ce-cli containerd.io docker-buildx-plugin docker-compose-plugin
```
"""
            + tail
        )
    return (
        head
        + """Docker publishes packages for Debian, Ubuntu, Fedora, CentOS/RHEL and others:
follow <https://docs.docker.com/engine/install/> for your distribution (Docker Engine plus the
`docker-compose-plugin`), or use the convenience script for a test machine:
`curl -fsSL https://get.docker.com | sh`.
"""
        + tail
    )


def show_instructions(host: Host | None = None) -> str:
    """Show the install instructions for this machine (Markdown in a kernel); returns them."""
    from helpers.core.display import in_kernel

    host = host or detect()
    text = install_instructions(host)
    if in_kernel():
        from IPython.display import display

        display({"text/markdown": text, "text/plain": text}, raw=True)
    else:
        print(text)
    return text


# One machine of each kind, for "show the instructions for every platform".
EXAMPLE_HOSTS: tuple[Host, ...] = (
    Host(
        kind="wsl",
        system="Linux",
        distro_id="ubuntu",
        distro_like=("debian",),
        distro_name="Ubuntu",
        codename="jammy",
        wsl_distro="Ubuntu",
    ),
    Host(kind="linux", system="Linux", distro_id="debian", distro_name="Debian", codename="bookworm"),
    Host(kind="linux", system="Linux", distro_id="fedora", distro_name="Fedora"),
    Host(kind="macos", system="Darwin"),
)
