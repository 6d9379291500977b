"""``python -m helpers.rehearse phase2``: rehearse phase 2 on this machine, twice, through the runner.

The module's :func:`main` takes ``argv`` and returns an exit code, so the runner's CLI can offer it as
``runbook rehearse`` (see :func:`add_subcommand`).
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers.core import tasks as registry
from helpers.core.paths import PROJECT_ROOT, REHEARSAL_RECORD
from helpers.rehearse import contracts, faults, outside
from helpers.rehearse.base import end_process
from helpers.rehearse.session import STANDIN_LOGS, Rehearsal, RehearsalError

STEPS_MIME = "application/vnd.runbook.steps+json"
QUIET_STATUSES = frozenset({"ok", "skipped"})
PUSH_BEFORE = "2.18"  # the operator pushes the app repository (CI builds and deploys) before this task
PUSHES_BEFORE = ("2.17", PUSH_BEFORE)  # and before 2.17 too: the images must exist for Coolify to pull
PRODUCTION_TASKS = frozenset({"2.14", "2.15", "2.16", "2.17", "2.18"})  # real app containers on the droplet
# removed after a clean rehearsal
WORKSPACE_PARTS = ("secrets.env", "state", "ssh", "app", "github.json", "registry", STANDIN_LOGS)
# What a rehearsal stands in, and what stays real: said once here, and on the site's rehearsal pages.
STOOD_IN = (
    "in a rehearsal on one machine: the DigitalOcean, Coolify and GitHub APIs were local stand-ins that "
    "follow the vendors' API descriptions, the droplet a local Debian container (systemd, OpenSSH), the "
    "operator's pushes before 2.17 and 2.18 simulated, GHCR a local OCI registry (Debian's docker-registry); "
    "SSH, the server's setup, the Coolify installer's upload and run, the app's image builds and pushes, "
    "the Docker containers and git were real"
)

DESCRIPTION = """\
Rehearse phase 2 (Coolify on a DigitalOcean droplet) on this machine, without a cloud account:
the committed notebooks run through the runner (`runbook run phase2`), unchanged, against local
stand-ins, twice. Every task must pass, and the second run must change nothing, or the command
fails: every step reports ok or skipped, AND, read from outside, the stand-ins' logs show no
request that changes anything (POST, PUT, PATCH, DELETE, Coolify's acting GETs) and the droplet
(packages, files under /etc, users, ufw rules, containers) is byte for byte as after the first run.

Every request the runbook sends and every answer the stand-ins give is validated against the
vendor's API description (shared/refs; RUNBOOK_REFS_DIR): a violation that the allow-list of
known description defects (helpers/rehearse/contract-allowlist.yaml) does not cover fails the
rehearsal; the counts (validated, allowed, failed) are printed at the end.

What is real: SSH (keys, known_hosts, ~/.ssh/config entry), the droplet's operating system (a
Debian container with systemd as PID 1 and sshd, published on 127.0.0.1), the sudo user, sshd
hardening (sshd -T), ufw, fail2ban, unattended-upgrades, the timezone, the Coolify installer's
upload and run over SSH, Docker containers, git in a copy of the sample app.

What is stood in (local, stateful HTTP servers that follow the vendors' API contracts): the
DigitalOcean API (droplet, SSH key, firewall; a created droplet is the container above), the
Coolify API (installed in the droplet container by the rehearsal installer as coolify.service on
port 8000), the GitHub API (repository secrets, workflow runs).

What is simulated between tasks: the operator's `git push` of the app repository after 2.17 (no
notebook pushes); the GitHub stand-in then runs the deploy workflow, whose deploy job calls the
Coolify webhooks, and 2.18 checks that run. 2.18 therefore runs as a second runner call.

After the runs, when they reach 2.18, the operations run once on the same production (a separate
step; --no-operations skips it): runbook doctor, a backup and the restore drill, a release (a new
image pushed and deployed) rolled back to the previous digest and forward again, monitoring twice
(the second run changes nothing), logs, the doctor on a stopped web app, and a teardown that must
leave nothing behind in the stand-ins.

