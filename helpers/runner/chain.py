"""Run a phase's selected tasks in dependency order, one kernel per worker, and keep the ledger.

The main thread schedules and records; worker threads execute (each owns a warm
:class:`~helpers.runner.engine.KernelSession`, started as soon as the worker starts, so the
kernel boots while the runner is still checking parameters). With ``jobs=1`` tasks run one at a
time in the run order; with ``jobs=N`` up to N tasks whose prerequisites have passed run at
once (the registry's parallel groups).

* A failure stops the chain: tasks not started yet become ``not-run`` (their reason names the
  failed task). With ``keep_going`` only the tasks that depend on the failure become ``not-run``;
  independent ones still run.
* Ctrl-C: the running notebooks' kernels are interrupted (SIGINT, like Jupyter's stop button),
  their partial executed notebooks are kept, they become ``interrupted``, the rest ``not-run``,
  and the ledger is written before :class:`RunInterrupted` is raised. ``runbook resume`` accepts
  that ledger.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from helpers.runner.execute import Outcome, run_notebook
from helpers.runner.kernel import KernelSession
from helpers.runner.ledger import BROKEN, DONE_OK, Ledger, TaskRecord
from helpers.runner.plan import Plan
from helpers.runner.redact import Redactor

log = logging.getLogger("runbook.chain")

INTERRUPT_GRACE = 15.0  # seconds the interrupted notebooks get to stop before their kernels are killed


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C: the ledger was written; ``runbook resume`` continues."""


class Observer(Protocol):
    def run_started(self, ledger: Ledger, total: int) -> None: ...
    def task_started(self, record: TaskRecord, number: int, total: int) -> None: ...
    def cell(self, task_id: str, number: int, total: int, first_line: str) -> None: ...
    def task_finished(self, record: TaskRecord, number: int, total: int) -> None: ...
    def note(self, message: str) -> None: ...
    def run_finished(self, ledger: Ledger) -> None: ...


class SilentObserver:
    def run_started(self, ledger: Ledger, total: int) -> None: ...
    def task_started(self, record: TaskRecord, number: int, total: int) -> None: ...
    def cell(self, task_id: str, number: int, total: int, first_line: str) -> None: ...
    def task_finished(self, record: TaskRecord, number: int, total: int) -> None: ...
    def note(self, message: str) -> None: ...
    def run_finished(self, ledger: Ledger) -> None: ...


@dataclass
class Options:
    keep_going: bool = False
    jobs: int = 1
    engine: str = "runbook"  # "runbook" (warm kernel), "runbook-fresh", or any papermill engine name
    timeout: float | None = None  # per cell, seconds
    ignore_failed_needs: bool = False  # plan mode: every task's dry-run is shown, whatever failed before


@dataclass
class Job:
    task_id: str
    source: Path
    output: Path
    parameters: dict[str, Any]
    env: dict[str, str]


@dataclass
class Worker:
    number: int
    engine: str
    warm_modules: list[str]
    events: queue.Queue
    redactor: Redactor
    timeout: float | None
    inbox: queue.Queue = field(default_factory=queue.Queue)
    session: KernelSession | None = None
    current: str | None = None
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._main, name=f"runbook-worker-{self.number}", daemon=True)
        self.thread.start()

    def _main(self) -> None:
        if self.engine in ("runbook", "runbook-fresh"):
            self.session = KernelSession(fresh=self.engine == "runbook-fresh", warm_modules=self.warm_modules)
            try:
                self.session.start()
            except Exception as exc:
                log.warning("worker %s: kernel did not start yet: %s", self.number, exc)
        try:
            while True:
                job = self.inbox.get()
                if job is None:
                    return
                self.events.put(("started", job.task_id, None))

                def on_cell(number: int, total: int, first: str, _id: str = job.task_id) -> None:
                    self.events.put(("cell", _id, (number, total, first)))

                try:
                    outcome = run_notebook(
                        job.source,
                        job.output,
                        job.parameters,
                        self.redactor,
                        engine_name=self.engine,
                        session=self.session,
                        on_cell=on_cell,
                        env=job.env,
                        timeout=self.timeout,
                    )
                except BaseException as exc:
                    from helpers.runner.execute import error_record
                    from helpers.runner.ledger import now

                    outcome = Outcome("failed", now(), now(), 0.0, error=error_record(exc, self.redactor))
                self.events.put(("done", job.task_id, outcome))
        finally:
            if self.session is not None:
                self.session.shutdown()


