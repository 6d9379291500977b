"""helpers.cloud.server without a server: parsers, generated files, settings, sizing, the verification rows.

The steps themselves run against a real sshd in tests/integration/test_server_setup.py. Two steps are also
driven here through a scripted remote, for what the rehearsal container cannot show: the swap file on a
real disk (the container's overlay root refuses swap) and the order of ufw's commands (the SSH port is
allowed before the firewall is switched on).
"""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from helpers.cloud import server
from helpers.cloud.server import GIB, Output

UFW_ACTIVE = """\
Status: active
Logging: on (low)
Default: deny (incoming), allow (outgoing), deny (routed)
New profiles: skip

To                         Action      From
--                         ------      ----
22/tcp                     ALLOW IN    Anywhere
80/tcp                     ALLOW IN    Anywhere
8000/tcp                   ALLOW IN    203.0.113.0/24
443                        DENY IN     Anywhere
22/tcp (v6)                ALLOW IN    Anywhere (v6)
80/tcp (v6)                ALLOW IN    Anywhere (v6)
"""


def test_parse_ufw_status_verbose() -> None:
    status = server.parse_ufw_status(UFW_ACTIVE)
    assert status.active and status.incoming == "deny" and status.outgoing == "allow"
    assert ("22/tcp", "ALLOW IN", "Anywhere") in status.rules
    assert ("22/tcp (v6)", "ALLOW IN", "Anywhere (v6)") in status.rules
    assert status.allows(22) and status.allows(80)
    assert not status.allows(8000)  # only from one network
    assert not status.allows(443)  # denied
    assert not status.allows(8080)


def test_parse_ufw_inactive() -> None:
    status = server.parse_ufw_status("Status: inactive\n")
    assert not status.active and status.rules == [] and status.incoming == ""


def test_sshd_dropin_without_and_with_root_networks() -> None:
    plain = server.sshd_dropin()
    for line in ("PermitRootLogin no", "PasswordAuthentication no", "KbdInteractiveAuthentication no"):
        assert re.search(rf"^{line}$", plain, re.M)
    assert "Match" not in plain
    coolify = server.sshd_dropin(["10.0.0.0/8", "172.16.0.0/12"])
    assert (
        "Match Address 10.0.0.0/8,172.16.0.0/12\n    PermitRootLogin prohibit-password\nMatch all\n"
        in coolify
    )
    assert coolify.index("PermitRootLogin no") < coolify.index("Match Address")


def test_fail2ban_jail_reads_the_journal_and_ignores_given_addresses() -> None:
    jail = server.fail2ban_jail(["198.51.100.4"])
    assert "backend = systemd" in jail and "[sshd]\nenabled = true" in jail
    assert re.search(r"^ignoreip = 127\.0\.0\.1/8 ::1 198\.51\.100\.4$", jail, re.M)
    assert "_COMM=sshd-session" in jail


def test_sudoers_line() -> None:
    assert server.sudoers_line("deploy").endswith("deploy ALL=(ALL) NOPASSWD:ALL\n")


@pytest.mark.parametrize(("ram_gib", "swap_gib"), [(0.5, 2), (1, 2), (2, 2), (3, 3), (4, 4), (8, 4), (16, 4)])
def test_swap_size_for(ram_gib: float, swap_gib: int) -> None:
    assert server.swap_size_for(int(ram_gib * GIB)) == swap_gib * GIB


def test_parse_size() -> None:
    assert server.parse_size("2G") == 2 * GIB
    assert server.parse_size("512M") == 512 * 1024**2
    assert server.parse_size("1.5GiB") == int(1.5 * GIB)
    with pytest.raises(ValueError, match="'auto' or a size"):
        server.parse_size("lots")


def test_same_timezone() -> None:
    assert server.same_timezone("Etc/UTC", "UTC")
    assert server.same_timezone("Europe/Berlin", "Europe/Berlin")
    assert not server.same_timezone("Europe/Berlin", "UTC")


def test_settings_from_params_and_validation() -> None:
    s = server.Settings.from_params(
        admin_user="ops", allowed_ports="22, 80,443", root_login_from="10.0.0.0/8,", timezone="Europe/Berlin"
    )
    assert s.ports == (22, 80, 443) and s.root_login_from == ("10.0.0.0/8",) and s.admin_user == "ops"
    assert ("root login from", "10.0.0.0/8") in s.rows()
    with pytest.raises(ValueError, match="must not be root"):
        server.Settings(admin_user="root")
    with pytest.raises(ValueError, match="not a valid Linux user name"):
        server.Settings(admin_user="Bad User")
    with pytest.raises(ValueError, match="port numbers"):
        server.Settings.from_params(allowed_ports="22,http")
    with pytest.raises(ValueError, match="not a TCP port"):
        server.Settings(ports=(22, 70000))
    with pytest.raises(ValueError, match="not an address or network"):
        server.Settings(root_login_from=("10.0.0.0/33",))
    with pytest.raises(ValueError, match="'auto' or a size"):
        server.Settings(swap_size="big")
    with pytest.raises(ValueError, match="absolute path"):
        server.Settings(swap_path="swapfile")


