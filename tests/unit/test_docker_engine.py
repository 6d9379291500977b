"""Parsing and decisions of helpers.host.docker_engine that need no engine."""

from __future__ import annotations

import pytest

from helpers.core.checks import Checklist
from helpers.host import docker_engine as de
from helpers.host.hostinfo import Host

LINUX = Host(kind="linux", system="Linux", distro_id="debian")
WSL = Host(kind="wsl", system="Linux", distro_id="ubuntu", wsl_distro="Ubuntu")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Docker Compose version v2.40.3", (2, 40, 3)),
        ("2.24.6-desktop.1", (2, 24, 6)),
        ("docker-compose version 1.29.2, build 5becea4c", (1, 29, 2)),
        ("v2.5", (2, 5)),
        ("unknown", None),
    ],
)
def test_parse_compose_version(text, expected):
    assert de.parse_compose_version(text) == expected


def test_parse_df_takes_the_available_column():
    out = "runbook-probe-ok\noverlay           263174212  24967928 224767196  10% /\n"
    assert de.parse_df(out) == 224767196 * 1024
    assert de.parse_df("runbook-probe-ok\n") is None


def test_probe_image_precedence(monkeypatch):
    monkeypatch.delenv("RUNBOOK_PROBE_IMAGE", raising=False)
    monkeypatch.delenv("REDIS_IMAGE", raising=False)
    assert de.default_probe_image() == "redis:7-alpine"
    monkeypatch.setenv("REDIS_IMAGE", "runbook-standin/redis:7")
    assert de.default_probe_image() == "runbook-standin/redis:7"
    monkeypatch.setenv("RUNBOOK_PROBE_IMAGE", "busybox:latest")
    assert de.default_probe_image() == "busybox:latest"


def test_engine_hints(monkeypatch):
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    sock = "Got permission denied while trying to connect to the Docker daemon socket at unix:///var/run/docker.sock"
    assert "usermod -aG docker" in de.engine_hint(sock, LINUX)
    down = "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?"
    assert "systemctl" in de.engine_hint(down, LINUX)
    assert "WSL integration" in de.engine_hint(down, WSL)
    wsl_missing = "The command 'docker' could not be found in this WSL 2 distro."
    assert "WSL integration" in de.engine_hint(wsl_missing, LINUX)
    monkeypatch.setenv("DOCKER_HOST", "tcp://10.0.0.9:2375")
    assert "unset DOCKER_HOST" in de.engine_hint(down, LINUX)


def test_data_root_is_measured_on_the_host_for_a_local_engine(tmp_path, monkeypatch):
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    free, how = de.data_root_free_bytes({"DockerRootDir": str(tmp_path), "OperatingSystem": "Debian"}, None)
    assert free and free > 0 and str(tmp_path) in how


def test_data_root_of_docker_desktop_comes_from_the_probe(tmp_path, monkeypatch):
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    probe = de.ProbeRun("img", "ok\noverlay 100 50 2048 3% /", 2048 * 1024)
    free, how = de.data_root_free_bytes(
        {"DockerRootDir": str(tmp_path), "OperatingSystem": "Docker Desktop"}, probe
    )
    assert free == 2048 * 1024 and "probe" in how
    assert de.data_root_free_bytes({"DockerRootDir": "/nonexistent/docker"}, None)[0] is None


def test_without_the_cli_the_check_says_install_docker(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    check = Checklist("1.2")
    assert de.check_engine(check, LINUX) is None
    assert [r.name for r in check.failures] == ["docker CLI on PATH"]
    assert "task 1.2" in check.failures[0].hint
    assert de.run_cli("info").returncode == 127


def test_cli_result_error_is_the_last_line():
    res = de.CliResult(("docker", "info"), 1, "", "warning\nCannot connect to the Docker daemon\n")
    assert res.error == "Cannot connect to the Docker daemon" and not res.ok
    assert de.CliResult(("docker",), 3, "", "").error == "exit code 3"
