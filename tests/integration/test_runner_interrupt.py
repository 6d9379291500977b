"""Ctrl-C (SIGINT to the runner) leaves a consistent ledger, and ``runbook resume`` finishes the run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from helpers.runner.demo import PARAMETERS, DemoTask, standard_tasks, write_phase

ROOT = Path(__file__).resolve().parents[2]

SLOW = (
    "import os, time, pathlib\n"
    "pathlib.Path(work_dir, 'kernel.pid').write_text(str(os.getpid()))\n"
    "if os.environ.get('DEMO_SLOW'):\n"
    "    pathlib.Path(work_dir, 'sleeping').touch()\n"
    "    time.sleep(120)"
)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat")
    return not (status.exists() and status.read_text().split()[2] == "Z")


def test_sigint_mid_task_then_resume(tmp_path: Path) -> None:
    tasks = standard_tasks()
    tasks[2] = DemoTask(
        "1.3", "third", "automated", ["1.2"], "Third step (slow)", cells=[SLOW], parameters=PARAMETERS
    )
    registry = write_phase(tmp_path / "demo", tasks)
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNBOOK_", "DEMO_"))}
    env.update(
        RUNBOOK_REGISTRY=str(registry), RUNBOOK_RUNS_DIR=str(tmp_path / "runs"), DEMO_WORK_DIR=str(work)
    )
    runner = subprocess.Popen(
        [sys.executable, "-m", "helpers.runner.cli", "run", "phase1"],
        cwd=ROOT,
        env={**env, "DEMO_SLOW": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (work / "sleeping").exists():
            assert runner.poll() is None, runner.stdout.read()
            assert time.monotonic() < deadline, "task 1.3 never started"
            time.sleep(0.1)
        kernel_pid = int((work / "kernel.pid").read_text())
        runner.send_signal(signal.SIGINT)  # what Ctrl-C does to the runner (the kernel has its own session)
        out, _ = runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            runner.kill()
    assert runner.returncode == 130, out
    assert "runbook resume" in out
    run_dir = next(p for p in (tmp_path / "runs").iterdir() if p.is_dir())
    ledger = json.loads((run_dir / "ledger.json").read_text())
    assert ledger["status"] == "interrupted"
    assert [t["status"] for t in ledger["tasks"]] == [
        "passed",
        "passed",
        "interrupted",
        "not-run",
        "not-run",
        "not-run",
    ]
    assert ledger["tasks"][2]["error"]["ename"] == "KeyboardInterrupt"
    assert "interrupted (Ctrl-C)" in ledger["tasks"][3]["reason"]
    partial = json.loads((run_dir / "1.03-third.ipynb").read_text())
    assert "KeyboardInterrupt" in json.dumps(partial["cells"])  # the partial notebook shows where it stopped
    assert (run_dir / "summary.html").is_file() and (run_dir / "summary.md").is_file()
    deadline = time.monotonic() + 10
    while alive(kernel_pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive(kernel_pid), "the kernel outlived the runner"
    started = {t["id"]: t["started"] for t in ledger["tasks"]}

    proc = subprocess.run(
        [sys.executable, "-m", "helpers.runner.cli", "resume"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ledger = json.loads((run_dir / "ledger.json").read_text())
    assert ledger["status"] == "passed"
    assert ledger["tasks"][0]["started"] == started["1.1"] and ledger["tasks"][1]["started"] == started["1.2"]
    assert ledger["tasks"][2]["previous"] == ["1.03-third.attempt1.ipynb"]
    assert [a["status"] for a in ledger["attempts"]] == ["interrupted", "passed"]
