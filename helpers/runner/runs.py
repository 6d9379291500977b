"""Start, resume and plan runs: the setup around :func:`helpers.runner.chain.run_chain`.

A run folder (default ``runs/<UTC timestamp>-<phase>/``, git-ignored) holds the executed
notebooks, ``ledger.json``, ``summary.md``, ``summary.html`` and ``runner.log``. Everything in it
is scrubbed of secrets as it is written, and once more, file by file, when the run ends.
"""

from __future__ import annotations

import ast
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers.runner import params as P
from helpers.runner import report
from helpers.runner.catalog import Catalog
from helpers.runner.chain import Job, Observer, Options, Pool, RunInterrupted, run_chain
from helpers.runner.ledger import (
    Ledger,
    LedgerError,
    TaskRecord,
    last_run,
    new_run_dir,
    now,
    remember,
    runs_dir,
)
from helpers.runner.plan import Plan, Selection, SelectionError, make_plan
from helpers.runner.redact import RedactingFormatter, Redactor, activate

log = logging.getLogger("runbook")


class RunnerError(Exception):
    """A problem found before anything ran (bad selection, parameters, missing notebooks...)."""


@dataclass
class Request:
    phase: str
    selection: Selection = field(default_factory=Selection)
    given: P.ParameterSet = field(default_factory=P.ParameterSet)
    dry_run: bool = False
    mode: str = "run"  # "run" or "plan"
    output_dir: Path | None = None
    options: Options = field(default_factory=Options)
    argv: list[str] = field(default_factory=list)


def prestart(catalog: Catalog, phase: str, options: Options, redactor: Redactor) -> Pool | None:
    """Start the workers' kernels now (they boot while parameters are checked); None for a bad phase."""
    if phase not in catalog.phases:
        return None
    notebooks = [p for p in (catalog.notebook(t) for t in catalog.in_phase(phase)) if p.is_file()]
    jobs = max(1, min(options.jobs, len(notebooks) or 1))
    return Pool(options.engine, jobs, warm_modules(notebooks), redactor, options.timeout)


