"""The old Multipass VM (Coolify ran in it): find it, stop it, delete it, purge only when asked.

Deleting a VM is destructive, so :func:`remove_vm` only plans unless ``remove=True``;
``multipass purge`` (which makes every deleted instance unrecoverable) runs only with
``purge=True``. Without ``multipass`` on PATH there is nothing to remove.

>>> [i.name for i in parse_list('{"list": [{"name": "coolify", "state": "Running", "ipv4": []}]}')]
['coolify']
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass

from helpers.core import steps
from helpers.core.checks import Checklist
from helpers.core.errors import NextStepError
from helpers.core.steps import StepResult

DEFAULT_VM = "coolify-vm"
TIMEOUT = 300
STOPPED_STATES = ("Stopped", "Deleted")


class MultipassError(NextStepError, RuntimeError):
    """A problem and its next step."""


@dataclass(frozen=True)
class Instance:
    name: str
    state: str
    ipv4: tuple[str, ...] = ()
    release: str = ""

    @property
    def deleted(self) -> bool:
        return self.state == "Deleted"


def binary() -> str | None:
    return shutil.which("multipass")


def parse_list(text: str) -> list[Instance]:
    """Instances from ``multipass list --format json``."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MultipassError(
            f"`multipass list --format json` printed something that is not JSON ({exc})",
            "run `multipass list` by hand; update Multipass if its output format changed",
        ) from None
    return [
        Instance(
            name=str(row.get("name", "")),
            state=str(row.get("state", "")),
            ipv4=tuple(row.get("ipv4") or ()),
            release=str(row.get("release", "")),
        )
        for row in data.get("list", [])
    ]


def error_hint(stderr: str) -> str:
    low = stderr.lower()
    if "socket" in low or "daemon" in low or "multipassd" in low:
        return (
            "the Multipass daemon does not answer: start it (`sudo snap restart multipass` on Linux, "
            "open Multipass on macOS/Windows), then re-run"
        )
    if "does not exist" in low:
        return "the instance vanished meanwhile: re-run to see the current state"
    return "run the same `multipass` command by hand to see the full error"


def run(*args: str, timeout: float = TIMEOUT) -> str:
    """Run ``multipass ARGS``; its stdout, or :class:`MultipassError` naming the command and the next step."""
    exe = binary()
    if exe is None:
        raise MultipassError("multipass is not installed", "nothing to do: there is no VM to remove")
    command = "multipass " + " ".join(args)
    try:
        proc = subprocess.run([exe, *args], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise MultipassError(f"`{command}` did not finish in {timeout:.0f} s", error_hint("daemon")) from None
    if proc.returncode != 0:
        message = " ".join((proc.stderr or proc.stdout).split()) or f"exit code {proc.returncode}"
        raise MultipassError(f"`{command}` failed: {message}", error_hint(message))
    return proc.stdout


def list_instances() -> list[Instance]:
    return parse_list(run("list", "--format", "json", timeout=60))


def find(instances: list[Instance], name: str) -> Instance | None:
    return next((i for i in instances if i.name == name), None)


def _step(name: str, command: tuple[str, ...], plan: bool, why_not: str) -> StepResult:
    """Run ``multipass COMMAND`` unless planning; a failure becomes a failed step with its next step."""
    shown = "multipass " + " ".join(command)
    if plan:
        return steps.changed(name, f"would run `{shown}`{why_not}", dry_run=True)
    try:
        run(*command)
    except MultipassError as exc:
        return steps.failed(name, str(exc))
    return steps.changed(name, f"ran `{shown}`")


def remove_vm(
    name: str = DEFAULT_VM, remove: bool = False, purge: bool = False, dry_run: bool = False
) -> list[StepResult]:
    """Stop and delete the VM ``name`` (only with ``remove``), then purge (only with ``purge``)."""
    if binary() is None:
        return [steps.skipped("multipass", "multipass is not installed: nothing to remove")]
    try:
        instances = list_instances()
    except MultipassError as exc:
        return [steps.failed("multipass list", str(exc))]
    plan = dry_run or not remove
    why_not = "" if dry_run or remove else " (not done: set remove_vm=True to delete the VM)"
    vm = find(instances, name)
    results: list[StepResult] = []
    names = ", ".join(f"{i.name} ({i.state})" for i in instances) or "none"
    results.append(steps.ok("multipass list", f"instances: {names}"))
    if vm is None:
        results.append(steps.ok(f"remove VM {name}", "not present: nothing to remove"))
    elif vm.deleted:
        results.append(steps.ok(f"remove VM {name}", "already deleted"))
    else:
        if vm.state == "Stopped":
            results.append(steps.ok(f"stop VM {name}", "already stopped"))
        else:
            results.append(_step(f"stop VM {name}", ("stop", name), plan, why_not))
        if results[-1].status != "failed":
            results.append(_step(f"delete VM {name}", ("delete", name), plan, why_not))
    if any(r.status == "failed" for r in results):
        return results
    will_be_deleted = sorted(
        {i.name for i in instances if i.deleted} | ({name} if vm is not None and remove else set())
    )
    if not purge:
        if vm is not None and (vm.deleted or remove):
            results.append(
                steps.skipped(
                    "multipass purge",
                    f"not asked (purge=False): {name} stays recoverable with `multipass recover {name}`",
                )
            )
        return results
    if not will_be_deleted:
        results.append(steps.ok("multipass purge", "no deleted instance to purge"))
        return results
    waits_for_remove = vm is not None and not vm.deleted and not remove
    note = f" (makes {', '.join(will_be_deleted)} unrecoverable)" + (why_not if waits_for_remove else "")
    results.append(_step("multipass purge", ("purge",), dry_run or waits_for_remove, note))
    return results


def check_vm_gone(check: Checklist, name: str = DEFAULT_VM) -> None:
    """Task 1.1's verification: the VM ``name`` does not run or exist (a deleted instance counts as gone)."""
    if binary() is None:
        check(f"Multipass VM {name} gone", True, "multipass is not installed: no VM can exist")
        return
    try:
        instances = list_instances()
    except MultipassError as exc:
        check("multipass answers", False, exc.problem, hint=exc.next_step)
        return
    vm = find(instances, name)
    if vm is None:
        detail = "not in `multipass list`"
    elif vm.deleted:
        detail = f"deleted (disk kept until `multipass purge`; `multipass recover {name}` restores it)"
    else:
        detail = f"still exists: state {vm.state}" + (f", {', '.join(vm.ipv4)}" if vm.ipv4 else "")
    check(
        f"Multipass VM {name} gone",
        vm is None or vm.deleted,
        detail,
        hint="back up what you need from it, then re-run this notebook with `-p remove_vm True` "
        "(papermill) or set remove_vm = True",
    )
