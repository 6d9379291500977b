"""Task 1.1's helper against a stateful fake ``multipass`` executable put on PATH.

Multipass cannot run on the project's machines (no nested virtualisation), so this is
the one place a system is faked: a small script that keeps its instances in a JSON file,
answers ``list --format json``, ``stop``, ``delete [--purge]``, ``purge`` like Multipass 1.14
(same output shape, same error words), and logs every call so the tests see what ran.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from helpers.core.checks import Checklist
from helpers.host import multipass

FAKE = r"""#!PYTHON
import json, os, sys
state_path = os.environ["FAKE_MULTIPASS_STATE"]
with open(state_path) as f:
    state = json.load(f)
args = sys.argv[1:]
with open(state_path + ".log", "a") as log:
    log.write(" ".join(args) + "\n")
fail = state.get("fail", {})
if args and args[0] in fail:
    sys.stderr.write(fail[args[0]] + "\n")
    sys.exit(2)
vms = state["instances"]
def save():
    with open(state_path, "w") as f:
        json.dump(state, f)
def need(name):
    if name not in vms:
        sys.stderr.write(f'instance "{name}" does not exist\n')
        sys.exit(2)
if args[:3] == ["list", "--format", "json"]:
    rows = [{"ipv4": ["192.168.64.5"] if v == "Running" else [], "name": n, "release": "22.04 LTS",
             "state": v} for n, v in vms.items()]
    print(json.dumps({"list": rows}, indent=4))
elif args[0] == "stop":
    need(args[1])
    if vms[args[1]] == "Deleted":
        sys.stderr.write(f'instance "{args[1]}" is deleted\n'); sys.exit(2)
    vms[args[1]] = "Stopped"; save()
elif args[0] == "delete":
    name = [a for a in args[1:] if not a.startswith("-")][0]
    need(name)
    if "--purge" in args:
        del vms[name]
    else:
        vms[name] = "Deleted"
    save()
elif args[0] == "purge":
    state["instances"] = {n: v for n, v in vms.items() if v != "Deleted"}; save()
else:
    sys.stderr.write("unknown command\n"); sys.exit(1)