class Pool:
    """The workers, each with its kernel. Started early, the kernels boot while the runner prepares."""

    def __init__(
        self, engine: str, jobs: int, warm_modules: list[str], redactor: Redactor, timeout: float | None
    ):
        self.events: queue.Queue = queue.Queue()
        self.workers = [
            Worker(n, engine, list(warm_modules), self.events, redactor, timeout)
            for n in range(1, max(1, jobs) + 1)
        ]
        for worker in self.workers:
            worker.start()

    def close(self) -> list[threading.Thread]:
        """Tell every worker to stop (its kernel shuts down); returns the threads to join."""
        for worker in self.workers:
            worker.inbox.put(None)
        return [w.thread for w in self.workers if w.thread is not None]


def _apply(record: TaskRecord, outcome: Outcome) -> None:
    record.status = outcome.status
    record.started, record.finished, record.duration = outcome.started, outcome.finished, outcome.duration
    record.error = outcome.error
    record.steps, record.changes, record.checks = outcome.steps, outcome.changes, outcome.checks
    record.warnings = outcome.warnings
    if outcome.status == "interrupted":
        record.reason = "stopped by Ctrl-C"


def run_chain(
    ledger: Ledger,
    plan: Plan,
    jobs_for: Callable[[TaskRecord], Job],
    redactor: Redactor,
    options: Options,
    observer: Observer | None = None,
    warm_modules: list[str] | None = None,
    stopping: list[threading.Thread] | None = None,
    pool: Pool | None = None,
) -> Ledger:
    """Execute every ``pending`` task of ``ledger``; update and save the ledger as things happen.

    The workers are told to stop (and shut their kernels down) when the chain ends; pass a list
    as ``stopping`` to receive their threads and join them later (the kernels then stop while the
    caller writes the reports), otherwise they are joined here.
    """
    ui = observer or SilentObserver()
    order = [t.id for t in plan.tasks]
    records = {r.id: r for r in ledger.tasks}
    pending = [tid for tid in order if records[tid].status == "pending"]
    total = len(pending)
    started_count = 0
    numbers: dict[str, int] = {}
    if pool is None:
        pool = Pool(
            options.engine, min(options.jobs, total or 1), list(warm_modules or []), redactor, options.timeout
        )
    events, workers = pool.events, pool.workers
    stopped_by: str | None = None
    ui.run_started(ledger, total)
    ledger.save(redactor)

    def save() -> None:
        ledger.save(redactor)

    def settle() -> None:
        """Mark pending tasks that can no longer run as not-run."""
        for tid in list(pending):
            record = records[tid]
            if stopped_by and not options.keep_going:
                record.status, record.reason = (
                    "not-run",
                    f"not started: the run stopped after {stopped_by} failed",
                )
            elif not options.ignore_failed_needs:
                bad = [d for d in plan.needs(tid) if records[d].status in BROKEN]
                if bad:
                    record.status = "not-run"
                    what = records[bad[0]].status
                    record.reason = f"needs {bad[0]}, which {'did not run' if what == 'not-run' else what}"
            if record.status != "pending":
                pending.remove(tid)

    def ready() -> list[str]:
        out = []
        for tid in pending:
            needs = plan.needs(tid)
            if options.ignore_failed_needs:
                ok = all(records[d].status not in ("pending", "running") for d in needs)
            else:
                ok = all(records[d].status in DONE_OK for d in needs)
            if ok:
                out.append(tid)
        return out

    try:
        while True:
            settle()
            idle = [w for w in workers if w.current is None]
            for tid in ready():
                if not idle:
                    break
                worker = idle.pop(0)
                record = records[tid]
                pending.remove(tid)
                worker.current = tid
                record.status, record.reason = "running", ""
                record.attempt = len(ledger.attempts) or 1
                started_count += 1
                numbers[tid] = started_count
                save()
                ui.task_started(record, started_count, total)
                worker.inbox.put(jobs_for(record))
            busy = [w for w in workers if w.current is not None]
            if not busy:
                if pending:  # nothing runs and nothing can start: prerequisites outside reach
                    for tid in pending:
                        records[tid].status, records[tid].reason = "not-run", "its prerequisites did not pass"
                    pending.clear()
                break
            try:
                kind, tid, payload = events.get(timeout=0.2)
            except queue.Empty:
                continue
            if kind == "cell":
                ui.cell(tid, *payload)
            elif kind == "done":
                record = records[tid]
                _apply(record, payload)
                next(w for w in workers if w.current == tid).current = None
                if record.status in ("failed", "interrupted") and stopped_by is None:
                    stopped_by = tid
                save()
                ui.task_finished(record, numbers[tid], total)
    except KeyboardInterrupt:
        _interrupt(ledger, workers, events, records, pending, redactor, ui, numbers, total)
        raise RunInterrupted() from None
    finally:
        threads = pool.close()
        if stopping is not None:
            stopping.extend(threads)
        else:
            for thread in threads:
                thread.join(timeout=20)
    return ledger


