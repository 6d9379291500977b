"""The one-command rehearsal of phase 2: ``python -m helpers.rehearse phase2``, twice, through the runner.

Runs the command as a learner or CI would, over every phase-2 task whose notebook exists (override with
``RUNBOOK_REHEARSE_TO=2.8``), then reads the run folders itself: every task passed in both runs, the second
run's steps are all ok/skipped, and no secret of the rehearsal (its throwaway tokens, the passwords the
notebooks generated into its secrets file) appears in any file under the run folders. Afterwards no
process or container of the rehearsal is left.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.core.tasks import PROJECT_ROOT
from helpers.rehearse.__main__ import QUIET_STATUSES, existing_tasks, notebook_steps, problems_of
from helpers.rehearse.session import Rehearsal, RehearsalError, refuse_real_vendors


def _secrets(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        name, sep, value = line.partition("=")
        if sep and not name.startswith("#") and len(value.strip()) >= 8:
            values[name.strip()] = value.strip().strip("'\"")
    return values


@pytest.fixture
def droplet_image() -> None:
    from helpers.rehearse import droplet

    try:
        droplet.ensure_image(build=False)
    except droplet.DropletError as exc:
        if os.environ.get("RUNBOOK_REQUIRE_ENGINE") == "1":
            pytest.fail(f"droplet stand-in image missing: {exc}")
        pytest.skip(f"droplet stand-in image not available: {exc}")


@pytest.mark.engine
def test_phase2_rehearsal_twice_second_run_changes_nothing_and_leaks_nothing(
    tmp_path: Path, droplet_image: None
) -> None:
    tasks = existing_tasks()
    last = os.environ.get("RUNBOOK_REHEARSE_TO") or tasks[-1]
    selected = tasks[: tasks.index(last) + 1]
    assert selected[:8] == [f"2.{n}" for n in range(1, 9)]
    workdir = tmp_path / "rehearsal"
    env = {k: v for k, v in os.environ.items() if k not in ("DIGITALOCEAN_API_URL", "GITHUB_API_URL")}
    command = ["phase2", "--to", last, "--keep", "--workdir", str(workdir)]
    proc = subprocess.run(
        [sys.executable, "-m", "helpers.rehearse", *command],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=1800,
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

    secrets = _secrets(workdir / "secrets.env")
    for name in ("DIGITALOCEAN_TOKEN", "COOLIFY_API_TOKEN", "GITHUB_TOKEN", "ROOT_USER_PASSWORD"):
        assert name in secrets
    assert "PROD_POSTGRES_PASSWORD" in secrets and "PROD_REDIS_PASSWORD" in secrets  # generated by 2.8
    files = [p for run in runs for p in run.rglob("*") if p.is_file()]
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