def _submodule(package: str, name: str) -> str | None:
    """``package.name`` when ``from package import name`` imports a module (``from helpers.services
    import compose``), else None (a function or a constant)."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            return None  # not a package: ``name`` is an attribute
        return f"{package}.{name}" if importlib.util.find_spec(f"{package}.{name}") else None
    except (ImportError, ValueError):
        return None


def warm_modules(notebooks: list[Path]) -> list[str]:
    """Modules the notebooks import (statically found), to import once when a kernel starts."""
    found: list[str] = []
    for path in notebooks:
        try:
            nb = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        for cell in nb.get("cells", []):
            if cell.get("cell_type") != "code":
                continue
            source = (
                "".join(cell["source"]) if isinstance(cell.get("source"), list) else cell.get("source", "")
            )
            try:
                tree = ast.parse(source)
            except SyntaxError:
                continue
            for node in ast.walk(tree):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    subs = (_submodule(node.module, a.name) for a in node.names if a.name != "*")
                    names = [node.module, *filter(None, subs)]
                for name in names:
                    if name not in found:
                        found.append(name)
    return found


def declared_for(catalog: Catalog, plan: Plan) -> dict[str, dict[str, P.Declared]]:
    declared = {}
    for task in plan.tasks:
        path = catalog.notebook(task)
        if path.is_file():
            try:
                declared[task.id] = P.declared_parameters(path)
            except P.ParameterError as exc:
                raise RunnerError(f"task {task.id} ({path}): {exc}") from exc
    return declared


def _check_notebooks(catalog: Catalog, plan: Plan) -> None:
    missing = [t for t in plan.selected_tasks() if not catalog.notebook(t).is_file()]
    if missing:
        rows = "\n".join(f"  {t.id} {t.title}: {t.notebook}" for t in missing)
        raise RunnerError(
            f"{len(missing)} selected task(s) have no notebook yet:\n{rows}\n"
            "Write them, or leave them out with --only/--from/--to."
        )


def _unsafe_in_dry_run(task_kind: str, declared: dict[str, P.Declared], mode: str) -> str:
    if mode == "plan" and task_kind == "manual":
        return "manual task: a person does it; `runbook run` checks it"
    if task_kind in ("automated", "docs") and P.DRY_RUN not in declared:
        return (
            "its notebook has no dry_run parameter, so it is not run in dry-run mode (it could change things)"
        )
    return ""


@contextmanager
def _run_logging(run_dir: Path, redactor: Redactor):
    handler = logging.FileHandler(run_dir / "runner.log", encoding="utf-8")
    handler.setFormatter(RedactingFormatter(redactor))
    handler.setLevel(logging.INFO)
    loggers = [logging.getLogger(n) for n in ("runbook", "papermill")]
    saved = [(lg, lg.level, lg.propagate) for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.INFO)
        lg.propagate = False
    try:
        yield
    finally:
        for lg, level, propagate in saved:
            lg.removeHandler(handler)
            lg.setLevel(level)
            lg.propagate = propagate
        handler.close()


def _resolve(
    catalog: Catalog, plan: Plan, given: P.ParameterSet, dry_run: bool, redactor: Redactor
) -> tuple[dict[str, dict[str, P.Declared]], dict[str, dict[str, Any]]]:
    declared = declared_for(catalog, plan)
    try:
        values = P.resolve(
            plan.tasks,
            declared,
            given,
            dry_run=dry_run,
            selected=plan.selected,
            known_secrets=redactor.values,
        )
    except P.ParameterError as exc:
        raise RunnerError(str(exc)) from exc
    return declared, values


def _jobs_for(catalog: Catalog, plan: Plan, ledger: Ledger) -> Callable[[TaskRecord], Job]:
    def make(record: TaskRecord) -> Job:
        env = {"RUNBOOK_RUN_DIR": str(ledger.run_dir), "RUNBOOK_TASK_ID": record.id}
        if ledger.dry_run:
            env["RUNBOOK_DRY_RUN"] = "1"
        return Job(
            task_id=record.id,
            source=catalog.notebook(plan.get(record.id)),
            output=ledger.run_dir / record.output,
            parameters=record.parameters,
            env=env,
        )

    return make


def _selection_json(selection: Selection) -> dict[str, Any]:
    return {"start": selection.start, "stop": selection.stop, "only": list(selection.only)}


def _refuse_unchained(catalog: Catalog, request: Request) -> None:
    """A group that is not a chain (the operations) runs one chosen task at a time: ``--only ID``."""
    group = catalog.phases[request.phase]
    if group.chain or request.mode != "run" or request.selection.only:
        return
    ids = " ".join(t.id for t in catalog.in_phase(request.phase))
    raise RunnerError(
        f"{request.phase} is not a chain: each of its tasks runs alone, when needed. Choose it with "
        f"--only (one of: {ids}), e.g. `runbook run {request.phase} --only {ids.split()[0]}`; "
        f"`runbook plan {request.phase}` dry-runs them all"
    )


def new_ledger(catalog: Catalog, request: Request, redactor: Redactor | None = None) -> tuple[Ledger, Plan]:
    """Check everything that can be checked before running, then create the run folder and ledger."""
    redactor = redactor or Redactor()
    try:
        plan = make_plan(request.phase, catalog.in_phase(request.phase), request.selection)
    except KeyError as exc:
        raise RunnerError(str(exc).strip("'\"")) from exc
    except SelectionError as exc:
        raise RunnerError(str(exc)) from exc
    _refuse_unchained(catalog, request)
    _check_notebooks(catalog, plan)
    dry = request.dry_run or request.mode == "plan"
    declared, values = _resolve(catalog, plan, request.given, dry, redactor)
    if request.output_dir:
        run_dir = Path(request.output_dir)
        if run_dir.exists() and any(run_dir.iterdir()):
            raise RunnerError(
                f"--output-dir {run_dir} is not empty; pick a new folder "
                f"(or continue that run with `runbook resume {run_dir}`)"
            )
        run_dir.mkdir(parents=True, exist_ok=True)
    else:
        run_dir = new_run_dir(runs_dir(catalog.root), request.phase, "plan" if request.mode == "plan" else "")
    groups = {t.id: n for n, group in enumerate(plan.groups, start=1) for t in group}
    records = []
    selected = set(plan.selected)
    for task in plan.tasks:
        record = TaskRecord(
            id=task.id,
            title=task.title,
            kind=task.kind,
            needs=plan.needs(task.id),
            notebook=str(task.notebook),
            output=task.notebook.name,
            group=groups[task.id],
            selected=task.id in selected,
            troubleshooting=report.troubleshooting_ref(task.id),
        )
        if task.id not in selected:
            record.status, record.reason = "skipped", f"not selected ({plan.selection.describe()})"
        else:
            record.parameters = values[task.id]
            record.digest = P.digest(values[task.id])
            reason = _unsafe_in_dry_run(task.kind, declared.get(task.id, {}), request.mode) if dry else ""
            if reason:
                record.status, record.reason = "skipped", reason
        records.append(record)
    phase = catalog.phases[request.phase]
    ledger = Ledger(
        run_id=run_dir.name,
        phase=request.phase,
        phase_title=phase.title,
        mode=request.mode,
        dry_run=dry,
        root=str(catalog.root),
        registry=catalog.source,
        options={
            "selection": plan.selection.describe(),
            "select": _selection_json(plan.selection),
            "keep_going": request.options.keep_going,
            "jobs": request.options.jobs,
            "engine": request.options.engine,
            "timeout": request.options.timeout,
        },
        parameters=request.given.to_json(),
        tasks=records,
    )
    ledger.path = run_dir / "ledger.json"
    return ledger, plan


def execute(
    catalog: Catalog,
    ledger: Ledger,
    plan: Plan,
    options: Options,
    redactor: Redactor,
    observer: Observer | None = None,
    argv: list[str] | None = None,
    pool: Pool | None = None,
) -> Ledger:
    """Run the ledger's pending tasks, then write the summaries and scrub the run folder."""
    activate(redactor)  # papermill's writes go through it (execute.run_notebook registers the handler)
    run_dir = ledger.run_dir
    ledger.attempts.append(
        {
            "number": len(ledger.attempts) + 1,
            "started": now(),
            "finished": None,
            "status": "running",
            "argv": list(argv or []),
            "pid": os.getpid(),
        }
    )
    ledger.status = "running"
    to_warm = warm_modules([catalog.notebook(plan.get(r.id)) for r in ledger.tasks if r.status == "pending"])
    interrupted = False
    stopping: list[threading.Thread] = []
    with _run_logging(run_dir, redactor):
        log.info(
            "run %s: %s, mode %s%s, python %s",
            ledger.run_id,
            ledger.phase,
            ledger.mode,
            " (dry-run)" if ledger.dry_run else "",
            sys.version.split()[0],
        )
        try:
            run_chain(
                ledger,
                plan,
                _jobs_for(catalog, plan, ledger),
                redactor,
                options,
                observer,
                to_warm,
                stopping=stopping,
                pool=pool,
            )
        except RunInterrupted:
            interrupted = True
        finally:
            _finish(ledger, redactor, interrupted)
            for thread in stopping:  # the kernels shut down while the reports were written
                thread.join(timeout=5 if interrupted else 20)
            log.info("kernels stopped")
    if observer is not None:
        observer.run_finished(ledger)
    if interrupted:
        raise RunInterrupted()
    return ledger