def _interrupt(
    ledger: Ledger,
    workers: list[Worker],
    events: queue.Queue,
    records: dict[str, TaskRecord],
    pending: list[str],
    redactor: Redactor,
    ui: Observer,
    numbers: dict[str, int],
    total: int,
) -> None:
    """Ctrl-C: stop the running notebooks, record them as interrupted, the rest as not-run."""
    second = threading.Event()
    previous = signal.getsignal(signal.SIGINT)

    def again(signum: int, frame: Any) -> None:
        second.set()

    with contextlib.suppress(ValueError):  # ValueError: not the main thread
        signal.signal(signal.SIGINT, again)
    try:
        ui.note(
            "Ctrl-C: interrupting the running notebook(s) and writing the ledger (Ctrl-C again to stop now)"
        )
        busy = [w for w in workers if w.current is not None]
        for worker in busy:
            if worker.session is not None:
                worker.session.interrupt()
        deadline = time.monotonic() + INTERRUPT_GRACE
        while any(w.current for w in workers) and time.monotonic() < deadline and not second.is_set():
            try:
                kind, tid, payload = events.get(timeout=0.2)
            except queue.Empty:
                continue
            if kind == "done":
                record = records[tid]
                _apply(record, payload)
                if record.status == "failed" and (payload.error or {}).get("ename") in (
                    "KeyboardInterrupt",
                    "DeadKernelError",
                ):
                    record.status = "interrupted"
                if record.status == "interrupted":
                    record.reason = "stopped by Ctrl-C"
                next(w for w in workers if w.current == tid).current = None
                ui.task_finished(record, numbers.get(tid, 0), total)
        for worker in workers:
            if worker.current is not None:
                record = records[worker.current]
                record.status, record.reason = "interrupted", "stopped by Ctrl-C (its kernel was killed)"
                if worker.session is not None:
                    worker.session.kill()
                worker.current = None
        for tid in pending:
            records[tid].status, records[tid].reason = (
                "not-run",
                "not started: the run was interrupted (Ctrl-C)",
            )
        pending.clear()
        ledger.status = "interrupted"
        ledger.save(redactor)
    finally:
        with contextlib.suppress(ValueError):
            signal.signal(signal.SIGINT, previous)
