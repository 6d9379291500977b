"""The one-command rehearsal of phase 2: ``python -m helpers.rehearse phase2``, twice, through the runner.

Runs the command as a learner or CI would, over every phase-2 task whose notebook exists (override with
``RUNBOOK_REHEARSE_TO=2.8``), then reads the run folders itself: every task passed in both runs, the second
run's steps are all ok/skipped, and no secret of the rehearsal (its throwaway tokens, the passwords the
notebooks generated into its secrets file) appears in any file under the run folders. Afterwards no
process or container of the rehearsal is left.

When the rehearsal reaches 2.18, the operations run after it (a separate step): the test reads their run
folders and ``runs/operations.json`` too: a backup and a drill whose tables all match, a release rolled
back to the previous image and forward again (the images the containers ran, read on the engine), the
monitoring created once and unchanged on its second run, the doctor's verdicts on a healthy and on a
stopped app, and a teardown after which the stand-ins list nothing of the rehearsal.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import evidence
import pytest

from helpers.core import settings
from helpers.core.paths import PROJECT_ROOT
from helpers.rehearse.__main__ import QUIET_STATUSES, existing_tasks, notebook_steps, problems_of
from helpers.rehearse.session import Rehearsal, RehearsalError, refuse_real_vendors


def _secrets(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        name, sep, value = line.partition("=")
        if sep and not name.startswith("#") and len(value.strip()) >= 8:
            values[name.strip()] = value.strip().strip("'\"")
    return values


@pytest.mark.engine
@pytest.mark.slow
def test_phase2_rehearsal_twice_second_run_changes_nothing_and_leaks_nothing(
    tmp_path: Path, droplet_image: None
) -> None:
    tasks = existing_tasks()
    last = settings.env.rehearse_to or tasks[-1]
    selected = tasks[: tasks.index(last) + 1]
    assert selected[:8] == [f"2.{n}" for n in range(1, 9)]
    workdir = tmp_path / "rehearsal"
    env = {k: v for k, v in os.environ.items() if k not in ("DIGITALOCEAN_API_URL", "GITHUB_API_URL")}
    command = ["phase2", "--to", last, "--keep", "--workdir", str(workdir)]
    proc = subprocess.run(
        [sys.executable, "-m", "helpers.rehearse", *command],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=3000,
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    # One folder per run, and one more for 2.18 when it is selected (the simulated push comes before it).
    runs = sorted((workdir / "runs").glob("run-*"))
    assert all(str(run) in output for run in runs)  # it says where the run folders are
    by_number = {n: [r for r in runs if r.name.split("-")[1] == str(n)] for n in (1, 2)}

    # Read the run folders independently of the command's own verdict.
    for number, folders in by_number.items():
        status: dict[str, str] = {}
        for run in folders:
            ledger = json.loads((run / "ledger.json").read_text(encoding="utf-8"))
            chosen = [t for t in ledger["tasks"] if t["selected"]]
            status.update({t["id"]: t["status"] for t in chosen})
            for record in chosen if number == 2 else ():  # the second run: every step ok or skipped
                statuses = {s["status"] for s in notebook_steps(run / record["output"])}
                assert statuses <= QUIET_STATUSES, (record["id"], statuses)
            assert problems_of(run, [t["id"] for t in chosen], quiet=number == 2) == []
        assert status == dict.fromkeys(selected, "passed"), (number, status)
    # Read from outside (the stand-ins' logs, the droplet): run 2 sent no change and left the droplet as it
    # was, and every exchange of both runs held to the vendors' descriptions.
    mutating = re.search(r"requests that change something, per run: run 1: (\d+), run 2: (\d+)", output)
    assert mutating and int(mutating.group(1)) > 0 and mutating.group(2) == "0", output[-3000:]
    states = re.findall(r"droplet state after run (\d): (\w+)", output)
    assert [n for n, _ in states] == ["1", "2"] and states[0][1] == states[1][1], states
    for vendor in ("digitalocean", "coolify", "github") if "2.9" in selected else ("digitalocean", "coolify"):
        counts = re.search(rf"  {vendor}: requests (\d+) validated, \d+ allowed, (\d+) failed", output)
        assert counts and int(counts.group(1)) > 0 and counts.group(2) == "0", (vendor, output[-3000:])
    first = json.loads((workdir / "runs" / "run-1" / "ledger.json").read_text(encoding="utf-8"))
    assert {t["id"]: t for t in first["tasks"]}["2.2"]["steps"].get("changed")  # the droplet was created
    if "2.18" in selected:
        shown = [line.strip() for line in output.splitlines() if " pushed " in line or "build " in line]
        shown += check_operations(workdir / "runs")
        evidence.record("the rehearsal's images, built by its push as the workflow builds them:", shown)

    secrets = _secrets(workdir / "secrets.env")
    for name in ("DIGITALOCEAN_TOKEN", "COOLIFY_API_TOKEN", "GITHUB_TOKEN", "ROOT_USER_PASSWORD"):
        assert name in secrets
    assert "PROD_POSTGRES_PASSWORD" in secrets and "PROD_REDIS_PASSWORD" in secrets  # generated by 2.8
    files = [p for run in (workdir / "runs").iterdir() for p in ([run] if run.is_file() else run.rglob("*"))]
    files = [p for p in files if p.is_file()]
    assert any(p.suffix == ".ipynb" for p in files) and any(p.name == "runner.log" for p in files)
    for path in files:
        text = path.read_bytes().decode("utf-8", "replace")
        leaked = [name for name, value in secrets.items() if value in text]
        assert leaked == [], (path, leaked)

    # Nothing of the rehearsal is left running.
    rehearsal_id = re.search(r"rehearsal (\w+): workspace", output)
    assert rehearsal_id
    name = "rb-rehearse-" + rehearsal_id.group(1)
    left = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=runbook.droplet.name={name}"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert left == []


OPERATIONS = [
    *("backup", "restore-drill", "rollback", "rollback"),
    *("monitoring", "monitoring", "logs", "teardown", "teardown"),
]


def check_operations(runs: Path) -> list[str]:
    """The operations after 2.18, read from their run folders and what the rehearsal saw from outside."""
    report = json.loads((runs / "operations.json").read_text(encoding="utf-8"))
    assert [r for r in report["results"] if r["problems"]] == []
    folders = sorted(runs.glob("ops-*"))
    assert [f.name.split("-", 2)[2] for f in folders] == OPERATIONS
    for folder in folders:
        ledger = json.loads((folder / "ledger.json").read_text(encoding="utf-8"))
        (chosen,) = [t for t in ledger["tasks"] if t["selected"]]
        assert chosen["status"] == "passed", (folder.name, chosen.get("error"))
    seen = report["seen"]
    assert seen["doctor phase2 (healthy)"]["exit"] == 0
    stopped = seen["doctor phase2 (web app stopped)"]
    (phase2,) = stopped["report"]
    assert stopped["exit"] == 1 and phase2["first_cause"]["layer"] == "apps"
    assert "web application" in phase2["first_cause"]["cause"]
    drill = seen["restore_drill"]
    assert drill["tables"] >= 1 and drill["differing"] == [] and drill["backup_age_seconds"] < 3600
    # the first push's images run: the registry's digest of the deployed tag is the running container's
    first_push = seen["first_push"]
    assert set(first_push) == {"web", "worker"}
    for role, entry in first_push.items():
        assert entry["registry"].startswith("sha256:"), (role, entry)
        assert entry["registry"] == entry["running"], (role, entry)
    # a code change pushed: built from the commit, pushed, deployed; new digests, read from outside
    release, before = seen["release"], seen["release_before"]
    assert release["workflow_runs"] == ["success"], release["log"]
    assert {p["app"] for p in release["pushed"]} == {"web", "worker"}
    for role, entry in release["delivered"].items():
        assert entry["running"] == entry["registry"] == release["digests"][role], (role, entry)
        assert entry["running"] != first_push[role]["running"] and release["images"][role] != before[role]
    shown = ["digests seen in the rehearsal (registry = running container):"]
    for label, found in (("first push", first_push), ("release", release["delivered"])):
        shown += [f"  {label} {role}: {e['image']} {e['running']}" for role, e in found.items()]
    assert seen["after_rollback"] == before  # the previous image runs again, on the engine
    assert seen["after_forward"] == release["images"]
    first, second = (notebook_steps(f / "monitoring.ipynb") for f in folders[4:6])
    created = {s["name"] for s in first if s["status"] == "changed"}
    assert (
        any(n.startswith("uptime check") for n in created)
        and sum(n.startswith("alert policy") for n in created) == 3
    )
    assert {s["status"] for s in second} <= QUIET_STATUSES  # the second run changes nothing
    assert seen["after_teardown"] and not any(seen["after_teardown"].values()), seen["after_teardown"]
    return shown


def test_refuses_vendor_urls_that_are_not_local() -> None:
    refuse_real_vendors({"DIGITALOCEAN_API_URL": "http://127.0.0.1:9999", "GITHUB_API_URL": ""})
    for name, url in (
        ("DIGITALOCEAN_API_URL", "https://api.digitalocean.com"),
        ("GITHUB_API_URL", "https://api.github.com"),
        ("COOLIFY_URL", "http://203.0.113.10:8000"),
    ):
        with pytest.raises(RehearsalError, match=f"{name}=.*not at this machine"):
            refuse_real_vendors({name: url})
    with pytest.raises(RehearsalError, match="not at this machine"):
        Rehearsal(environ={"DIGITALOCEAN_API_URL": "https://api.digitalocean.com"}).__enter__()


def test_the_command_refuses_a_real_vendor_url_before_starting_anything(tmp_path: Path) -> None:
    env = {**os.environ, "DIGITALOCEAN_API_URL": "https://api.digitalocean.com"}
    proc = subprocess.run(
        [sys.executable, "-m", "helpers.rehearse", "phase2", "--to", "2.1", "--workdir", str(tmp_path / "w")],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "DIGITALOCEAN_API_URL=https://api.digitalocean.com" in proc.stderr
    assert not (tmp_path / "w" / "secrets.env").exists()
