"""Task 2.5's logic without a server: parsing the server's answers, pre-flight, fetching the installer."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import httpx
import pytest

from helpers.cloud import coolify_install as ci
from helpers.core.checks import Checklist
from helpers.rehearse.coolify import CoolifyStandIn
from helpers.rehearse.session import COOLIFY_INSTALLER

OS_RELEASE = """PRETTY_NAME="Ubuntu 24.04.1 LTS"
NAME="Ubuntu"
VERSION_ID="24.04"
ID=ubuntu
ID_LIKE=debian
"""
SS = """LISTEN 0      4096         0.0.0.0:22        0.0.0.0:*    users:(("sshd",pid=801,fd=3))
LISTEN 0      511     0.0.0.0:80   0.0.0.0:*    users:(("nginx",pid=920,fd=6),("nginx",pid=9,fd=6))
LISTEN 0      4096            [::]:8000         [::]:*    users:(("docker-proxy",pid=1500,fd=4))
LISTEN 0      4096       127.0.0.53%lo:53      0.0.0.0:*    users:(("systemd-resolve",pid=500,fd=14))
"""


def facts(**changes) -> ci.ServerFacts:
    base = ci.ServerFacts(
        os_id="ubuntu",
        os_like="debian",
        os_version="24.04",
        os_name="Ubuntu 24.04.1 LTS",
        cpus=2,
        memory_bytes=4 * 1024**3,
        disk_total_gb=80,
        disk_free_gb=70,
        listeners=(ci.Listener("0.0.0.0", 22, "sshd"),),
        installed=False,
        version=None,
    )
    return replace(base, **changes)


def blocking(f: ci.ServerFacts) -> list[str]:
    return [r.name for r in ci.preflight_rows(f) if not r.ok]


def test_parsers_read_what_the_server_prints() -> None:
    osr = ci.parse_os_release(OS_RELEASE)
    assert (osr["ID"], osr["VERSION_ID"], osr["PRETTY_NAME"]) == ("ubuntu", "24.04", "Ubuntu 24.04.1 LTS")
    assert ci.parse_meminfo("MemTotal:        2014464 kB\nMemFree: 1 kB\n") == 2014464 * 1024
    assert ci.parse_df_gb(
        "Filesystem 1G-blocks Used Available Use% Mounted on\n/dev/vda1 78G 3G 75G 4% /\n"
    ) == (
        78,
        75,
    )
    listeners = ci.parse_ss(SS)
    assert [(x.port, x.process) for x in listeners] == [
        (22, "sshd"),
        (80, "nginx"),
        (8000, "docker-proxy"),
        (53, "systemd-resolve"),
    ]


def test_preflight_passes_a_fresh_2gb_droplet() -> None:
    droplet = facts(
        memory_bytes=2014464 * 1024, disk_total_gb=48, disk_free_gb=45
    )  # s-1vcpu-2gb reports this
    assert blocking(droplet) == []


@pytest.mark.parametrize(
    ("changes", "failing"),
    [
        ({"cpus": 1}, "at least 2 CPUs"),
        ({"memory_bytes": 1024**3}, "at least 2 GB RAM"),
        ({"disk_free_gb": 3}, "at least 5 GB free (the installer refuses below)"),
        ({"os_id": "gentoo", "os_name": "Gentoo"}, "OS supported by the installer"),
        ({"listeners": ci.parse_ss(SS)}, "port 80 (Coolify's proxy) free"),
    ],
)
def test_preflight_blocks_what_the_installer_cannot_handle(changes, failing) -> None:
    assert failing in blocking(facts(**changes))


def test_preflight_details() -> None:
    held = facts(listeners=ci.parse_ss(SS))
    assert set(blocking(held)) == {"port 8000 (dashboard) free", "port 80 (Coolify's proxy) free"}
    row = next(r for r in ci.preflight_rows(held) if r.name.startswith("port 80 "))
    assert row.detail == "held by nginx" and "systemctl disable --now" in row.hint
    installed = replace(held, installed=True, version="4.0.0-beta.420")
    assert blocking(installed) == []  # ports held by Coolify itself are expected
    small = [r for r in ci.preflight_rows(facts(disk_total_gb=25, disk_free_gb=22)) if r.warning]
    assert len(small) == 1 and small[0].ok and "the installer warns" in small[0].detail
    # warnings and what Coolify itself holds are notes (ℹ️), never checks that could only pass
    check = Checklist("pre-flight")
    ci.check_preflight(check, replace(held, installed=True, disk_total_gb=25, disk_free_gb=22))
    notes = [r.name for r in check.results if r.kind == "note"]
    assert "⚠️ disk: 30 GB total / 20 GB free recommended" in notes
    assert {"port 8000 (dashboard)", "port 80 (Coolify's proxy)", "port 443 (Coolify's proxy)"} <= set(notes)
    assert all(r.name not in notes for r in check.checks)
    check = Checklist("pre-flight")
    ci.check_preflight(check, held)
    assert {r.name for r in check.failures} == {
        "port 8000 (dashboard) free",
        "port 80 (Coolify's proxy) free",
    }
    assert blocking(facts(os_id="pop")) == []  # the installer maps Pop!_OS to ubuntu


@dataclass
class Out:
    stdout: str = ""
    stderr: str = ""
    exited: int = 0

    @property
    def ok(self) -> bool:
        return self.exited == 0


@dataclass
class FakeRemote:
    answers: dict[str, Out] = field(default_factory=dict)
    host: str = "203.0.113.7"
    is_root: bool = False

    def run(self, command: str, check: bool = True, timeout: float = 300) -> Out:
        for prefix, out in self.answers.items():
            if command.startswith(prefix):
                return out
        return Out(exited=1)


def test_read_facts_and_the_installed_version() -> None:
    remote = FakeRemote(
        {
            "cat /etc/os-release": Out(OS_RELEASE),
            "nproc": Out("2\n"),
            "cat /proc/meminfo": Out("MemTotal:        4014464 kB\n"),
            "df -BG /": Out(
                "Filesystem 1G-blocks Used Available Use% Mounted on\n/dev/vda1 78G 9G 69G 12% /\n"
            ),
            "ss -Hltnp": Out(SS),
            "test -f /data/coolify/source/.env": Out(),
            "docker inspect": Out("ghcr.io/coollabsio/coolify:4.0.0-beta.420\n"),
        }
    )
    found = ci.read_facts(remote)
    assert (found.os_id, found.cpus, found.disk_free_gb, found.installed) == ("ubuntu", 2, 69, True)
    assert (found.version, found.version_source) == ("4.0.0-beta.420", "the coolify container's image tag")
    assert found.holders(8000) == ["docker-proxy"]
    del remote.answers["docker inspect"]
    remote.answers["sed -n"] = Out("4.0.0-beta.421\n")
    assert ci.installed_version(remote) == ("4.0.0-beta.421", "COOLIFY_STANDIN_VERSION in .env")


def test_fetch_a_local_installer_with_its_manifest() -> None:
    installer = ci.fetch_installer(str(COOLIFY_INSTALLER))
    assert installer.script.content.startswith(b"#!/bin/bash")
    paths = [f.path for f in installer.files]
    assert paths == [
        "helpers/__init__.py",
        "helpers/rehearse/__init__.py",
        "helpers/rehearse/base.py",
        "helpers/rehearse/coolify.py",
        "helpers/rehearse/coolify_ops.py",
        "helpers/rehearse/dockerapi.py",
        "helpers/rehearse/dockercli.py",
        "helpers/core/__init__.py",
        "helpers/core/paths.py",
        "helpers/core/settings.py",
    ]
    assert installer.rows()[0][2] == hashlib.sha256(COOLIFY_INSTALLER.read_bytes()).hexdigest()


def test_fetch_refuses_what_it_must_not_run(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"cdn\.coollabs\.io"):
        ci.fetch_installer(str(tmp_path / "nope.sh"))
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ValueError, match="not a shell script"):
        ci.fetch_installer(str(text))
    with pytest.raises(ValueError, match="plain http"):
        ci.fetch_installer("http://cdn.example.com/install.sh")
    script = tmp_path / "install.sh"
    script.write_text("#!/bin/bash\necho hi\n")
    (tmp_path / "install.sh.files").write_text("x /etc/passwd\n")
    with pytest.raises(ValueError, match="relative server path"):
        ci.fetch_installer(str(script))


def test_download_shows_sha256_and_checks_the_expected_one() -> None:
    body = b"#!/bin/bash\necho official\n"
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, content=body)

    transport = httpx.MockTransport(handler)
    installer = ci.fetch_installer(ci.OFFICIAL_INSTALLER, transport=transport)
    assert seen == [ci.OFFICIAL_INSTALLER] and installer.files == ()
    digest = hashlib.sha256(body).hexdigest()
    assert installer.script.sha256 == digest
    assert ci.fetch_installer(ci.OFFICIAL_INSTALLER, digest.upper(), transport).script.sha256 == digest
    with pytest.raises(ValueError, match="the script changed"):
        ci.fetch_installer(ci.OFFICIAL_INSTALLER, "0" * 64, transport)
    down = httpx.MockTransport(lambda r: httpx.Response(503))
    with pytest.raises(ConnectionError, match="answered 503"):
        ci.fetch_installer(ci.OFFICIAL_INSTALLER, transport=down)


def test_installer_env_is_quoted_and_plan_shows_no_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROOT_USERNAME", "admin")
    monkeypatch.setenv("ROOT_USER_PASSWORD", "it's $ecret; rm -rf /")
    monkeypatch.delenv("ROOT_USER_EMAIL", raising=False)
    monkeypatch.setenv("RUNBOOK_SECRETS_FILE", "/nonexistent/secrets.env")
    env = ci.installer_env(ci.INSTALLER_SECRETS)
    assert list(env) == ["ROOT_USERNAME", "ROOT_USER_PASSWORD"]
    text = ci.env_file_text(env)
    assert text == "ROOT_USERNAME=admin\nROOT_USER_PASSWORD='it'\"'\"'s $ecret; rm -rf /'\n"
    with pytest.raises(ValueError, match="not an environment variable name"):
        ci.env_file_text({"A B": "x"})
    installer = ci.fetch_installer(str(COOLIFY_INSTALLER))
    plan = ci.install_plan(installer, "203.0.113.7", "4.0.0-beta.420", env)
    assert "sudo bash install.sh 4.0.0-beta.420" in plan and "ROOT_USER_PASSWORD" in plan
    assert "$ecret" not in plan


def test_ensure_installed_decides_without_touching_the_server() -> None:
    installer = ci.fetch_installer(str(COOLIFY_INSTALLER))
    remote = FakeRemote()
    done = ci.ensure_installed(
        remote, facts(installed=True, version="4.0.0-beta.420"), None, "4.0.0-beta.421"
    )
    assert done.status == "ok" and "updates itself" in done.detail
    planned = ci.ensure_installed(remote, facts(), installer, dry_run=True)
    assert planned.status == "would change" and "sudo bash install.sh" in planned.diff
    refused = ci.ensure_installed(remote, facts(), installer)
    assert refused.status == "failed" and "allow_install=True" in refused.detail
    blocked = ci.ensure_installed(remote, facts(cpus=1), installer, allow_install=True)
    assert blocked.status == "failed" and "at least 2 CPUs" in blocked.detail


def test_installer_output_is_scrubbed_line_by_line() -> None:
    lines: list[str] = []
    sink = ci._Lines(lines.append, ["hunter2-password"])
    sink.write("\x1b[0;35mSetting hunter2-password\x1b[0m\npart")
    sink.write("ial line\r\n")
    sink.write("Authorization: Bearer 3|abcdefghijklmnopqrstuvwxyz")
    sink.finish()
    assert lines == ["Setting [REDACTED]", "partial line", "Authorization: Bearer [REDACTED]"]


def test_wait_for_the_dashboard_shows_changes_until_ok() -> None:
    fake = CoolifyStandIn()
    fake.inject("/api/health", 502, times=2)
    seen: list[str] = []
    waited = ci.wait_for_dashboard(
        "http://203.0.113.7:8000",
        interval=1,
        progress=seen.append,
        transport=fake.transport(),
        sleep=lambda s: None,
    )
    assert waited >= 0
    assert [line.split(": ", 1)[1] for line in seen] == ['502 {"message": "Bad Gateway"}', "200 OK"]
    fake.inject("/api/health", 502, times=99)
    ticks = iter(range(0, 10_000, 100))
    with pytest.raises(TimeoutError, match="docker logs coolify"):
        ci.wait_for_dashboard(
            "http://203.0.113.7:8000", timeout=250, transport=fake.transport(), sleep=lambda s: None,
            clock=lambda: next(ticks), progress=lambda line: None,
        )  # fmt: skip


def test_defaults_follow_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNBOOK_COOLIFY_INSTALLER", raising=False)
    monkeypatch.delenv("COOLIFY_URL", raising=False)
    monkeypatch.delenv("RUNBOOK_ADDRESS_MAP", raising=False)
    assert ci.default_installer() == ci.OFFICIAL_INSTALLER
    assert ci.default_dashboard_url("203.0.113.7") == "http://203.0.113.7:8000"
    monkeypatch.setenv("RUNBOOK_COOLIFY_INSTALLER", "/opt/install.sh")
    assert ci.default_installer() == "/opt/install.sh"
    # a forward (an SSH tunnel, a published port) of the droplet's port 8000
    monkeypatch.setenv("RUNBOOK_ADDRESS_MAP", "203.0.113.7:8000=127.0.0.1:18000,203.0.113.7:22=127.0.0.1:2")
    assert ci.default_dashboard_url("203.0.113.7") == "http://127.0.0.1:18000"
    assert ci.default_dashboard_url("203.0.113.8") == "http://203.0.113.8:8000"
    monkeypatch.setenv("COOLIFY_URL", "http://127.0.0.1:4711/")
    assert ci.default_dashboard_url("127.0.0.1") == "http://127.0.0.1:4711"


def test_the_rehearsal_droplets_docker_inspect_answers_the_runbooks_commands(capsys) -> None:
    from helpers.rehearse import dockercli

    info = {
        "Config": {"Image": "ghcr.io/coollabsio/coolify:4.0.0-beta.420"},
        "NetworkSettings": {
            "Networks": {"coolify": {"IPAddress": "10.0.1.5"}, "b": {"IPAddress": "10.0.2.6"}}
        },
    }

    class FakeDocker:
        def inspect(self, name: str) -> dict | None:
            return info if name == "redis-uuid" else None

    fmt = "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}"  # production_checks.container_address
    assert dockercli.main(["inspect", "-f", fmt, "redis-uuid"], FakeDocker()) == 0
    assert capsys.readouterr().out == "10.0.1.5 10.0.2.6 \n"
    assert dockercli.main(["inspect", "--format", "{{.Config.Image}}", "redis-uuid"], FakeDocker()) == 0
    assert capsys.readouterr().out.strip() == "ghcr.io/coollabsio/coolify:4.0.0-beta.420"
    assert dockercli.main(["inspect", "--format", "{{.Config.Image}}", "coolify"], FakeDocker()) == 1
    assert "No such object: coolify" in capsys.readouterr().err
    assert dockercli.main(["inspect", "-f", "{{json .Config}}", "redis-uuid"], FakeDocker()) == 2
    assert dockercli.main(["ps"], FakeDocker()) == 2
    assert "only `docker inspect`" in capsys.readouterr().err
