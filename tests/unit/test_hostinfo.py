"""Machine detection for task 1.2 (WSL / Linux distributions / macOS) and the matching instructions."""

from __future__ import annotations

import pytest

from helpers.host import hostinfo

WSL_KERNEL = "Linux version 5.15.153.1-microsoft-standard-WSL2 (root@941d701f84f1) (gcc (GCC) 11.2.0)"
NATIVE_KERNEL = "Linux version 6.1.0-18-amd64 (debian-kernel@lists.debian.org) (gcc-12)"
UBUNTU = (
    'NAME="Ubuntu"\nID=ubuntu\nID_LIKE=debian\nPRETTY_NAME="Ubuntu 22.04.4 LTS"\nVERSION_CODENAME=jammy\n'
)
DEBIAN = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_CODENAME=bookworm\n'
MINT = 'PRETTY_NAME="Linux Mint 21.3"\nID=linuxmint\nID_LIKE="ubuntu debian"\nVERSION_CODENAME=virginia\n'
FEDORA = 'NAME="Fedora Linux"\nID=fedora\nPRETTY_NAME="Fedora Linux 40 (Workstation Edition)"\n'
ARCH = 'NAME="Arch Linux"\nID=arch\nPRETTY_NAME="Arch Linux"\n'


def test_parse_os_release_strips_quotes_and_comments():
    values = hostinfo.parse_os_release("# comment\nID=\"ubuntu\"\nNAME='Ubuntu'\nBROKEN\n\nVERSION_ID=22.04")
    assert values == {"ID": "ubuntu", "NAME": "Ubuntu", "VERSION_ID": "22.04"}


def test_wsl_from_the_kernel_string():
    host = hostinfo.detect(proc_version=WSL_KERNEL, os_release=UBUNTU, environ={}, system="Linux")
    assert host.kind == "wsl" and host.distro_id == "ubuntu" and host.codename == "jammy"


def test_wsl_from_the_environment_even_with_a_custom_kernel():
    host = hostinfo.detect(
        proc_version=NATIVE_KERNEL,
        os_release=UBUNTU,
        environ={"WSL_DISTRO_NAME": "Ubuntu-22.04"},
        system="Linux",
    )
    assert host.kind == "wsl" and host.wsl_distro == "Ubuntu-22.04"
    assert "Ubuntu-22.04" in hostinfo.install_instructions(host)


def test_native_debian_is_linux():
    host = hostinfo.detect(proc_version=NATIVE_KERNEL, os_release=DEBIAN, environ={}, system="Linux")
    assert (host.kind, host.family, host.label) == ("linux", "debian", "Debian GNU/Linux 12 (bookworm)")


def test_macos_and_windows():
    assert hostinfo.detect(system="Darwin").kind == "macos"
    assert hostinfo.detect(system="Windows").kind == "windows"
    assert "wsl --install" in hostinfo.install_instructions(hostinfo.detect(system="Windows"))


@pytest.mark.parametrize(
    ("os_release", "expected", "absent"),
    [
        (
            DEBIAN,
            ["download.docker.com/linux/debian", "bookworm", "docker-compose-plugin", "usermod -aG docker"],
            ["dnf"],
        ),
        (UBUNTU, ["download.docker.com/linux/ubuntu", "jammy", "docker-compose-plugin"], ["dnf"]),
        (MINT, ["download.docker.com/linux/ubuntu", "docker-compose-plugin"], ["dnf"]),
        (FEDORA, ["dnf", "linux/fedora/docker-ce.repo", "usermod -aG docker"], ["apt-get"]),
        (ARCH, ["docs.docker.com/engine/install/", "usermod -aG docker"], ["apt-get", "dnf"]),
    ],
)
def test_linux_instructions_match_the_distribution(os_release, expected, absent):
    host = hostinfo.detect(proc_version=NATIVE_KERNEL, os_release=os_release, environ={}, system="Linux")
    text = hostinfo.install_instructions(host)
    for word in expected:
        assert word in text
    for word in absent:
        assert word not in text
    assert "Docker Desktop" not in text


def test_wsl_instructions_point_at_docker_desktop_and_warn_about_a_second_engine():
    host = hostinfo.detect(
        proc_version=WSL_KERNEL, os_release=UBUNTU, environ={"WSL_DISTRO_NAME": "Ubuntu"}, system="Linux"
    )
    text = hostinfo.install_instructions(host)
    assert "WSL integration" in text and "Docker Desktop" in text and "/mnt/c" in text
    assert "apt-get install" not in text


def test_start_hint_depends_on_the_machine():
    wsl = hostinfo.Host(kind="wsl", system="Linux", wsl_distro="Ubuntu")
    linux = hostinfo.Host(kind="linux", system="Linux")
    mac = hostinfo.Host(kind="macos", system="Darwin")
    assert "WSL integration" in hostinfo.start_engine_hint(wsl)
    assert "systemctl" in hostinfo.start_engine_hint(linux)
    assert "Docker Desktop" in hostinfo.start_engine_hint(mac)


def test_this_machine_is_detected_from_its_real_files():
    host = hostinfo.detect()
    assert host.kind in ("wsl", "linux", "macos", "windows", "other")
    assert host.label