"""


class FakeMultipass:
    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, instances: dict[str, str]):
        self.bin = tmp_path / "bin"
        self.bin.mkdir()
        exe = self.bin / "multipass"
        exe.write_text(FAKE.replace("PYTHON", sys.executable))
        exe.chmod(0o755)
        self.state = tmp_path / "multipass-state.json"
        self.write({"instances": instances})
        monkeypatch.setenv("FAKE_MULTIPASS_STATE", str(self.state))
        monkeypatch.setenv("PATH", f"{self.bin}{os.pathsep}{os.environ['PATH']}")

    def write(self, data: dict) -> None:
        self.state.write_text(json.dumps(data))

    @property
    def instances(self) -> dict[str, str]:
        return json.loads(self.state.read_text())["instances"]

    @property
    def calls(self) -> list[str]:
        log = Path(str(self.state) + ".log")
        return log.read_text().splitlines() if log.exists() else []

    def mutating_calls(self) -> list[str]:
        return [c for c in self.calls if not c.startswith("list")]


@pytest.fixture
def no_multipass(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


def statuses(results) -> list[tuple[str, str]]:
    return [(r.name, r.status) for r in results]


def test_parse_list_reads_multipass_json():
    text = json.dumps(
        {
            "list": [
                {"ipv4": ["192.168.64.5"], "name": "coolify-vm", "release": "22.04 LTS", "state": "Running"},
                {"ipv4": [], "name": "old", "state": "Deleted"},
            ]
        }
    )
    vms = multipass.parse_list(text)
    assert [(v.name, v.state, v.deleted) for v in vms] == [
        ("coolify-vm", "Running", False),
        ("old", "Deleted", True),
    ]
    assert vms[0].ipv4 == ("192.168.64.5",)


def test_parse_list_rejects_non_json_with_a_next_step():
    with pytest.raises(multipass.MultipassError, match="not JSON") as err:
        multipass.parse_list("Name  State\ncoolify-vm Running")
    assert "multipass list" in err.value.next_step


def test_absent_binary_means_nothing_to_remove_and_the_check_passes(no_multipass):
    results = multipass.remove_vm("coolify-vm", remove=True, purge=True)
    assert statuses(results) == [("multipass", "skipped")]
    assert "nothing to remove" in results[0].detail
    check = Checklist("1.1")
    multipass.check_vm_gone(check, "coolify-vm")
    assert not check.failures and "not installed" in check.results[0].detail


def test_without_remove_it_only_plans_and_the_check_fails(tmp_path, monkeypatch):
    fake = FakeMultipass(tmp_path, monkeypatch, {"coolify-vm": "Running"})
    results = multipass.remove_vm("coolify-vm")
    assert ("stop VM coolify-vm", "would change") in statuses(results)
    assert ("delete VM coolify-vm", "would change") in statuses(results)
    assert all("remove_vm=True" in r.detail for r in results if r.status == "would change")
    assert fake.mutating_calls() == [] and fake.instances == {"coolify-vm": "Running"}
    check = Checklist("1.1")
    multipass.check_vm_gone(check, "coolify-vm")
    assert check.failures and "Running" in check.failures[0].detail
    assert "remove_vm True" in check.failures[0].hint


def test_dry_run_with_remove_changes_nothing(tmp_path, monkeypatch):
    fake = FakeMultipass(tmp_path, monkeypatch, {"coolify-vm": "Running"})
    results = multipass.remove_vm("coolify-vm", remove=True, purge=True, dry_run=True)
    assert {s for _, s in statuses(results)} == {"ok", "would change"}
    assert fake.mutating_calls() == [] and fake.instances == {"coolify-vm": "Running"}


def test_running_vm_is_stopped_then_deleted_then_idempotent(tmp_path, monkeypatch):
    fake = FakeMultipass(tmp_path, monkeypatch, {"coolify-vm": "Running", "other": "Running"})
    results = multipass.remove_vm("coolify-vm", remove=True)
    assert statuses(results) == [
        ("multipass list", "ok"),
        ("stop VM coolify-vm", "changed"),
        ("delete VM coolify-vm", "changed"),
        ("multipass purge", "skipped"),
    ]
    assert fake.mutating_calls() == ["stop coolify-vm", "delete coolify-vm"]
    assert fake.instances == {"coolify-vm": "Deleted", "other": "Running"}
    check = Checklist("1.1")
    multipass.check_vm_gone(check, "coolify-vm")
    assert not check.failures and "recover" in check.results[0].detail

    again = multipass.remove_vm("coolify-vm", remove=True)
    assert {s for _, s in statuses(again)} <= {"ok", "skipped"}
    assert fake.mutating_calls() == ["stop coolify-vm", "delete coolify-vm"]


def test_stopped_vm_is_deleted_without_a_stop(tmp_path, monkeypatch):
    fake = FakeMultipass(tmp_path, monkeypatch, {"coolify-vm": "Stopped"})
    results = multipass.remove_vm("coolify-vm", remove=True)
    assert ("stop VM coolify-vm", "ok") in statuses(results)
    assert fake.mutating_calls() == ["delete coolify-vm"]


def test_purge_runs_only_when_asked(tmp_path, monkeypatch):
    fake = FakeMultipass(tmp_path, monkeypatch, {"coolify-vm": "Running"})
    multipass.remove_vm("coolify-vm", remove=True, purge=False)
    assert "purge" not in fake.mutating_calls()
    results = multipass.remove_vm("coolify-vm", remove=True, purge=True)
    assert ("multipass purge", "changed") in statuses(results)
    assert fake.mutating_calls()[-1] == "purge" and fake.instances == {}
    again = multipass.remove_vm("coolify-vm", remove=True, purge=True)
    assert {s for _, s in statuses(again)} == {"ok"}
    assert fake.mutating_calls().count("purge") == 1


def test_purge_without_remove_is_only_planned_for_a_live_vm(tmp_path, monkeypatch):
    fake = FakeMultipass(tmp_path, monkeypatch, {"coolify-vm": "Running", "old": "Deleted"})
    results = multipass.remove_vm("coolify-vm", remove=False, purge=True)
    purge = next(r for r in results if r.name == "multipass purge")
    assert purge.status == "would change" and "old" in purge.detail
    assert fake.mutating_calls() == []


def test_absent_vm_is_ok(tmp_path, monkeypatch):
    fake = FakeMultipass(tmp_path, monkeypatch, {"something-else": "Running"})
    results = multipass.remove_vm("coolify-vm", remove=True)
    assert statuses(results) == [("multipass list", "ok"), ("remove VM coolify-vm", "ok")]
    assert "not present" in results[1].detail and fake.mutating_calls() == []
    check = Checklist("1.1")
    multipass.check_vm_gone(check, "coolify-vm")
    assert not check.failures


def test_a_multipass_error_is_surfaced_with_the_next_step(tmp_path, monkeypatch):
    fake = FakeMultipass(tmp_path, monkeypatch, {"coolify-vm": "Running"})
    fake.write(
        {
            "instances": {"coolify-vm": "Running"},
            "fail": {"list": "list failed: cannot connect to the multipass socket"},
        }
    )
    results = multipass.remove_vm("coolify-vm", remove=True)
    assert statuses(results) == [("multipass list", "failed")]
    assert "cannot connect to the multipass socket" in results[0].detail
    assert "daemon" in results[0].detail
    check = Checklist("1.1")
    multipass.check_vm_gone(check, "coolify-vm")
    assert check.failures and "socket" in check.failures[0].detail and "daemon" in check.failures[0].hint


def test_a_failing_stop_stops_the_chain(tmp_path, monkeypatch):
    fake = FakeMultipass(tmp_path, monkeypatch, {"coolify-vm": "Running"})
    fake.write({"instances": {"coolify-vm": "Running"}, "fail": {"stop": "stop failed: timed out"}})
    results = multipass.remove_vm("coolify-vm", remove=True, purge=True)
    assert statuses(results)[-1] == ("stop VM coolify-vm", "failed")
    assert "stop failed: timed out" in results[-1].detail
    assert fake.instances == {"coolify-vm": "Running"}


@pytest.mark.slow
def test_notebook_1_1_refuses_by_default_then_removes_and_is_idempotent(tmp_path, monkeypatch):
    import nbformat
    import papermill

    from helpers.core.paths import PROJECT_ROOT
    from helpers.core.steps import MIME
    from helpers.core.tasks import get

    fake = FakeMultipass(tmp_path, monkeypatch, {"coolify-vm": "Running"})
    source = str(PROJECT_ROOT / get("1.1").notebook)

    def run(tag: str, **parameters) -> list[str]:
        out = tmp_path / f"1.1-{tag}.ipynb"
        papermill.execute_notebook(
            source,
            str(out),
            parameters=parameters,
            kernel_name="python3",
            progress_bar=False,
            cwd=str(PROJECT_ROOT),
        )
        nb = nbformat.read(out, as_version=4)
        return [
            s["status"]
            for c in nb.cells
            for o in c.get("outputs", [])
            if MIME in o.get("data", {})
            for s in o["data"][MIME]["steps"]
        ]

    with pytest.raises(papermill.PapermillExecutionError) as err:
        run("default")
    assert "still exists: state Running" in str(err.value) and "remove_vm True" in str(err.value)
    assert fake.mutating_calls() == []

    assert run("remove", remove_vm=True) == ["ok", "changed", "changed", "skipped"]
    assert fake.instances == {"coolify-vm": "Deleted"}
    assert set(run("again", remove_vm=True)) <= {"ok", "skipped"}
    assert fake.mutating_calls() == ["stop coolify-vm", "delete coolify-vm"]