What is skipped, and why: swap (swapon on the container's overlay filesystem fails, and a swap
file on the host would be the whole machine's swap), pulling images from GHCR or Docker Hub (no
registry is reachable from the rehearsal). Each skip shows as a `skipped` step in the notebook.

With --faults SEED (a fault run): the stand-ins answer some requests, at seeded random points within a
fixed budget per run, with 429 (Retry-After), 500 or 503, answer slowly, or act and then drop the
connection without answering (the droplet is created, the response lost); one SSH session on the
droplet is cut while a command runs. A task that fails of it is resumed (`runbook resume`), up to
--resumes times in all. At the end the vendors' APIs are read from outside: exactly one
droplet, firewall, SSH key and project, every database, application, environment variable and
repository secret once; the figures (faults by kind, retries, resumes, duplicates) are printed and
kept in runs/faults.json.

Nothing leaves this machine: tokens are throwaway values made for the stand-ins, kept in the
rehearsal's own secrets file; DIGITALOCEAN_API_URL etc. pointing elsewhere stop the rehearsal.
Stand-ins and containers are removed at the end, also after Ctrl-C.
"""

EPILOG = """\
examples:
  python -m helpers.rehearse phase2                 all of phase 2 that exists, twice
  python -m helpers.rehearse phase2 --to 2.8        the infrastructure tasks (2.1 to 2.8)
  python -m helpers.rehearse phase2 --runs 1 --keep one run; keep the workspace to look at
  python -m helpers.rehearse phase2 --runs 1 --faults 7   one fault run (seed 7), resumed until done
  make rehearse-phase2 ARGS="--to 2.8"

outputs: the workspace (default .work/rehearsal/<id>/) holds secrets.env (throwaway tokens,
generated passwords), state/, ssh/, app/ (the sample app copy the tasks change) and runs/run-N/,
one runner folder per run (executed notebooks, ledger.json, summary.md/.html, runner.log).
The run folders stay; the rest of the workspace is removed after a clean rehearsal unless --keep.

exit codes: 0 every run passed and the last one changed nothing · 1 a task failed, or a later
run changed something · 2 bad usage, or the rehearsal could not start · 130 interrupted.
"""


@dataclass
class RunResult:
    number: int
    folder: Path
    returncode: int
    seconds: float
    problems: list[str] = field(default_factory=list)


def existing_tasks(phase: str = "phase2") -> list[str]:
    """The phase's tasks, in run order, up to the first whose notebook does not exist yet."""
    found: list[str] = []
    for task in registry.order(phase):
        if not (PROJECT_ROOT / task.notebook).is_file():
            break
        found.append(task.id)
    return found