def test_key_blobs() -> None:
    text = 'ssh-ed25519 AAAAblob1 me@x\ncommand="x" ssh-rsa AAAAblob2 y\n# comment\n\n'
    assert server._key_blobs(text) == {"AAAAblob1", "AAAAblob2"}


# --------------------------------------------------------------------------- the verification rows


def good_state() -> server.ServerState:
    return server.ServerState(
        sshd_outside_root={"permitrootlogin": "no", "passwordauthentication": "no"},
        sshd_outside_admin={"passwordauthentication": "no", "kbdinteractiveauthentication": "no"},
        ufw=server.parse_ufw_status(
            UFW_ACTIVE.replace("203.0.113.0/24", "Anywhere").replace("DENY", "ALLOW")
        ),
        ufw_raw="",
        swaps=[("/swapfile", 2 * GIB)],
        root_fstype="ext4",
        admin_id="uid=1000(deploy) gid=1000(deploy) groups=1000(deploy),27(sudo)",
        admin_groups=["deploy", "sudo"],
        admin_sudo="User deploy may run the following commands:\n    (ALL) NOPASSWD: ALL\n",
        admin_has_key=True,
        fail2ban_active="active",
        fail2ban_jails=["sshd"],
        timezone="Etc/UTC",
        etc_timezone="Etc/UTC",
        apt_periodic={"Update-Package-Lists": "1", "Unattended-Upgrade": "1"},
        timers=["enabled", "enabled"],
        auth_methods=["publickey"],
    )


def failing(state: server.ServerState, **kw) -> list[str]:
    rows = server.checks(state, admin_user="deploy", ports=(22, 80, 443, 8000), **kw)
    return [name for name, ok, _, _ in rows if not ok]


def test_checks_all_pass_on_a_good_state() -> None:
    rows = server.checks(good_state(), admin_user="deploy", root_login_refused=True)
    assert rows and all(ok for _, ok, _, _ in rows), [r for r in rows if not r[1]]
    assert all(hint == "" or isinstance(hint, str) for *_, hint in rows)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"sshd_outside_root": {"permitrootlogin": "prohibit-password"}}, "PermitRootLogin no"),
        ({"sshd_outside_admin": {"passwordauthentication": "yes", "kbdinteractiveauthentication": "no"}},
         "passwordauthentication no"),
        ({"auth_methods": ["password", "publickey"]}, "only publickey"),
        ({"admin_id": "id: 'deploy': no such user"}, "id deploy"),
        ({"admin_groups": ["deploy"]}, "group sudo"),
        ({"admin_sudo": "(ALL : ALL) ALL"}, "passwordless sudo"),
        ({"admin_has_key": False}, "authorized_keys"),
        ({"ufw": server.parse_ufw_status("Status: inactive\n")}, "ufw status: active"),
        ({"fail2ban_active": "failed"}, "fail2ban is active"),
        ({"fail2ban_jails": []}, "sshd jail"),
        ({"apt_periodic": {"Update-Package-Lists": "1", "Unattended-Upgrade": "0"}}, "unattended upgrades"),
        ({"timers": ["enabled", "disabled"]}, "apt timers"),
        ({"swaps": []}, "swap active"),
        ({"timezone": "Europe/Berlin"}, "timezone"),
        ({"etc_timezone": "Europe/Berlin"}, "timezone"),
    ],
)  # fmt: skip
def test_every_check_can_fail(change: dict, expected: str) -> None:
    names = failing(replace(good_state(), **change))
    assert any(expected in n for n in names), names


def test_real_root_login_row_and_the_no_swap_row() -> None:
    assert any("real root login" in n for n in failing(good_state(), root_login_refused=False))
    no_swap = replace(good_state(), swaps=[])
    assert failing(no_swap, swap_size="0") == []  # none wanted, none there
    assert failing(good_state(), swap_size="0") == ["no swap file at /swapfile (swap_size 0)"]
    other = replace(good_state(), swaps=[("/dev/vdb", GIB)])
    assert failing(other, swap_size="0") == []  # a swap device that is not ours is not the runbook's
    assert failing(no_swap) == ["swapon --show: swap active"]  # a swap is wanted: its absence fails


