"""The runner end to end on a synthetic phase (real kernels, real papermill, the CLI as a subprocess).

The synthetic phase (``helpers.runner.demo``) has the real phase 1's shape: a chain, a manual task,
two independent tasks and a join; its notebooks are written the project's way. ``DEMO_BROKEN=<id>``
makes that task's verification fail, as a broken step would.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest
from testsupport import runbook_cli

from helpers.runner.demo import PARAMETERS, DemoTask, standard_tasks, write_phase

ROOT = Path(__file__).resolve().parents[2]


def runbook(args: list[str], env: dict[str, str], timeout: float = 240) -> subprocess.CompletedProcess:
    return runbook_cli(args, env, timeout)


@pytest.fixture
def demo(tmp_path: Path) -> dict:
    registry = write_phase(tmp_path / "demo")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNBOOK_", "DEMO_"))}
    env.update(
        RUNBOOK_REGISTRY=str(registry),
        RUNBOOK_RUNS_DIR=str(tmp_path / "runs"),
        DEMO_WORK_DIR=str(tmp_path / "work"),
        COLUMNS="200",
    )
    return {
        "env": env,
        "tmp": tmp_path,
        "runs": tmp_path / "runs",
        "work": tmp_path / "work",
        "registry": registry,
    }


def only_run(runs: Path) -> Path:
    folders = [p for p in runs.iterdir() if p.is_dir()]
    assert len(folders) == 1, folders
    return folders[0]


def ledger_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "ledger.json").read_text())


def statuses(ledger: dict) -> dict[str, str]:
    return {t["id"]: t["status"] for t in ledger["tasks"]}


def tree_digest(folder: Path) -> dict[str, str]:
    if not folder.exists():
        return {}
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.smoke
def test_a_full_run_passes_and_writes_the_run_folder(demo) -> None:
    proc = runbook(["run", "phase1"], demo["env"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run_dir = only_run(demo["runs"])
    ledger = ledger_of(run_dir)
    assert ledger["status"] == "passed" and set(statuses(ledger).values()) == {"passed"}
    assert [t["id"] for t in ledger["tasks"]] == ["1.1", "1.2", "1.3", "1.4", "1.5", "1.6"]
    names = sorted(p.name for p in run_dir.iterdir())
    assert names == [
        "1.01-first.ipynb",
        "1.02-manual-step.ipynb",
        "1.03-third.ipynb",
        "1.04-left.ipynb",
        "1.05-right.ipynb",
        "1.06-join.ipynb",
        "ledger.json",
        "runner.log",
        "summary.html",
        "summary.md",
    ]
    for task in ledger["tasks"]:
        assert task["duration"] > 0 and task["started"] and task["finished"] and task["attempt"] == 1
        executed = json.loads((run_dir / task["output"]).read_text())
        assert executed["metadata"]["papermill"]["exception"] is None
        assert any(c.get("outputs") for c in executed["cells"] if c["cell_type"] == "code")
    assert ledger["tasks"][0]["steps"] == {"changed": 1} and ledger["tasks"][0]["checks"]["passed"] == 2
    assert (demo["work"] / "task-1.6.txt").read_text() == "demo"
    page = (run_dir / "summary.html").read_text()
    assert all(f"href='{t['output']}'" in page for t in ledger["tasks"])
    assert "task 1 of 6" not in proc.stdout  # not a terminal: plain lines instead of the live display
    assert "[6/6]" in proc.stdout and "PASSED" in proc.stdout
    assert (demo["runs"] / "LAST").read_text().strip() == str(run_dir)
    # a second run changes nothing: every step reports ok
    proc = runbook(["run", "phase1"], demo["env"])
    assert proc.returncode == 0
    newest = max((p for p in demo["runs"].iterdir() if p.is_dir()), key=lambda p: p.name)
    assert all(t["steps"].get("changed", 0) == 0 for t in ledger_of(newest)["tasks"])


def test_a_broken_step_stops_the_chain_and_resume_finishes_it(demo) -> None:
    broken = {**demo["env"], "DEMO_BROKEN": "1.4"}
    proc = runbook(["run", "phase1"], broken)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    run_dir = only_run(demo["runs"])
    ledger = ledger_of(run_dir)
    assert ledger["status"] == "failed"
    assert statuses(ledger) == {
        "1.1": "passed",
        "1.2": "passed",
        "1.3": "passed",
        "1.4": "failed",
        "1.5": "not-run",
        "1.6": "not-run",
    }
    failed = ledger["tasks"][3]
    assert failed["error"]["ename"] == "VerificationFailed"
    assert "not broken on purpose" in failed["error"]["evalue"]
    assert "with verify('Task 1.4 is done')" in failed["error"]["source"]
    assert failed["error"]["exec_count"] == 3 and isinstance(failed["error"]["cell_index"], int)
    assert failed["checks"]["failures"][0]["hint"] == "unset DEMO_BROKEN, then `runbook resume`"
    assert "stopped after 1.4 failed" in ledger["tasks"][4]["reason"]
    summary = (run_dir / "summary.md").read_text()
    assert "1.4 Left branch: failed" in summary and "In [3]" in summary and "VerificationFailed" in summary
    assert "docs/troubleshooting.md#task-1-4" in summary
    assert "1.4 Left branch failed at In [3]" in proc.stdout and "runbook resume" in proc.stdout
    before = {t["id"]: t["started"] for t in ledger["tasks"]}

    proc = runbook(["resume"], demo["env"])  # the fix: DEMO_BROKEN is no longer set
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ledger = ledger_of(run_dir)
    assert ledger["status"] == "passed" and set(statuses(ledger).values()) == {"passed"}
    assert len(ledger["attempts"]) == 2 and ledger["attempts"][0]["status"] == "failed"
    after = {t["id"]: t for t in ledger["tasks"]}
    for tid in ("1.1", "1.2", "1.3"):  # passed with the same parameters: not run again
        assert after[tid]["started"] == before[tid] and after[tid]["attempt"] == 1
    assert after["1.4"]["attempt"] == 2 and after["1.4"]["previous"] == ["1.04-left.attempt1.ipynb"]
    assert (run_dir / "1.04-left.attempt1.ipynb").is_file()
    assert "[1/3] ▶ 1.4" in proc.stdout  # 1.4, 1.5 and 1.6 ran
    assert runbook(["resume"], demo["env"]).stdout.count("nothing to resume") == 1


def test_keep_going_runs_the_independent_tasks(demo) -> None:
    proc = runbook(["run", "phase1", "--keep-going"], {**demo["env"], "DEMO_BROKEN": "1.4"})
    assert proc.returncode == 1
    ledger = ledger_of(only_run(demo["runs"]))
    assert statuses(ledger) == {
        "1.1": "passed",
        "1.2": "passed",
        "1.3": "passed",
        "1.4": "failed",
        "1.5": "passed",
        "1.6": "not-run",
    }
    assert ledger["tasks"][5]["reason"] == "needs 1.4, which failed"


def test_parameters_reach_the_notebooks_and_changed_ones_rerun_on_resume(demo) -> None:
    params = demo["tmp"] / "params.yaml"
    params.write_text("shared:\n  label: shared-text\ntasks:\n  '1.3':\n    label: only-for-1.3\n")
    proc = runbook(["run", "phase1", "-f", str(params), "--to", "1.4"], {**demo["env"], "DEMO_BROKEN": "1.4"})
    assert proc.returncode == 1
    assert (demo["work"] / "task-1.1.txt").read_text() == "shared-text"
    assert (demo["work"] / "task-1.3.txt").read_text() == "only-for-1.3"
    run_dir = only_run(demo["runs"])
    ledger = ledger_of(run_dir)
    assert ledger["tasks"][2]["parameters"] == {"label": "only-for-1.3"}
    assert statuses(ledger)["1.5"] == "skipped" and "not selected (--to 1.4)" in ledger["tasks"][4]["reason"]
    executed = json.loads((run_dir / "1.03-third.ipynb").read_text())
    injected = [c for c in executed["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert injected and 'label = "only-for-1.3"' in "".join(injected[0]["source"])
    started = {t["id"]: t["started"] for t in ledger["tasks"]}
    # resume with a changed shared parameter: the tasks that declare it run again
    proc = runbook(["resume", "-p", "label", "changed"], demo["env"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ledger = ledger_of(run_dir)
    assert (
        ledger["tasks"][0]["started"] != started["1.1"]
        and ledger["tasks"][0]["parameters"]["label"] == "changed"
    )
    assert ledger["tasks"][2]["parameters"] == {"label": "only-for-1.3"}  # per-task value still wins
    assert ledger["tasks"][2]["started"] == started["1.3"]  # same parameters: kept
    assert statuses(ledger)["1.5"] == "skipped"


def test_dry_run_changes_nothing_and_skips_notebooks_without_dry_run(demo) -> None:
    tasks = standard_tasks()
    tasks[2] = DemoTask(
        "1.3",
        "third",
        "automated",
        ["1.2"],
        "Third step",
        parameters='import os\nwork_dir = os.environ.get("DEMO_WORK_DIR", "")\nlabel = "x"',
        cells=["from helpers.runner.demo import touch\ntouch(work_dir, 'unsafe.txt', label)"],
    )
    write_phase(demo["registry"].parent, tasks)
    demo["work"].mkdir()
    (demo["work"] / "task-1.1.txt").write_text("demo")  # 1.1 already done
    before = tree_digest(demo["work"])
    proc = runbook(["run", "phase1", "--dry-run"], demo["env"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert tree_digest(demo["work"]) == before
    ledger = ledger_of(only_run(demo["runs"]))
    assert ledger["dry_run"] is True
    assert statuses(ledger)["1.3"] == "skipped" and "no dry_run parameter" in ledger["tasks"][2]["reason"]
    assert ledger["tasks"][0]["steps"] == {"ok": 1}
    assert ledger["tasks"][3]["changes"][0]["status"] == "would change"
    assert all(t["parameters"].get("dry_run") is True for t in ledger["tasks"] if t["id"] != "1.3")


def test_plan_shows_order_parameters_and_changes_and_changes_nothing(demo) -> None:
    demo["work"].mkdir()
    (demo["work"] / "task-1.4.txt").write_text("demo")
    before = tree_digest(demo["work"])
    registry_before = tree_digest(demo["registry"].parent)
    proc = runbook(["plan", "phase1", "-p", "label", "demo"], demo["env"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert tree_digest(demo["work"]) == before
    assert tree_digest(demo["registry"].parent) == registry_before  # the source notebooks are untouched
    out = " ".join(proc.stdout.split())
    assert "1.1 First step: would change 1 thing(s)" in out and "write task-1.1.txt" in out
    assert "1.4 Left branch: no change, 1 already done" in out
    assert "skip: manual task" in out and "label='demo'" in out and "dry_run=True" in out
    run_dir = only_run(demo["runs"])
    assert run_dir.name.endswith("-phase1-plan")
    assert ledger_of(run_dir)["mode"] == "plan"
    assert "no run to resume" in runbook(["resume"], demo["env"]).stdout  # a plan is not resumable


def test_jobs_run_independent_tasks_side_by_side(demo) -> None:
    sleepy = (
        "import os, time, json\nstart = time.time(); time.sleep(1.5)\n"
        "open(os.path.join(work_dir, 'times-' + os.environ['RUNBOOK_TASK_ID']), 'w').write("
        "json.dumps([start, time.time(), os.getpid()]))"
    )
    tasks = [
        DemoTask("1.1", "root", "automated", [], "Root"),
        DemoTask("1.2", "left", "automated", ["1.1"], "Left", cells=[sleepy]),
        DemoTask("1.3", "right", "automated", ["1.1"], "Right", cells=[sleepy]),
        DemoTask("1.4", "join", "automated", ["1.2", "1.3"], "Join"),
    ]
    write_phase(demo["registry"].parent, tasks)
    proc = runbook(["run", "phase1", "--jobs", "2"], demo["env"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    left = json.loads((demo["work"] / "times-1.2").read_text())
    right = json.loads((demo["work"] / "times-1.3").read_text())
    assert left[0] < right[1] and right[0] < left[1]  # the two sleeps overlapped
    assert left[2] != right[2]  # in two kernels
    ledger = ledger_of(only_run(demo["runs"]))
    assert set(statuses(ledger).values()) == {"passed"} and ledger["options"]["jobs"] == 2


def test_fresh_kernels_option(demo) -> None:
    cell = (
        "import os\n"
        "open(os.path.join(work_dir, 'pid-' + os.environ['RUNBOOK_TASK_ID']), 'w').write(str(os.getpid()))"
    )
    tasks = [
        DemoTask("1.1", "a", "automated", [], "A", cells=[cell]),
        DemoTask("1.2", "b", "automated", ["1.1"], "B", cells=[cell]),
    ]
    write_phase(demo["registry"].parent, tasks)
    demo["work"].mkdir()
    assert runbook(["run", "phase1"], demo["env"]).returncode == 0
    warm = {(demo["work"] / f"pid-{i}").read_text() for i in ("1.1", "1.2")}
    assert len(warm) == 1  # one kernel, reused
    assert runbook(["run", "phase1", "--fresh-kernels"], demo["env"]).returncode == 0
    fresh = {(demo["work"] / f"pid-{i}").read_text() for i in ("1.1", "1.2")}
    assert len(fresh) == 2


def test_parameters_cell_help_is_listed(demo) -> None:
    proc = runbook(["list", "phase1", "--params"], demo["env"])
    assert proc.returncode == 0
    assert "folder the demo tasks write into" in proc.stdout
    names = [line.split("=")[0].strip() for line in PARAMETERS.splitlines() if "=" in line]
    assert names and all(f"    {name} = " in proc.stdout for name in names), proc.stdout


def test_output_dir_is_the_run_folder_and_resume_finds_it(demo) -> None:
    out = demo["tmp"] / "elsewhere" / "my-run"
    proc = runbook(["run", "phase1", "--output-dir", str(out)], {**demo["env"], "DEMO_BROKEN": "1.6"})
    assert proc.returncode == 1
    assert (out / "ledger.json").is_file() and (out / "1.06-join.ipynb").is_file()
    proc = runbook(["run", "phase1", "--output-dir", str(out)], demo["env"])
    assert proc.returncode == 2 and "is not empty" in proc.stdout
    proc = runbook(["resume"], demo["env"])  # found through runs/LAST
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ledger_of(out)["status"] == "passed"