def notebook_steps(path: Path) -> list[dict[str, Any]]:
    """The steps an executed notebook reported (its ``application/vnd.runbook.steps+json`` outputs)."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    return [
        step
        for cell in nb.get("cells", [])
        for output in cell.get("outputs", [])
        for step in output.get("data", {}).get(STEPS_MIME, {}).get("steps", [])
    ]


def problems_of(folder: Path, selected: Sequence[str], quiet: bool) -> list[str]:
    """What is wrong with a run folder: tasks that did not pass; with ``quiet``, steps that changed."""
    ledger_path = folder / "ledger.json"
    if not ledger_path.is_file():
        return [f"{folder}: no ledger.json (the runner did not start?)"]
    try:
        ledger = json.loads(ledger_path.read_text(encoding="utf-8"))
    except ValueError as exc:
        return [f"{ledger_path} is not valid JSON ({exc}): the runner wrote a broken ledger"]
    records = {t["id"]: t for t in ledger.get("tasks", [])}
    problems: list[str] = []
    for task_id in selected:
        record = records.get(task_id)
        if record is None:
            problems.append(f"{task_id}: not in the ledger")
            continue
        if record["status"] != "passed":
            detail = (record.get("error") or {}).get("evalue", "") or record.get("reason", "")
            problems.append(f"{task_id}: {record['status']} {detail[:300]}".rstrip())
            continue
        if not quiet:
            continue
        executed = folder / record["output"]
        steps = notebook_steps(executed) if executed.is_file() else []
        changed = [
            f"{s.get('name')} ({s.get('status')})" for s in steps if s.get("status") not in QUIET_STATUSES
        ]
        counted = {k: v for k, v in (record.get("steps") or {}).items() if k not in QUIET_STATUSES and v}
        if changed or counted:
            problems.append(f"{task_id}: changed on a repeated run: {', '.join(changed) or counted}")
    return problems


def resume_once(rehearsal: Rehearsal, result: RunResult, attempt: int) -> None:
    """``runbook resume <run folder>``: what an operator does after a failed task (fault runs)."""
    cmd = [sys.executable, "-m", "helpers.runner.cli", "resume", str(result.folder)]
    print(f"\n=== resume {attempt} of {result.folder.name}: runbook resume {result.folder}", flush=True)
    began = time.monotonic()
    proc = subprocess.Popen(cmd, env=rehearsal.env, cwd=PROJECT_ROOT)
    try:
        result.returncode = proc.wait()
    except KeyboardInterrupt:
        end_process(proc, signal.SIGINT)
        raise
    result.seconds = round(result.seconds + time.monotonic() - began, 1)


@dataclass
class FaultRun:
    """A fault run's injector, its resumes and its closing figures (``--faults``)."""

    plan: faults.Plan
    injector: faults.Injector | None = None
    resumes: list[str] = field(default_factory=list)  # "run-1: 2.2 failed (...)"
    found: dict[str, Any] = field(default_factory=dict)

    def start(self, rehearsal: Rehearsal) -> None:
        forwards = dict(pair.split("=", 1) for pair in rehearsal.address_map.split(",") if "=" in pair)
        dashboard = forwards.get("127.0.0.1:8000", "")

        def urls() -> dict[str, str]:
            found = rehearsal.standin_urls()
            if "coolify" not in found and dashboard:  # before 2.5 records it: where it will answer
                found["coolify"] = f"http://{dashboard}"
            return found

        self.injector = faults.Injector(self.plan, urls, rehearsal.droplet_container).start()

    def finish(self, rehearsal: Rehearsal, entries: list[Any]) -> tuple[list[str], list[str]]:
        """Stop injecting, count from outside; the problems (duplicates) and the figures' lines."""
        assert self.injector is not None
        self.injector.stop()
        figures = faults.figures(entries, self.injector.ssh_drops())
        problems: list[str] = []
        try:
            urls, tokens = rehearsal.standin_urls(), rehearsal.secret_values()
            self.found = faults.inventory(urls, tokens, rehearsal.repository)
        except Exception as exc:  # the count is the point of the run: not reading it fails it
            problems.append(f"could not count the vendors' resources from outside: {exc}")
        dups = faults.duplicates(self.found)
        problems += [f"duplicate after faults: {d}" for d in dups]
        lines = [
            f"faults (seed {self.plan.seed}, budget {self.plan.budget()} per run): {figures.total} injected: "
            + faults.describe_kinds(figures.injected),
            f"  retries by the clients (a faulted request repeated at once): {figures.retries}",
            f"  lost responses (the stand-in acted, the answer dropped): {', '.join(figures.lost) or 'none'}",
            f"  resumes: {len(self.resumes)}" + "".join(f"\n    - {r}" for r in self.resumes),
            f"  counted from outside: {faults.describe_inventory(self.found)}",
            f"  duplicates: {len(dups)}",
        ]
        record = {
            "seed": self.plan.seed,
            "budget": self.plan.budget(),
            "injected": figures.injected,
            "retries": figures.retries,
            "lost_responses": figures.lost,
            "resumes": self.resumes,
            "inventory": {kind: dict(names) for kind, names in self.found.items()},
            "duplicates": dups,
            "ssh": self.injector.ssh_lines(),
        }
        rehearsal.runs_dir.mkdir(parents=True, exist_ok=True)
        (rehearsal.runs_dir / "faults.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        return problems, lines


@dataclass
class Audit:
    """What each run did, read from outside (:mod:`helpers.rehearse.outside`): its exchanges with the
    stand-ins, validated against the vendors' descriptions; from the second run on, no request that
    changes anything, and the droplet's state as after the first run."""

    validate: bool = True
    reader: outside.LogReader = field(default_factory=outside.LogReader)
    report: contracts.Report = field(default_factory=contracts.Report)
    state: dict[str, list[str]] | None = None
    mutating: dict[int, int] = field(default_factory=dict)
    entries: list[Any] = field(default_factory=list)  # every exchange read so far

    def read(self, rehearsal: Rehearsal) -> tuple[list[Any], list[str]]:
        """The exchanges since the last reading, and the contract problems among them."""
        self.reader.urls = {**rehearsal.standin_urls()}  # a stand-in that is gone (teardown) is not read
        try:
            entries = self.reader.new()
        except RuntimeError as exc:
            return [], [str(exc)]
        self.entries += entries
        if not self.validate:
            return entries, []
        report = contracts.check(entries, strict_requests=True)
        self.report.merge(report)
        return entries, [f"contract: {line}" for line in report.failure_lines(20)]

    def exchanges(self, rehearsal: Rehearsal) -> list[str]:
        """The contract problems of the exchanges since the last reading (the operations after 2.18)."""
        return self.read(rehearsal)[1]

    def after_run(self, rehearsal: Rehearsal, number: int) -> list[str]:
        """The problems of run ``number`` that its own reports cannot show."""
        entries, problems = self.read(rehearsal)
        if not entries and problems:
            return problems
        changes = outside.mutations(entries)
        self.mutating[number] = len(changes)
        if number > 1:
            problems += [
                f"changed a vendor's state on a repeated run: {outside.describe(e)}" for e in changes
            ]
        container = rehearsal.droplet_container()
        if container is None:
            return problems
        try:
            state = outside.droplet_state(container)
        except RuntimeError as exc:
            return [*problems, f"droplet state: {exc}"]
        if number > 1 and self.state is not None:
            problems += [
                f"droplet changed on a repeated run: {d}" for d in outside.state_changes(self.state, state)
            ]
        self.state = state
        print(f"  droplet state after run {number}: {outside.state_digest(state)[:16]}", flush=True)
        return problems

    def summary(self, refs_problem: str | None) -> list[str]:
        lines = [
            "requests that change something, per run: "
            + ", ".join(f"run {n}: {c}" for n, c in sorted(self.mutating.items()))
        ]
        if refs_problem is not None:
            return [*lines, f"contracts: not validated ({refs_problem})"]
        lines.append("contracts (exchanges validated against the vendors' API descriptions):")
        lines += [f"  {line}" for line in self.report.lines()]
        return lines


def select(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """(the runner's selection options, the task ids they select) from --only/--from/--to."""
    order = [t.id for t in registry.order("phase2")]
    if args.only:
        unknown = [t for t in args.only if t not in order]
        if unknown:
            raise RehearsalError(
                f"not phase-2 tasks: {', '.join(unknown)} (they are {order[0]} to {order[-1]})"
            )
        return ["--only", *args.only], [t for t in order if t in args.only]
    available = existing_tasks()
    if not available:
        raise RehearsalError("no phase-2 notebook exists yet (notebooks/phase2/)")
    to = args.to or available[-1]
    start = args.start or order[0]
    for value in (start, to):
        if value not in order:
            raise RehearsalError(f"{value} is not a phase-2 task ({order[0]} to {order[-1]})")
    chosen = order[order.index(start) : order.index(to) + 1]
    missing = [t for t in chosen if t not in available]
    if missing:
        raise RehearsalError(
            f"no notebook yet for {', '.join(missing)}; rehearse up to {available[-1]} (--to {available[-1]})"
        )
    return ["--from", start, "--to", to], chosen


def run_once(
    rehearsal: Rehearsal, number: int, selection: list[str], extra: Sequence[str], name: str = ""
) -> RunResult:
    folder = rehearsal.runs_dir / (name or f"run-{number}")
    cmd = [
        sys.executable,
        "-m",
        "helpers.runner.cli",
        "run",
        "phase2",
        *selection,
        "--output-dir",
        str(folder),
        *extra,
    ]
    print(f"\n=== rehearsal run {number}: runbook {' '.join(cmd[3:])}", flush=True)
    began = time.monotonic()
    proc = subprocess.Popen(cmd, env=rehearsal.env, cwd=PROJECT_ROOT)
    try:
        returncode = proc.wait()
    except KeyboardInterrupt:
        # let the runner stop as on Ctrl-C (a consistent ledger that `runbook resume` accepts), then go on
        # with the teardown
        end_process(proc, signal.SIGINT)
        raise
    return RunResult(number, folder, returncode, round(time.monotonic() - began, 1))


def segments(selection: list[str], selected: list[str]) -> list[tuple[list[str], list[str]]]:
    """The runner invocations of one run: the whole selection, or, when it goes from before a push point
    (:data:`PUSHES_BEFORE`) to it, one invocation up to each push point and from it on (the operator's
    `git push` happens between them, :func:`push`)."""
    if selection[0] == "--only":
        return [(selection, selected)]
    cuts = [i for i, task in enumerate(selected) if task in PUSHES_BEFORE and i > 0]
    if not cuts:
        return [(selection, selected)]
    parts = [selected[i:j] for i, j in zip([0, *cuts], [*cuts, len(selected)], strict=True)]
    return [(["--from", part[0], "--to", part[-1]], part) for part in parts]


def push(rehearsal: Rehearsal, first: bool, before: str = PUSH_BEFORE) -> None:
    """Simulate the operator's push on the first run; a repeated run pushes nothing new (no change).

    Before 2.17 the images must exist for Coolify to pull: the operator commits what 2.9 to 2.12 wrote and
    pushes; the workflow's build job builds and pushes the images, its deploy job fails (the app UUID
    secrets are still pending: task 2.17 sets them). Before 2.18 the operator pushes again, and the whole
    workflow runs: build (cached), push, deploy through the webhooks."""
    if not first:
        print(
            f"\n=== no new push before {before} on a repeated run: 2.18 reads the last run on main",
            flush=True,
        )
        return
    print(
        f"\n=== git push of the app repository before {before} (simulated on the GitHub stand-in)", flush=True
    )
    for run in rehearsal.push(message=f"Deploy to production (before task {before})"):
        print(f"  workflow run #{run.get('id')} {run.get('name')}: {run.get('conclusion')}", flush=True)
        for line in (run.get("x_rehearsal") or {}).get("log") or []:  # the images built and pushed
            print(f"    {line}", flush=True)


def rehearse_operations(rehearsal: Rehearsal, runner_args: Sequence[str], audit: Audit) -> list[Any]:
    """The operations after 2.18 (:mod:`helpers.rehearse.operations`); their results, also on failure.

    Their exchanges with the stand-ins are held to the vendors' descriptions as the runs' are (before the
    teardown, while Coolify's stand-in still runs on the droplet, and after it)."""
    from helpers.rehearse.operations import Operations

    print(f"\n=== operations after {PUSH_BEFORE} (a separate step: phase 2's runs are done)", flush=True)
    ops = Operations(rehearsal, runner_args, lambda: audit.exchanges(rehearsal), problems_of)
    try:
        ops.run()
    except Exception as exc:  # a crash of the sequence itself is a problem of the rehearsal, reported
        from helpers.core.errors import crash_line
        from helpers.rehearse.operations import OpResult

        ops.results.append(OpResult("operations", None, 0.0, [crash_line(exc)]))
    print(f"operations: what was seen is in {ops.write()}", flush=True)
    return ops.results


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m helpers.rehearse",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="phase", required=True, metavar="phase2")
    p2 = sub.add_parser(
        "phase2",
        help="rehearse phase 2 against the local stand-ins",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(p2)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``phase2`` (also for ``runbook rehearse``, see :func:`add_subcommand`)."""
    parser.add_argument("--runs", type=int, default=2, help="how many runs in a row (default 2)")
    parser.add_argument("--from", dest="start", metavar="ID", help="first task (default 2.1)")
    parser.add_argument("--to", metavar="ID", help="last task (default: the last notebook that exists)")
    parser.add_argument("--only", nargs="+", metavar="ID", help="exactly these tasks")
    parser.add_argument("--keep", action="store_true", help="keep the workspace (the stand-ins always stop)")
    parser.add_argument(
        "--no-operations",
        dest="operations",
        action="store_false",
        help="skip the operations after 2.18 (backup, drill, rollback, monitoring, logs, doctor, teardown)",
    )
    parser.add_argument("--workdir", type=Path, help="the workspace (default .work/rehearsal/<id>)")
    parser.add_argument(
        "--faults",
        type=int,
        metavar="SEED",
        help="a fault run: vendor faults and a cut SSH session at points drawn with SEED, resumed until done",
    )
    parser.add_argument(
        "--resumes",
        type=int,
        default=8,
        metavar="N",
        help="with --faults: at most N `runbook resume` in all (default 8)",
    )
    parser.add_argument(
        "--runner-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="passed on to `runbook run` (repeatable)",
    )


def rehearse(args: argparse.Namespace) -> int:
    if args.runs < 1:
        print("rehearse: --runs must be 1 or more", file=sys.stderr)
        return 2
    try:
        selection, selected = select(args)
    except RehearsalError as exc:
        print(f"rehearse: {exc}", file=sys.stderr)
        return 2
    refs = contracts.refs_problem()
    if refs is not None and contracts.refs_required():
        print(f"rehearse: {contracts.REQUIRE_ENV}=1 but {refs}", file=sys.stderr)
        return 2
    began = time.monotonic()
    results: list[RunResult] = []
    operations: list[Any] = []
    audit = Audit(validate=refs is None)
    infrastructure = {f"2.{n}" for n in range(1, 9)}
    needs_github = any(t not in infrastructure for t in selected)
    production = any(t in PRODUCTION_TASKS for t in selected)
    rehearsal = Rehearsal(args.workdir, github=needs_github, docker_socket=production, keep=True)
    fault_run: FaultRun | None = None
    fault_lines: list[str] = []
    if args.faults is not None:
        fault_run = FaultRun(faults.Plan(args.faults))
    try:
        with rehearsal:
            print(f"rehearsal {rehearsal.id}: workspace {rehearsal.workdir}", flush=True)
            print(f"  DigitalOcean stand-in {rehearsal.digitalocean_url}", flush=True)
            if rehearsal.github_url:
                print(f"  GitHub stand-in {rehearsal.github_url}", flush=True)
            if fault_run is not None:
                fault_run.start(rehearsal)
            for number in range(1, args.runs + 1):
                if fault_run is not None and fault_run.injector is not None and number > 1:
                    fault_run.injector.new_run()  # a fixed budget per run
                for segment, (options, tasks) in enumerate(segments(selection, selected)):
                    if segment:  # before 2.17 and 2.18: the operator pushes the app repository
                        push(rehearsal, first=number == 1, before=tasks[0])
                    name = f"run-{number}" + (f"-{tasks[0]}" if segment else "")
                    result = run_once(rehearsal, number, options, args.runner_arg, name)
                    result.problems = problems_of(result.folder, tasks, quiet=number > 1)
                    while fault_run is not None and result.problems and len(fault_run.resumes) < args.resumes:
                        fault_run.resumes.append(f"{name}: {result.problems[0].splitlines()[0][:240]}")
                        resume_once(rehearsal, result, len(fault_run.resumes))
                        result.problems = problems_of(result.folder, tasks, quiet=number > 1)
                    if result.returncode != 0 and not result.problems:
                        result.problems = [f"`runbook run` exited {result.returncode}"]
                    results.append(result)
                    if result.problems:
                        break
                results[-1].problems += audit.after_run(rehearsal, number)
                if results[-1].problems:
                    break
            if fault_run is not None:
                faults_problems, fault_lines = fault_run.finish(rehearsal, audit.entries)
                results[-1].problems += faults_problems
            if args.operations and PUSH_BEFORE in selected and not any(r.problems for r in results):
                operations = rehearse_operations(rehearsal, args.runner_arg, audit)
    except RehearsalError as exc:
        print(f"rehearse: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "\nrehearse: interrupted; the stand-ins and their containers were removed, so `runbook resume` "
            "cannot continue this run: start a new rehearsal",
            file=sys.stderr,
        )
        return 130
    failed = any(r.problems for r in [*results, *operations])
    write_record(rehearsal, results, passed=not failed)
    print(f"\nrehearsal {rehearsal.id}: {len(results)} run(s) of {', '.join(selected)} in "
          f"{time.monotonic() - began:.0f} s")  # fmt: skip
    for result in results:
        verdict = "ok" if not result.problems else "FAILED"
        print(f"  run {result.number}: {verdict} in {result.seconds:.0f} s, run folder {result.folder}")
        for problem in result.problems:
            print(f"    - {problem}")
    if operations:
        print(f"  operations after {PUSH_BEFORE}: {sum(o.seconds for o in operations):.0f} s")
    for op in operations:
        verdict = "ok" if not op.problems else "FAILED"
        print(
            f"    {op.label}: {verdict} in {op.seconds:.0f} s"
            + (f", run folder {op.folder}" if op.folder else "")
        )
        for problem in op.problems:
            print(f"      - {problem}")
    for line in audit.summary(refs):
        print(line)
    for line in fault_lines:
        print(line)
    if failed and rehearsal.standin_failures:
        print("  the stand-ins reported:", *(f"    {line}" for line in rehearsal.standin_failures), sep="\n")
    if failed or args.keep:
        print(f"workspace kept: {rehearsal.workdir} (what the stand-ins printed: {STANDIN_LOGS}/)")
    else:
        for part in WORKSPACE_PARTS:
            path = rehearsal.workdir / part
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        print(
            f"run folders kept in {rehearsal.runs_dir}; the rest of the workspace removed (--keep keeps it)"
        )
    return 1 if failed else 0


def write_record(rehearsal: Rehearsal, results: Sequence[RunResult], passed: bool) -> Path:
    """``runs/rehearsal.json``: what the site needs to publish this rehearsal's outputs (see
    :data:`helpers.core.paths.REHEARSAL_RECORD`); the secrets file is named, never copied."""
    record = {
        "id": rehearsal.id,
        "setting": STOOD_IN,
        "runs": [r.folder.name for r in results if r.number == 1],  # the first run's folders, in order
        "passed": passed,
        "paths": {"workspace": str(rehearsal.workdir), "app": str(rehearsal.app_dir)},
        "secrets_file": str(rehearsal.secrets_file),
    }
    path = rehearsal.runs_dir / REHEARSAL_RECORD
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return path


def add_subcommand(subparsers: Any) -> None:
    """Register ``runbook rehearse`` on the runner's subparsers (the handler is in ``func``)."""
    parser = subparsers.add_parser(
        "rehearse",
        help="rehearse phase 2 locally against the stand-ins, twice",
        description=DESCRIPTION,
        epilog=EPILOG.replace("python -m helpers.rehearse phase2", "runbook rehearse"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    parser.set_defaults(func=rehearse)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started in the background
    return rehearse(args)


if __name__ == "__main__":
    sys.exit(main())
