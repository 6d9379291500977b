"""Benchmark: phase 1 through the runner against the same work done raw, side by side in one run.

    .venv/bin/python benchmarks/phase1.py [--repeat N] [--fresh] [--keep] [--no-record]

Needs the Docker engine and the service images (official or the local stand-ins). Each round starts
from the same state (a fresh copy of the sample app at its baseline commit, services down, images
present: a *warm* run) and times:

* ``raw compose``  — ``docker compose up -d --wait`` plus the connectivity checks (a PostgreSQL
  query, Redis PING/SET/GET), the commands the issue names;
* ``raw phase 1``  — all fifteen phase-1 notebooks' code, executed in order by one plain Python
  process (``exec`` of the code cells, the same parameters injected): the same work as the runner,
  without kernel, papermill, executed-notebook files, ledger or reports;
* ``runner``       — ``runbook run phase1`` (the default warm-kernel engine);
* ``runner fresh`` — with ``--fresh``: ``runbook run phase1 --fresh-kernels`` (papermill's
  one-kernel-per-notebook isolation), to show what the warm engine saves.

It prints each time (median over the rounds, 5 by default), the runner's start-up, and the ratios runner /
raw phase 1 (the runner's own overhead; target ≤ 1.15) and runner / raw compose, each the median of the
rounds' own ratios, and writes them as ``benchmarks/phase1.md`` with the date, the machine, its load and
the Docker engine's version (``--no-record``: print only). ``benchmarks/record.py`` copies that table
into README.md. This is a benchmark, not a test: nothing asserts a time. Every round uses its own compose
project (``rb-runner-bench-*``), free ports, and is torn down.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PARAMETERS = {"commit": True, "rewrite_env": True}  # 1.14 commits in the disposable copy; 1.9 fixes .env


def images() -> dict[str, str]:
    """The service images the tests would use (helpers.runner.sampleapp), which must be present: no pulls
    here."""
    from helpers.runner import sampleapp

    chosen = sampleapp.service_images()
    for value in chosen.values():
        if not sampleapp.image_present(value):
            sys.exit(
                f"image {value} is not present: run `scripts/provision.sh images` first (no registry here)"
            )
    return chosen


class World:
    """A disposable copy of the sample app, its compose project, ports and environment."""

    def __init__(self, base: Path, name: str):
        from helpers.host.ports import free_port
        from helpers.runner import sampleapp
        from helpers.services import apprun

        self.dir = base / name
        self.project = f"rb-runner-bench-{name}-{os.getpid()}"
        self.app, _ = sampleapp.prepare(self.dir / "app")
        pg, rd, web = free_port(), free_port(), free_port()
        sampleapp.write_local_env(self.app, pg, rd)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("RUNBOOK_")}
        self.env.update(
            images(),
            COMPOSE_PROJECT_NAME=self.project,
            POSTGRES_PORT=str(pg),
            REDIS_PORT=str(rd),
            RUNBOOK_APP_DIR=str(self.app),
            RUNBOOK_HEALTH_URL=f"http://localhost:{web}/api/health",
            RUNBOOK_RUNS_DIR=str(self.dir / "runs"),
            RUNBOOK_STATE_DIR=str(self.dir / "state"),
            RUNBOOK_SECRETS_FILE=str(self.dir / "secrets.env"),
            PYTHONDONTWRITEBYTECODE="1",
        )
        self.env["npm_config_store_dir"] = str(sampleapp.PNPM_STORE)  # 1.15 installs from the shared store
        self.env[apprun.ENV_LOG_DIR] = str(self.dir / "logs")
        self.began = self.ended = 0.0
        self.stderr = ""
        self.cells: dict[str, float] = {}

    def down(self) -> None:
        from helpers.services import apprun

        apprun.stop_recorded(self.dir / "logs")
        compose = self.app / "docker-compose.yml"
        files = ["-f", str(compose if compose.is_file() else ROOT / "docker-compose.yml")]
        subprocess.run(
            [
                "docker",
                "compose",
                *files,
                "-p",
                self.project,
                "down",
                "-v",
                "--remove-orphans",
                "--timeout",
                "10",
            ],
            env=self.env,
            capture_output=True,
        )


def timed(cmd: list[str], env: dict[str, str], cwd: Path = ROOT, world: World | None = None) -> float:
    began = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - began
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-3000:]
        raise SystemExit(f"`{' '.join(cmd)}` failed ({proc.returncode}):\n{tail}")
    if world is not None:
        world.stderr = proc.stderr
    return elapsed


# -- the raw sides ---------------------------------------------------------------------------------

CHECKS = """
import os, psycopg, redis
with psycopg.connect(host="127.0.0.1", port=int(os.environ["POSTGRES_PORT"]), user="postgres",
                     password=os.environ.get("POSTGRES_PASSWORD", "postgres"), dbname="app") as conn:
    assert conn.execute("select current_setting('server_version_num')").fetchone()[0].startswith("15")