def _finish(ledger: Ledger, redactor: Redactor, interrupted: bool) -> None:
    """Final ledger, summaries, scrub pass: not to be cut short by another Ctrl-C."""
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:
        previous = None
    try:
        for record in ledger.tasks:
            if record.status == "running":
                record.status, record.reason = "interrupted", "the runner stopped while it ran"
            elif record.status == "pending":
                record.status, record.reason = "not-run", "not started"
        ledger.status = "interrupted" if interrupted else ledger.overall()
        ledger.attempts[-1].update(finished=now(), status=ledger.status)
        ledger.save(redactor)
        report.write(ledger, redactor)
        redactor.tree(ledger.run_dir)
        if ledger.mode == "run":
            remember(runs_dir(Path(ledger.root)), ledger.run_dir)
        log.info("run %s finished: %s", ledger.run_id, ledger.status)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def start(
    catalog: Catalog, request: Request, observer: Observer | None = None, redactor: Redactor | None = None
) -> Ledger:
    redactor = redactor or Redactor()
    ledger, plan = new_ledger(catalog, request, redactor)
    options = request.options
    if request.mode == "plan":
        options = Options(
            keep_going=True,
            jobs=options.jobs,
            engine=options.engine,
            timeout=options.timeout,
            ignore_failed_needs=True,
        )
    return execute(catalog, ledger, plan, options, redactor, observer, request.argv)


