"""Benchmark: the phase-2 rehearsal (2.1 to 2.18 against the local stand-ins), first and second run.

    .venv/bin/python benchmarks/phase2.py [--repeat N] [--no-operations] [--keep] [--no-record]

Runs ``python -m helpers.rehearse phase2`` (the same command as ``make rehearse-phase2``: two runs of
phase 2 through the runner, the second of which must change nothing, then the operations after 2.18)
in a temporary workspace, and reads from its run folders how long each part took:

* ``first run``   — 2.1 to 2.17, the simulated push, then 2.18 (the runner's ledgers, start to end);
* ``second run``  — the same again: everything is already done (``ok``/``skipped`` only);
* ``operations``  — backup, restore drill, rollback and forward, monitoring, logs, doctor, teardown
  (``operations.json``; ``--no-operations`` leaves them out);
* ``the rest``    — the stand-ins', the registry's and the droplet container's start and removal, the
  simulated pushes (the workflow's image builds and pushes), the audits between
  runs (the whole command's time minus the parts above).

It writes them as ``benchmarks/phase2.md`` (date, machine, load, Docker engine; ``--no-record``: print
only), which ``benchmarks/record.py`` copies into README.md. Needs the Docker engine and the stand-in
images (``make rehearse-phase2`` builds them). A benchmark, not a test: nothing asserts a time.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PARTS = ("first run", "second run", "operations", "the rest", "the whole rehearsal")
LABELS = {
    "first run": "first run (2.1 to 2.18: droplet, SSH, hardening, Coolify, pipeline, deploy)",
    "second run": "second run (the same; must change nothing)",
    "operations": "operations after 2.18 (backup and drill, rollback, monitoring, logs, doctor, teardown)",
    "the rest": (
        "the rest: stand-ins, registry and droplet start, the simulated pushes (image builds and pushes), "
        "audits, removal"
    ),
    "the whole rehearsal": "**the whole rehearsal** (`python -m helpers.rehearse phase2`)",
}


def _seconds(iso_start: str | None, iso_end: str | None) -> float:
    if not iso_start or not iso_end:
        return 0.0
    return (datetime.fromisoformat(iso_end) - datetime.fromisoformat(iso_start)).total_seconds()


def run_seconds(runs: Path, number: int) -> tuple[float, dict[str, float]]:
    """A run's time (its runner invocations, start to end) and its tasks' durations, from the ledgers."""
    total, tasks = 0.0, {}
    for folder in sorted(runs.glob(f"run-{number}*")):
        ledger_file = folder / "ledger.json"
        if not ledger_file.is_file():
            continue
        ledger = json.loads(ledger_file.read_text(encoding="utf-8"))
        attempt = ledger["attempts"][-1]
        total += _seconds(attempt.get("started"), attempt.get("finished"))
        for task in ledger["tasks"]:
            if task.get("duration"):
                tasks[task["id"]] = float(task["duration"])
    return total, tasks


def rehearse_once(workdir: Path, operations: bool) -> tuple[dict[str, float], dict[str, float]]:
    cmd = [sys.executable, "-m", "helpers.rehearse", "phase2", "--workdir", str(workdir), "--keep"]
    if not operations:
        cmd.append("--no-operations")
    began = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    whole = time.perf_counter() - began
    if proc.returncode != 0:
        raise SystemExit(
            f"`{' '.join(cmd)}` failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-4000:]}"
        )
    runs = workdir / "runs"
    first, tasks = run_seconds(runs, 1)
    second, _ = run_seconds(runs, 2)
    ops = 0.0
    if (runs / "operations.json").is_file():
        ops = sum(r["seconds"] for r in json.loads((runs / "operations.json").read_text())["results"])
    times = {"first run": first, "second run": second, "operations": ops}
    times["the rest"] = whole - sum(times.values())
    times["the whole rehearsal"] = whole
    return times, tasks


def main(argv: list[str] | None = None) -> int:
    import record

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--repeat", type=int, default=1, help="rehearsals (the median is reported; default 1)"
    )
    parser.add_argument("--no-operations", dest="operations", action="store_false", help="runs only")
    parser.add_argument("--keep", action="store_true", help="keep the temporary workspaces")
    parser.add_argument(
        "--no-record", dest="record", action="store_false", help="print only; leave benchmarks/phase2.md"
    )
    args = parser.parse_args(argv)
    base = Path(tempfile.mkdtemp(prefix="rb-rehearsal-bench-"))
    times: dict[str, list[float]] = {part: [] for part in PARTS}
    per_task: dict[str, list[float]] = {}
    began = time.time()
    load = record.LoadSampler()
    try:
        with load.running():
            for n in range(args.repeat):
                got, tasks = rehearse_once(base / f"round-{n}", args.operations)
                for part, value in got.items():
                    times[part].append(value)
                for task_id, value in tasks.items():
                    per_task.setdefault(task_id, []).append(value)
                print(f"round {n + 1}: " + ", ".join(f"{k} {v:.0f} s" for k, v in got.items()), flush=True)
    finally:
        if args.keep:
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    if not args.operations:
        times.pop("operations")
    what = f"phase 2 rehearsed, {args.repeat} rehearsal(s)" + (", medians" if args.repeat > 1 else "")
    heading = record.heading("benchmarks/phase2.py", what, load, began)
    rows = [
        f"| {LABELS[part]} | {statistics.median(values):.0f} s |" for part, values in times.items() if values
    ]
    summary = "\n".join([heading, "", "| measured | time |", "| --- | --- |", *rows])
    slowest = sorted(per_task.items(), key=lambda kv: -statistics.median(kv[1]))
    details = "\n".join(
        [
            "## The first run's tasks, slowest first",
            "",
            "| task | time |",
            "| --- | --- |",
            *(f"| {task_id} | {statistics.median(values):.1f} s |" for task_id, values in slowest),
        ]
    )
    print(f"\n{summary}\n\n{details}")
    if args.record:
        path = record.write_record("phase2", "Phase 2: the rehearsal, first and second run", summary, details)
        print(
            f"\nwritten: {path.relative_to(ROOT)} (README.md's table: .venv/bin/python benchmarks/record.py)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