r = redis.Redis(host="127.0.0.1", port=int(os.environ["REDIS_PORT"]))
assert r.ping() and r.set("bench", "1") and r.get("bench") == b"1"
"""


def raw_compose(world: World) -> float:
    began = time.perf_counter()
    timed(
        [
            "docker",
            "compose",
            "-f",
            str(ROOT / "docker-compose.yml"),
            "-p",
            world.project,
            "up",
            "-d",
            "--wait",
        ],
        world.env,
    )
    timed([sys.executable, "-c", CHECKS], world.env)
    return time.perf_counter() - began


def raw_notebooks() -> int:
    """Worker mode: execute phase 1's notebook code in this process, in run order, no kernel."""
    from helpers.core import tasks
    from helpers.runner.params import declared_parameters

    for task in tasks.order("phase1"):
        began = time.perf_counter()
        path = ROOT / task.notebook
        nb = json.loads(path.read_text(encoding="utf-8"))
        declared = declared_parameters(path)
        injected = "\n".join(f"{k} = {v!r}" for k, v in PARAMETERS.items() if k in declared)
        namespace: dict = {"__name__": "__main__"}
        os.chdir(path.parent)
        for cell in nb["cells"]:
            if cell["cell_type"] != "code":
                continue
            source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            exec(compile(source, f"{path.name}", "exec"), namespace)
            if "parameters" in cell.get("metadata", {}).get("tags", []) and injected:
                exec(injected, namespace)
        print(f"{task.id} {time.perf_counter() - began:.3f}", file=sys.stderr)
    return 0


def raw_phase(world: World) -> float:
    return timed([sys.executable, str(Path(__file__).resolve()), "--raw-worker"], world.env, world=world)


def raw_tasks(world: World) -> dict[str, float]:
    """The raw worker's time per task (it prints ``<id> <seconds>`` lines)."""
    out = {}
    for line in world.stderr.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].startswith("1."):
            out[parts[0]] = float(parts[1])
    return out


def runner(world: World, fresh: bool) -> float:
    cmd = [sys.executable, "-m", "helpers.runner.cli", "run", "phase1"]
    for name, value in PARAMETERS.items():
        cmd += ["-p", name, str(value).lower()]
    if fresh:
        cmd.append("--fresh-kernels")
    world.began = time.time()
    took = timed(cmd, world.env)
    world.ended = world.began + took
    return took


def breakdown(world: World) -> dict[str, float]:
    """Where the runner's time went, from its ledger, its log and the executed notebooks."""
    from datetime import datetime

    run_dir = next(p for p in (world.dir / "runs").iterdir() if p.is_dir())
    ledger = json.loads((run_dir / "ledger.json").read_text())

    def stamp(iso: str) -> float:
        return datetime.fromisoformat(iso).timestamp()

    starts = [stamp(t["started"]) for t in ledger["tasks"] if t["started"]]
    ends = [stamp(t["finished"]) for t in ledger["tasks"] if t["finished"]]
    cells = 0.0
    first_cell = None
    for task in ledger["tasks"]:
        nb = json.loads((run_dir / task["output"]).read_text())
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        took = sum(c["metadata"]["papermill"].get("duration") or 0 for c in code)
        began = [
            stamp(c["metadata"]["papermill"]["start_time"])
            for c in code
            if c["metadata"]["papermill"].get("start_time")
        ]
        if began:
            first_cell = min(began) if first_cell is None else min(first_cell, min(began))
        world.cells[task["id"]] = took
        cells += took
    durations = sum(t["duration"] or 0 for t in ledger["tasks"])
    logged: dict[str, float] = {}
    markers = (("finished", " finished: "), ("stopped", "kernels stopped"), ("handed", " handed to "))
    for line in (run_dir / "runner.log").read_text().splitlines():
        for key, marker in markers:
            if marker in line and not (key == "handed" and key in logged):  # the first hand-over
                logged[key] = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
    return {
        STARTUP: logged.get("handed", min(starts)) - world.began,
        FIRST_CELL: (first_cell or min(starts)) - world.began,
        "notebook cells (the work, in the kernel)": cells,
        "per notebook: papermill, clean slate, files": durations - cells,
        "between notebooks (ledger, scheduling)": (max(ends) - min(starts)) - durations,
        "reports and the final scrub": logged.get("finished", max(ends)) - max(ends),
        "kernel shutdown": logged.get("stopped", 0) - logged.get("finished", 0),
        "summary table and process exit": world.ended - logged.get("stopped", max(ends)),
    }


STARTUP = "start until the first notebook is handed to the kernel (interpreter, imports, checks)"
FIRST_CELL = "start until its first cell runs (the same, and the kernel ready)"
LABELS = {
    "raw compose": "raw compose (`docker compose up -d --wait`, a PostgreSQL query, Redis PING/SET/GET)",
    "raw phase 1": "raw phase 1 (the fifteen notebooks' code, `exec`-ed by one plain Python process)",
    "runner": "runner (`runbook run phase1`, one warm kernel: the default)",
    "runner fresh": "runner, a fresh kernel per notebook (`--fresh-kernels`)",
}


def _range(values: list[float], unit: str = " s") -> str:
    return f"{min(values):.2f}–{max(values):.2f}{unit}" if len(values) > 1 else f"{values[0]:.2f}{unit}"