def test_each_steps_rows_sit_with_the_step() -> None:
    state = good_state()
    composed = server.checks(state, admin_user="deploy", root_login_refused=True)
    parts = [
        server.sshd_rows(state, True),
        server.admin_rows(state, "deploy"),
        server.ufw_rows(state),
        server.fail2ban_rows(state),
        server.upgrade_rows(state),
        server.swap_rows(state),
        server.timezone_rows(state),
    ]
    assert composed == [row for part in parts for row in part]


def test_the_plan_check_flags_a_change() -> None:
    from helpers.core.checks import Checklist
    from helpers.core.dryrun import check_plan
    from helpers.core.steps import StepResult

    check = Checklist("dry")
    check_plan(check, [StepResult("a", "would change"), StepResult("b", "changed")])
    assert [(r.name, r.detail) for r in check.failures] == [("dry run changed nothing", "b")]


# ---------------------------------------------------------------- steps through a scripted remote


class ScriptedRemote(server.Remote):
    """A Remote whose commands answer from a script (first matching regex); it records every command."""

    def __init__(self, answers: list[tuple[str, str, int]]):
        super().__init__(conn=None, user="root", host="203.0.113.7", port=22)
        self.answers = answers
        self.commands: list[str] = []
        self.files: dict[str, str] = {}

    def run(self, command: str, check: bool = True, timeout: float = 300) -> Output:
        self.commands.append(command)
        for pattern, stdout, code in self.answers:
            if re.search(pattern, command):
                out = Output(stdout, "", code)
                break
        else:
            out = Output("", "", 0)
        if check and not out.ok:
            raise server.RemoteCommandFailed(command, out.exited, out.stdout, out.stderr)
        return out

    def write_file(self, path: str, content: str, mode: str = "644", owner: str = "root",
                   group: str | None = None, validate: str | None = None) -> None:  # fmt: skip
        self.files[path] = content


def swap_remote(fstype: str, ram_kib: int = 1024 * 1024, free: int = 50 * GIB) -> ScriptedRemote:
    return ScriptedRemote([
        (r"^swapon --show", "", 0),
        (r"^findmnt", fstype + "\n", 0),
        (r"MemTotal", f"MemTotal:       {ram_kib} kB\n", 0),
        (r"^df ", f"{free}\n", 0),
        (r"^test -f", "", 1),
    ])  # fmt: skip


def test_swap_on_a_disk_creates_file_fstab_and_swappiness() -> None:
    remote = swap_remote("ext4")
    result = server.ensure_swap(remote, "auto")
    assert result.status == "changed" and "2 GiB for 1 GiB of RAM" in result.detail
    joined = "\n".join(remote.commands)
    assert f"fallocate -l {2 * GIB} /swapfile" in joined
    assert "chmod 600 /swapfile && mkswap /swapfile >/dev/null && swapon /swapfile" in joined
    assert "/swapfile none swap sw 0 0' >> /etc/fstab" in joined
    assert remote.files[server.SWAP_SYSCTL].strip().endswith("vm.swappiness = 10")


def test_swap_size_0_skips_and_overlay_fails() -> None:
    remote = swap_remote("overlay")
    none = server.ensure_swap(remote, "0")
    assert none.status == "skipped" and none.detail == "swap_size is 0: no swap file wanted"
    assert remote.commands == []  # it did not even look
    real = server.ensure_swap(swap_remote("overlay"))
    assert real.status == "failed" and "swap_path" in real.detail and "swap_size 0" in real.detail


def test_swap_dry_run_and_not_enough_disk() -> None:
    remote = swap_remote("ext4")
    assert server.ensure_swap(remote, "2G", dry_run=True).status == "would change"
    assert not any("fallocate" in c or "swapon /swapfile" in c for c in remote.commands)
    small = server.ensure_swap(swap_remote("ext4", free=GIB), "2G")
    assert small.status == "failed" and "smaller swap_size" in small.detail


def test_existing_swap_counts_as_done() -> None:
    remote = ScriptedRemote([(r"^swapon --show", f"/dev/vda15 {GIB}\n", 0)])
    result = server.ensure_swap(remote)
    assert result.status == "ok" and "/dev/vda15" in result.detail


def test_ufw_allows_ssh_port_before_enabling() -> None:
    remote = ScriptedRemote([
        (r"^sshd -T", "port 2222\nport 22\n", 0),
        (r"^ufw status", "Status: inactive\n", 0),
    ])  # fmt: skip
    result = server.ensure_ufw(remote, ports=(80, 443))
    assert result.status == "changed"
    ufw = [c for c in remote.commands if c.startswith("ufw ") and "status" not in c]
    assert ufw[-1] == "ufw --force enable"
    assert "ufw allow 2222/tcp" in ufw and "ufw allow 22/tcp" in ufw
    assert ufw.index("ufw allow 2222/tcp") < ufw.index("ufw --force enable")