def find_run(catalog: Catalog, run_dir: Path | None = None) -> Ledger:
    if run_dir is not None:
        try:
            return Ledger.load(Path(run_dir))
        except LedgerError as exc:
            raise RunnerError(str(exc)) from exc
    base = runs_dir(catalog.root)
    ledger = last_run(base)
    if ledger is None:
        raise RunnerError(f"no run to resume under {base}; start one with `runbook run phase1`")
    return ledger


def resume(
    catalog: Catalog,
    run_dir: Path | None = None,
    extra: P.ParameterSet | None = None,
    keep_going: bool | None = None,
    jobs: int | None = None,
    engine: str | None = None,
    observer: Observer | None = None,
    redactor: Redactor | None = None,
    argv: list[str] | None = None,
) -> Ledger:
    """Continue a run: rerun what failed or did not run, keep what passed with the same parameters."""
    redactor = redactor or Redactor()
    ledger = find_run(catalog, run_dir)
    if ledger.mode != "run":
        raise RunnerError(f"{ledger.run_dir} is a {ledger.mode}, which cannot be resumed; use `runbook run`")
    if ledger.status == "passed" and not (extra and (extra.shared or extra.tasks)):
        return ledger
    try:
        phase_tasks = catalog.in_phase(ledger.phase)
    except KeyError as exc:
        raise RunnerError(str(exc)) from exc
    if sorted(t.id for t in phase_tasks) != sorted(r.id for r in ledger.tasks):
        raise RunnerError(
            f"the task registry changed since {ledger.run_id} started "
            f"({catalog.source}); start a new run with `runbook run {ledger.phase}`"
        )
    sel = ledger.options.get("select", {})
    selection = Selection(start=sel.get("start"), stop=sel.get("stop"), only=tuple(sel.get("only") or ()))
    plan = make_plan(ledger.phase, phase_tasks, selection)
    _check_notebooks(catalog, plan)
    given = P.ParameterSet.from_json(ledger.parameters)
    if extra:
        given = given.merged(extra)
    declared, values = _resolve(catalog, plan, given, ledger.dry_run, redactor)
    ledger.parameters = given.to_json()
    attempt = len(ledger.attempts) + 1
    for record in ledger.tasks:
        if not record.selected:
            continue
        new_values = values[record.id]
        same = P.digest(new_values) == record.digest
        if record.status == "passed" and same:
            continue
        reason = (
            _unsafe_in_dry_run(record.kind, declared.get(record.id, {}), ledger.mode)
            if ledger.dry_run
            else ""
        )
        output = ledger.run_dir / record.output
        if output.is_file():
            kept = output.with_name(f"{output.stem}.attempt{record.attempt or attempt - 1}{output.suffix}")
            output.replace(kept)
            record.previous.append(kept.name)
        record.parameters, record.digest = new_values, P.digest(new_values)
        record.error, record.steps, record.changes, record.checks, record.warnings = None, {}, [], {}, []
        record.started = record.finished = None
        record.duration = None
        record.status, record.reason = ("skipped", reason) if reason else ("pending", "")
    options = Options(
        keep_going=ledger.options.get("keep_going", False) if keep_going is None else keep_going,
        jobs=ledger.options.get("jobs", 1) if jobs is None else jobs,
        engine=ledger.options.get("engine", "runbook") if engine is None else engine,
        timeout=ledger.options.get("timeout"),
    )
    ledger.options.update(keep_going=options.keep_going, jobs=options.jobs, engine=options.engine)
    return execute(catalog, ledger, plan, options, redactor, observer, argv)


def exit_code(ledger: Ledger) -> int:
    return {"passed": 0, "interrupted": 130}.get(ledger.status, 1)


CHECK_FAILURES = ("VerificationFailed", "StepFailed")


def plan_exit_code(ledger: Ledger) -> int:
    """A plan succeeds when every dry-run ran: a failed check is part of the plan, a crash is not."""
    if ledger.status == "interrupted":
        return 130
    crashed = [
        r for r in ledger.tasks if r.status == "failed" and (r.error or {}).get("ename") not in CHECK_FAILURES
    ]
    return 1 if crashed else 0