def render(
    times: dict[str, list[float]],
    parts: dict[str, list[float]],
    per_task: dict[str, dict[str, list[float]]],
    heading: str,
) -> tuple[str, str]:
    """The record's summary (README's table) and its details, as Markdown."""
    med = {side: statistics.median(values) for side, values in times.items()}
    rows = [
        f"| {LABELS.get(side, side)} | {med[side]:.2f} s | {_range(values)} |"
        for side, values in times.items()
    ]
    if STARTUP in parts:
        for label in (STARTUP, FIRST_CELL):
            rows.append(
                f"| runner: {label} | {statistics.median(parts[label]):.2f} s | {_range(parts[label])} |"
            )
    for other, target in (("raw phase 1", " (target ≤ 1.15×)"), ("raw compose", "")):
        for side in ("runner", "runner fresh"):
            if {side, other} <= set(times):
                ratios = [a / b for a, b in zip(times[side], times[other], strict=True)]
                bold = "**" if (side, other) == ("runner", "raw phase 1") else ""
                rows.append(
                    f"| {bold}{side} ÷ {other}{bold}{target if side == 'runner' else ''} | "
                    f"{bold}{statistics.median(ratios):.2f}×{bold} | {_range(ratios, '×')} |"
                )
    summary = "\n".join(
        [
            heading,
            "",
            "| measured | median | rounds |",
            "| --- | --- | --- |",
            *rows,
        ]
    )
    details = []
    if parts:
        details += ["## Where the runner's time goes (medians)", "", "| part | time |", "| --- | --- |"]
        details += [f"| {name} | {statistics.median(values):.2f} s |" for name, values in parts.items()]
        details.append("")
    if per_task["raw"] and per_task["runner"]:
        details += [
            "## Per task: raw `exec` against the same cells in the runner's kernel (medians)",
            "",
            "| task | raw | kernel |",
            "| --- | --- | --- |",
        ]
        for task_id, values in per_task["raw"].items():
            ran = statistics.median(per_task["runner"].get(task_id, [0.0]))
            details.append(f"| {task_id} | {statistics.median(values):.2f} s | {ran:.2f} s |")
        details.append("")
    details += ["## Every round", "", "| side | rounds (s) |", "| --- | --- |"]
    details += [f"| {side} | {', '.join(f'{t:.2f}' for t in values)} |" for side, values in times.items()]
    return summary, "\n".join(details)


def main(argv: list[str] | None = None) -> int:
    import record

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="rounds (the median is reported; default 5)")
    parser.add_argument("--fresh", action="store_true", help="also time --fresh-kernels")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (run folders)")
    parser.add_argument("--sides", help="comma-separated subset to time, e.g. 'raw phase 1,runner'")
    parser.add_argument(
        "--no-record", dest="record", action="store_false", help="print only; leave benchmarks/phase1.md"
    )
    parser.add_argument("--raw-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.raw_worker:
        return raw_notebooks()

    sides = ["raw compose", "raw phase 1", "runner"] + (["runner fresh"] if args.fresh else [])
    if args.sides:
        sides = [side.strip() for side in args.sides.split(",")]
    times: dict[str, list[float]] = {side: [] for side in sides}
    parts: dict[str, list[float]] = {}
    per_task: dict[str, dict[str, list[float]]] = {"raw": {}, "runner": {}}
    base = Path(tempfile.mkdtemp(prefix="rb-runner-bench-"))
    began = time.time()
    load = record.LoadSampler()
    try:
        with load.running():
            for n in range(args.repeat):
                order = sides if n % 2 == 0 else list(reversed(sides))  # alternate, so drift hits both
                for side in order:
                    world = World(base, f"{side.replace(' ', '-')}-{n}")
                    try:
                        if side == "raw compose":
                            took = raw_compose(world)
                        elif side == "raw phase 1":
                            took = raw_phase(world)
                            for task_id, value in raw_tasks(world).items():
                                per_task["raw"].setdefault(task_id, []).append(value)
                        else:
                            took = runner(world, fresh=side == "runner fresh")
                            if side == "runner":
                                for name, value in breakdown(world).items():
                                    parts.setdefault(name, []).append(value)
                                for task_id, value in world.cells.items():
                                    per_task["runner"].setdefault(task_id, []).append(value)
                    finally:
                        world.down()
                    times[side].append(took)
                    print(
                        f"round {n + 1}: {side:<13} {took:6.2f} s  (load {os.getloadavg()[0]:.1f})",
                        flush=True,
                    )
    finally:
        if args.keep:
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)

    what = f"phase 1, images present, {args.repeat} round(s) in alternating order, medians"
    summary, details = render(
        times, parts, per_task, record.heading("benchmarks/phase1.py", what, load, began)
    )
    print(f"\n{summary}\n\n{details}")
    if args.record:
        path = record.write_record(
            "phase1", "Phase 1: the runner against the same work done raw", summary, details
        )
        print(
            f"\nwritten: {path.relative_to(ROOT)} (README.md's table: .venv/bin/python benchmarks/record.py)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
